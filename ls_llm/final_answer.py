"""Where a completion gives its final answer: the last box after any thinking, joined with the boxes right
before it when they are parts of one answer, or, without a box, an answer stated in words."""

from __future__ import annotations

import re

from ls_llm.answers import boxed_spans, last_boxed, last_boxed_span, strip_thinking

__all__ = ["find_final_answer"]

# Between two boxes that are parts of one answer: a separator, math delimiters, a part's name ("y = ").
_PART_GAP = re.compile(r"^[\s$]*(?:,|;|\\quad|\\text\{\s*and\s*\}|\band\b)?[\s$]*"
                       r"(?:(?:and\s+)?[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?[\s$]*$")
# An answer stated without a box: "The final answer is $5$. I hope it is correct." (Minerva's format),
# "the answer is 5", "**Answer:** 5", "Final Answer: 5", "**Final Answer**" on a line of its own.
_STATED = re.compile(r"\banswer\s+is\s*:?|\banswer\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?"
                     r"|\*\*\s*final\s+answer\s*\*\*\s*:?", re.I)
# "$...$" whose contents may hold an escaped dollar ("$\\$36$"), "$$...$$", "\\(...\\)", "\\[...\\]".
_MATH_SPAN = re.compile(r"^\$\$(.+?)\$\$|^\$((?:\\\$|[^$])+?)\$|^\\\((.+?)\\\)|^\\\[(.+?)\\\]", re.S)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n|\s+(?:because|since|as|which)\b")


def _boxed_parts(text: str) -> list[str] | None:
    """Contents of the last box and of the boxes right before it that are parts of the same answer
    (``\\boxed{1}, \\boxed{-2}``, ``$x=\\boxed{1}$ and $y=\\boxed{2}$``)."""
    last = last_boxed_span(text)
    if last is None:
        return None
    # Braced boxes only: a part's gap is read from after its closing brace.
    spans = [s for s in boxed_spans(text) if text[s[1] - 1] == "{" and (s[2] <= last[0] or s[1:] == last)]
    if not spans or spans[-1][1:] != last:
        return [text[last[0]:last[1]]]
    parts = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if not _PART_GAP.match(text[prev[2] + 1: parts[0][0]]):
            break
        parts.insert(0, prev)
    return [text[start:end] for _, start, end in parts]


def _stated_answer(text: str) -> str | None:
    """The value after the last "the answer is" / "Answer:" statement: its first math span, else the rest of
    its sentence."""
    statements = list(_STATED.finditer(text))
    if not statements:
        return None
    rest = text[statements[-1].end():].lstrip(" \t*_\n")
    if match := _MATH_SPAN.match(rest):
        value = next(group for group in match.groups() if group is not None)
    else:
        value = _SENTENCE_END.split(rest, maxsplit=1)[0]
    value = value.strip().strip("*_").strip().rstrip(".")
    return value or None


def find_final_answer(text: str) -> tuple[str | None, str | None]:
    """``(answer, rule)``: the last boxed answer after any thinking ("boxed"), joined with the boxes right
    before it when they are the parts of one answer ("boxed parts": ``\\boxed{1}, \\boxed{-2}`` -> ``1, -2``);
    without a box, the last stated answer ("stated": "The final answer is $5$."); else ``(None, None)``."""
    visible = strip_thinking(text)
    parts = _boxed_parts(visible)
    if parts:
        return (parts[0], "boxed") if len(parts) == 1 else (", ".join(parts), "boxed parts")
    if last_boxed(visible) is None and (stated := _stated_answer(visible)) is not None:
        return stated, "stated"
    return None, None
