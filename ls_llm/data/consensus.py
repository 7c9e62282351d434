"""Consensus among k traces of one problem: which traces' final answers the majority shares, no reference needed.

Traces are grouped by ``problem_id`` (or, on rows without one, by their identical prompt). Within a problem the
final answers fall into equivalence classes under the project's one answer-equivalence function
(:func:`ls_llm.answers.verify_batch`, math-verify in worker processes). math-verify is slow, so classes are
formed in two steps: the project's cheap key first (:func:`ls_llm.answer_key.answer_key`: layout, and the exact
value of a plain number, so ``\\frac12``, ``1/2`` and ``0.5`` share one key), then math-verify only between
the *distinct* keys of one problem, merged with union-find. A trace with no final answer belongs to no class.

Per trace: ``consensus_share`` (the share of the problem's traces in its class, 0 without an answer) and
``consensus_status``: ``agrees`` (in the majority class), ``disagrees`` (not in it, or no answer while a majority
exists) or ``no_majority``. The majority class is the unique largest one holding at least ``majority`` of the
problem's traces (default half: 2 of 4 is a majority when the other two differ from each other, 2 against 2 is
not). A problem with one trace has no majority.

Per problem (written on each of its rows) ``reference_status``: ``missing`` (no reference ``answer``),
``no_majority``, ``agrees`` (the reference equals an answer of the majority class, or shares its key), ``suspect`` (it
disagrees with a majority holding at least ``suspect_share`` of the traces) or ``disagrees`` (a weaker one).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from ls_llm.answer_key import answer_key as _text_key
from ls_llm.answers import verify_batch

__all__ = ["CONSENSUS_STATUSES", "REFERENCE_STATUSES", "ConsensusResult", "answer_key", "consensus",
           "problem_groups"]

CONSENSUS_STATUSES = ("agrees", "disagrees", "no_majority")
REFERENCE_STATUSES = ("agrees", "suspect", "disagrees", "missing", "no_majority")

def answer_key(answer: str | None) -> str | None:
    """The class key of a final answer (:func:`ls_llm.answer_key.answer_key`); None without an answer."""
    if answer is None:
        return None
    return _text_key(answer) or None


def _prompt_of(row: dict) -> str:
    if "prompt" in row:
        return json.dumps(row["prompt"], sort_keys=True, ensure_ascii=False)
    messages = row.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    return json.dumps(messages[:last], sort_keys=True, ensure_ascii=False)


def problem_groups(rows: list[dict]) -> list[list[int]]:
    """Row indices per problem, in first-seen order: by ``problem_id`` where a row has one, else by prompt."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        pid = row.get("problem_id")
        key = ("id", str(pid)) if pid not in (None, "") else ("prompt", _prompt_of(row))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _reference(rows: list[dict], group: list[int]) -> str | None:
    refs = {str(rows[i]["answer"]) for i in group if rows[i].get("answer") not in (None, "")}
    if len(refs) > 1:
        first = rows[group[0]]
        raise ValueError(f"problem {first.get('problem_id') or first.get('id')!r} has {len(refs)} different "
                         f"reference answers on its rows ({sorted(refs)[:3]}): a problem has one reference")
    return refs.pop() if refs else None


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


@dataclass
class ConsensusResult:
    status: list[str]  # per row: CONSENSUS_STATUSES
    share: list[float]  # per row
    reference_status: list[str]  # per row (its problem's)
    report: dict


@dataclass
class _Problem:
    rows: list[int]
    answers: list[str | None]  # per row
    keys: list[str | None]  # per row
    texts: dict[str, str]  # key -> one answer text with that key
    reference: str | None


def _problems(rows: list[dict], answers: list[str | None]) -> list[_Problem]:
    problems = []
    for group in problem_groups(rows):
        texts: dict[str, str] = {}
        keys = [answer_key(answers[i]) for i in group]
        for k, i in zip(keys, group, strict=True):
            if k is not None:
                texts.setdefault(k, answers[i])
        problems.append(_Problem(group, [answers[i] for i in group], keys, texts, _reference(rows, group)))
    return problems


def _pairs(problems: list[_Problem]) -> list[tuple[int, str, str]]:
    """(problem, answer, answer) to verify: one answer of each key against one of every other key of the problem,
    and each distinct answer against the reference (the pairs the reference check verifies too)."""
    out = []
    for p, prob in enumerate(problems):
        reps = [prob.texts[k] for k in sorted(prob.texts)]
        out += [(p, a, b) for i, a in enumerate(reps) for b in reps[i + 1:]]
        if prob.reference is not None and len(prob.rows) > 1:
            out += [(p, a, prob.reference) for a in dict.fromkeys(a for a in prob.answers if a is not None)]
    return out


def consensus(rows: list[dict], *, answers: list[str | None], majority: float = 0.5, suspect_share: float = 0.75,
              workers: int = 2, timeout_s: float = 5.0, progress: bool = False,
              known: dict | None = None) -> ConsensusResult:
    """Consensus statuses for ``rows`` whose final answers are ``answers`` (see the module docstring). ``known``:
    {(answer, reference): status} already computed by :func:`ls_llm.answers.verify_batch` (not checked again)."""
    for name, value in (("majority", majority), ("suspect_share", suspect_share)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"consensus {name} must be in (0, 1], got {value!r}")
    problems = _problems(rows, answers)
    pairs = _pairs(problems)
    known = dict(known or {})
    todo = list(dict.fromkeys((a, b) for _, a, b in pairs if (a, b) not in known))
    known.update(zip(todo, verify_batch([a for a, _ in todo], [b for _, b in todo], workers=workers,
                                        timeout_s=timeout_s, progress=progress), strict=True))
    same: list[set[tuple[str, str]]] = [set() for _ in problems]
    for p, a, b in pairs:
        if known[(a, b)] == "correct":
            same[p].add((a, b))
    out = ConsensusResult([""] * len(rows), [0.0] * len(rows), [""] * len(rows), {})
    tallies: Counter = Counter()
    for prob, equal in zip(problems, same, strict=True):
        _resolve(prob, equal, out, tallies, majority=majority, suspect_share=suspect_share)
    out.report = _report(tallies, problems, len(todo))
    return out


def _resolve(prob: _Problem, same: set[tuple[str, str]], out: ConsensusResult, tallies: Counter, *,
             majority: float, suspect_share: float) -> None:
    """Classes of one problem from its verified-equal answer pairs; statuses written into ``out``."""
    uf = _UnionFind()
    for key, text in prob.texts.items():
        uf.find(key)
        for other_key, other in prob.texts.items():
            if (text, other) in same:
                uf.union(key, other_key)
    classes = [uf.find(k) if k is not None else None for k in prob.keys]
    counts = Counter(c for c in classes if c is not None)
    n = len(prob.rows)
    ranked = counts.most_common(2)
    top = None
    if n > 1 and ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]) and ranked[0][1] >= majority * n:
        top = ranked[0][0]
    for i, cls in zip(prob.rows, classes, strict=True):
        out.share[i] = counts[cls] / n if cls is not None else 0.0
        out.status[i] = "no_majority" if top is None else ("agrees" if cls == top else "disagrees")
        tallies[f"trace:{out.status[i]}"] += 1
    if prob.reference is None:
        ref = "missing"
    elif top is None:
        ref = "no_majority"
    elif _reference_in(prob, classes, top, same):
        ref = "agrees"
    else:
        ref = "suspect" if counts[top] >= suspect_share * n else "disagrees"
    for i in prob.rows:
        out.reference_status[i] = ref
    tallies[f"problem:{ref}"] += 1
    tallies["singletons"] += n == 1


def _reference_in(prob: _Problem, classes: list, top: str, same: set[tuple[str, str]]) -> bool:
    """The reference is the majority's answer: its key is in the class, or some answer of the class equals it."""
    ref_key = answer_key(prob.reference)
    members = [(a, k) for a, k, c in zip(prob.answers, prob.keys, classes, strict=True) if c == top]
    return any(k == ref_key or (a, prob.reference) in same for a, k in members)


def _report(tallies: Counter, problems: list[_Problem], n_pairs: int) -> dict:
    traces = sum(len(p.rows) for p in problems)
    return {
        "traces": traces,
        "problems": len(problems),
        "single_trace_problems": tallies["singletons"],
        "math_verify_pairs": n_pairs,
        "consensus_status": {s: tallies[f"trace:{s}"] for s in CONSENSUS_STATUSES},
        "reference_status": {s: tallies[f"problem:{s}"] for s in REFERENCE_STATUSES},
    }
