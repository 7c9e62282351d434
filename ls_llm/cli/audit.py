"""`ls-llm audit DATA --out DIR`: how many traces end in a wrong, missing or unparsable answer.

Checks each trace's final boxed answer against the reference with math-verify in worker processes,
prints the fractions overall and by source / subject / level, and writes ``clean.jsonl``,
``noisy.jsonl``, ``report.json`` and ``audit.png`` into DIR (not overwritten without --overwrite), all
together: they are written into a staging folder that is then renamed to DIR. A file with no gold answer to
check against is an error (exit 2), not a 0% noise report.
"""

from __future__ import annotations

import argparse
import json
import sys

from ls_llm.data.args import add_source_flags, source_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ls-llm audit", description=__doc__.splitlines()[0])
    add_source_flags(parser)
    parser.add_argument("--out", help="folder for clean/noisy splits, report.json and audit.png")
    parser.add_argument("--workers", type=int, default=2, help="verification worker processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="math-verify timeout per answer (s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def run(ns: argparse.Namespace) -> dict:
    from ls_llm.data.audit import audit_rows, format_report, write_audit
    from ls_llm.data.io import check_writable
    from ls_llm.data.loading import load_rows

    if ns.out:  # fail before the (long) verification, not after it; create nothing yet
        for name in ("clean.jsonl", "noisy.jsonl", "report.json"):
            check_writable(f"{ns.out}/{name}", overwrite=ns.overwrite, field="--out file", create_parent=False)
    rows = load_rows(source_args(ns, dataset_answer_instruction=""))
    if not any(row.get("answer") not in (None, "") for row in rows):
        raise ValueError(f"none of the {len(rows)} rows of {ns.data!r} has a gold answer to check against "
                         "(field 'answer'; map another column with --field-map): nothing to audit")
    result = audit_rows(rows, workers=ns.workers, timeout_s=ns.timeout)
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
