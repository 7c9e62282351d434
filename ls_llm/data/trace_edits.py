"""Text edits on reasoning traces used by the noise injectors (pure functions, no I/O)."""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ls_llm.answers import boxed_spans

__all__ = ["answers_differ", "edit_steps", "perturb_number", "replace_answer", "replace_boxed_answer",
           "split_thinking"]

_THINK_CLOSE = "</think>"
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_FRAC_RE = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$|^(-?)(\d+)/(\d+)$")


def _normalise(answer: str) -> str:
    """A canonical spelling: numbers and simple fractions by value, other text without spaces."""
    text = re.sub(r"\s+", "", answer).replace("\\!", "").replace(",", "").rstrip(".")
    text = text.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\%", "")
    frac = _FRAC_RE.match(text)
    try:
        if frac:
            sign, num, den = frac.group(1, 2, 3) if frac.group(2) else frac.group(4, 5, 6)
            value = Fraction(int(num), int(den)) * (-1 if sign else 1)
            return str(value.numerator) if value.denominator == 1 else str(value)
        number = Decimal(text).normalize()
        return str(Fraction(number)) if number != number.to_integral() else str(int(number))
    except (InvalidOperation, ValueError, ZeroDivisionError, OverflowError):
        return text


def answers_differ(a: str, b: str) -> bool:
    """Whether two answers are visibly different (string-normalised; numbers compared by value)."""
    return _normalise(a) != _normalise(b)


def split_thinking(completion: str) -> tuple[str, str]:
    """(reasoning, final part): split at the last ``</think>`` (kept with the reasoning)."""
    cut = completion.rfind(_THINK_CLOSE)
    if cut < 0:
        return completion, ""
    cut += len(_THINK_CLOSE)
    return completion[:cut], completion[cut:]


def _occurrence_re(answer: str) -> re.Pattern:
    # Whole-token matches only: "69" must not hit "169", "690" or "69.5".
    return re.compile(r"(?<![\w.])" + re.escape(answer) + r"(?![\w]|\.\d)")


def _boxed_spans(text: str, answer: str) -> list[tuple[int, int]]:
    """Spans of the contents of every box (``\\boxed{}`` / ``\\fbox{}``, nested braces allowed) that hold ``answer``."""
    return [(start, end) for _, start, end in boxed_spans(text) if text[start:end] == answer]


def replace_answer(completion: str, old: str, new: str) -> tuple[str, int]:
    """Replace the final answer ``old`` by ``new`` wherever the trace states it.

    That is: every ``\\boxed{old}``; every whole-token occurrence in the final part (after
    ``</think>``); and the occurrences in the last reasoning line that mentions it (the line that
    derives the answer, e.g. ``32 + 37 = 69``). Earlier lines are left alone: a short answer such
    as ``2`` also appears in unrelated places of the reasoning. All spans are found on the original
    text and replaced in one pass, so a new answer that contains the old one is not re-replaced.
    """
    reasoning, _ = split_thinking(completion)
    pattern = _occurrence_re(old)
    spans = set(_boxed_spans(completion, old))
    spans |= {m.span() for m in pattern.finditer(completion, len(reasoning))}
    line_end = len(reasoning)
    while line_end > 0:
        line_start = reasoning.rfind("\n", 0, line_end - 1) + 1
        found = [m.span() for m in pattern.finditer(reasoning, line_start, line_end)]
        if found:
            spans |= set(found)
            break
        line_end = line_start - 1 if line_start > 0 else 0
    text = completion
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text, len(spans)


def replace_boxed_answer(completion: str, old: str, new: str) -> tuple[str, int]:
    """Replace the final answer ``old`` by ``new`` in the last ``\\boxed{old}`` only: the reasoning keeps the
    value it computed, so the trace is right and its stated answer (the label) is wrong. (text, 0 or 1)."""
    spans = _boxed_spans(completion, old)
    if not spans:
        return completion, 0
    start, end = spans[-1]
    return completion[:start] + new + completion[end:], 1


def perturb_number(answer: str, rng: random.Random) -> tuple[str, str] | None:
    """A nearby wrong number (small offset or one digit edit) and how it was made; None if not numeric."""
    text = answer.strip().replace(",", "")
    if not _NUMBER_RE.match(text):
        return None
    if rng.random() < 0.5:
        offset = rng.choice([-3, -2, -1, 1, 2, 3])
        return str(Decimal(text) + offset), f"offset {offset:+d}"
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    pos = rng.choice(digits)
    # Changing a leading digit to 0 would shorten the number ("12" -> "02" reads as 2).
    leading = pos == digits[0] and pos + 1 < len(text) and text[pos + 1].isdigit()
    choices = [d for d in "0123456789" if d != text[pos] and not (leading and d == "0")]
    new_digit = rng.choice(choices)
    return (text[:pos] + new_digit + text[pos + 1 :], f"digit {pos}: {text[pos]}->{new_digit}")


def _steps(reasoning: str) -> tuple[list[str], str]:
    """Steps of a reasoning text and the separator to rejoin them: lines, else sentences."""
    lines = reasoning.split("\n")
    if sum(1 for line in lines if line.strip()) >= 2:
        return lines, "\n"
    return _SENTENCE_RE.split(reasoning), " "


def edit_steps(completion: str, rate: float, rng: random.Random) -> tuple[str, int, list[tuple[str, int]]]:
    """Drop, duplicate or swap (with the next step) each reasoning step with probability ``rate``.

    Steps that carry the final boxed answer, think tags or blank lines are never touched, so step
    noise corrupts the reasoning but not the label. Returns (text, number of steps, operations).
    """
    reasoning, final = split_thinking(completion)
    steps, sep = _steps(reasoning)
    editable = [i for i, s in enumerate(steps) if s.strip() and "\\boxed" not in s and "think>" not in s]
    ops: list[tuple[str, int]] = []
    out = list(steps)
    drop, dup = set(), set()
    for k, i in enumerate(editable):
        if rng.random() >= rate:
            continue
        op = rng.choice(("drop", "duplicate", "swap"))
        if op == "swap" and k + 1 < len(editable):
            j = editable[k + 1]
            out[i], out[j] = out[j], out[i]
        elif op == "swap":  # the last step swaps with the one before it
            if k == 0:
                continue
            j = editable[k - 1]
            out[i], out[j] = out[j], out[i]
        else:
            (drop if op == "drop" else dup).add(i)
        ops.append((op, i))
    rebuilt = [piece for i, s in enumerate(out) if i not in drop for piece in ([s, s] if i in dup else [s])]
    return sep.join(rebuilt) + final, len(editable), ops
