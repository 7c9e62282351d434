"""Audit a trace set: how many traces end in a wrong, missing or unparsable final answer, and which look noisy.

Each trace's final answer (last ``\\boxed{}`` outside the thinking) is checked against the row's
gold ``answer`` with :func:`ls_llm.answers.verify_batch`, i.e. math-verify in worker processes.
Rows without a gold answer get the status ``no_reference`` and are left out of the fractions.
:func:`ls_llm.data.audit_traces.audit_traces` adds the detectors that need no clean reference.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ls_llm.answers import STATUSES, extract_final_answer, verify_batch
from ls_llm.data.detectors import format_detection, plot_detection
from ls_llm.data.noise import completion_of
from ls_llm.files import check_writable, staged_dir, write_atomic, write_jsonl

# Heavy imports stay inside functions (matplotlib): `ls-llm` imports this module before it knows a command
# needs them.

__all__ = ["AuditResult", "audit_rows", "plot_report", "write_audit"]

NO_REFERENCE = "no_reference"
BAD_STATUSES = ("wrong", "missing", "unparsable")
GROUP_KEYS = ("source", "subject", "level")
# Beyond this many rows a progress bar is worth its noise in the log.
PROGRESS_MIN_ROWS = 2000


@dataclass
class AuditResult:
    statuses: list[str]  # per row: one of STATUSES or NO_REFERENCE
    predictions: list[str | None]
    report: dict
    columns: dict[str, list] = field(default_factory=dict)  # the detectors' per-row columns
    known: dict = field(default_factory=dict, repr=False)  # (answer, reference) -> status, for reuse


def _tally(statuses: list[str]) -> dict:
    counts = Counter(statuses)
    checked = sum(counts[s] for s in STATUSES)
    out = {"rows": len(statuses), "checked": checked, NO_REFERENCE: counts[NO_REFERENCE]}
    for status in STATUSES:
        out[status] = counts[status]
        out[f"frac_{status}"] = counts[status] / checked if checked else 0.0
    out["frac_bad"] = sum(out[f"frac_{s}"] for s in BAD_STATUSES)
    return out


def build_report(rows: list[dict], statuses: list[str]) -> dict:
    """Counts and fractions overall and per source / subject / level (groups with a value only)."""
    report = {"overall": _tally(statuses)}
    for key in GROUP_KEYS:
        groups: dict[str, list[str]] = defaultdict(list)
        for row, status in zip(rows, statuses, strict=True):
            if row.get(key) not in (None, ""):
                groups[str(row[key])].append(status)
        if groups:
            report[f"by_{key}"] = {name: _tally(group) for name, group in sorted(groups.items())}
    return report


def audit_rows(rows: list[dict], *, workers: int = 2, timeout_s: float = 5.0, progress: bool | None = None):
    """Check every row's final answer against its gold ``answer``; returns an :class:`AuditResult`."""
    predictions = [extract_final_answer(completion_of(row)) for row in rows]
    checked = [i for i, row in enumerate(rows) if row.get("answer") not in (None, "")]
    progress = len(checked) >= PROGRESS_MIN_ROWS if progress is None else progress
    # k traces of one problem often box the same answer: each distinct (answer, reference) pair is checked once.
    pairs = list(dict.fromkeys((predictions[i], str(rows[i]["answer"])) for i in checked))
    verdicts = verify_batch([pred for pred, _ in pairs], [gold for _, gold in pairs], workers=workers,
                            timeout_s=timeout_s, progress=progress)
    known = dict(zip(pairs, verdicts, strict=True))
    statuses = [NO_REFERENCE] * len(rows)
    for i in checked:
        statuses[i] = known[(predictions[i], str(rows[i]["answer"]))]
    return AuditResult(statuses, predictions, build_report(rows, statuses), known=known)


def _chart_groups(report: dict) -> list[tuple[str, dict]]:
    groups = [("overall", report["overall"])]
    for key in GROUP_KEYS:
        groups += [(f"{key}: {name}", tally) for name, tally in report.get(f"by_{key}", {}).items()]
    return groups


def plot_report(report: dict, path: str | Path) -> None:
    """Stacked horizontal bars: fraction wrong / missing / unparsable, overall and per group."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training boxes
    import matplotlib.pyplot as plt

    groups = _chart_groups(report)
    labels = [f"{name} (n={tally['checked']})" for name, tally in groups]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(groups)))
    left = [0.0] * len(groups)
    for status, color in zip(BAD_STATUSES, ("#d62728", "#7f7f7f", "#ff7f0e"), strict=True):
        widths = [tally[f"frac_{status}"] for _, tally in groups]
        ax.barh(labels, widths, left=left, color=color, label=status)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("fraction of checked traces")
    ax.set_xlim(0, max(0.05, min(1.0, max(left) * 1.15)))
    ax.legend(loc="lower right")
    ax.set_title("Trace audit: final answer vs reference")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_audit(rows: list[dict], result: AuditResult, out_dir: str | Path, *, overwrite: bool = False,
                plot=True):
    """Write ``clean.jsonl`` (correct), ``noisy.jsonl`` (wrong/missing/unparsable), ``traces.jsonl`` (every row,
    with every detector's columns), ``report.json``, ``audit.png`` and, with a manifest, ``detectors.png``. Rows
    without a reference go to neither split. Returns the written paths by name."""
    out = Path(out_dir)
    names = output_names(plot=plot, detection="detection" in result.report)
    for name in names.values():
        check_writable(out / name, overwrite=overwrite, field="audit output", create_parent=False)
    tagged = [
        {**row, "audit_status": status, "audit_prediction": pred, **{k: v[i] for k, v in result.columns.items()}}
        for i, (row, status, pred) in enumerate(zip(rows, result.statuses, result.predictions, strict=True))]
    with staged_dir(out, last="report.json") as stage:  # all files appear together, or none
        write_jsonl(stage / names["clean"], [r for r in tagged if r["audit_status"] == "correct"])
        write_jsonl(stage / names["noisy"], [r for r in tagged if r["audit_status"] in BAD_STATUSES])
        write_jsonl(stage / names["traces"], tagged)
        if plot:
            plot_report(result.report, stage / names["chart"])
        if "detection_chart" in names:
            plot_detection(result.report["detection"], stage / names["detection_chart"],
                           truth=result.report["detection_truth"])
        write_atomic(stage / names["report"], json.dumps(result.report, indent=2) + "\n")
    return {key: str(out / name) for key, name in names.items()}


def output_names(*, plot: bool, detection: bool) -> dict[str, str]:
    """The audit's output files by name (checked for overwriting before any slow work)."""
    names = {"clean": "clean.jsonl", "noisy": "noisy.jsonl", "traces": "traces.jsonl", "report": "report.json"}
    if plot:
        names["chart"] = "audit.png"
    if plot and detection:
        names["detection_chart"] = "detectors.png"
    return names


def format_report(report: dict) -> str:
    """A plain-text table of the report for the terminal, the detectors that ran and their scores."""
    lines = _reference_table(report) if report["overall"]["checked"] else []
    section = report.get("detectors")
    if section:
        lines.append(f"detectors run: {', '.join(section['ran']) or 'none'}")
        lines += [f"not run: {name}: {why}" for name, why in section["skipped"].items()]
        if "consensus" in section:
            c = section["consensus"]
            lines.append(f"consensus: {c['problems']} problems, traces {c['consensus_status']}, "
                         f"references {c['reference_status']}")
    if "detection" in report:
        lines += [f"against the {report.get('detection_truth', 'noise manifest')}:", format_detection(report["detection"])]
    return "\n".join(lines)


def _reference_table(report: dict) -> list[str]:
    header = f"{'group':<40} {'n':>6} {'wrong':>7} {'missing':>8} {'unparse':>8}"
    lines = [header, "-" * len(header)]
    for name, tally in _chart_groups(report):
        lines.append(f"{name[:40]:<40} {tally['checked']:>6} {tally['frac_wrong']:>7.3f} "
                     f"{tally['frac_missing']:>8.3f} {tally['frac_unparsable']:>8.3f}")
    return lines
