"""`ls-llm noise DATA --type answer --noise-rho 0.2 --out noisy.jsonl`: a noisy copy of a trace set.

Writes the noisy rows (messages format, gold ``answer`` kept, plus ``corrupted``/``noise``), a
per-row manifest (``<out>.manifest.jsonl`` unless --manifest) and a summary with the realized
rate (``<out>.summary.json``, also printed). Nothing is overwritten without --overwrite. The three files
are written into a hidden staging folder beside --out and then moved into place, ``--out`` last: an
interrupted run leaves either no ``--out`` or all three.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ls_llm.cli.errors import guarded
from ls_llm.data.args import add_source_flags, source_args

# Heavy imports stay inside functions (transformers): `ls-llm` imports this module before it knows a command
# needs them.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ls-llm noise", description=__doc__.splitlines()[0])
    add_source_flags(parser)
    parser.add_argument("--type", required=True, help="answer | box | perturb | token | step | swap")
    parser.add_argument("--noise-rho", "--rate", dest="rate", type=float, required=True,
                        help="noise probability rho in [0, 1] (a recipe's noise_rho)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output jsonl")
    parser.add_argument("--manifest", help="manifest jsonl (default: <out>.manifest.jsonl)")
    parser.add_argument("--tokenizer", help="tokenizer path/id for --type token")
    parser.add_argument("--answer-instruction", default="", help="appended to built prompts (default: none)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def run(ns: argparse.Namespace) -> dict:
    from ls_llm.data.loading import load_rows
    from ls_llm.data.noise import inject_noise, manifest_path
    from ls_llm.files import check_writable, staged_files, write_atomic, write_jsonl

    args = source_args(ns, dataset_answer_instruction=ns.answer_instruction, noise_type=ns.type,
                       noise_rho=ns.rate)
    out = Path(ns.out)
    stem = out.with_suffix("") if out.suffix == ".jsonl" else out
    paths = {"out": out, "manifest": Path(ns.manifest) if ns.manifest else manifest_path(out),
             "summary": Path(f"{stem}.summary.json")}
    for name, path in paths.items():  # check them all before writing any
        check_writable(path, overwrite=ns.overwrite, field=f"--{name}" if name != "summary" else "summary",
                       create_parent=False)
    tokenizer = _tokenizer(ns.tokenizer) if ns.tokenizer else None
    noisy, manifest, summary = inject_noise(load_rows(args), noise_type=ns.type, rate=ns.rate, seed=ns.seed,
                                            tokenizer=tokenizer)
    summary = {**summary, "data": ns.data, **{k: str(v) for k, v in paths.items()}}
    order = {name: paths[name] for name in ("manifest", "summary", "out")}  # out last: it marks a complete set
    with staged_files(order) as staged:
        write_jsonl(staged["manifest"], manifest)
        write_atomic(staged["summary"], json.dumps(summary, indent=2) + "\n")
        write_jsonl(staged["out"], noisy)
    return summary


def _tokenizer(name: str):
    from transformers import AutoTokenizer

    if not os.path.exists(name) and (name.startswith(("/", "./", "../", "~")) or name.count("/") > 1):
        raise ValueError(f"--tokenizer {name!r} does not exist")
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ValueError(f"--tokenizer {name!r} could not be loaded: {err}") from None


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    return guarded("noise", lambda: print(json.dumps(run(ns), indent=2)))


if __name__ == "__main__":
    sys.exit(main())
