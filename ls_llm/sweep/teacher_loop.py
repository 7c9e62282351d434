"""The teacher loop of a sweep (`traces:`, ls_llm.sweep.config.TracesSpec): noise a teacher makes, found without an
oracle.

Per sweep seed, three steps, each a cell (resumable, fingerprinted like any other):

1. `teacher-s<seed>`: the seed's base fine-tuned by `ls-llm train` (the sweep's recipe and overrides, then
   `traces.overrides`) on a clean set of its own (`traces.data`'s train split, written to <output_dir>/teacher_data);
   evaluated on the sweep's validation and test splits like a train cell (the teacher's accuracy).
2. `traces-s<seed>`: the teacher samples `k` completions of every training problem (`ls-llm generate`'s library path,
   hf backend); each trace is then judged:
   - `oracle`: its final answer against the true answer (math-verify): `right` / `wrong`. The truth the detectors
     are scored against, never available to a practitioner;
   - under each reference-error rate r of the sweep's `reference` axis, the references of round(r * problems)
     problems (drawn by the seed and r) are moved to a nearby wrong number (`ls_llm.data.trace_edits.perturb_number`),
     and the audit runs (`ls_llm.data.audit_traces`): `reference` (math-verify against the reference: correct,
     wrong, missing, unparsable), `consensus` (agrees, disagrees, no_majority, ...) with `consensus_share`;
   - `loss`: `flagged` for the share of highest mean loss (`traces.loss_column`: the completion's or the answer span's)
     under `traces.loss_model` (the seed's base, or the teacher that sampled them) — the small-loss criterion; the
     share is `traces.loss_share`, else the share the reference audit flags at that rate — else `kept`;
   - `verifier_<name>` for each simulated verifier: a wrong trace is `flagged` with probability `recall`, a right one
     with `false_positive_rate` (drawn per trace from the seed and the verifier's name, the same at every rate).
   Written per rate to `traces_ref<r>.jsonl` (prompt / completion rows with those columns), with each detector's
   precision and recall against the oracle in the cell's result.
3. The train cells of rate r train on `traces_ref<r>.jsonl` (nothing injected): a variant routes or weights traces
   by its columns (`trace_objective_column: consensus`, `trace_objectives: {disagrees: drop}`;
   `trace_weight_column: consensus_share`).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from ls_llm.answers import STATUSES
from ls_llm.data.audit import BAD_STATUSES, audit_rows
from ls_llm.data.audit_traces import audit_traces
from ls_llm.data.consensus import CONSENSUS_STATUSES
from ls_llm.data.detectors import DetectorOptions, score_against_manifest, top_fraction_flags
from ls_llm.data.trace_edits import perturb_number
from ls_llm.files import write_jsonl
from ls_llm.sweep.config import REFERENCE_NOISE, Cell, SweepConfig

TEACHER_DATA = "teacher_data"  # <output_dir>/teacher_data: the teachers' clean fine-tuning set
GENERATED_DIR = "generated"  # cells/traces-s<seed>/generated: `ls-llm generate`'s folder (traces.jsonl, manifest)
FLAGGED, KEPT = "flagged", "kept"


def trace_columns(spec) -> dict[str, tuple[str, ...]]:
    """The columns of the traces a student may be routed by (`trace_objective_column`), with the values each holds."""
    return {"oracle": ("right", "wrong"), "reference": STATUSES, "consensus": CONSENSUS_STATUSES,
            "loss": (FLAGGED, KEPT), **{f"verifier_{name}": (FLAGGED, KEPT) for name in spec.verifiers}}


def traces_file(cell_dir: Path, rate: float) -> Path:
    """The audited traces the train cells of reference-error rate `rate` train on."""
    return cell_dir / f"traces_ref{rate:g}.jsonl"


def _draw(*parts) -> random.Random:
    """A generator seeded by `parts` (stable across runs and Python versions, unlike hash())."""
    return random.Random(int(hashlib.sha256(repr(parts).encode()).hexdigest()[:16], 16))


def wrong_references(answers: list[str], rate: float, seed: int) -> tuple[list[str], list[bool]]:
    """(references, changed): round(rate * n) of the answers, drawn by (seed, rate), moved to a nearby wrong number;
    ValueError naming the first drawn answer that is not a number."""
    rng = _draw("wrong-references", seed, f"{rate:g}")
    chosen = set(rng.sample(range(len(answers)), round(rate * len(answers))))
    out = list(answers)
    for i in sorted(chosen):
        moved = perturb_number(str(answers[i]), rng)
        if moved is None:
            raise ValueError(f"traces: reference answer {answers[i]!r} (problem {i}) is not a number: a wrong "
                             "reference cannot be made from it")
        out[i] = moved[0]
    return out, [i in chosen for i in range(len(answers))]


def simulated_verifier(wrong: list[bool], *, recall: float, false_positive_rate: float, seed: int,
                       name: str) -> list[bool]:
    """Per trace, flagged with probability `recall` when wrong and `false_positive_rate` when right (one uniform draw
    per trace from (seed, name), so a verifier's flags are the same under every reference-error rate)."""
    rng = _draw("verifier", seed, name)
    return [rng.random() < (recall if bad else false_positive_rate) for bad in wrong]


def _audit_rows(traces: list[dict], references: list[str]) -> list[dict]:
    return [{"id": t["id"], "problem_id": t["problem_id"], "answer": ref,
             "messages": [*t["prompt"], {"role": "assistant", "content": t["completion"]}]}
            for t, ref in zip(traces, references, strict=True)]


def _loss_flags(losses: list[float | None], share: float) -> list[bool]:
    if share <= 0 or share >= 1:
        return [share >= 1] * len(losses)
    return top_fraction_flags(losses, share)


def run_traces(sweep: SweepConfig, cell: Cell, data: dict[str, Path], root: Path) -> dict:
    """Generate and audit the seed's traces (the module docstring); returns the result's fields: the teacher's
    accuracy on its own traces and, per rate, each detector's flags scored against the oracle."""
    from ls_llm.evaluation.generate import TRACES_FILE, generate_traces
    from ls_llm.evaluation.generate_config import GenerateConfig
    from ls_llm.files import read_jsonl
    from ls_llm.trainers.trace_scores import load_scorer, score_traces

    spec, cell_dir = sweep.traces, root / "cells" / cell.cell_id
    cfg = GenerateConfig(model=str(root / "cells" / cell.teacher / "model"), data=str(data["train"]),
                         out=str(cell_dir / GENERATED_DIR), num_samples=spec.k, backend="hf",
                         temperature=spec.temperature, top_p=spec.top_p, max_gen_toks=sweep.eval.max_gen_toks,
                         seed=cell.seed, data_format="problem_solution", answer_instruction="",
                         batch_size=str(sweep.eval.batch_size), device="cpu")
    generate_traces(cfg)
    traces = read_jsonl(cell_dir / GENERATED_DIR / TRACES_FILE)
    truth = audit_rows(_audit_rows(traces, [t["answer"] for t in traces]), workers=1, progress=False)
    wrong = [status in BAD_STATUSES for status in truth.statuses]
    verifiers = {f"verifier_{name}": simulated_verifier(wrong, seed=cell.seed, name=name, **rates)
                 for name, rates in spec.verifiers.items()}
    scorer = cell.base if spec.loss_model == "base" else cell.teacher
    model, tokenizer = load_scorer(str(root / "cells" / scorer / "model"), device="cpu", dtype="float32")
    losses = score_traces(_audit_rows(traces, [t["answer"] for t in traces]), model, tokenizer)[spec.loss_column]
    problems = list(dict.fromkeys(t["problem_id"] for t in traces))
    gold = {t["problem_id"]: t["answer"] for t in traces}
    result = {"traces": len(traces), "problems": len(problems), "teacher_trace_acc": 1 - sum(wrong) / len(wrong),
              "detection": {}}
    for rate in sweep.rates_of(REFERENCE_NOISE):
        refs, changed = wrong_references([gold[p] for p in problems], rate, cell.seed)
        ref_of = dict(zip(problems, refs, strict=True))
        rows = _audit_rows(traces, [ref_of[t["problem_id"]] for t in traces])
        audit = audit_traces(rows, DetectorOptions(consensus=True), source=cell.cell_id, workers=1, progress=False)
        bad_ref = [s in BAD_STATUSES for s in audit.statuses]
        share = spec.loss_share if spec.loss_share is not None else sum(bad_ref) / len(bad_ref)
        flags = {"reference": bad_ref, "consensus": [s == "disagrees" for s in audit.columns["consensus_status"]],
                 "loss": _loss_flags(losses, share), **verifiers}
        out = []
        for i, t in enumerate(traces):
            out.append({"id": t["id"], "problem_id": t["problem_id"], "prompt": t["prompt"],
                        "completion": t["completion"], "answer": ref_of[t["problem_id"]], "true_answer": t["answer"],
                        "predicted_answer": t.get("predicted_answer"), "oracle": "wrong" if wrong[i] else "right",
                        "reference": audit.statuses[i], "consensus": audit.columns["consensus_status"][i],
                        "consensus_share": float(audit.columns["consensus_share"][i] or 0.0),
                        "loss_score": losses[i], "loss": FLAGGED if flags["loss"][i] else KEPT,
                        **{name: FLAGGED if f[i] else KEPT for name, f in verifiers.items()}})
        write_jsonl(traces_file(cell_dir, rate), out)
        truth_rows = [{"corrupted": bad, "type": "teacher"} for bad in wrong]
        scored = score_against_manifest(flags, truth_rows)
        result["detection"][f"{rate:g}"] = {"wrong_references": sum(changed), "loss_share": share,
                                            **{name: s["overall"] for name, s in scored.items()}}
    return result


def teacher_recipe_keys(sweep: SweepConfig, cell: Cell, root: Path) -> tuple[dict, dict]:
    """(overrides, fixed data keys) of a teacher cell's `ls-llm train` run: the sweep's overrides, its base, then
    `traces.overrides`; it trains on the teachers' clean set, nothing injected."""
    from ls_llm.sweep.data import data_paths

    base = {"model_name_or_path": str(root / "cells" / cell.base / "model"), "model_init_from_config": False}
    return ({**sweep.overrides, **base, **sweep.traces.overrides},
            {"dataset_name": str(data_paths(root / TEACHER_DATA)["train"])})


def trace_cell_keys(cell: Cell, root: Path) -> dict:
    """The data keys of a train cell of a traces sweep: its rate's audited traces, as prompt / completion rows."""
    return {"dataset_name": str(traces_file(root / "cells" / cell.traces, cell.noise_rho)),
            "dataset_format": "prompt_completion"}


DETECTORS_LEGEND = ("Each detector's flags against the oracle (a trace whose final answer is not the true one), per "
                    "reference-error rate: mean [95% t interval] over seeds, %. `reference`: math-verify against the "
                    "(possibly wrong) reference; `consensus`: disagrees with its problem's majority; `loss`: among the "
                    "highest mean losses under `traces.loss_model`; `verifier_*`: simulated.\n")


def loop_lines(rows: list[dict]) -> list[str]:
    """The report's section on the teacher loop: each teacher's accuracy and its traces', then the detectors."""
    from ls_llm.sweep.stats import mean_ci_cell

    teachers = {r["seed"]: r for r in rows if r["kind"] == "teacher"}
    traces = sorted((r for r in rows if r["kind"] == "traces"), key=lambda r: r["seed"])
    if not teachers and not traces:
        return []
    lines = ["## The teacher loop\n", "| seed | teacher validation (%) | teacher test (%) | teacher's traces right (%) "
             "| traces |", "|---|---:|---:|---:|---:|"]
    for seed in sorted(set(teachers) | {r["seed"] for r in traces}):
        t, tr = teachers.get(seed, {}), next((r for r in traces if r["seed"] == seed), {})
        cells = [f"{100 * t[k]:.1f}" if k in t else "—" for k in ("val_acc", "test_acc")]
        right = f"{100 * tr['teacher_trace_acc']:.1f}" if tr else "—"
        lines.append(f"| {seed} | {cells[0]} | {cells[1]} | {right} | {tr.get('traces', '—')} |")
    lines += ["", DETECTORS_LEGEND, "| reference errors | detector | seeds | flagged (%) | precision (%) | recall (%) |",
              "|---|---|---:|---:|---:|---:|"]
    rates = sorted({rate for r in traces for rate in r["detection"]}, key=float)
    for rate in rates:
        found = [r["detection"][rate] for r in traces if rate in r["detection"]]
        names = [k for k, v in found[0].items() if isinstance(v, dict)]
        for name in names:
            per = [d[name] for d in found if name in d]
            flagged = [p["flagged"] / p["rows"] for p in per if p["rows"]]
            # precision is undefined where nothing was flagged, recall where no trace was wrong: those seeds are left out
            cells = [mean_ci_cell(vals, 100, len(per)) for vals in
                     (flagged, [p["precision"] for p in per if p["flagged"]], [p["recall"] for p in per if p["corrupted"]])]
            lines.append(f"| {rate} | {name} | {len(per)} | {' | '.join(cells)} |")
    return lines + [""]
