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
from pathlib import Path

from ls_llm.data.args import add_source_flags, source_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ls-llm audit", description=__doc__.splitlines()[0])
    add_source_flags(parser)
    parser.add_argument("--out", help="folder for clean/noisy/traces splits, report.json and the charts")
    parser.add_argument("--workers", type=int, default=2, help="verification worker processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="math-verify timeout per answer (s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG charts")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    group = parser.add_argument_group("detectors")
    group.add_argument("--no-consensus", action="store_true", help="skip the consensus detector")
    group.add_argument("--majority", type=float, default=0.5,
                       help="share of a problem's traces the unique largest answer class needs to be its majority")
    group.add_argument("--suspect-share", type=float, default=0.75,
                       help="a reference disagreeing with a majority this strong is 'suspect'")
    group.add_argument("--score-model", help="checkpoint folder whose token losses score every trace")
    group.add_argument("--flag-top-loss", type=float, help="flag this fraction of traces with the highest loss")
    group.add_argument("--flag-loss-column", default="loss_mean",
                       help="the loss --flag-top-loss ranks: loss_mean (completion) or answer_loss_mean (answer span; "
                       "traces without one are never flagged)")
    group.add_argument("--score-device", default="auto", help="auto, cpu or cuda[:i]")
    group.add_argument("--score-dtype", default="auto", help="auto (float32 on CPU, bfloat16 on GPU), float32, ...")
    group.add_argument("--score-batch-tokens", type=int, default=8192, help="padded tokens per scoring batch")
    group.add_argument("--data-tokenizer", help="the tokenizer the traces were made with (default: the model named "
                       "in a manifest.json beside DATA, as `ls-llm generate` writes)")
    group.add_argument("--verifier-column", help="a numeric column (reward model / judge score) per row")
    group.add_argument("--verifier-threshold", type=float, help="flag rows whose verifier score is below this")
    group.add_argument("--verifier-flag-above", action="store_true", help="flag scores above the threshold instead")
    group.add_argument("--noise-manifest", help="noise manifest jsonl to score the detectors against")
    return parser


def _options(ns):
    from ls_llm.data.detectors import DetectorOptions

    if ns.flag_top_loss is not None and not ns.score_model:
        raise ValueError("--flag-top-loss needs --score-model (the model whose losses it ranks)")
    return DetectorOptions(consensus=not ns.no_consensus, majority=ns.majority, suspect_share=ns.suspect_share,
                           flag_top_loss=ns.flag_top_loss, flag_loss_column=ns.flag_loss_column,
                           verifier_column=ns.verifier_column,
                           verifier_threshold=ns.verifier_threshold, verifier_flag_above=ns.verifier_flag_above)


def _manifest(ns, rows: list[dict]):
    """The noise manifest aligned with rows: --noise-manifest, else ``<data>.manifest.jsonl``, else the rows' own
    ``corrupted`` column (``ls-llm noise`` output); None when the data carry none."""
    from ls_llm.data.detectors import read_manifest
    from ls_llm.data.noise import manifest_path

    path = ns.noise_manifest
    if path is None and Path(ns.data).is_file() and manifest_path(ns.data).is_file():
        path = str(manifest_path(ns.data))
    if path is not None:
        return read_manifest(path, rows), path
    if any("corrupted" in row for row in rows):
        return [{"corrupted": row.get("corrupted") is True, "type": "unknown"} for row in rows], "rows' corrupted"
    return None, None


def _data_tokenizer(ns):
    """(tokenizer, name) the traces were made with, or (None, None) when neither flag nor manifest names one."""
    from transformers import AutoTokenizer

    name = ns.data_tokenizer
    manifest = Path(ns.data).parent / "manifest.json" if Path(ns.data).is_file() else Path(ns.data) / "manifest.json"
    if name is None and manifest.is_file():
        name = json.loads(manifest.read_text()).get("model")
    if name is None:
        return None, None
    try:
        return AutoTokenizer.from_pretrained(name), name
    except (OSError, ValueError) as err:
        raise ValueError(f"the data's tokenizer {name!r} could not be loaded ({' '.join(str(err).split())[:120]}); "
                         "name it with --data-tokenizer") from None


def _scores(ns, rows: list[dict]):
    from ls_llm.trainers.trace_scores import check_tokenizer_matches, load_scorer, score_traces

    data_tok, data_name = _data_tokenizer(ns)
    if data_tok is not None:
        from transformers import AutoTokenizer

        check_tokenizer_matches(data_tok, AutoTokenizer.from_pretrained(ns.score_model), data_name=data_name,
                                score_name=ns.score_model)
    model, tokenizer = load_scorer(ns.score_model, device=ns.score_device, dtype=ns.score_dtype)
    scores = score_traces(rows, model, tokenizer, batch_tokens=ns.score_batch_tokens, progress=len(rows) >= 2000)
    return scores, data_name


def run(ns: argparse.Namespace) -> dict:
    from ls_llm.data.audit import (
        audit_traces,
        format_report,
        output_names,
        references_everywhere,
        write_audit,
    )
    from ls_llm.data.detectors import verifier_flags
    from ls_llm.data.loading import load_rows
    from ls_llm.files import check_writable

    opts = _options(ns)
    keep = ("problem_id", "sample_index", "predicted_answer", "corrupted", "noise") + (
        (ns.verifier_column,) if ns.verifier_column else ())
    rows = load_rows(source_args(ns, dataset_answer_instruction=""), keep=keep)
    if opts.verifier_column is not None:  # a bad score column fails before any slow work
        verifier_flags(rows, opts.verifier_column, opts.verifier_threshold, source=ns.data)
    manifest, manifest_from = _manifest(ns, rows)
    if ns.out:  # fail before the (long) verification, not after it; create nothing yet
        detection = manifest is not None or references_everywhere(rows)
        for name in output_names(plot=not ns.no_plot, detection=detection).values():
            check_writable(f"{ns.out}/{name}", overwrite=ns.overwrite, field="--out file", create_parent=False)
    scores, data_tokenizer = _scores(ns, rows) if ns.score_model else (None, None)
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
    from ls_llm.cli.errors import guarded

    ns = _parser().parse_args(argv)
    def body() -> None:
        run(ns)  # prints the report

    return guarded("audit", body)


if __name__ == "__main__":
    sys.exit(main())
