"""Final-answer extraction and math equivalence, shared by evaluation and the data audit.

Extraction is pure Python. Equivalence uses math-verify (imported lazily), whose timeouts rely on
``signal.alarm`` and therefore only work on a main thread: :func:`is_equivalent` must be called
from one, and :func:`verify_batch` runs its checks in worker *processes* (each worker runs tasks on
its own main thread) so long batches use every core and stay timeout-safe.
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from ls_llm.answer_forms import has_variable, normalize_latex, number_vs_variable, surely_different
from ls_llm.answer_key import answer_key
from ls_llm.answer_numbers import TOLERANCE_SLACK, numeric_verdict

# Heavy imports stay inside functions (math_verify, tqdm): `ls-llm` imports this module before it knows a
# command needs them.

__all__ = ["STATUSES", "answer_key", "answer_status", "extract_final_answer",
           "gsm8k_gold", "is_equivalent", "answer_part_start", "last_boxed", "last_boxed_span", "boxed_spans",
           "lost_variables", "strip_thinking", "verify_batch"]

STATUSES = ("correct", "wrong", "missing", "unparsable")

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")
# Below this many items the cost of starting worker processes exceeds the work itself.
_MIN_ITEMS_FOR_POOL = 64


def answer_part_start(text: str) -> int:
    """Where the answer part of a trace starts: after the last ``</think>``, at 0 without thinking, and at
    ``len(text)`` for a trace that opens ``<think>`` and never closes it (a truncated generation)."""
    cut = text.rfind(_THINK_CLOSE)
    if cut >= 0:
        return cut + len(_THINK_CLOSE)
    if text.lstrip().startswith(_THINK_OPEN):
        return len(text)
    return 0


def strip_thinking(text: str) -> str:
    """Drop the reasoning part of a trace (see :func:`answer_part_start`): a trace that opens ``<think>`` and
    never closes it (a truncated generation) has no answer part at all, so it becomes the empty string."""
    return text[answer_part_start(text) :]


def _balanced_group(text: str, start: int) -> tuple[int, int] | None:
    """Span of the contents of the ``{...}`` group opening at ``text[start]``, or None if never closed."""
    depth = 0
    for pos in range(start, len(text)):
        char = text[pos]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return start + 1, pos
    return None


def _box_contents(text: str, end: int) -> tuple[int, int] | None:
    """Span of the contents of the box whose command ends at ``end``: a balanced ``{...}`` group, or TeX's
    brace-less ``\\boxed 5`` (the word after one space); None when unclosed or empty."""
    rest = text[end:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        return _balanced_group(text, end + len(rest) - len(stripped))
    if rest[:1] == " " and stripped:
        start = end + len(rest) - len(stripped)
        word = re.split(r"[\s$]", stripped, maxsplit=1)[0]
        return (start, start + len(word)) if word else None
    return None


def last_boxed_span(text: str) -> tuple[int, int] | None:
    """Character span (start, end) of the contents of the last ``\\boxed{...}`` / ``\\fbox{...}``; see
    :func:`last_boxed`."""
    matches = list(_BOX_RE.finditer(text))
    return _box_contents(text, matches[-1].end()) if matches else None


def last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces allowed).

    ``\\boxed 5`` (TeX's brace-less form) yields ``"5"``. An unclosed last box yields None
    rather than an earlier box, because an earlier box is usually an intermediate result.
    """
    span = last_boxed_span(text)
    return None if span is None else text[span[0] : span[1]]


def extract_final_answer(text: str) -> str | None:
    """The last boxed answer of the non-thinking part of ``text``; None if there is none."""
    return last_boxed(strip_thinking(text))


def boxed_spans(text: str) -> list[tuple[int, int, int]]:
    """(start of ``\\boxed``, start, end of its contents) of every box that has contents (see :func:`last_boxed`)."""
    return [(match.start(), *span) for match in _BOX_RE.finditer(text)
            if (span := _box_contents(text, match.end())) is not None]


def gsm8k_gold(answer_text: str) -> str:
    """GSM8K gold answer: what follows the final ``####``, thousands separators removed."""
    _, sep, tail = answer_text.rpartition("####")
    if not sep:
        raise ValueError(f"answer_text has no '####' marker: {answer_text[-80:]!r}")
    return tail.strip().replace(",", "")


_SPACING_RE = re.compile(r"\\[!,;]")


def _clean(answer: str) -> str:
    # Sentence punctuation and TeX spacing ("30^\circ.", "20,\!000") make math-verify give up; storage
    # forms such as 4.5e33 or -1./3 are rewritten into LaTeX (ls_llm.answer_forms).
    return normalize_latex(_SPACING_RE.sub("", answer).strip().rstrip(".,;:").strip())


def _parse(answer: str, timeout_s: int) -> list:
    from math_verify import parse

    # math-verify finds expressions by their LaTeX delimiters; a bare "27" or "\frac12" needs one.
    answer = _clean(answer)
    return parse(answer if _BOX_RE.search(answer) else "\\boxed{" + answer + "}", parsing_timeout=timeout_s)


def _first_math(parsed: list):
    # parse() appends the raw string as a fallback; only a sympy object means it really parsed (else None).
    return next((item for item in parsed if not isinstance(item, str)), None)


def answer_status(pred: str | None, gold: str, *, timeout_s: float = 5.0, tolerance: float | None = None) -> str:
    """One of ``STATUSES`` for a predicted final answer against a gold answer (main thread only).

    ``missing``: no answer (None or blank). ``unparsable``: math-verify finds no mathematical
    object in it. An unparsable prediction is never ``correct``. ``tolerance``: the absolute error
    a numeric answer may have (a benchmark's per-row tolerance, e.g. OlympiadBench's ``error``).
    Plain numbers are decided without sympy; an answer provably different at random points skips
    math-verify's symbolic search (see :mod:`ls_llm.answer_forms`, :mod:`ls_llm.answer_numbers`).
    """
    if pred is None or not pred.strip():
        return "missing"
    fast = numeric_verdict(_clean(pred), _clean(gold), tolerance) or number_vs_variable(_clean(pred), _clean(gold))
    if fast is not None:
        return fast
    seconds = max(1, math.ceil(timeout_s))  # signal.alarm only takes whole seconds
    parsed_pred = _parse(pred, seconds)
    if (pred_obj := _first_math(parsed_pred)) is None:
        return "unparsable"
    from math_verify import verify

    parsed_gold = _parse(gold, seconds)
    if (gold_obj := _first_math(parsed_gold)) is None or lost_variables(_clean(gold), gold_obj):
        # A few real golds defeat math-verify ("a + b + c"), or come back as a fragment of themselves
        # ("\frac{1}{3} E_{1}+\frac{2}{3} E_{2}" parsed as 2/3): a wrong answer of the same shape would match
        # that fragment, so compare the written text instead (answer_key: layout and list order aside).
        return "correct" if answer_key(_clean(gold)) == answer_key(_clean(pred)) else "wrong"
    if tolerance is not None and _within(gold_obj, pred_obj, tolerance):
        return "correct"
    if surely_different(gold_obj, pred_obj, _clean(gold), _clean(pred)):
        return "wrong"
    ok = verify(parsed_gold, parsed_pred, timeout_seconds=seconds)
    return "correct" if ok else "wrong"


def lost_variables(text: str, parsed) -> bool:
    """The parse kept much less than the text: the text has a free variable and the parsed object none."""
    symbols = getattr(parsed, "free_symbols", None)
    return symbols is not None and not symbols and has_variable(text)


def _within(gold, pred, tolerance: float) -> bool:
    """Both sides evaluate to real numbers no further apart than ``tolerance`` (e.g. gold 4.2, answer \\sqrt{17.7})."""
    try:
        if not (getattr(gold, "is_number", False) and getattr(pred, "is_number", False)):
            return False
        return abs(float(gold.evalf()) - float(pred.evalf())) <= tolerance * TOLERANCE_SLACK
    except (TypeError, ValueError):
        return False


def is_equivalent(pred: str | None, gold: str, *, timeout_s: float = 5.0) -> bool:
    """True when ``pred`` is mathematically equal to ``gold`` ("027" == "27.0" == "27")."""
    return answer_status(pred, gold, timeout_s=timeout_s) == "correct"


def _status_chunk(chunk: list[tuple[str | None, str, float | None]], timeout_s: float) -> list[str]:
    return [answer_status(pred, gold, timeout_s=timeout_s, tolerance=tol) for pred, gold, tol in chunk]


def _pool_context():
    # fork starts workers in milliseconds with math-verify already imported; elsewhere spawn.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: a worker dies with the process that started it, even on SIGKILL (which runs no
    clean-up), instead of lingering as an orphan (~165 MB each with math-verify loaded)."""
    if os.uname().sysname == "Linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """The verification pool: fork where available, workers tied to this process's life."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_die_with_parent,
                               initargs=(os.getpid(),))


def verify_batch(preds: Sequence[str | None], golds: Sequence[str], *,
                 tolerances: Sequence[float | None] | None = None, workers: int = 2, timeout_s: float = 5.0,
                 chunk_size: int | None = None, progress: bool = False) -> list[str]:
    """Per-item status ("correct" | "wrong" | "missing" | "unparsable"), computed in worker processes.

    ``tolerances``: per-item absolute tolerance for numeric answers (None: exact, as math-verify).
    Items are sent in chunks so inter-process overhead stays small next to parsing. Small
    batches, or ``workers <= 1``, run in this process (which must then be the main thread).
    """
    if len(preds) != len(golds):
        raise ValueError(f"preds and golds differ in length: {len(preds)} != {len(golds)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if tolerances is not None and len(tolerances) != len(golds):
        raise ValueError(f"tolerances and golds differ in length: {len(tolerances)} != {len(golds)}")
    pairs = list(zip(preds, golds, tolerances if tolerances is not None else [None] * len(golds), strict=True))
    in_process = workers == 1 or len(pairs) < _MIN_ITEMS_FOR_POOL
    if in_process and threading.current_thread() is threading.main_thread():
        return _status_chunk(pairs, timeout_s)
    workers = max(1, min(workers, os.cpu_count() or 1, len(pairs)))
    size = chunk_size or max(8, min(256, len(pairs) // (workers * 8) or 1))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    with worker_pool(workers) as pool:
        mapped = pool.map(_status_chunk, chunks, [timeout_s] * len(chunks))
        if progress:
            from tqdm.auto import tqdm

            mapped = tqdm(mapped, total=len(chunks), unit="chunk", desc="verify")
        return [status for statuses in mapped for status in statuses]
