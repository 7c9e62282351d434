"""`ls-llm COMMAND ...`: a thin dispatcher. Each command lives in its own module with a ``main(argv)``.

Commands are looked up in a registry and imported lazily, so `ls-llm --help` stays fast and a
command's heavy dependencies (trl, lm-eval, vllm) load only when that command runs.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ls_llm.cli.train", "fine-tune a causal LM from a recipe YAML"),
    "distill": ("ls_llm.cli.distill", "distill a (smoothed) teacher into a student"),
    "distill-cache": ("ls_llm.cli.distill_cache", "cache a teacher's top-k log-probs on disk"),
    "noise": ("ls_llm.cli.noise", "write a noisy copy of a trace dataset with a manifest"),
    "audit": ("ls_llm.cli.audit", "measure how many traces have a wrong final answer; find noisy ones without one"),
    "eval": ("ls_llm.cli.eval", "evaluate a checkpoint with lm-eval"),
    "generate": ("ls_llm.cli.generate", "sample k traces per problem with a teacher (resumable)"),
    "sweep": ("ls_llm.cli.sweep", "run a grid of recipes and collect results"),
    "inspect": ("ls_llm.cli.inspect", "show which tokens of a recipe's first rows are trained, and with what"),
}


def _usage() -> str:
    lines = ["usage: ls-llm COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ls-llm: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
