"""What `max_length` did to the training rows, said before training (issue #23).

trl truncates every tokenised row to `max_length` and then drops the rows left with no trained token (with
`truncation_mode: keep_start` and a completion-only loss: the prompt alone fills `max_length`). Neither is
reported, so a short `max_length` silently trained on half the data with the final answers cut off. This reads
the prepared dataset once (token counts only, through Arrow) and says how many rows were dropped and how many cut,
and which part was lost (`LsSFTTrainer.length_report`, printed by `run_recipe` before training); a `max_length`
that leaves no row at all is refused, naming it.
"""

from __future__ import annotations

# Heavy imports stay inside functions (pyarrow): `ls-llm` imports this module before it knows a command needs
# them.


def rows_at_length(dataset, max_length: int) -> int:
    """Rows of a tokenised dataset whose `input_ids` reach `max_length` (truncated there, or exactly that long)."""
    import pyarrow.compute as pc

    count = 0
    for batch in dataset.with_format("arrow").iter(batch_size=10_000):
        lengths = pc.list_value_length(batch["input_ids"])
        count += pc.sum(pc.greater_equal(lengths, max_length)).as_py() or 0
    return count


def report_max_length(rows_before: int | None, prepared, args, *, name: str = "train") -> str | None:
    """The line saying what `max_length` dropped and cut (None when nothing was); ValueError when no row is left.
    `rows_before`: the rows handed to the trainer (None: unknown, e.g. an iterable dataset)."""
    max_length = args.max_length
    if max_length is None or args.packing or rows_before is None or not hasattr(prepared, "__len__"):
        return None
    if "input_ids" not in prepared.column_names:
        return None
    kept = len(prepared)
    dropped = rows_before - kept
    keep_end = args.truncation_mode == "keep_end"
    if rows_before and not kept:
        raise ValueError(
            f"max_length={max_length} is shorter than every {name} prompt: all {rows_before} rows would be dropped "
            "(no completion token left to train on); raise max_length")
    cut = rows_at_length(prepared, max_length)
    if not dropped and not cut:
        return None
    parts = []
    if dropped:
        parts.append(f"{dropped} of {rows_before} {name} rows dropped (the prompt alone fills max_length: no "
                     "completion token left)")
    if cut:
        lost = ("the start of the prompt" if keep_end
                else "the end of the completion, where the final answer is")
        parts.append(f"{cut} of the {kept} kept rows cut at {max_length} tokens (lost: {lost})")
    return f"max_length={max_length}: " + "; ".join(parts) + ". Raise max_length to train on whole rows."


def length_report(given: dict, prepared: dict, args) -> str | None:
    """The lines of `report_max_length` for each dataset (by name) trl `prepared` from the one `given`."""
    reports = [report_max_length(len(given[n]) if hasattr(given[n], "__len__") else None, prepared[n], args,
                                 name=n) for n in given if hasattr(prepared[n], "column_names")]
    return " ".join(r for r in reports if r) or None
