"""One style for every plug-in point: token objectives, distillation divergences, dataset formats, noise types and
the eval tasks' row formats are each a `Registry`. An entry is registered where it is defined, with the decorator
`@REGISTRY.register(name)`, and looked up with `REGISTRY.lookup(name)`, which refuses an unknown name in one line
naming the recipe field and listing the choices. A registry is a dict (name -> entry), so `name in REGISTRY` and
`sorted(REGISTRY)` read as before. No dependencies: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry(dict):
    """Entries by name. `field`: the recipe field or flag that names an entry (used in the error message);
    `entry`: built from the decorated object and the decorator's keyword options, when the registry holds more
    than the object (e.g. a noise injector and whether it needs a tokenizer)."""

    def __init__(self, field: str, *, entry: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self.field, self.entry = field, entry

    def register(self, name: str, /, **options: Any) -> Callable[[Any], Any]:
        """Decorator: register the decorated object (or `entry(object, **options)`) under `name`; returns the
        object unchanged. A name registered twice is a bug, refused at import."""

        def add(obj: Any) -> Any:
            if name in self:
                raise ValueError(f"{self.field} {name!r} is registered twice")
            self[name] = self.entry(obj, **options) if self.entry is not None else obj
            return obj

        return add

    def lookup(self, name: str) -> Any:
        """The entry named `name`; ValueError naming the field, the value and the choices when there is none."""
        if not isinstance(name, str) or name not in self:
            raise ValueError(f"{self.field} must be one of {sorted(self)}, got {name!r}")
        return self[name]
