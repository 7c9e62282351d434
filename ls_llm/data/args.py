"""``LsDataArguments``: the data section of a recipe, as flat fields.

Recipes are flat YAML parsed by ``trl.TrlParser`` together with ``trl.SFTConfig`` and
``trl.ModelConfig``, so no field here may share a name with theirs (a test checks this). It replaces
trl's ``ScriptArguments`` (do not parse both: ``dataset_name``/``dataset_config``/``dataset_train_split``
keep trl's names and meaning). Each field is documented once, in its ``help``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

from ls_llm.data.formats import FORMATS, RENDERINGS

__all__ = ["DEFAULT_ANSWER_INSTRUCTION", "LsDataArguments", "MixtureEntry", "add_source_flags", "source_args"]

DEFAULT_ANSWER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_FORMAT_CHOICES = ("auto", *FORMATS)
_MISSING_CHOICES = ("skip", "error")
_MIXTURE_KEYS = {"source", "weight", "config", "split", "format", "name"}


@dataclass(frozen=True)
class MixtureEntry:
    """One source of the data: where it is, its weight in the mixture, and (optionally) its format."""

    source: str
    weight: float | None = None
    config: str | None = None
    split: str = "train"
    format: str | None = None
    name: str | None = None  # value of the ``source`` column; defaults to the file/dataset name


def _json_or_value(name: str, value):
    # From the command line these arrive as JSON text; from YAML they are already structured.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} must be JSON (or a YAML mapping/list), got {value!r}") from err
    return value


@dataclass
class LsDataArguments:
    # What YAML may give a field beyond its annotation (JSON text on the command line): read by the recipe's
    # type check (ls_llm.trainers.recipe_types.check_value_types).
    YAML_TYPES: ClassVar[dict[str, tuple[type, ...]]] = {"dataset_mixture": (list,), "dataset_field_map": (dict,)}

    dataset_name: str | None = field(default=None, metadata={
        "help": "Hub dataset id, or local jsonl/json/parquet file, directory or glob."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset config name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split of dataset_name to read."})
    dataset_mixture: str | None = field(default=None, metadata={
        "help": "List of sources mixed by weight, each {source, weight, config, split, format, name}; "
        "weights are normalised shares (no source oversampled). Replaces dataset_name."})
    dataset_format: str = field(default="auto", metadata={
        "help": f"Row format, one of {_FORMAT_CHOICES}; 'auto' reads it from the columns."})
    dataset_field_map: str | None = field(default=None, metadata={
        "help": "Mapping {dataset column: expected name}, e.g. {instruction: prompt, response: generation}. "
        "Expected names: messages, prompt, completion, problem, solution, question, answer, generation, "
        "id, subject, level."})
    dataset_system_prompt: str | None = field(
        default=None, metadata={"help": "System message added to every row."})
    dataset_answer_instruction: str | None = field(default=DEFAULT_ANSWER_INSTRUCTION, metadata={
        "help": "Appended to prompts built from problem/question fields; empty to disable."})
    dataset_rendering: str = field(default="plain", metadata={
        "help": "'plain': a worked solution is the assistant turn as is; 'r1': it becomes "
        "<think>solution</think> followed by the boxed final answer."})
    dataset_validation_size: float | None = field(default=None, metadata={
        "help": "Held-out validation split: a fraction (< 1) or a row count (>= 1); seeded."})
    dataset_seed: int = field(default=0, metadata={"help": "Seed of mixing and of the validation split."})
    dataset_on_missing: str = field(default="skip", metadata={
        "help": "Rows missing required fields: 'skip' (warn with count and first ids) or 'error'."})
    dataset_max_skipped: float = field(default=0.5, metadata={
        "help": "With dataset_on_missing='skip': the largest fraction of a source's rows that may be "
        "skipped for missing fields; above it loading stops (the format or field map is likely wrong)."})
    dataset_max_row_chars: int = field(default=1_000_000, metadata={
        "help": "Longest row (characters of all its turns) accepted; a longer one stops loading, named, "
        "before tokenisation (a 50 MB line would take many GB to tokenise)."})
    dataset_max_samples: int | None = field(default=None, metadata={"help": "Keep only the first N rows."})
    noise_type: str | None = field(default=None, metadata={
        "help": "Noise injected into train at load time (see ls_llm.data.noise.INJECTORS); none if unset."})
    noise_rho: float = field(default=0.0, metadata={
        "help": "Noise probability rho, in [0, 1] (fraction of train rows corrupted)."})
    noise_seed: int = field(default=0, metadata={"help": "Seed of the noise injection."})
    noise_tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer whose vocabulary token noise draws from."})
    noise_manifest: str | None = field(default=None, metadata={
        "help": "Write the per-row noise manifest (jsonl) here when noise is applied."})

    def __post_init__(self) -> None:
        if self.dataset_format not in _FORMAT_CHOICES:
            raise ValueError(f"dataset_format must be one of {_FORMAT_CHOICES}, got {self.dataset_format!r}")
        if self.dataset_on_missing not in _MISSING_CHOICES:
            raise ValueError(
                f"dataset_on_missing must be one of {_MISSING_CHOICES}, got {self.dataset_on_missing!r}")

        if self.dataset_rendering not in RENDERINGS:
            raise ValueError(f"dataset_rendering must be one of {RENDERINGS}, got {self.dataset_rendering!r}")
        size = self.dataset_validation_size
        if size is not None and (size < 0 or (size >= 1 and size != int(size))):
            raise ValueError(f"dataset_validation_size must be a fraction < 1 or a whole count, got {size!r}")
        if not 0.0 <= self.dataset_max_skipped <= 1.0:
            raise ValueError(f"dataset_max_skipped must be in [0, 1], got {self.dataset_max_skipped!r}")
        if self.dataset_max_row_chars < 1:
            raise ValueError(f"dataset_max_row_chars must be >= 1, got {self.dataset_max_row_chars!r}")
        if not 0.0 <= self.noise_rho <= 1.0:
            raise ValueError(f"noise_rho must be in [0, 1], got {self.noise_rho!r}")
        if self.noise_type is not None:
            from ls_llm.data.noise import INJECTORS

            if self.noise_type not in INJECTORS:
                raise ValueError(f"noise_type must be one of {sorted(INJECTORS)}, got {self.noise_type!r}")
        self.dataset_field_map = _json_or_value("dataset_field_map", self.dataset_field_map)
        if self.dataset_field_map is not None and not isinstance(self.dataset_field_map, dict):
            raise ValueError(f"dataset_field_map must be a mapping, got {self.dataset_field_map!r}")
        self.dataset_mixture = _json_or_value("dataset_mixture", self.dataset_mixture)
        if self.dataset_mixture is not None:
            self.entries()  # validate the sources now, not at load time

    @property
    def field_map(self) -> dict[str, str]:
        return dict(self.dataset_field_map or {})

    def entries(self) -> list[MixtureEntry]:
        """The sources to read, from ``dataset_mixture`` or else ``dataset_name``."""
        if self.dataset_mixture is None:
            if not self.dataset_name:
                raise ValueError("set dataset_name or dataset_mixture (both are empty)")
            return [MixtureEntry(self.dataset_name, config=self.dataset_config,
                                 split=self.dataset_train_split)]
        if not isinstance(self.dataset_mixture, list) or not self.dataset_mixture:
            raise ValueError(
                f"dataset_mixture must be a non-empty list of sources, got {self.dataset_mixture!r}")
        entries = [self._entry(i, item) for i, item in enumerate(self.dataset_mixture)]
        weighted = {entry.weight is not None for entry in entries}
        if len(weighted) > 1:
            raise ValueError("dataset_mixture: set weight on every source or on none of them")
        if weighted == {True} and not sum(entry.weight for entry in entries) > 0:
            raise ValueError("dataset_mixture: weights must not all be 0")
        return entries

    def _entry(self, index: int, item) -> MixtureEntry:
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict) or "source" not in item or set(item) - _MIXTURE_KEYS:
            raise ValueError(f"dataset_mixture[{index}] must be a source string or a mapping with 'source' "
                             f"and keys from {sorted(_MIXTURE_KEYS)}, got {item!r}")
        weight = item.get("weight")
        if weight is not None and not (isinstance(weight, int | float) and weight >= 0):
            raise ValueError(f"dataset_mixture[{index}].weight must be a number >= 0, got {weight!r}")
        fmt = item.get("format")
        if fmt is not None and fmt not in _FORMAT_CHOICES:
            raise ValueError(f"dataset_mixture[{index}].format must be one of {_FORMAT_CHOICES}, got {fmt!r}")
        return MixtureEntry(source=str(item["source"]), weight=None if weight is None else float(weight),
                            config=item.get("config"), split=item.get("split", "train"), format=fmt,
                            name=item.get("name"))


def add_source_flags(parser) -> None:
    """The flags that say how to read DATA, shared by ``ls-llm noise`` and ``ls-llm audit``."""
    parser.add_argument("data", help="hub dataset id, or local jsonl/json/parquet file, directory or glob")
    parser.add_argument("--config", dest="dataset_config", help="hub dataset config name")
    parser.add_argument("--split", dest="dataset_train_split", default="train", help="split to read")
    parser.add_argument("--format", dest="dataset_format", default="auto", help=f"one of {_FORMAT_CHOICES}")
    parser.add_argument("--field-map", dest="dataset_field_map",
                        help="JSON mapping {dataset column: expected name}")
    parser.add_argument("--rendering", dest="dataset_rendering", default="plain", help="plain or r1")
    parser.add_argument("--max-samples", dest="dataset_max_samples", type=int,
                        help="read only the first N rows")
    parser.add_argument("--on-missing", dest="dataset_on_missing", default="skip", help="skip or error")


def source_args(ns, **extra) -> LsDataArguments:
    """``LsDataArguments`` from the parsed :func:`add_source_flags` flags."""
    keys = ("dataset_config", "dataset_train_split", "dataset_format", "dataset_field_map",
            "dataset_rendering", "dataset_max_samples", "dataset_on_missing")
    return LsDataArguments(dataset_name=ns.data, **{k: getattr(ns, k) for k in keys}, **extra)
