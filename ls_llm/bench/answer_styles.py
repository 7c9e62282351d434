"""Ways models state a final answer, right and wrong, for the oracle (:mod:`ls_llm.bench.eval_oracle`) and the
scoring benchmark. Each form is written after a ``<think>`` section that states the opposite answer (the
scorer must read past it).

Math (``MATH_FORMS``): the gold as a model writes it (``4.5 \\times 10^{33}`` for ``4.5e33``, sets in another
order, a unit or ``x =`` in the box), boxed or stated without a box (Minerva's "Final Answer: The final answer
is $5$. I hope it is correct.", "**Answer:** 5", "**Final Answer**" then a display), and the variants a gold
allows: ``30°``, ``58,500``, percent both ways, one box per part, named parts ``a = -2, b = -2``.
Wrong answers take the same forms: a number moved well outside its tolerance, ten times off, zero, a
multi-part answer missing a part, a symbolic answer with one sign flipped, or another row's gold.

Choice (``CHOICE_FORMS``): boxed labels and option texts, "The answer is (X)." (MMLU-Pro's format), a final
line that is the label (``(B)``, ``**B**``), ``B) <option text>``, "Option B is correct.", lower case, "I think
it's A, no wait, B.", ...
"""

from __future__ import annotations

import re

from ls_llm.answer_forms import normalize_latex, plain_number, split_top_level

_THOUSANDS = re.compile(r"\d,(?:\\!)?\d{3}\b")
# "x=", "t\\in", "\\angle BEA_1=", "f(x)=": a name the model leaves out of a bare answer.
_PREFIX = re.compile(r"^(?:\\angle\s*)?[A-Za-z](?:_\{?\w+\}?)?[A-Za-z0-9_{}]*(?:\([a-z]\))?\s*(?:=|\\in\b)\s*(?=\S)")
_E = re.compile(r"^([-+]?\d+(?:\.\d*)?)[eE]([-+]?\d+)$")
_BARE_POINT_FRACTION = re.compile(r"^([-+]?)(\d+)\./(\d+)$")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_DEGREE = re.compile(r"\^\s*\{?\\circ\}?")
_PERCENT = re.compile(r"\\?%$")
_NAMES = "abcdpqrs"


def model_style_math(gold: str, *, tolerance: float | None = None, unit: str | None = None, variant: int = 0,
                     reorder: bool = True) -> str:
    """The gold written the way a model writes it (never the stored text when another form exists).

    ``variant`` (the row number) rotates extras on plain numbers: none, a unit in the box, an ``x =``.
    ``reorder``: a multi-part gold's parts in reverse order (they are a multiset).
    """
    raw = gold.strip()
    parts = split_top_level(normalize_latex(raw))
    if len(parts) > 1 and not _THOUSANDS.search(raw):  # a multi-answer gold: the same set in another order
        return ", ".join(model_style_math(part, tolerance=tolerance) for part in (parts[::-1] if reorder else parts))
    text = _PREFIX.sub("", normalize_latex(raw))  # a model answers "90", not "\\angle BEA_1=90"
    if match := _E.match(raw):
        text = f"{match.group(1).rstrip('.')} \\times 10^{{{int(match.group(2))}}}"
    elif match := _BARE_POINT_FRACTION.match(raw):
        text = f"{match.group(1)}\\frac{{{match.group(2)}}}{{{match.group(3)}}}"
    elif tolerance and (value := plain_number(text)) is not None:
        text = f"{float(value[0]) + 0.5 * tolerance:g}"  # inside the benchmark's stated error
    elif re.fullmatch(r"0*\d+", text) and text != "0":
        text = text.lstrip("0")  # AIME's "025" written "25"
    else:
        text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text).replace("\\frac", "\\dfrac")
    if unit:
        return f"{text} \\text{{ {unit}}}"
    if plain_number(gold) is not None and variant % 3:
        return f"{text}\\ \\mathrm{{cm}}" if variant % 3 == 1 else f"x = {text}"
    return text


def _flip_sign(text: str) -> str | None:
    """The first top-level ``+`` or ``-`` after the start flipped: a wrong answer of the gold's own shape."""
    depth = 0
    for pos, char in enumerate(text):
        depth += char in "{([" and 1 or (char in "})]" and -1 or 0)
        if pos and depth == 0 and char in "+-" and text[pos - 1] not in "^_e":
            return text[:pos] + ("-" if char == "+" else "+") + text[pos + 1:]
    return None


def _written_like(gold: str, number: float) -> str:
    """``number`` in the gold's notation: ``a \\times 10^{n}`` for an e-notation gold, else ``%g``."""
    if _E.match(gold.strip()) and number:
        mantissa, exponent = f"{number:.3e}".split("e")
        return f"{float(mantissa):g} \\times 10^{{{int(exponent)}}}"
    return f"{number:g}"


def wrong_math(gold: str, other: str, *, tolerance: float | None = None, variant: int = 0) -> str:
    """A wrong answer. Plain numbers: moved well outside the tolerance, ten times off (variant 1), zero
    (variant 2); multi-part golds lose a part (variant 1) or name their parts in swapped order (variant 2);
    symbolic golds get a sign flipped (variant 1); else another row's gold."""
    value = plain_number(gold)
    if value is not None:
        number = float(value[0])
        if variant % 3 == 1 and number:
            return _written_like(gold, number * 10)
        if variant % 3 == 2 and number:
            return "0"
        shift = max(abs(number) * 0.5, 3 * (tolerance or 0))
        if abs(number) >= 1e-3 or not number:
            shift = max(shift, 1.0)
        return _written_like(gold, number + shift)
    parts = split_top_level(normalize_latex(gold))
    if variant % 3 == 1 and len(parts) > 1 and not _THOUSANDS.search(gold):
        return ", ".join(parts[:-1])
    if variant % 3 == 2 and 1 < len(set(parts)) and len(parts) <= len(_NAMES) and not _THOUSANDS.search(gold):
        return ", ".join(f"{name} = {part}" for name, part in zip(_NAMES, parts[::-1], strict=False))  # swapped
    if variant % 3 == 1 and (flipped := _flip_sign(normalize_latex(gold))) is not None:
        return flipped
    return other


def variant_math(answer: str, problem: str) -> str:
    """The answer in another notation the gold allows: ``30°`` for ``30^\\circ`` (or an angle asked in degrees),
    ``58,500``, the percent sign added or dropped, named parts (``a = -2, b = -2``); else unchanged."""
    if _DEGREE.search(answer):
        return _DEGREE.sub("°", answer)
    value = plain_number(answer)
    if _PERCENT.search(answer) and plain_number(_PERCENT.sub("", answer)) is not None:
        return _PERCENT.sub("", answer)
    if value is not None and value[0].denominator == 1 and abs(value[0]) >= 1000:
        return f"x = {int(value[0]):,}"
    if value is not None and re.search(r"\bdegrees?\b", problem):
        return f"{answer}°"
    if value is not None and re.search(r"\bpercent\b", problem) and "%" not in answer:
        return f"{answer}\\%"
    parts = split_top_level(answer)
    if 1 < len(parts) <= len(_NAMES) and None not in map(plain_number, parts) and not _THOUSANDS.search(answer):
        return ", ".join(f"{name} = {part}" for name, part in zip(_NAMES, parts, strict=False))
    return answer


def boxes_per_part(answer: str) -> str:
    """``1, -2`` as ``\\boxed{1}, \\boxed{-2}``; one part as one box."""
    parts = split_top_level(answer) if not _THOUSANDS.search(answer) else [answer]
    return ", ".join(f"\\boxed{{{part}}}" for part in parts)


# (name, template): {a} the answer, {v} its variant, {parts} one box per part.
MATH_FORMS = (
    ("boxed", "So the final answer is $\\boxed{{{a}}}$."),
    ("boxed variant", "Therefore the answer is $\\boxed{{{v}}}$."),
    ("box per part", "The answers are {parts}."),
    ("stated", "The final answer is ${a}$."),
    ("minerva", "Final Answer: The final answer is ${a}$. I hope it is correct."),
    ("bold answer", "**Answer:** ${v}$"),
    ("final answer heading", "**Final Answer**\n\\[\n{a}\n\\]"),
    ("final answer boxed display", "### Final Answer\n\n\\[\n\\boxed{{{v}}}\n\\]"),
    ("answer is colon", "The answer is: \\({v}\\)"),
)


def math_form(template: str, answer: str, problem: str, *, in_order: str | None = None) -> str:
    """``template`` filled; ``in_order``: the answer with its parts in the gold's order, for the variant that
    names the parts (``a = ..., b = ...`` says which is which, so it keeps the gold's order)."""
    return template.format(a=answer, v=variant_math(in_order or answer, problem), parts=boxes_per_part(answer))


# (name, template): {label}, {lower} (lower case), {text} (the option's text), {other} (another label).
CHOICE_FORMS = (
    ("boxed label", "\\boxed{{{label}}}"),
    ("boxed lower", "So the answer is $\\boxed{{{lower}}}$."),
    ("boxed option", "\\boxed{{Option {label}}}"),
    ("boxed text label", "Final answer: $\\boxed{{\\text{{({label})}}}}$"),
    ("boxed option text", "The answer is $\\boxed{{{text}}}$."),
    ("answer is (X)", "The answer is ({label})."),
    ("answer is lower", "The answer is {lower}."),
    ("answer is text", "The answer is {text}"),
    ("bold answer", "**Answer:** {label}"),
    ("answer is bold", "The answer is: **{label}**"),
    ("correct option is", "The correct option is {label}."),
    ("option is correct", "Option {label} is correct."),
    ("bold is correct", "**{label}** is the correct answer."),
    ("final line (X)", "Weighing the options above.\n\n({label})"),
    ("final line bold", "Weighing the options above.\n\n**{label}**"),
    ("final line bare", "Weighing the options above.\n{label}"),
    ("final line with text", "Weighing the options above.\n\n{label}) {text}"),
    ("final answer heading", "**Final Answer**\n{label}"),
    ("no wait", "I think it's {other}, no wait, {label}."),
    ("I choose", "After weighing them, I choose {label}."),
    ("answer with text", "Answer: ({label}) {text}"),
    ("final line text", "Weighing the options above.\n\n{text}"),
)


def choice_form(template: str, labels: list[str], options: list[str], label: str, other: str) -> str:
    text = options[labels.index(label)] if len(options) == len(labels) else label
    return template.format(label=label, lower=label.lower(), text=text, other=other)
