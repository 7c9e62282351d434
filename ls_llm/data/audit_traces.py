"""The audit with the detectors that need no clean reference (ls_llm.data.detectors: consensus, model loss, an
external verifier) and their precision and recall against a noise manifest or, without one, the reference verdict."""

from __future__ import annotations

from ls_llm.data.audit import BAD_STATUSES, PROGRESS_MIN_ROWS, AuditResult, audit_rows
from ls_llm.data.detectors import DetectorOptions, detector_flags, run_detectors, score_against_manifest

__all__ = ["audit_traces", "references_everywhere"]


def audit_traces(rows: list[dict], opts: DetectorOptions, *, source: str, scores: dict | None = None,
                 manifest: list[dict] | None = None, workers: int = 2, timeout_s: float = 5.0,
                 progress: bool | None = None) -> AuditResult:
    """The reference check (rows with a gold ``answer``) and the detectors in ``opts``; with ``manifest`` (entries
    aligned with ``rows``) each detector's precision / recall / F1 against it. ValueError if nothing can run."""
    progress = len(rows) >= PROGRESS_MIN_ROWS if progress is None else progress
    result = audit_rows(rows, workers=workers, timeout_s=timeout_s, progress=progress)
    columns, section = run_detectors(rows, result.predictions, opts, source=source, scores=scores, workers=workers,
                                     timeout_s=timeout_s, progress=progress, known=result.known)
    if result.report["overall"]["checked"]:
        section["ran"].insert(0, "reference")
    else:
        section["skipped"]["reference"] = "no row has a reference answer (field 'answer')"
    if not section["ran"]:
        raise ValueError(f"nothing to audit in {source!r}: {'; '.join(section['skipped'].values())}; and no "
                         "--score-model or --verifier-column was given")
    result.columns = columns
    result.report["detectors"] = section
    flags = detector_flags({"audit_status": result.statuses, **columns})
    if manifest is not None:
        result.report["detection"] = score_against_manifest(flags, manifest)
        result.report["detection_truth"] = "noise manifest"
    elif references_everywhere(rows) and set(flags) - {"reference"}:
        # No manifest (a teacher's own traces): the reference verdict is the truth the other detectors are scored
        # against, i.e. how much of what a reference would find they find without one.
        truth = [{"corrupted": status in BAD_STATUSES, "type": "wrong vs reference"} for status in result.statuses]
        result.report["detection"] = score_against_manifest(
            {name: f for name, f in flags.items() if name != "reference"}, truth)
        result.report["detection_truth"] = "reference answers"
    return result


def references_everywhere(rows: list[dict]) -> bool:
    """Every row has a reference answer: without a noise manifest the detectors are scored against it."""
    return bool(rows) and all(row.get("answer") not in (None, "") for row in rows)
