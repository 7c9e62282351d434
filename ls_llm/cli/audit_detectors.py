"""`ls-llm audit`'s detectors that need no clean reference (ls_llm.data.detectors): their flags, their options,
the noise manifest they are scored against and the model's trace scores."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Heavy imports stay inside functions (transformers): `ls-llm` imports this module before it knows a command
# needs them.


def add_detector_flags(parser: argparse.ArgumentParser) -> None:
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


def detector_options(ns):
    from ls_llm.data.detectors import DetectorOptions

    if ns.flag_top_loss is not None and not ns.score_model:
        raise ValueError("--flag-top-loss needs --score-model (the model whose losses it ranks)")
    return DetectorOptions(consensus=not ns.no_consensus, majority=ns.majority, suspect_share=ns.suspect_share,
                           flag_top_loss=ns.flag_top_loss, flag_loss_column=ns.flag_loss_column,
                           verifier_column=ns.verifier_column,
                           verifier_threshold=ns.verifier_threshold, verifier_flag_above=ns.verifier_flag_above)


def noise_manifest(ns, rows: list[dict]):
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


def trace_scores(ns, rows: list[dict]):
    from ls_llm.trainers.trace_scores import check_tokenizer_matches, load_scorer, score_traces

    data_tok, data_name = _data_tokenizer(ns)
    if data_tok is not None:
        from transformers import AutoTokenizer

        check_tokenizer_matches(data_tok, AutoTokenizer.from_pretrained(ns.score_model), data_name=data_name,
                                score_name=ns.score_model)
    model, tokenizer = load_scorer(ns.score_model, device=ns.score_device, dtype=ns.score_dtype)
    scores = score_traces(rows, model, tokenizer, batch_tokens=ns.score_batch_tokens, progress=len(rows) >= 2000)
    return scores, data_name
