"""`ls-llm inspect RECIPE.yaml [--rows N] [--key value ...]`: which tokens of the first N rows (default 2) a
training run trains, and with what.

For each row, one line per run of tokens: its part (prompt, reasoning, answer; `not trained` for an untrained
token after the first trained one), the objective that trains it (`ls_llm.trainers.describe`), and its text;
rows the run drops say why. Above them: every route of the recipe and the counts of rows dropped (by a `drop`
verdict, by `max_length`) and cut at `max_length`. The rows are the trainer's own (`ls_llm.trainers.inspection`):
nothing is trained or written. A bad recipe stops with one line, exit 2, as `ls-llm train` does.
"""

from __future__ import annotations

import sys

from ls_llm.cli.errors import guarded

# Heavy imports stay inside functions (datasets): `ls-llm` imports this module before it knows a command needs
# them.

USAGE = "usage: ls-llm inspect RECIPE.yaml [--rows N] [--key value ...]   (keys: any recipe field)"
TEXT_WIDTH = 72


def _split_rows(argv: list[str]) -> tuple[int, list[str]]:
    rows, rest, i = 2, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--rows" or arg.startswith("--rows="):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if "=" in arg else 2
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"--rows must be a whole number >= 1, got {value!r}")
            rows = int(value)
            continue
        rest.append(arg)
        i += 1
    return rows, rest


def _shown(text: str) -> str:
    text = text.replace("\n", "\\n").replace("\t", "\\t")
    if len(text) > TEXT_WIDTH:
        text = text[: TEXT_WIDTH - 28] + " ... " + text[-23:]
    return text if text.isprintable() else repr(text)[1:-1]


def runs(view) -> list[tuple[str, int | None, list[int]]]:
    """(part, route index or None, token ids) for each run of consecutive tokens with the same part and route."""
    from ls_llm.data.segments import NOT_TRAINED
    from ls_llm.trainers.inspection import segment_name

    out, seen_trained = [], False
    for token, label, segment, route in zip(view.ids, view.labels, view.segments, view.routes, strict=True):
        seen_trained = seen_trained or label != -100
        part = segment_name(segment if label != -100 else NOT_TRAINED, seen_trained)
        if out and out[-1][0] == part and out[-1][1] == route:
            out[-1][2].append(token)
        else:
            out.append((part, route, [token]))
    return out


def render(inspection, tokenizer) -> str:
    lines = ["what each trained token is trained with:"]
    lines += [f"  {line}" for line in inspection.recipe_lines]
    lines.append(f"rows: {inspection.given} given, {inspection.trained} trained; {inspection.dropped_by_verdict} "
                 f"dropped by a `drop` verdict; {inspection.cut_by_length} cut at max_length")
    lines.append(f"  {inspection.length_report or 'max_length dropped no row'}")
    lines.append("legend: prompt / not trained = labels -100, no loss; reasoning / answer = trained tokens "
                 "(labels != -100) with their objective; \\n = newline")
    width = max(len(name) for name in inspection.route_names)
    for view in inspection.rows:
        lines.append("")
        if view.dropped:
            lines.append(f"row {view.row_id}: not trained ({view.dropped})")
            continue
        trained = sum(label != -100 for label in view.labels)
        extra = "".join(f"; {x}" for x in (view.trace, None if view.weight is None else f"weight {view.weight:g}") if x)
        lines.append(f"row {view.row_id}: {len(view.ids)} tokens, {trained} trained{extra}")
        for part, route, ids in runs(view):
            objective = "-" if route is None else inspection.route_names[route]
            text = tokenizer.decode(ids, skip_special_tokens=False)
            lines.append(f"  {part:<11} {len(ids):>4} tok  {objective:<{width}}  {_shown(text)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2

    def body():
        import datasets

        from ls_llm.trainers.inspection import inspect_recipe

        datasets.disable_progress_bars()
        rows, rest = _split_rows(argv)
        inspection = inspect_recipe(rest, rows=rows)
        print(f"== ls-llm inspect {rest[0]} ==")
        print(render(inspection, inspection.trainer.processing_class))

    return guarded("inspect", body)


if __name__ == "__main__":
    sys.exit(main())
