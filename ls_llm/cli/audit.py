"""`ls-llm audit DATA --out DIR`: how many traces end in a wrong, missing or unparsable answer, and which look noisy.

Checks each trace's final boxed answer against the reference with math-verify in worker processes,
prints the fractions overall and by source / subject / level, and writes ``clean.jsonl``,
``noisy.jsonl``, ``traces.jsonl`` (every row with every detector's columns), ``report.json`` and ``audit.png``
into DIR (not overwritten without --overwrite), all together: they are written into a staging folder that is then
renamed to DIR. Detectors that need no clean reference (ls_llm.data.detectors): consensus among the k traces of a
problem (on by default where a problem has >= 2 traces), model loss (--score-model, --flag-top-loss) and an
external verifier's score (--verifier-column, --verifier-threshold). With a noise manifest (--noise-manifest, or
``ls-llm noise``'s ``<data>.manifest.jsonl`` beside DATA) the report scores every detector against it and adds
``detectors.png``. With nothing to run (no reference, one trace per problem, no model, no verifier): exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from ls_llm.cli.audit_detectors import add_detector_flags, detector_options, noise_manifest, trace_scores
from ls_llm.cli.errors import guarded
from ls_llm.data.args import add_source_flags, source_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ls-llm audit", description=__doc__.splitlines()[0])
    add_source_flags(parser)
    parser.add_argument("--out", help="folder for clean/noisy/traces splits, report.json and the charts")
    parser.add_argument("--workers", type=int, default=2, help="verification worker processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="math-verify timeout per answer (s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG charts")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_detector_flags(parser)
    return parser


def run(ns: argparse.Namespace) -> dict:
    from ls_llm.data.audit import format_report, output_names, write_audit
    from ls_llm.data.audit_traces import audit_traces, references_everywhere
    from ls_llm.data.detectors import verifier_flags
    from ls_llm.data.loading import load_rows
    from ls_llm.files import check_writable

    opts = detector_options(ns)
    keep = ("problem_id", "sample_index", "predicted_answer", "corrupted", "noise") + (
        (ns.verifier_column,) if ns.verifier_column else ())
    rows = load_rows(source_args(ns, dataset_answer_instruction=""), keep=keep)
    if opts.verifier_column is not None:  # a bad score column fails before any slow work
        verifier_flags(rows, opts.verifier_column, opts.verifier_threshold, source=ns.data)
    manifest, manifest_from = noise_manifest(ns, rows)
    if ns.out:  # fail before the (long) verification, not after it; create nothing yet
        detection = manifest is not None or references_everywhere(rows)
        for name in output_names(plot=not ns.no_plot, detection=detection).values():
            check_writable(f"{ns.out}/{name}", overwrite=ns.overwrite, field="--out file", create_parent=False)
    scores, data_tokenizer = trace_scores(ns, rows) if ns.score_model else (None, None)
    result = audit_traces(rows, opts, source=ns.data, scores=scores, manifest=manifest, workers=ns.workers,
                          timeout_s=ns.timeout)
    if scores is not None:  # None: nothing named the data's tokenizer, so the model's could not be checked
        result.report["detectors"]["loss"].update(model=ns.score_model, tokenizer_checked_against=data_tokenizer)
    if manifest_from:
        result.report["noise_manifest"] = manifest_from
    paths = write_audit(rows, result, ns.out, overwrite=ns.overwrite, plot=not ns.no_plot) if ns.out else {}
    print(format_report(result.report))
    if paths:
        print(json.dumps(paths, indent=2))
    return result.report


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    def body() -> None:
        run(ns)  # prints the report

    return guarded("audit", body)


if __name__ == "__main__":
    sys.exit(main())
