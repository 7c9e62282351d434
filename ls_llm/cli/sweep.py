"""`ls-llm sweep SWEEP.yaml [--shard I/N] [--max-cells K] [--only IDS] [--threads T] [--report] [--list]`

Runs every unfinished cell of the sweep (objective variant x noise rate x seed, plus distillation cells)
through `ls-llm train` / `ls-llm distill` and `ls_llm.evaluation`, then writes
`<output_dir>/report/{results.csv,results.md,*.png}` (`report: {dir: NAME}` names another folder). Run it again to resume: finished cells are skipped.
Two processes on two cores: `--shard 0/2 --threads 1` and `--shard 1/2 --threads 1`, then `--report`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ls_llm.cli.errors import guarded

# Heavy imports stay inside functions (torch): `ls-llm` imports this module before it knows a command needs
# them.


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be I/N, got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return index, count


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ls-llm sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="sweep YAML (see sweeps/paper_cpu.yaml)")
    parser.add_argument("--shard", type=_shard, default=(0, 1), help="run only shard I of N (default 0/1)")
    parser.add_argument("--max-cells", type=int, default=None, help="stop after K cells (this call)")
    parser.add_argument("--only", default=None, help="run only these cells (comma-separated ids, see --list)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads for this process")
    parser.add_argument("--report", action="store_true", help="only write the report from finished cells")
    parser.add_argument("--list", action="store_true", help="print the cells and whether each has finished")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    # A recipe a cell names that cannot be read (a missing include, bad YAML) surfaces wherever a cell's
    # fingerprint is taken (--list, the report): one line, exit 2, as in every command.
    return guarded("sweep", lambda: _main(ns))


def _main(ns) -> int:
    from ls_llm.sweep import load_sweep
    from ls_llm.sweep.report import write_report
    from ls_llm.sweep.runner import collect, finished, run_sweep

    sweep = load_sweep(ns.sweep)  # a bad sweep (SweepError, a ValueError) is one line from `guarded`, exit 2
    if ns.max_cells is not None and ns.max_cells < 0:
        raise ValueError(f"--max-cells must be >= 0, got {ns.max_cells}")
    root = Path(sweep.output_dir)
    if ns.list:
        for cell in sweep.cells():
            print(f"{'done' if finished(sweep, root, cell) else 'todo'}  {cell.cell_id}")
        return 0
    failed = []
    if not ns.report:
        if ns.threads:
            import torch

            torch.set_num_threads(ns.threads)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
        only = None if ns.only is None else {c.strip() for c in ns.only.split(",") if c.strip()}
        try:  # a ValueError (a bad sweep, a cell another sweep is running: FolderLocked) goes to `guarded`
            failed = run_sweep(sweep, shard=ns.shard, max_cells=ns.max_cells, only=only)
        except KeyboardInterrupt as err:  # Ctrl-C or a stop signal: the cell's run says what it kept
            status = getattr(err, "exit_status", 130)
            print(f"ls-llm sweep: {err or 'interrupted'} (the interrupted cell starts again at the next run)",
                  file=sys.stderr)
            return status
    paths = write_report(sweep, collect(sweep), sweep.report.folder(root))
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))
    if failed:
        print(f"ls-llm sweep: {len(failed)} cell(s) failed: {[c.cell_id for c in failed]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
