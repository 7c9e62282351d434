"""Per-trace weights from a dataset column: how much a trace is trusted in training (0 = not at all).

Two recipe forms (`LsSFTConfig.trace_weight_column` / `trace_weight_from`) build one `TraceWeights`:

    trace_weight_column: consensus_share          # the column is the weight (a number >= 0 per row)
    trace_weight_from: {column: consensus_share}  # the same
    trace_weight_from: {column: consensus_share, threshold: 0.5}       # 1 where value >= 0.5, else 0
    trace_weight_from:                                                   # a categorical column through a table
      column: consensus_status
      map: {agrees: 1.0, no_majority: 0.5, disagrees: 0.0}
      default: 1.0                                                       # for values the map does not list

Every weight is a finite float >= 0. A row without the column (or with null), a number that is negative, NaN
or infinite, a value that is not a number (identity / threshold), or a value the map does not list (and no
`default`) is refused with a ValueError naming where the row is and the value. Booleans are not numbers here
(write a map, e.g. {true: 0.0, false: 1.0}); map keys and values are compared as text (`str`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# The column the resolved weight travels in, from the loader to the trainer (trainers/weights.py).
WEIGHT_COLUMN = "ls_trace_weight"
_FROM_KEYS = ("column", "map", "default", "threshold")


def _check_weight(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number >= 0, got {value!r}")
    if not (math.isfinite(value) and 0 <= value <= MAX_WEIGHT):
        raise ValueError(f"{where} must be a finite number in [0, {MAX_WEIGHT:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TraceWeights:
    """The weight of a row from its ``column``: the value itself, ``threshold`` (1 if value >= t else 0) or
    ``table`` (str(value) -> weight, ``default`` for unlisted values)."""

    column: str
    table: dict[str, float] | None = None
    default: float | None = None
    threshold: float | None = None
    recipe_field: str = field(default="trace_weight_from", compare=False)  # named in errors

    @classmethod
    def from_recipe(cls, column: str | None, spec: dict | None) -> TraceWeights | None:
        """The weights a recipe asks for (None: none); ValueError naming the recipe field."""
        if column is not None and spec is not None:
            raise ValueError("set trace_weight_column or trace_weight_from, not both "
                             "(trace_weight_column: X is trace_weight_from: {column: X})")
        if column is not None:
            if not isinstance(column, str) or not column:
                raise ValueError(f"trace_weight_column must be a column name, got {column!r}")
            return cls(column, recipe_field="trace_weight_column")
        if spec is None:
            return None
        return cls._parse(spec)

    @classmethod
    def _parse(cls, spec: dict) -> TraceWeights:
        name = "trace_weight_from"
        if not isinstance(spec, dict):
            raise ValueError(f"{name} must be a mapping such as {{column: consensus_share}}, got {spec!r}")
        unknown = sorted(set(map(str, spec)) - set(_FROM_KEYS))
        if unknown:
            raise ValueError(f"{name}: unknown key {unknown[0]!r}; keys are {list(_FROM_KEYS)}")
        column = spec.get("column")
        if not isinstance(column, str) or not column:
            raise ValueError(f"{name}.column must be a column name, got {column!r}")
        table, threshold = spec.get("map"), spec.get("threshold")
        if table is not None and threshold is not None:
            raise ValueError(f"{name}: set map or threshold, not both")
        if table is not None:
            if not isinstance(table, dict) or not table:
                raise ValueError(f"{name}.map must be a non-empty mapping value -> weight, got {table!r}")
            table = {_map_key(k): _check_weight(f"{name}.map.{k}", v) for k, v in table.items()}
        elif "default" in spec:
            raise ValueError(f"{name}.default needs a map (it is the weight of values the map does not list)")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
                raise ValueError(f"{name}.threshold must be a finite number, got {threshold!r}")
            threshold = float(threshold)
        default = spec.get("default")
        default = None if default is None else _check_weight(f"{name}.default", default)
        return cls(column, table, default, threshold)

    def weight(self, row: dict, where: str) -> float:
        """The weight of ``row``; ``where`` says where the row is (file and row) in the error."""
        value = row.get(self.column)
        if value is None:
            raise ValueError(f"{where}: no {self.column!r} value ({self.recipe_field}), got {value!r}")
        if self.table is not None:
            found = self.table.get(_map_key(value), self.default)
            if found is None:
                raise ValueError(f"{where}: {self.column}={value!r} is not listed in {self.recipe_field}.map "
                                 f"({sorted(self.table)}) and no default is set")
            return found
        if self.threshold is not None:
            number = _check_number(where, self.column, value, finite=False)
            return 1.0 if number >= self.threshold else 0.0
        return _check_number(where, self.column, value, finite=True)


def _map_key(value) -> str:
    """A map key and a column value compared alike: a number by its value (1, 1.0 and "1" are one key), a bool as
    true/false (YAML's `true` and a JSON true), anything else as its text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        number = float(value)
        if math.isfinite(number):
            return repr(int(number)) if number.is_integer() else repr(number)
    return str(value).strip().lower() if str(value).strip().lower() in ("true", "false") else str(value)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _check_number(where: str, column: str, value, *, finite: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {column}={value!r} is not a number (a weight must be a finite number >= 0)")
    value = float(value)
    if math.isnan(value) or (finite and not (math.isfinite(value) and value >= 0)):
        raise ValueError(f"{where}: {column}={value!r} is not a finite number >= 0")
    if finite and value > MAX_WEIGHT:  # the loss weighs tokens in float32: beyond this a weight is inf there
        raise ValueError(f"{where}: {column}={value!r} is larger than {MAX_WEIGHT:g} (float32 cannot hold it)")
    return value


MAX_WEIGHT = 3.0e38
