"""Scoring of generated answers: the math and multiple-choice verdicts behind every task's metrics.

lm-eval hands a task's filter *all* responses at once (one list of k samples per doc), so math
scoring runs as a single :func:`ls_llm.answers.verify_batch` call over the whole task, in worker
processes, instead of one math-verify call per doc on the main thread. Each sample becomes a small
record ``{"answer": extracted or None, "verdict": "correct" | "wrong" | "missing" | "unparsable",
"rule": which rule found the answer ("boxed", "boxed parts", "stated"; for a choice also "final line"), or None}``
that lands in the per-sample logs; :func:`sample_metrics` turns a doc's k records into avg@k
(mean correctness) and pass@k.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ls_llm.answer_forms import unwrap
from ls_llm.answer_key import answer_key
from ls_llm.answers import verify_batch
from ls_llm.evaluation.choices import (  # noqa: F401  (re-exported: the tasks' hooks and tests)
    MULTI_SEPARATOR,
    choice_verdict,
    extract_choice,
    score_choice,
)
from ls_llm.final_answer import find_final_answer

# Worker processes for math-verify; the runner lowers it to 1 where forking is unsafe.
VERIFY_WORKERS_ENV = "LS_LLM_VERIFY_WORKERS"


def _verify_workers() -> int:
    value = os.environ.get(VERIFY_WORKERS_ENV, "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{VERIFY_WORKERS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def score_math(outputs: Sequence[Sequence[str]], golds: Sequence[str], *,
               tolerances: Sequence[float | None] | None = None, workers: int | None = None) -> list[list[dict]]:
    """Verdict records for each doc's samples; ``outputs[i]`` are the k generations of doc ``i``.

    ``tolerances[i]``: the absolute error allowed for a numeric answer to doc ``i`` (None: exact).
    """
    if len(outputs) != len(golds):
        raise ValueError(f"outputs and golds differ in length: {len(outputs)} != {len(golds)}")
    found = [[find_final_answer(text) for text in samples] for samples in outputs]
    answers = [[unwrap(answer) for answer, _ in samples] for samples in found]
    flat_answers = [answer for samples in answers for answer in samples]
    flat_golds = [gold for samples, gold in zip(answers, golds, strict=True) for _ in samples]
    tolerances = tolerances if tolerances is not None else [None] * len(golds)
    if len(tolerances) != len(golds):
        raise ValueError(f"tolerances and golds differ in length: {len(tolerances)} != {len(golds)}")
    flat_tols = [tol for samples, tol in zip(answers, tolerances, strict=True) for _ in samples]
    statuses = verify_batch(flat_answers, flat_golds, tolerances=flat_tols, workers=workers or _verify_workers())
    verdicts = iter(_same_text_fallback(flat_answers, flat_golds, statuses))
    return [[{"answer": answer, "verdict": next(verdicts), "rule": rule} for answer, (_, rule) in zip(ans, fnd, strict=True)]
            for ans, fnd in zip(answers, found, strict=True)]


def _same_text_fallback(answers: list, golds: list, statuses: list[str]) -> list[str]:
    # answer_status never calls an unparsable prediction correct, but a few golds are themselves not
    # mathematics math-verify parses (Minerva's "np.arcsin(10/13)", "E_{1},E_{2}"); an answer written
    # exactly like such a gold is right.
    return ["correct" if status == "unparsable" and answer is not None and answer_key(answer) == answer_key(gold)
            else status for answer, gold, status in zip(answers, golds, statuses, strict=True)]


def sample_metrics(records: Sequence[dict]) -> dict[str, float]:
    """avg@k (``acc``: mean correctness over the k samples) and ``pass_at_k`` (any sample correct)."""
    if not records:
        raise ValueError("a doc has no scored samples")
    correct = [record["verdict"] == "correct" for record in records]
    return {"acc": sum(correct) / len(correct), "pass_at_k": float(any(correct))}


def rule_shares(samples: Sequence[dict]) -> dict[str, float]:
    """Share of a task's scored samples whose answer each rule found (``"none"``: no answer found), from
    lm-eval's per-sample logs (``filtered_resps`` holds each doc's list of verdict records)."""
    counts: dict[str, int] = {}
    for sample in samples:
        for records in sample.get("filtered_resps", []):
            for record in records if isinstance(records, list) else [records]:
                if isinstance(record, dict) and "verdict" in record:
                    rule = record.get("rule") or "none"
                    counts[rule] = counts.get(rule, 0) + 1
    total = sum(counts.values())
    return {rule: round(count / total, 4) for rule, count in sorted(counts.items())} if total else {}
