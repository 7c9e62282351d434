"""Scoring of generated answers: the math and multiple-choice verdicts behind every task's metrics.

lm-eval hands a task's filter *all* responses at once (one list of k samples per doc), so math
scoring runs as a single :func:`ls_llm.answers.verify_batch` call over the whole task, in worker
processes, instead of one math-verify call per doc on the main thread. Each sample becomes a small
record ``{"answer": extracted or None, "verdict": "correct" | "wrong" | "missing" | "unparsable"}``
that lands in the per-sample logs; :func:`sample_metrics` turns a doc's k records into avg@k
(mean correctness) and pass@k.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from ls_llm.answers import extract_final_answer, last_boxed, strip_thinking, verify_batch

# Worker processes for math-verify; the runner lowers it to 1 where forking is unsafe.
VERIFY_WORKERS_ENV = "LS_LLM_VERIFY_WORKERS"
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.S)
# "the answer is (C)" / "Answer: C" when the model forgot the box.
_ANSWER_IS = re.compile(r"answer(?:\s+is)?\s*[:：]?\s*\(?\s*([A-Za-z0-9])\s*\)?(?![A-Za-z0-9])", re.I)


def _verify_workers() -> int:
    value = os.environ.get(VERIFY_WORKERS_ENV, "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{VERIFY_WORKERS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def score_math(outputs: Sequence[Sequence[str]], golds: Sequence[str], *, workers: int | None = None) -> list[list[dict]]:
    """Verdict records for each doc's samples; ``outputs[i]`` are the k generations of doc ``i``."""
    if len(outputs) != len(golds):
        raise ValueError(f"outputs and golds differ in length: {len(outputs)} != {len(golds)}")
    answers = [[_unwrap(extract_final_answer(text)) for text in samples] for samples in outputs]
    flat_answers = [answer for samples in answers for answer in samples]
    flat_golds = [gold for samples, gold in zip(answers, golds, strict=True) for _ in samples]
    statuses = verify_batch(flat_answers, flat_golds, workers=workers or _verify_workers())
    verdicts = iter(_same_text_fallback(flat_answers, flat_golds, statuses))
    return [[{"answer": answer, "verdict": next(verdicts)} for answer in samples] for samples in answers]


def _same_text_fallback(answers: list, golds: list, statuses: list[str]) -> list[str]:
    # answer_status never calls an unparsable prediction correct, but a few golds are themselves not
    # mathematics math-verify parses (Minerva's "np.arcsin(10/13)", "E_{1},E_{2}"); an answer written
    # exactly like such a gold is right.
    return ["correct" if status == "unparsable" and answer is not None and _squash(answer) == _squash(gold)
            else status for answer, gold, status in zip(answers, golds, statuses, strict=True)]


def _squash(text: str) -> str:
    return "".join(text.split())


def _unwrap(answer: str | None) -> str | None:
    """``\\textbf{073}`` -> ``073``: math-verify reads a formatting wrapper around the whole answer as text."""
    if answer is None:
        return None
    answer = answer.strip()
    while match := _TEXT_WRAP.match(answer):
        answer = match.group(1).strip()
    return answer


def _clean_label(text: str) -> str:
    return (_unwrap(text.strip().strip("$ .")) or "").strip("() .:")


def extract_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The option label the model chose, or None when it gave none.

    Reads the last ``\\boxed{}`` after any thinking section (``C``, ``(C)``, ``\\text{C}``, ``C. text``
    or the option's own text); without a box, the last "answer is X". Letters are matched case-
    insensitively; numeric ARC labels ("1".."4") as given. A label outside ``labels`` is returned
    as written so the caller can tell it apart from a missing answer.
    """
    visible = strip_thinking(text)
    boxed = last_boxed(visible)
    if boxed is not None:
        cleaned = _clean_label(boxed)
        for label in labels:
            if cleaned.casefold() == label.casefold():
                return label
        for label, option in zip(labels, options, strict=False):
            if cleaned.casefold() == option.strip().casefold():
                return label
        head = re.match(r"[A-Za-z0-9]+", cleaned)
        if head is None:
            return cleaned or None
        token = head.group(0)
        return token.upper() if len(token) == 1 and token.isalpha() else token
    found = _ANSWER_IS.findall(visible)
    return found[-1].upper() if found else None


def choice_verdict(choice: str | None, gold: str, labels: Sequence[str]) -> str:
    if choice is None:
        return "missing"
    if choice not in labels:
        return "unparsable"
    return "correct" if choice == gold else "wrong"


def score_choice(outputs: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[dict]]:
    """Verdict records for multiple-choice docs (canonical ``labels``/``options``/``answer``)."""
    if len(outputs) != len(docs):
        raise ValueError(f"outputs and docs differ in length: {len(outputs)} != {len(docs)}")
    records = []
    for samples, doc in zip(outputs, docs, strict=True):
        per_doc = []
        for text in samples:
            choice = extract_choice(text, doc["labels"], doc["options"])
            per_doc.append({"answer": choice, "verdict": choice_verdict(choice, doc["answer"], doc["labels"])})
        records.append(per_doc)
    return records


def sample_metrics(records: Sequence[dict]) -> dict[str, float]:
    """avg@k (``acc``: mean correctness over the k samples) and ``pass_at_k`` (any sample correct)."""
    if not records:
        raise ValueError("a doc has no scored samples")
    correct = [record["verdict"] == "correct" for record in records]
    return {"acc": sum(correct) / len(correct), "pass_at_k": float(any(correct))}
