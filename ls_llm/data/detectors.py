"""The audit's detectors of noisy traces beside the reference check, and how well each finds injected noise.

A detector *flags* a trace when it suspects it is noisy:

- ``reference``: the final answer is wrong, missing or unparsable against the row's gold ``answer``
  (``audit_status``, ls_llm.data.audit);
- ``consensus``: the answer disagrees with the problem's majority (``consensus_status``, ls_llm.data.consensus);
- ``loss``: the trace is among the fraction q of highest mean completion (or answer-span) loss under a model
  (``loss_flag``; the
  small-loss criterion: Han et al. 2018, Co-teaching; Jiang et al. 2018, MentorNet);
- ``verifier``: a user-supplied score (a reward model's or a judge's) is below a threshold (``verifier_flag``).

With a noise manifest (``ls-llm noise``'s ``<out>.manifest.jsonl``, or a sweep cell's), each detector's flags are
scored against the manifest's ``corrupted`` as precision, recall and F1, overall and per noise ``type``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ls_llm.data.consensus import consensus, problem_groups
from ls_llm.files import read_jsonl

# Heavy imports stay inside functions (matplotlib): `ls-llm` imports this module before it knows a command
# needs them.

__all__ = ["DetectorOptions", "run_detectors", "detector_flags", "score_against_manifest", "top_fraction_flags", "verifier_flags", "read_manifest",
           "plot_detection", "format_detection"]

BAD_AUDIT = ("wrong", "missing", "unparsable")
LOSS_FLAG_COLUMNS = ("loss_mean", "answer_loss_mean")


def verifier_flags(rows: list[dict], column: str, threshold: float, *, source: str,
                   flag_above: bool = False) -> list[bool]:
    """Per row: its ``column`` score is below ``threshold`` (above it with ``flag_above``). Every row must carry a
    finite number there; the first that does not is named (ValueError)."""
    if not math.isfinite(threshold):
        raise ValueError(f"--verifier-threshold must be a finite number, got {threshold!r}")
    flags = []
    for i, row in enumerate(rows):
        value = row.get(column)
        where = f"{source!r} row {i} (id {row.get('id')!r})"
        if column not in row or value is None:
            raise ValueError(f"{where} has no verifier column {column!r}: every row needs a score")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{where}: verifier column {column!r} holds {value!r}, not a finite number")
        flags.append(value > threshold if flag_above else value < threshold)
    return flags


def top_fraction_flags(scores: list[float | None], q: float) -> list[bool]:
    """Flag the ceil(q·n) rows of highest score (None: never flagged, not counted in n); ties broken by order."""
    if not isinstance(q, int | float) or isinstance(q, bool) or not 0.0 < q < 1.0:
        raise ValueError(f"--flag-top-loss must be a fraction in (0, 1), got {q!r}")
    scored = [i for i, s in enumerate(scores) if s is not None]
    ranked = sorted(scored, key=lambda i: -scores[i])
    chosen = set(ranked[: math.ceil(q * len(scored))])
    return [i in chosen for i in range(len(scores))]


def detector_flags(columns: dict[str, list]) -> dict[str, list[bool]]:
    """Per detector that ran, its per-row flags, from the audit's columns (see the module docstring)."""
    out = {}
    if "audit_status" in columns and any(s != "no_reference" for s in columns["audit_status"]):
        out["reference"] = [s in BAD_AUDIT for s in columns["audit_status"]]
    if "consensus_status" in columns:
        out["consensus"] = [s == "disagrees" for s in columns["consensus_status"]]
    for name, column in (("loss", "loss_flag"), ("verifier", "verifier_flag")):
        if column in columns:
            out[name] = [bool(f) for f in columns[column]]
    return out


def read_manifest(path: str | Path, rows: list[dict]) -> list[dict]:
    """The manifest's entries aligned with ``rows``: by ``id`` when every row's id is in it; by position only when
    its entries carry no ids (one entry per row); ids that do not name every row are refused."""
    entries = read_jsonl(path)
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("corrupted"), bool):
            raise ValueError(f"noise manifest {str(path)!r} entry {n} has no boolean 'corrupted': {str(entry)[:80]}")
    by_id = {e.get("id"): e for e in entries if e.get("id") is not None}
    if len(by_id) == len(entries) and all(r.get("id") in by_id for r in rows):
        return [by_id[r["id"]] for r in rows]
    if by_id:  # ids that do not name these rows: another data set's manifest, never aligned by position
        missing = next(r.get("id") for r in rows if r.get("id") not in by_id)
        raise ValueError(f"noise manifest {str(path)!r} has no entry for row id {missing!r}: it is not this data's "
                         "manifest (--noise-manifest names the one `ls-llm noise` wrote beside the data)")
    if len(entries) != len(rows):
        raise ValueError(f"noise manifest {str(path)!r} has {len(entries)} entries for {len(rows)} rows and its ids do "
                         "not name every row: it is not this data's manifest")
    return entries


def _prf(flags: list[bool], truth: list[bool]) -> dict:
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    flagged, positives = sum(flags), sum(truth)
    precision = tp / flagged if flagged else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"rows": len(truth), "corrupted": positives, "flagged": flagged, "true_positives": tp,
            "precision": precision, "recall": recall, "f1": f1}


def score_against_manifest(flags: dict[str, list[bool]], manifest: list[dict]) -> dict:
    """{detector: {"overall": prf, "by_type": {type: prf}}}: precision, recall and F1 of each detector's flags
    against the manifest's ``corrupted``, overall and within the rows of each noise ``type``."""
    truth = [bool(e["corrupted"]) for e in manifest]
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, entry in enumerate(manifest):
        by_type[str(entry.get("type") or "unknown")].append(i)
    out = {}
    for name, f in flags.items():
        out[name] = {"overall": _prf(f, truth),
                     "by_type": {t: _prf([f[i] for i in idx], [truth[i] for i in idx])
                                 for t, idx in sorted(by_type.items())}}
    return out


def format_detection(scores: dict) -> str:
    """The precision / recall / F1 table (markdown) of :func:`score_against_manifest`'s result."""
    lines = ["| detector | noise type | rows | corrupted | flagged | precision | recall | F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, result in scores.items():
        for label, prf in [("all", result["overall"]), *result["by_type"].items()]:
            lines.append(f"| {name} | {label} | {prf['rows']} | {prf['corrupted']} | {prf['flagged']} | "
                         f"{prf['precision']:.3f} | {prf['recall']:.3f} | {prf['f1']:.3f} |")
    return "\n".join(lines)


def plot_detection(scores: dict, path: str | Path, *, truth: str = "noise manifest") -> None:
    """Grouped bars: precision, recall and F1 of each detector (overall) against the truth (the noise manifest, or
    the reference answers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.2))
    width = 0.26
    for k, (metric, color) in enumerate((("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("f1", "#2ca02c"))):
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, [scores[n]["overall"][metric] for n in names], width, color=color, label=metric)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.25)  # room for the legend above the bars
    ax.set_ylabel(f"against the {truth}")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    ax.set_title("Noisy-trace detectors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class DetectorOptions:
    """Which detectors run and how (the audit's flags); validated before any slow work."""

    consensus: bool = True  # runs when some problem has >= 2 traces
    majority: float = 0.5
    suspect_share: float = 0.75
    flag_top_loss: float | None = None
    flag_loss_column: str = "loss_mean"  # or answer_loss_mean: the answer span's loss
    verifier_column: str | None = None
    verifier_threshold: float | None = None
    verifier_flag_above: bool = False

    def __post_init__(self) -> None:
        if (self.verifier_column is None) != (self.verifier_threshold is None):
            raise ValueError("--verifier-column and --verifier-threshold go together: give both or neither")
        if self.flag_top_loss is not None:
            top_fraction_flags([], self.flag_top_loss)  # the range check
        if self.flag_loss_column not in LOSS_FLAG_COLUMNS:
            raise ValueError(f"--flag-loss-column must be one of {LOSS_FLAG_COLUMNS}, got {self.flag_loss_column!r}")
        for name, value in (("majority", self.majority), ("suspect_share", self.suspect_share)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"consensus {name} must be in (0, 1], got {value!r}")


def run_detectors(rows: list[dict], predictions: list[str | None], opts: DetectorOptions, *, source: str,
                  scores: dict | None = None, workers: int = 2, timeout_s: float = 5.0,
                  progress: bool = False, known: dict | None = None) -> tuple[dict[str, list], dict]:
    """(per-row detector columns, report section) for consensus, model loss (``scores`` from
    ls_llm.trainers.trace_scores) and the verifier; a detector that cannot run says why in the report. ``known``:
    (answer, reference) -> status pairs already checked (the reference audit's), not checked again."""
    columns: dict[str, list] = {}
    report: dict = {"ran": [], "skipped": {}}
    if opts.verifier_column is not None:
        columns["verifier_flag"] = verifier_flags(rows, opts.verifier_column, opts.verifier_threshold, source=source,
                                                  flag_above=opts.verifier_flag_above)
        report["ran"].append("verifier")
        report["verifier"] = {"column": opts.verifier_column, "threshold": opts.verifier_threshold,
                              "flag_above": opts.verifier_flag_above, "flagged": sum(columns["verifier_flag"])}
    if scores is not None:
        columns.update(scores)
        report["ran"].append("loss")
        report["loss"] = {"flag_top_loss": opts.flag_top_loss, "flag_loss_column": opts.flag_loss_column}
        if opts.flag_top_loss is not None:
            columns["loss_flag"] = top_fraction_flags(scores[opts.flag_loss_column], opts.flag_top_loss)
            report["loss"]["flagged"] = sum(columns["loss_flag"])
    if not opts.consensus:
        report["skipped"]["consensus"] = "turned off (--no-consensus)"
    elif max((len(g) for g in problem_groups(rows)), default=0) < 2:
        report["skipped"]["consensus"] = "every problem has one trace (consensus needs k >= 2 per problem_id or prompt)"
    else:
        result = consensus(rows, answers=predictions, majority=opts.majority, suspect_share=opts.suspect_share,
                           workers=workers, timeout_s=timeout_s, progress=progress, known=known)
        columns.update(consensus_status=result.status, consensus_share=result.share,
                       reference_status=result.reference_status)
        report["ran"].append("consensus")
        report["consensus"] = result.report
    return columns, report
