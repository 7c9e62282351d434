"""Which option a multiple-choice answer names: a box, a statement, the final line, or the option's own text.

Every reader returns a label of ``labels`` (or, for a box, what the box holds, so a caller can tell a
strange box from a missing answer). A letter is never taken from an ordinary word: a capital that runs on
into a sentence ("I think", "A tree removes ...") is a word unless the words are its option's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ls_llm.answer_forms import unwrap
from ls_llm.answers import last_boxed, strip_thinking

# A choice of several labels ("B, C") keeps this separator so it can be told apart from a missing answer.
MULTI_SEPARATOR = ","

# An explicit statement of the choice: "the answer is", "Answer:", "**Answer:**", "The correct option is",
# "**Final Answer**", "it's", "I choose", "I'll go with". A bare "answer" ("Let me answer a question") is not one.
_STATEMENT = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|should\s+be|must\s+be)\b)?(?:\s*(?:\*\*|__))?\s*[:：]"
    r"|\b(?:answer|option|choice)\s+(?:is|would\s+be|should\s+be|must\s+be)\b"
    r"|\*\*\s*final\s+answer\s*\*\*|\b(?:it's|it\s+is|it\s+must\s+be|no\s+wait,?)(?=\s+[*(\[]*[A-Z0-9]\b)"
    r"|\b(?:choose|pick|select|go\s+with)(?=\s+(?:option\s+)?[*(\[]*[A-Za-z0-9]{1,2}\b)", re.I)
# What follows a statement: decoration (bold, $, \text{, "option"), then one label, maybe in brackets.
_STATED_LABEL = re.compile(
    r"^(?P<deco>[\s*_$]*(?:\\(?:text|textbf|mathrm|mathbf|boxed)\{)?\s*(?:(?:option|choice)\s+)?)"
    r"(?P<open>[(\[])?\s*(?P<label>[A-Za-z0-9]+)(?![-'’])\s*(?P<close>[)\]])?", re.I)  # not "C-section"
# A label then "is correct" / "is the correct answer": "Option B is correct.", "**B** is the correct answer."
_IS_CORRECT = re.compile(r"(?:(?<=\s)|^)(?P<deco>(?:(?:option|choice)\s+)?[*_(\[]*)(?P<label>[A-Za-z0-9]+)[*_)\]]*"
                         r"\s+is\s+(?:the\s+)?(?:correct|right|best)\b", re.I | re.M)
# A bare label that runs on into a sentence ("I think it is B", "A good guess") is a word.
_RUNS_ON = re.compile(r"[ \t]+(?!(?:because|since|as|which|for)\b)[a-z]")
# A label ends its statement: "The answer is b." (lower case counts here), "b" at the end of a line.
_ENDS = re.compile(r"[ \t]*[.!]?[ \t*]*(?:\n|$)")
_BOX_PREFIX = re.compile(r"^(?:option|choice|answer)\s*[:.]?\s*", re.I)
_SEPARATOR = re.compile(r"\s*(?:,|&|/|;|\band\b|\\text\{\s*and\s*\})\s*", re.I)
# What separates the choices of a hedged statement: "(A) or (B)", "A/B", "A, B and C", "blue or green".
_HEDGE = re.compile(r"\s*(?:,|&|/|;|\bor\b|\band\b)\s*", re.I)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_LABEL_HEAD = re.compile(r"^[(\[]?\s*([A-Za-z0-9]+)\s*(?:[)\]]|[.:]\s|[.:]?$)")
# The final line as a label: "(B)", "**B**", "B", "B) <option text>", "Option B.", "### B".
_LINE_LABEL = re.compile(r"^[\s#*_$>-]*(?:(?:option|choice)\s+)?[(\[]?\s*(?P<label>[A-Za-z0-9]+)\s*"
                         r"(?:[)\]][\s*_]*|[.:][\s*_]+|[\s*_$.]*$)(?P<rest>.*)$", re.I)


def option_key(text: str, *, fold: bool = True) -> str:
    """An option's text for comparison: no ``$`` delimiters, ``\\text{}`` wrapper, closing full stop or
    repeated spaces, and (``fold``) no case ("$5$ m/s." and "5 m/s" agree)."""
    text = " ".join(unwrap(text.replace("$", "")).split()).rstrip(" .")
    return text.casefold() if fold else text


def _match_label(token: str, labels: Sequence[str]) -> str | None:
    token = token.strip().strip("()[] .:*_")
    return next((label for label in labels if token.casefold() == label.casefold()), None)


def _by_text(text: str, labels: Sequence[str], options: Sequence[str], *, prefix: bool = False) -> str | None:
    """The label whose option's text ``text`` is (or, with ``prefix``, starts with, up to a word boundary; the
    longest wins). Case counts where it tells options apart ("Rr" and "RR" are two alleles)."""
    for fold in (False, True):
        key = option_key(text, fold=fold)
        found = []
        for label, option in zip(labels, options, strict=False):
            opt = option_key(option, fold=fold)
            if opt and (key == opt or prefix and key.startswith(opt) and not key[len(opt):len(opt) + 1].isalnum()):
                found.append((len(opt), label))
        longest = [label for size, label in found if size == max(found)[0]] if found else []
        if len(longest) == 1:
            return longest[0]
        if len(longest) > 1:
            return None  # options equal but for case, and the answer's case matches none
    return None


def _boxed_choice(boxed: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    """The label inside a box: ``C``, ``(C)``, ``Option D``, ``\\text{C}``, ``C. text``, the option's text
    (first, so an option that itself opens with "(A) ..." is that option, not A); several labels (``B, C``)
    come back joined by ``MULTI_SEPARATOR`` and are scored wrong."""
    cleaned = _BOX_PREFIX.sub("", unwrap(boxed.strip().strip("$ .")))
    if (label := _match_label(cleaned, labels)) is not None:
        return label
    if (label := _by_text(cleaned, labels, options)) is not None:
        return label
    parts = [_match_label(part, labels) for part in _SEPARATOR.split(cleaned)]
    if len(parts) > 1 and None not in parts:
        return MULTI_SEPARATOR.join(parts)
    head = _LABEL_HEAD.match(cleaned)
    if head is not None and (label := _match_label(head.group(1), labels)) is not None:
        return label  # "C. several viral particles", "(C) several viral particles"
    # Anything else is returned as written (scored unparsable): "A tree removes a gas" is not option A.
    return cleaned.upper() if len(cleaned) == 1 and cleaned.isalpha() else (cleaned or None)


def _names_its_option(text: str, start: int, end: int, option: str) -> bool:
    """The words at the label go on as that option's text: "A cell wall" (label A + "cell wall", or the
    option "A cell wall" itself)."""
    head = option_key(option)[:30]
    return bool(head) and (option_key(text[end:].strip(" .:)"))[:len(head)] == head
                           or option_key(text[start:])[:len(head)] == head)


def _stated(text: str, labels: Sequence[str], options: Sequence[str]) -> list[tuple[int, str]]:
    """(position, label) of every explicit statement naming a label or an option's text."""
    found = []
    for statement in _STATEMENT.finditer(text):
        tail = text[statement.end():].lstrip(" *_:$\n")  # not "(": an option may open with "(A) ..."
        if (hedge := _hedge(tail.split("\n", 1)[0], labels, options)) is not None:
            found.append((statement.start(), hedge))  # several choices stated: scored as a hedge, never credited
            continue
        by_text = _by_text(tail.split("\n", 1)[0], labels, options, prefix=True)
        by_label = _stated_label(text, statement.end(), labels, options)
        # "The answer is C." names label C even where option A's text is "C" (a chemical symbol); a longer
        # option text ("A cell wall", "(A) only.") names its own option.
        if by_label is not None and (by_text is None or len(option_key(options[labels.index(by_text)]))
                                     <= len(by_label[1])):
            found.append((statement.start(), by_label[0]))
        elif by_text is not None:
            found.append((statement.start(), by_text))
    for match in _IS_CORRECT.finditer(text):
        label = _match_label(match.group("label"), labels)
        if label is not None and (match.group("label").isupper() or match.group("deco").strip()):
            found.append((match.start(), label))
    return found


def _hedge(line: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    """The labels of a statement that names two or more choices ("(A) or (B)", "A/B", "blue or green"), joined
    with MULTI_SEPARATOR as a boxed hedge is; None when its first sentence names one choice or is not a list."""
    sentence = _SENTENCE_END.split(line, 1)[0].strip(" *_$")
    parts = [part.strip(" *_$") for part in _HEDGE.split(sentence)]
    if len(parts) < 2 or not all(parts) or _by_text(sentence, labels, options) or _by_text(line.strip(" *_$"),
                                                                                          labels, options):
        return None  # one option whose own text has a comma or an "and" ("sunlight and water") is no hedge
    named = []
    for part in parts:
        head = _LABEL_HEAD.match(part)
        label = _match_label(head.group(1), labels) if head and len(part) <= 3 else None
        named.append(label or _by_text(part, labels, options))
    if not all(named) or len(set(named)) < 2:
        return None
    return MULTI_SEPARATOR.join(sorted(set(named), key=labels.index))


def _stated_label(text: str, at: int, labels: Sequence[str], options: Sequence[str]) -> tuple[str, str] | None:
    """(label, token as written) of a label set off right after a statement ending at ``at``."""
    match = _STATED_LABEL.match(text[at:])
    if match is None or (label := _match_label(match.group("label"), labels)) is None:
        return None
    start, end = at + match.start("label"), at + match.end("label")
    marked = bool(match.group("open") or match.group("close") or match.group("deco").strip())
    return (label, match.group("label")) if _set_off(text, match.group("label"), marked, start, end, labels,
                                                     options) else None


def _set_off(text: str, token: str, marked: bool, start: int, end: int, labels, options) -> bool:
    """A label, not a word: marked (brackets, bold), ending its sentence, or followed by its option's text."""
    if marked or _ENDS.match(text, end):
        return True
    option = options[labels.index(_match_label(token, labels))] if len(options) == len(labels) else ""
    runs_on = token.islower() or _RUNS_ON.match(text, end)
    return not runs_on or _names_its_option(text, start, end, option)


def _final_line(text: str, labels: Sequence[str], options: Sequence[str]) -> tuple[int, str] | None:
    """The last non-empty line as the answer: just a label, a label and its option's text, or the text."""
    lines = [line for line in text.rstrip().split("\n") if line.strip()]
    if not lines:
        return None
    line, where = lines[-1], text.rstrip().rfind(lines[-1])
    match = _LINE_LABEL.match(line)
    if match is not None and (label := _match_label(match.group("label"), labels)) is not None:
        rest = match.group("rest").strip(" *_.")
        if rest and len(lines) > 1 and _lists_option(lines[-2], labels, options):
            return None  # the options listed again ("A) red\nB) blue"): the last one is not a choice
        if not rest or _by_text(rest, labels, options, prefix=True) == label:
            return where, label
    label = _by_text(line.strip(), labels, options) or _by_text(line.strip(" *_#>-"), labels, options)
    return (where, label) if label is not None else None


def _lists_option(line: str, labels: Sequence[str], options: Sequence[str]) -> bool:
    """The line is one entry of the options' list: a label followed by that label's option text."""
    match = _LINE_LABEL.match(line)
    label = _match_label(match.group("label"), labels) if match is not None else None
    rest = match.group("rest").strip(" *_.") if match is not None else ""
    return label is not None and bool(rest) and _by_text(rest, labels, options, prefix=True) == label


def find_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """``(choice, rule)``: the last ``\\boxed{}`` after any thinking ("boxed"); without a box, whichever comes
    last of an explicit statement ("The answer is (B)", "**Answer:** B", "Option B is correct.", "it's A, no
    wait, B") and a final line that is the answer ("(B)", "**B**", "B) <its text>"). ``(None, None)`` if none."""
    visible = strip_thinking(text)
    boxed = last_boxed(visible)
    if boxed is not None:
        return _boxed_choice(boxed, labels, options), "boxed"
    candidates = [(pos, label, "stated") for pos, label in _stated(visible, labels, options)]
    if (line := _final_line(visible, labels, options)) is not None:
        candidates.append((*line, "final line"))
    if not candidates:
        return None, None
    _, label, rule = max(candidates, key=lambda c: c[0])
    return label, rule


def extract_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The option label the model chose, or None when it gave none (see :func:`find_choice`)."""
    return find_choice(text, labels, options)[0]


def choice_verdict(choice: str | None, gold: str, labels: Sequence[str]) -> str:
    if choice is None:
        return "missing"
    if choice in labels:
        return "correct" if choice == gold else "wrong"
    if all(part in labels for part in choice.split(MULTI_SEPARATOR)):
        return "wrong"  # several labels: a hedge is not an answer
    return "unparsable"


def score_choice(outputs: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[dict]]:
    """Verdict records for multiple-choice docs (canonical ``labels``/``options``/``answer``)."""
    if len(outputs) != len(docs):
        raise ValueError(f"outputs and docs differ in length: {len(outputs)} != {len(docs)}")
    records = []
    for samples, doc in zip(outputs, docs, strict=True):
        per_doc = []
        for text in samples:
            choice, rule = find_choice(text, doc["labels"], doc["options"])
            per_doc.append({"answer": choice, "verdict": choice_verdict(choice, doc["answer"], doc["labels"]),
                            "rule": rule})
        records.append(per_doc)
    return records
