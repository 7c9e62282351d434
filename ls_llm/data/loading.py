"""Load reasoning-trace datasets into trl's conversational format: :func:`load_traces`.

Every source (a hub id or local jsonl/json/parquet files) is read with ``datasets``, converted row by
row through :mod:`ls_llm.data.formats`, optionally mixed with weights, split into train/validation
with a seed, and finally the recipe's noise is injected into the train split only (validation stays
clean so that it measures what the model learned, not the noise).

Rows are handled as conversations (``messages``); the datasets handed to training carry trl's conversational
*prompt/completion* form instead (``prompt``: every turn before the last assistant turn, ``completion``: that
turn). trl applies ``completion_only_loss`` only to prompt/completion data: on ``messages`` it silently trains
the prompt too, whatever the recipe says.
"""

from __future__ import annotations

import glob
import logging
import os
import random
from dataclasses import dataclass, field

from ls_llm.data.args import LsDataArguments, MixtureEntry
from ls_llm.data.formats import FORMATS, MissingFieldError, RenderOptions, detect_format
from ls_llm.data.weights import WEIGHT_COLUMN
from ls_llm.files import read_jsonl
from ls_llm.utf8 import check_utf8

# Heavy imports stay inside functions (datasets): `ls-llm` imports this module before it knows a command needs
# them.

__all__ = ["LsDataArguments", "convert_rows", "load_rows", "load_source_rows", "load_traces", "read_raw",
           "source_name"]

logger = logging.getLogger(__name__)

_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
# Metadata copied through when present (after the field map); MATH calls the subject "type".
_META_ALIASES = {"subject": ("subject", "type"), "level": ("level",)}
# Bookkeeping columns carried through when a source has them: `ls-llm audit` writes audit_status and its detectors'
# statuses and flags, which a recipe can route whole traces by (trace_objective_column, ls_llm/trainers/routing.py).
CARRIED_COLUMNS = ("audit_status", "consensus_status", "reference_status", "loss_flag", "verifier_flag")
# Columns the loader builds itself (or the noise injector adds, typed): a routed column of that name is the built one,
# never a source's text over it (a `corrupted` of "False" read as text would turn True as a bool); a source's own
# boolean `corrupted` (`ls-llm noise` output) is carried as the boolean it is.
_BUILT_COLUMNS = frozenset(("id", "messages", "prompt", "completion", "answer", "source", "subject", "level",
                            "corrupted", "noise"))


def _local_files(source: str) -> list[str] | None:
    """The local files a source names (file, directory or glob), or None if it is not local."""
    if os.path.isdir(source):
        found = (glob.glob(os.path.join(source, f"**/*{ext}"), recursive=True) for ext in _LOCAL_BUILDERS)
        return sorted(p for paths in found for p in paths)
    if os.path.isfile(source):
        return [source]
    if any(ch in source for ch in "*?[") or os.path.splitext(source)[1] in _LOCAL_BUILDERS:
        return sorted(glob.glob(source, recursive=True))  # a missing file is reported, not sent to the hub
    return None


def read_raw(entry: MixtureEntry):
    """The raw ``datasets.Dataset`` of one source, before any conversion."""
    import datasets

    files = _local_files(entry.source)
    if files is None:  # not on disk: a hub dataset id
        return datasets.load_dataset(entry.source, name=entry.config, split=entry.split)
    if not files:
        raise ValueError(f"source {entry.source!r} matches no files")
    exts = {os.path.splitext(f)[1] for f in files}
    unknown = exts - set(_LOCAL_BUILDERS)
    builders = {_LOCAL_BUILDERS.get(ext) for ext in exts}
    if unknown or len(builders) != 1:
        raise ValueError(
            f"source {entry.source!r}: files must all be jsonl/json or all parquet, got extensions {sorted(exts)}"
        )
    builder = builders.pop()
    for path in files:
        if _blank(path):
            raise ValueError(f"data file {path!r} is empty")
        if builder == "json":
            check_utf8(path)
    try:
        return datasets.load_dataset(builder, data_files=files, split="train")
    except (datasets.exceptions.DatasetGenerationError, StopIteration, ValueError) as err:
        # datasets' message names neither the file nor the line: find them (only now, on failure).
        for path in files if builder == "json" else []:
            _check_jsonl(path)
        raise ValueError(f"source {entry.source!r} could not be read: {err.__cause__ or err}") from err


def _blank(path: str) -> bool:
    with open(path, "rb") as handle:
        while block := handle.read(1 << 16):
            if block.strip():
                return False
    return True


def _check_jsonl(path: str) -> None:
    """ValueError naming the file and line of the first line that is not a JSON object."""
    if path.endswith(".jsonl"):
        read_jsonl(path, what=f"data file {path!r}", objects=True, errors="replace")


@dataclass
class _Skipped:
    """Rows dropped for missing fields: the count, and the first few ids for the message."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, row_id: str, missing: str) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(f"{row_id} (no {missing})")


def source_name(source: str) -> str:
    """A readable default for the ``source`` column: ``math/train`` for ``.../math/train.jsonl``."""
    if _local_files(source) is None:
        return source  # hub id
    path = source.rstrip("/")
    stem = os.path.splitext(os.path.basename(path))[0]
    parent = os.path.basename(os.path.dirname(path))
    return f"{parent}/{stem}" if parent and not os.path.isdir(path) else stem


def _first(row: dict, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` the row has a value for, as text; None if it has none."""
    return next((str(row[name]) for name in names if row.get(name) not in (None, "")), None)


def convert_rows(rows, entry: MixtureEntry, args: LsDataArguments, *, keep: tuple[str, ...] = (),
                 weights=None, carry: tuple[str, ...] = ()) -> list[dict]:
    """Convert raw rows of one source; rows missing required fields are skipped or rejected. Columns named in
    ``keep`` are copied as they are where a row has them (``ls-llm audit``: problem_id, a verifier's score);
    ``carry`` names columns carried as text like CARRIED_COLUMNS (a recipe's ``trace_objective_column``).
    ``weights`` (a data.weights.TraceWeights) adds each row's trace weight, refusing a bad one with the source and
    row named."""
    columns = list(rows.column_names) if hasattr(rows, "column_names") else list(rows[0]) if rows else []
    mapping = args.field_map
    mapped_columns = [mapping.get(c, c) for c in columns]
    fmt = entry.format or args.dataset_format
    if fmt == "auto":
        fmt = detect_format(mapped_columns)
    convert = FORMATS.lookup(fmt)
    opts = RenderOptions(args.dataset_system_prompt, args.dataset_answer_instruction, args.dataset_rendering)
    out, skipped = [], _Skipped()
    where = _where(entry.source) if weights is not None else ""
    if weights is not None and weights.column not in mapped_columns:
        raise ValueError(f"{where}: the trace weight column {weights.column!r} is not one of its columns "
                         f"{sorted(mapped_columns)}")
    for index, raw in enumerate(rows):
        row = {mapping.get(k, k): v for k, v in raw.items()}
        row_id = _first(row, ("id", "unique_id", "idx")) or f"{source_name(entry.source)}-{index}"
        try:
            converted = convert(row, opts)
        except MissingFieldError as err:
            skipped.add(row_id, err.field)
            continue
        _check_row_size(converted.messages, row_id, index, entry.source, args.dataset_max_row_chars)
        out.append({"id": row_id, "messages": converted.messages, "answer": converted.answer,
                    "source": entry.name or source_name(entry.source),
                    **{name: _first(row, aliases) for name, aliases in _META_ALIASES.items()},
                    **{k: str(row[k]) for k in CARRIED_COLUMNS + carry if row.get(k) is not None
                       and k not in _BUILT_COLUMNS},
                    **{k: row[k] for k in carry if k == "corrupted" and isinstance(row.get(k), bool)},
                    **{k: row[k] for k in keep if k in row}})
        if weights is not None:
            out[-1][WEIGHT_COLUMN] = weights.weight(row, f"{where} row {index + 1} (id {row_id!r})")
    if skipped.count and not out:
        raise ValueError(
            f"every row of {entry.source!r} (format {fmt!r}) misses a required field "
            f"(first: {skipped.first}); check dataset_format and dataset_field_map")
    _report_skipped(skipped, len(out) + skipped.count, entry.source, fmt, args)
    return out


def _check_row_size(messages: list[dict], row_id: str, index: int, source: str, limit: int) -> None:
    # Checked on the converted row, before anything tokenises it: trl's tokenisation of one 50 MB line ran
    # for minutes at 18 GB.
    size = sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))
    if size > limit:
        raise ValueError(f"row {row_id!r} (row {index + 1} of {source!r}) has {size} characters, more than "
                         f"dataset_max_row_chars={limit}: remove it or raise dataset_max_row_chars")


def _report_skipped(skipped: _Skipped, total: int, source: str, fmt: str, args: LsDataArguments) -> None:
    if not skipped.count:
        return
    message = (
        f"{skipped.count} rows (of {total}) of {source!r} (format {fmt!r}) miss required fields; "
        f"first: {skipped.first}")
    if args.dataset_on_missing == "error":
        raise ValueError(message + " (dataset_on_missing='error'; set it to 'skip' to drop them)")
    if skipped.count > args.dataset_max_skipped * total:
        raise ValueError(message + f": more than dataset_max_skipped={args.dataset_max_skipped} of the source "
                         "(mixed formats? check dataset_format and dataset_field_map, or raise dataset_max_skipped)")
    logger.warning("skipping %s", message)


def load_source_rows(entry: MixtureEntry, args: LsDataArguments, *, keep: tuple[str, ...] = (), carry=(),
                     weights=None) -> list[dict]:
    """Read and convert one source into rows of id, messages, answer, source, subject, level (``keep``,
    ``weights``: see ``convert_rows``)."""
    return convert_rows(read_raw(entry), entry, args, keep=keep, weights=weights, carry=carry)


def _where(source: str) -> str:
    files = _local_files(source)
    return f"data file {files[0]!r}" if files and len(files) == 1 else f"source {source!r}"


def _mix(parts: list[list[dict]], weights: list[float | None], seed: int) -> list[dict]:
    """Concatenate sources, or (with weights) keep shares of the mixture without oversampling any.

    Same rule as trl's dataset mixtures: weights are normalised to shares, and the mixture is the
    largest one in which no source must contribute more rows than it has; each source is shuffled
    with the seed before its first rows are taken.
    """
    if all(w is None for w in weights):
        return [row for part in parts for row in part]
    shares = [w / sum(weights) for w in weights]
    total = min(len(part) / share for part, share in zip(parts, shares, strict=True) if share > 0)
    rng = random.Random(seed)
    mixed = []
    for part, share in zip(parts, shares, strict=True):
        order = list(range(len(part)))
        rng.shuffle(order)
        mixed.extend(part[i] for i in order[: round(share * total)])
    return mixed


def split_completion(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """trl's conversational prompt/completion: the turns before the last assistant turn, and that turn."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        roles = [m["role"] for m in messages]
        raise ValueError(f"a conversation has no assistant turn to train on (roles {roles})")
    return messages[:last], messages[last:]


def _to_dataset(rows: list[dict]):
    import datasets

    text = datasets.Value("string")
    turns = datasets.List({"role": text, "content": text})
    rows = [_as_prompt_completion(r) for r in rows]
    features = datasets.Features({"id": text, "prompt": turns, "completion": turns, "answer": text,
                                  "source": text, "subject": text, "level": text})
    # Carried columns (noise bookkeeping, audit_status) may be on some rows only (a mixture of an audited and an
    # unaudited source): take the union of all rows' keys, None where a row lacks one.
    for key in sorted({k for r in rows for k in r} - set(features)):
        features[key] = datasets.Value({"corrupted": "bool", WEIGHT_COLUMN: "float64"}.get(key, "string"))
    rows = [{k: r.get(k) for k in features} for r in rows]
    return datasets.Dataset.from_list(rows, features=features)


def _as_prompt_completion(row: dict) -> dict:
    prompt, completion = split_completion(row["messages"])
    out = {k: v for k, v in row.items() if k != "messages"}
    return {"id": out.pop("id"), "prompt": prompt, "completion": completion, **out}


def _split_validation(rows: list[dict], size: float | None, seed: int) -> tuple[list[dict], list[dict]]:
    if not size:
        return rows, []
    count = round(size * len(rows)) if size < 1 else int(size)
    if not 0 < count < len(rows):
        raise ValueError(
            f"dataset_validation_size={size} leaves no train or no validation rows of {len(rows)}")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def load_rows(args: LsDataArguments, *, keep: tuple[str, ...] = (), weights=None, carry=()) -> list[dict]:
    """All converted (and mixed) rows as plain dicts: no validation split, no noise (``keep``: see
    ``convert_rows``); with ``weights`` each row carries its trace weight in ``WEIGHT_COLUMN``."""
    entries = args.entries()
    parts = [load_source_rows(entry, args, keep=keep, weights=weights, carry=carry) for entry in entries]
    rows = _mix(parts, [e.weight for e in entries], args.dataset_seed)
    return rows if args.dataset_max_samples is None else rows[: args.dataset_max_samples]


def split_and_noise(args: LsDataArguments, *, tokenizer=None, weights=None,
                    carry: tuple[str, ...] = ()) -> tuple[list[dict], list[dict]]:
    """(train, validation) rows exactly as `load_traces` trains on them, before the dataset conversion: loaded,
    converted, mixed, split, and the noise applied to train (its manifest written when `noise_manifest` is set)."""
    rows = load_rows(args, weights=weights, carry=carry)
    train, validation = _split_validation(rows, args.dataset_validation_size, args.dataset_seed)
    if args.noise_type:
        from ls_llm.data.noise import apply_noise_from_args

        train = apply_noise_from_args(train, args, tokenizer=tokenizer)
    return train, validation


def load_traces(args: LsDataArguments, *, tokenizer=None, weights=None, carry: tuple[str, ...] = ()):
    """Load, convert, mix, split and (train only) noise the recipe's data.

    Returns a ``datasets.DatasetDict`` with ``train`` and, when ``dataset_validation_size`` is
    set, ``validation``. Columns: ``id``, ``prompt`` and ``completion`` (trl's conversational
    prompt/completion form, see the module docstring), ``answer`` (gold, None when unknown),
    ``source``, ``subject``, ``level``; with noise also ``corrupted`` and ``noise`` (how).
    ``tokenizer`` is needed only for ``noise_type='token'`` (else ``noise_tokenizer`` is loaded).
    ``weights`` (data.weights.TraceWeights): each row's trace weight in the float column ``WEIGHT_COLUMN``.
    ``carry``: further columns carried as text (the recipe's ``trace_objective_column``, whatever its name).
    """
    import datasets

    train, validation = split_and_noise(args, tokenizer=tokenizer, weights=weights, carry=carry)
    out = datasets.DatasetDict({"train": _to_dataset(train)})
    if validation:
        out["validation"] = _to_dataset(validation)
    return out
