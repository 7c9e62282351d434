"""Controlled noise injection into reasoning traces, reproducible from a seed.

Each injector edits the assistant completion (the last assistant message) and says how. Row-level
injectors (``answer``, ``perturb``, ``swap``) corrupt a row with probability rho; unit-level ones
(``token``, ``step``) corrupt each token / step with probability rho. The gold ``answer`` column is
never changed, so an audit against it finds exactly the rows whose final answer was corrupted.

Injectors are looked up in :data:`INJECTORS`; the text edits live in :mod:`ls_llm.data.trace_edits`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ls_llm.answers import extract_final_answer
from ls_llm.data.trace_edits import (
    answers_differ,
    edit_steps,
    perturb_number,
    replace_answer,
    replace_boxed_answer,
)
from ls_llm.registry import Registry

# Heavy imports stay inside functions (transformers): `ls-llm` imports this module before it knows a command
# needs them.

__all__ = ["INJECTORS", "Edit", "NoiseContext", "apply_noise_from_args", "completion_of", "inject_noise",
           "manifest_path"]

logger = logging.getLogger(__name__)


@dataclass
class Edit:
    """What an injector did to one completion."""

    completion: str
    how: str
    old_answer: str | None = None
    new_answer: str | None = None
    units: int = 1  # opportunities for noise in this row (1 for row-level injectors)
    corrupted_units: int = 1


@dataclass
class NoiseContext:
    """What injectors may consult: every row's clean completion and trace answer, and the rate."""

    completions: list[str]
    answers: list[str | None]
    rate: float
    tokenizer: object | None = None
    _candidates: list[int] | None = field(default=None, repr=False)

    def token_candidates(self) -> list[int]:
        """Vocabulary ids a noisy token is drawn from (uniformly): every id but the special tokens."""
        if self._candidates is None:
            special = set(self.tokenizer.all_special_ids)
            self._candidates = [i for i in range(len(self.tokenizer)) if i not in special]
        return self._candidates


def _other_index(
    rng: random.Random, index: int, ctx: NoiseContext, accept: Callable[[int], bool]
) -> int | None:
    """A random row other than ``index`` that ``accept``s; None if no row does."""
    n = len(ctx.completions)
    for _ in range(32):  # cheap random tries first; the scan below only matters for degenerate data
        j = rng.randrange(n)
        if j != index and accept(j):
            return j
    pool = [j for j in range(n) if j != index and accept(j)]
    return rng.choice(pool) if pool else None


def _donor_answer(index: int, ctx: NoiseContext, rng: random.Random) -> tuple[str, str, int] | None:
    """(this row's answer, another random row's different answer, that row's index), or None."""
    old = ctx.answers[index]
    if old is None:
        return None
    donor = _other_index(
        rng, index, ctx, lambda j: ctx.answers[j] is not None and answers_differ(old, ctx.answers[j])
    )
    return None if donor is None else (old, ctx.answers[donor], donor)


@dataclass(frozen=True)
class Injector:
    fn: Callable[[int, str, NoiseContext, random.Random], Edit | None]
    per_unit: bool  # True: rho applies to each token/step inside the injector
    needs_tokenizer: bool = False


INJECTORS = Registry("noise_type", entry=Injector)  # name -> Injector


@INJECTORS.register("answer", per_unit=False)
def answer_noise(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """Symmetric answer noise: the final answer becomes another random problem's (different) answer."""
    drawn = _donor_answer(index, ctx, rng)
    if drawn is None:
        return None
    old, new, donor = drawn
    text, count = replace_answer(completion, old, new)
    return Edit(text, f"answer from row {donor} ({count} occurrences)", old, new)


@INJECTORS.register("box", per_unit=False)
def box_noise(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """Label noise on the answer alone: the last ``\\boxed{}`` gets another random problem's (different) answer,
    the reasoning keeps the value it computed (answer noise rewrites that value too)."""
    drawn = _donor_answer(index, ctx, rng)
    if drawn is None:
        return None
    old, new, donor = drawn
    text, count = replace_boxed_answer(completion, old, new)
    return Edit(text, f"boxed answer from row {donor}", old, new) if count else None


@INJECTORS.register("perturb", per_unit=False)
def answer_perturbation(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """A numeric final answer moved by a small offset or one digit edit, consistently in the trace."""
    old = ctx.answers[index]
    perturbed = perturb_number(old, rng) if old is not None else None
    if perturbed is None:
        return None
    new, how = perturbed
    text, count = replace_answer(completion, old, new)
    return Edit(text, f"{how} ({count} occurrences)", old, new)


@INJECTORS.register("swap", per_unit=False)
def trace_swap(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """The whole completion replaced by another problem's completion."""
    donor = _other_index(rng, index, ctx, lambda j: ctx.completions[j] != completion)
    if donor is None:
        return None
    return Edit(ctx.completions[donor], f"completion of row {donor}", ctx.answers[index], ctx.answers[donor])


@INJECTORS.register("token", per_unit=True, needs_tokenizer=True)
def token_noise(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """Each completion token replaced with probability rho by a uniformly random vocabulary token."""
    ids = ctx.tokenizer.encode(completion, add_special_tokens=False)
    candidates = ctx.token_candidates()
    hits = [pos for pos in range(len(ids)) if rng.random() < ctx.rate]
    for pos in hits:
        ids[pos] = rng.choice(candidates)
    if not hits:
        return Edit(completion, "", units=len(ids), corrupted_units=0)
    text = ctx.tokenizer.decode(ids, skip_special_tokens=False)
    return Edit(text, f"{len(hits)} of {len(ids)} tokens replaced", units=len(ids), corrupted_units=len(hits))


@INJECTORS.register("step", per_unit=True)
def step_noise(index: int, completion: str, ctx: NoiseContext, rng: random.Random) -> Edit | None:
    """Reasoning steps (lines, else sentences) dropped, duplicated or swapped, each with probability rho."""
    text, units, ops = edit_steps(completion, ctx.rate, rng)
    how = ", ".join(f"{op} step {i}" for op, i in ops)
    return Edit(text, how, units=units, corrupted_units=len(ops))


def manifest_path(out: str | Path) -> Path:
    """Where ``ls-llm noise`` writes the manifest of ``out`` by default (and where ``ls-llm audit`` looks for it)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".jsonl" else out
    return Path(f"{stem}.manifest.jsonl")


def completion_of(row: dict) -> str:
    """The assistant completion of a row: its last assistant message."""
    for message in reversed(row["messages"]):
        if message["role"] == "assistant":
            return message["content"]
    raise ValueError(f"row {row.get('id')!r} has no assistant message")


def _with_completion(row: dict, completion: str) -> dict:
    messages = [dict(m) for m in row["messages"]]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    messages[last]["content"] = completion
    return {**row, "messages": messages}


def _check(noise_type: str, rate: float, tokenizer) -> Injector:
    injector = INJECTORS.lookup(noise_type)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise_rho must be in [0, 1], got {rate!r}")
    if injector.needs_tokenizer and tokenizer is None:
        raise ValueError(f"noise_type={noise_type!r} needs a tokenizer (noise_tokenizer / --tokenizer)")
    return injector


def inject_noise(
    rows: list[dict], *, noise_type: str, rate: float, seed: int, tokenizer=None
) -> tuple[list[dict], list[dict], dict]:
    """Noisy copies of ``rows``, the per-row manifest and a summary with the realized rate.

    Noisy rows gain ``corrupted`` (bool) and ``noise`` (how, "" when clean). The manifest has, per
    row: ``index``, ``id``, ``corrupted``, ``type``, ``how``, ``old_answer``, ``new_answer``,
    ``units``, ``corrupted_units``.
    """
    injector = _check(noise_type, rate, tokenizer)
    completions = [completion_of(row) for row in rows]
    answers = [extract_final_answer(c) or row.get("answer") for c, row in zip(completions, rows, strict=True)]
    ctx = NoiseContext(completions, answers, rate, tokenizer)
    rng = random.Random(f"{seed}-{noise_type}")
    noisy, manifest, not_applicable = [], [], 0
    for index, (row, completion) in enumerate(zip(rows, completions, strict=True)):
        edit = None
        if injector.per_unit or rng.random() < rate:
            edit = injector.fn(index, completion, ctx, rng)
            not_applicable += edit is None and not injector.per_unit
        corrupted = edit is not None and edit.corrupted_units > 0
        new_row = _with_completion(row, edit.completion) if corrupted else dict(row)
        noisy.append({**new_row, "corrupted": corrupted, "noise": edit.how if corrupted else ""})
        manifest.append(_manifest_entry(index, row, noise_type, edit, corrupted))
    return (
        noisy,
        manifest,
        _summary(manifest, noise_type, rate, seed, not_applicable, per_unit=injector.per_unit),
    )


def _manifest_entry(index: int, row: dict, noise_type: str, edit: Edit | None, corrupted: bool) -> dict:
    return {
        "index": index,
        "id": row.get("id"),
        "corrupted": corrupted,
        "type": noise_type,
        "how": edit.how if corrupted else "",
        "old_answer": edit.old_answer if corrupted else None,
        "new_answer": edit.new_answer if corrupted else None,
        "units": edit.units if edit else 1,
        "corrupted_units": edit.corrupted_units if corrupted else 0,
    }


def _summary(
    manifest: list[dict], noise_type: str, rate: float, seed: int, not_applicable: int, *, per_unit: bool
):
    rows = len(manifest)
    corrupted = sum(m["corrupted"] for m in manifest)
    units = sum(m["units"] for m in manifest)
    hit_units = sum(m["corrupted_units"] for m in manifest)
    row_rate = corrupted / rows if rows else 0.0
    unit_rate = hit_units / units if units else 0.0
    return {
        "type": noise_type,
        "rate": rate,
        "seed": seed,
        "rows": rows,
        "corrupted_rows": corrupted,
        "row_rate": row_rate,
        "units": units,
        "corrupted_units": hit_units,
        # rho is a per-token/step probability for unit injectors and a per-row one otherwise.
        "realized_rate": unit_rate if per_unit else row_rate,
        "selected_but_not_applicable": not_applicable,
    }


def apply_noise_from_args(rows: list[dict], args, *, tokenizer=None) -> list[dict]:
    """The recipe's noise section applied at load time (``noise_type``, ``noise_rho``, ``noise_seed``)."""
    if tokenizer is None and INJECTORS[args.noise_type].needs_tokenizer and args.noise_tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.noise_tokenizer)
    noisy, manifest, summary = inject_noise(
        rows, noise_type=args.noise_type, rate=args.noise_rho, seed=args.noise_seed, tokenizer=tokenizer
    )
    logger.info("noise injected: %s", summary)
    if args.noise_manifest:
        from ls_llm.files import write_jsonl

        write_jsonl(args.noise_manifest, manifest)
    return noisy
