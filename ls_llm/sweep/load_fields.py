"""Small readers shared by the sweep file's loaders (ls_llm.sweep.load, ls_llm.sweep.traces_section): a mapping, a
typed section with unknown keys refused, and where a placeholder sits."""

from __future__ import annotations

from dataclasses import fields

from ls_llm.sweep.config import SweepError

# Recipe keys the sweep sets for each run of its own (a base, a teacher): a section's overrides may not set them.
SET_PER_RUN = ("output_dir", "dataset_name", "dataset_format", "dataset_mixture", "seed", "save_strategy")


def mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{where} must be a mapping, got {value!r}")
    return value


def typed(cls, raw, where: str):
    known = {f.name for f in fields(cls)}
    raw = mapping(raw, where)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(known)})")
    if "ops" in raw:
        raw = {**raw, "ops": tuple(raw["ops"])}
    for key in ("teachers", "students"):
        if isinstance(raw.get(key), list):
            raw = {**raw, key: tuple(raw[key])}
    return cls(**raw)


def placeholder_at(value, where: str, text: str) -> str | None:
    """Where (`variants[1].noise_rate`) a string inside `value` holds `text`, or None."""
    if isinstance(value, str):
        return where if text in value else None
    if isinstance(value, dict):
        children = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        children = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for w, v in children if (found := placeholder_at(v, w, text)) is not None), None)
