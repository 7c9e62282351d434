"""A cheap normalised text key of an answer (layout and list order aside): the comparison for golds math-verify
cannot read, and the grouping key before the real equivalence check (consensus)."""

from __future__ import annotations

import re

from ls_llm.answer_forms import DOLLAR, normalize_latex, plain_number, split_top_level

__all__ = ["answer_key"]

_SCRIPT_BRACES = re.compile(r"([_^])\{(\w|\\[A-Za-z]+)\}")
_LAYOUT = re.compile(r"\\(?:left|right)(?![a-zA-Z])|\\[,;!]")


def answer_key(text: str) -> str:
    """A cheap normalised key: equal keys mean the same answer up to layout (spacing, ``$``, ``\\dfrac``/
    ``\\tfrac``, ``\\frac12``, ``\\left``/``\\right``, braces of a one-character script, ``E_{1}`` is ``E_1``, a
    closing full stop), the exact value of a plain number (``1/2``, ``\\frac{1}{2}`` and ``0.5`` share a key) and
    the order of a comma-separated list. Unequal keys prove nothing (``x+1`` and ``1+x``): it is the fallback for
    texts math-verify cannot read, and the grouping key before the real equivalence check (consensus)."""
    text = " ".join(_LAYOUT.sub("", DOLLAR.sub("", normalize_latex(text))).split())
    text = _SCRIPT_BRACES.sub(r"\1\2", text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    text = _SPACE_AT_SYMBOL.sub(r"\1", text).rstrip(".")  # a space between two digits stays: TeX's "3 2x" is 3·2x
    return ",".join(sorted(_part_key(part) for part in split_top_level(_FRAC_DIGITS.sub(r"\\frac{\1}{\2}", text))))


_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")  # TeX's \frac12 is \frac{1}{2}
# Space next to an operator, bracket or before a control word never matters; between two digits or letters it
# may ("3 2" is 3·2).
_SPACE_AT_SYMBOL = re.compile(r"\s*([^\w\s])\s*")


def _part_key(part: str) -> str:
    try:
        number = plain_number(part)
    except (ValueError, ZeroDivisionError):
        number = None
    return f"num:{number[0]}" if number is not None else part
