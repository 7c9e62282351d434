"""How a model writes an answer versus how a benchmark stores it: text normalization and cheap verdicts.

Plain functions used by :func:`ls_llm.answers.answer_status` before (and instead of, where they can
decide) math-verify:

* :func:`normalize_latex` rewrites storage forms math-verify misreads: ``4.5e33`` (read as
  ``4.5 * e * 33``) becomes ``4.5\\times10^{33}``; ``-1./3`` becomes ``-1/3``; ``$`` left inside a
  multi-part gold (``69$,$84``) are dropped; a trailing ", where ..." explanation is cut; ``30°`` becomes
  ``30^{\\circ}`` and ``58{,}500`` ``58,500``.
* the numeric fast path (plain numbers and lists of them) is :mod:`ls_llm.answer_numbers`.
* :func:`number_vs_variable` calls a plain number against an expression with a free variable wrong
  without parsing either (parsing is most of math-verify's cost on wrong answers).
* :func:`surely_different` proves two parsed expressions unequal by evaluating both at random points,
  so a wrong symbolic answer skips math-verify's ``simplify``/``solve`` (the slow, sometimes
  time-out-long case). It only ever answers "different"; everything else goes to math-verify.
"""

from __future__ import annotations

import cmath
import random
import re
from fractions import Fraction

# Heavy imports stay inside functions (sympy, latex2sympy2_extended): `ls-llm` imports this module before it
# knows a command needs them.

__all__ = ["ASSIGNMENT", "DOLLAR", "bare_value", "has_variable", "normalize_latex", "number_vs_variable",
           "plain_number", "split_top_level", "surely_different", "unwrap"]

# 4.5e33, 1e-5, 2.7778e-6 (not 3e^{-2t}: an exponent must follow the e directly).
_E_NOTATION = re.compile(r"(?<![\w.\\}])([-+]?(?:\d+\.?\d*|\.\d+))[eE]([-+]?\d+)(?![\w.])")
# "-1./3": a decimal point with no digits after it.
_BARE_POINT = re.compile(r"(?<=\d)\.(?=\s*[/)}\],]|\s*$)")
_WHERE = re.compile(r"\s*(?:,|\\text\{\s*,?)?\s*(?:\\quad\s*)?(?:\\text\{\s*)?\bwhere\b.*$", re.S)
_NUMPY = re.compile(r"\bnp\.(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|exp|log|sqrt|pi)\b")
DOLLAR = re.compile(r"(?<!\\)\$")
_FRAC = re.compile(r"^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_SCI = re.compile(r"^(.+?)\s*(?:\\times|\\cdot)\s*10\^\{?([-+]?\d+)\}?$")
_POW10 = re.compile(r"^10\^\{?([-+]?\d+)\}?$")
_DECIMAL = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_DEGREE = re.compile(r"\s*(?:°|\\degree\b)")
_BRACED_COMMA = re.compile(r"(?<=\d)\{,\}(?=\d{3})")


def normalize_latex(text: str) -> str:
    """Storage forms rewritten into LaTeX every reader agrees on (applied to gold and answer alike)."""
    text = text.strip()
    if DOLLAR.search(text) and not (text.startswith("$") and text.endswith("$")):
        text = DOLLAR.sub("", text)  # "69$,$84", "x_0 \cos t+$ $\dot{x}_0": inner math delimiters (not \$36)
    text = _WHERE.sub("", text)
    text = _BRACED_COMMA.sub(",", text)  # "58{,}500": LaTeX's unspaced thousands comma
    text = _DEGREE.sub(r"^{\\circ}", text)  # "30°" is "30^{\circ}"
    text = _NUMPY.sub(r"\\\1", text)  # Minerva's "np.arcsin(10/13)" is \arcsin(10/13)
    text = _E_NOTATION.sub(lambda m: f"{m.group(1).rstrip('.')}\\times10^{{{int(m.group(2))}}}", text)
    return _BARE_POINT.sub("", text)


_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.S)


def unwrap(answer: str | None) -> str | None:
    """``\\textbf{073}`` -> ``073``: math-verify reads a formatting wrapper around the whole answer as text, and
    a choice boxed as ``\\text{(C)}`` is ``(C)``."""
    if answer is None:
        return None
    answer = answer.strip()
    while match := _TEXT_WRAP.match(answer):
        answer = match.group(1).strip()
    return answer


def split_top_level(text: str) -> list[str]:
    """Split at commas outside any bracket: ``"3, (1,2)"`` -> ``["3", "(1,2)"]``."""
    parts, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:pos].strip())
            start = pos + 1
    parts.append(text[start:].strip())
    return parts


# Exact arithmetic on 10**n costs time that grows faster than n, outside math-verify's timeout: a model that boxes
# 10^{999999999} would stall a scoring worker for hours. Past this, the number is left to math-verify.
MAX_EXPONENT = 1000


def plain_number(text: str) -> tuple[Fraction, bool] | None:
    """``(value, written_as_decimal)`` for a plain number, else None.

    Plain: an integer or decimal (``025``, ``-0.5``, ``4.5e33``), ``a\\times10^{n}``, ``10^{n}``,
    ``\\frac{a}{b}`` / ``a/b`` of such numbers, with an optional sign. Anything else (symbols, units,
    percent, thousands separators) is left to math-verify.
    """
    text = text.strip().replace(" ", "")
    sign = 1
    if text[:1] in ("+", "-") and not _DECIMAL.match(text):
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if not text:
        return None
    if _DECIMAL.match(text):
        exponent = text.lower().partition("e")[2]
        if exponent and abs(int(exponent)) > MAX_EXPONENT:
            return None
        return sign * Fraction(text), any(c in text for c in ".eE")
    if match := _SCI.match(text):
        mantissa = plain_number(match.group(1))
        if mantissa is None or abs(int(match.group(2))) > MAX_EXPONENT:
            return None
        return sign * mantissa[0] * Fraction(10) ** int(match.group(2)), mantissa[1]
    if match := _POW10.match(text):
        if abs(int(match.group(1))) > MAX_EXPONENT:
            return None
        return sign * Fraction(10) ** int(match.group(1)), False
    match = _FRAC.match(text)
    parts = match.groups() if match else (text.split("/") if text.count("/") == 1 else None)
    if parts is None:
        return None
    top, bottom = plain_number(parts[0]), plain_number(parts[1])
    if top is None or bottom is None or bottom[0] == 0:
        return None
    return sign * top[0] / bottom[0], top[1] or bottom[1]


def bare_value(text: str) -> str:
    """The value without an assignment name or a unit group: ``x = 4.5\\times10^{33}\\ \\mathrm{cm}`` ->
    ``4.5\\times10^{33}`` (math-verify reads both the same way; bare unit words are left to it)."""
    return _UNIT_GROUP.sub("", ASSIGNMENT.sub("", text)).strip()


# What is not a free variable: commands (\\pi, \\sin, \\circ), environment names (pmatrix), text and unit groups, Euler's e, the
# imaginary i, and the name of an assignment ("x = 5").
_NOT_VARIABLE = re.compile(r"\\(?:text|mathrm|mbox|operatorname|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+|(?<![A-Za-z])[ei](?![A-Za-z])")
_UNIT_GROUP = re.compile(r"(?:\\[ ,;:!]|~|\s)*\\(?:text|mathrm|mbox)\s*\{[^{}]*\}(?:\^\{?\d\}?)?\s*$")
_RELATION = re.compile(r"[=<>]|\\(?:in|le|ge|leq|geq|neq|approx)(?![A-Za-z])")
ASSIGNMENT = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")


def has_variable(text: str) -> bool:
    """A letter that can only be a free variable (``s`` in ``\\frac{1}{s+a}``), outside commands and units.

    Unit words ("5 cm", "5 sq units") are removed with math-verify's own unit list and rule, since
    math-verify reads "5 cm" as 5.
    """
    from latex2sympy2_extended.math_normalization import unit_superscript_regex, units_regex

    text = ASSIGNMENT.sub("", text)
    text = unit_superscript_regex.sub("", text).strip() or text
    for _ in range(2):  # as math-verify: twice, so "sq units" goes too
        text = units_regex.sub(r"\1", text) or text
    return bool(re.search(r"[A-Za-z]", _NOT_VARIABLE.sub(" ", text)))


def number_vs_variable(pred: str, gold: str) -> str | None:
    """"wrong" when one side is a plain number and the other has a free variable (no number equals
    ``\\frac{1}{s+a}``), decided from the text without parsing; else None."""
    if _RELATION.search(ASSIGNMENT.sub("", pred)) or _RELATION.search(ASSIGNMENT.sub("", gold)):
        return None  # "\\angle BEA_1=90", "t \\in (0,4]": math-verify unwraps relations; let it
    pred_number = plain_number(ASSIGNMENT.sub("", pred)) is not None
    gold_number = plain_number(ASSIGNMENT.sub("", gold)) is not None
    if (gold_number and not pred_number and has_variable(pred)) or (pred_number and not gold_number and has_variable(gold)):
        return "wrong"
    return None


# Texts whose meaning math-verify reads specially (percent, degrees, words): never short-cut those.
_SPECIAL = re.compile(r"%|\\circ|\\text|\\mbox|\\mathrm|\\operatorname|\\pm|\\mp")


def surely_different(gold, pred, gold_text: str, pred_text: str, *, points: int = 2) -> bool:
    """True only when two parsed sympy expressions differ at every one of ``points`` random points.

    Equal expressions agree everywhere they are defined, so a clear difference (relative 1e-6, well
    above math-verify's 6-decimal rounding) is a proof of "wrong". Relations other than two
    non-assignment equations, sets, tuples, matrices, bare symbols and special texts return False.
    """
    from sympy import Eq, Expr, Float, Symbol

    if _SPECIAL.search(gold_text) or _SPECIAL.search(pred_text):
        return False
    if isinstance(gold, Eq) and isinstance(pred, Eq):
        # Two equations in different unknowns are never equivalent (math-verify solves each for its
        # own free symbols and compares the solutions key by key); assignments (x = ...) are not equations.
        if isinstance(gold.lhs, Symbol) or isinstance(pred.lhs, Symbol):
            return False
        return gold.free_symbols != pred.free_symbols
    if not (isinstance(gold, Expr) and isinstance(pred, Expr)) or isinstance(gold, Symbol) or isinstance(pred, Symbol):
        return False
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    rng = random.Random(0)
    for _ in range(points):
        at = {symbol: Float(rng.uniform(0.3, 1.7)) for symbol in symbols}
        try:
            a, b = complex(gold.evalf(subs=at)), complex(pred.evalf(subs=at))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError):
            return False
        if not (cmath.isfinite(a) and cmath.isfinite(b)):
            return False
        if abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b)):
            return False
    return True
