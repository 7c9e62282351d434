"""The numeric fast path of :func:`ls_llm.answers.answer_status`: pairs where both sides are plain numbers (or
comma-separated lists of them), decided in microseconds with exact rational arithmetic, so most AIME/AMC/Minerva
pairs never reach sympy.

Lists are multisets, or in order when every part is named ``a = ...``. Equality: exact, or, when either side is
written as a decimal, equal after rounding to 6 decimals (math-verify's rule) and within a relative
``RELATIVE_ROUNDING`` (below 1e-6 the rounding alone makes every number equal, zero included); a per-row absolute
``tolerance`` (OlympiadBench's ``error``) widens it. Thousands separators and a percent sign on one side are read
as such.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ls_llm.answer_forms import ASSIGNMENT, bare_value, plain_number, split_top_level

__all__ = ["FLOAT_ROUNDING", "RELATIVE_ROUNDING", "TOLERANCE_SLACK", "numeric_verdict", "ungroup_thousands"]

_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")
# math-verify compares decimals after rounding to this many places (its float_rounding default).
FLOAT_ROUNDING = 6
# Below math-verify's rounding, decimals are compared relatively: agreeing to 6 places is not enough when
# both are ~1e-8 (Minerva's 1.24e-8 against 1.3e-8, or against 0). Relative agreement this close is required.
RELATIVE_ROUNDING = Fraction(1, 1000)
_PERCENT = re.compile(r"\s*\\?%$")
# OlympiadBench's judge accepts |gold - pred| <= error * 1.01 (float slack on the stated error).
TOLERANCE_SLACK = 1.01


def _numbers_equal(gold: tuple[Fraction, bool], pred: tuple[Fraction, bool], tolerance: float | None) -> bool:
    if gold[0] == pred[0]:
        return True
    if tolerance is not None and abs(gold[0] - pred[0]) <= Fraction(tolerance) * Fraction(TOLERANCE_SLACK):
        return True
    if not (gold[1] or pred[1]) or gold[0] == 0 or pred[0] == 0:
        return False  # zero never equals a non-zero number, however small
    # math-verify's rule (6 decimals) for numbers of ordinary size; a relative one below it, where 6 decimals
    # would round 1.24e-8, 2.55e-10 and 0 alike.
    close = abs(gold[0] - pred[0]) <= RELATIVE_ROUNDING * max(abs(gold[0]), abs(pred[0]))
    return close and round(gold[0], FLOAT_ROUNDING) == round(pred[0], FLOAT_ROUNDING)


def ungroup_thousands(text: str) -> str:
    """``58,500`` -> ``58500`` (every comma that groups three digits; ``1, 500`` keeps its comma)."""
    return _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)


def _percent_number(text: str) -> tuple[tuple[Fraction, bool], bool] | None:
    """(plain number, written with a percent sign) for ``12.5``, ``12.5\\%``, ``x = 12.5 %``."""
    text = bare_value(text)
    percent = bool(_PERCENT.search(text))
    value = plain_number(_PERCENT.sub("", text)) if percent else plain_number(text)
    return None if value is None else (value, percent)


def numeric_verdict(pred: str, gold: str, tolerance: float | None = None) -> str | None:
    """"correct"/"wrong" when both sides are plain numbers or equally long sets of them, else None.

    Sets (``"3, -5"``) match in any order, each gold element to one answer element (a multiset:
    ``a = -2, b = -2`` against ``-2,-2``). A unit group or an assignment name around each number is looked
    through (:func:`bare_value`), except two different names on the whole (math-verify keeps ``x = 1`` and
    ``y = 1`` apart). Thousands separators (``58,500``) are read as such unless the other side has as many
    parts as the comma split gives; a percent sign on one side only matches either scale.
    """
    names = {match.group(0).split("=")[0].strip() for text in (pred, gold) if (match := ASSIGNMENT.match(text))}
    return _numeric_verdict(pred, gold, tolerance) if len(names) <= 1 else None


def _numeric_verdict(pred: str, gold: str, tolerance: float | None) -> str | None:
    gold = ungroup_thousands(gold)
    if len(split_top_level(ungroup_thousands(pred))) == len(split_top_level(gold)):
        pred = ungroup_thousands(pred)  # "58,500" for 58500; "1,500" stays a pair against a two-part gold
    gold_parts, pred_parts = _by_name(split_top_level(gold)), _by_name(split_top_level(pred))
    golds = [_percent_number(part) for part in gold_parts]
    preds = [_percent_number(part) for part in pred_parts]
    if None in golds or None in preds:
        return None
    if len(golds) != len(preds):
        return "wrong"  # a multiset: "-2, -2" needs both parts, in any order
    if len(preds) > 1 and _named(pred_parts):
        # "a = 3, b = -2": the model says which value is which, so the gold's order (the question's) counts
        ordered = all(_percent_equal(g, p, tolerance) for g, p in zip(golds, preds, strict=True))
        return "correct" if ordered else "wrong"
    remaining = list(preds)
    for value in golds:
        match = next((i for i, cand in enumerate(remaining) if _percent_equal(value, cand, tolerance)), None)
        if match is None:
            return "wrong"
        remaining.pop(match)
    return "correct"


_NAME = re.compile(r"^\s*([A-Za-z])\s*=")


def _named(parts: list[str]) -> bool:
    """Every part is ``<letter> = value`` with distinct letters (``a = -2, b = 3``; not ``x = 1, x = 2``)."""
    names = [match.group(1) if (match := _NAME.match(part)) else None for part in parts]
    return None not in names and len(set(names)) == len(names)


def _by_name(parts: list[str]) -> list[str]:
    """Named parts in alphabetical order of their names (a, b, c; m, n; p, q), others as they are."""
    return sorted(parts, key=lambda part: _NAME.match(part).group(1)) if _named(parts) else parts


def _percent_equal(gold: tuple, pred: tuple, tolerance: float | None) -> bool:
    """Equal as numbers; when one side only carries ``%``, equal either as the same figure ("12.5\\%" for a
    gold of 12.5 asked in percent) or as a fraction ("0.125" for 12.5%)."""
    (gold_value, gold_pct), (pred_value, pred_pct) = gold, pred
    if _numbers_equal(gold_value, pred_value, tolerance):
        return True
    if gold_pct == pred_pct:
        return False
    scaled = (gold_value[0] / 100, gold_value[1]) if gold_pct else (pred_value[0] / 100, pred_value[1])
    return _numbers_equal(scaled, pred_value, None) if gold_pct else _numbers_equal(gold_value, scaled, None)
