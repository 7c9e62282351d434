"""One registry style for every plug-in point (ls_llm/registry.py): each is a `Registry`, an unknown name is refused
in one line naming the recipe field and the choices, and a name registered twice is refused."""

import pytest

from ls_llm.registry import Registry


def _registries():
    from ls_llm.data.formats import FORMATS
    from ls_llm.data.noise import INJECTORS
    from ls_llm.evaluation.schema import DOC_FORMATS
    from ls_llm.objectives import OBJECTIVES
    from ls_llm.objectives.divergences import DIVERGENCES

    return {"objective": OBJECTIVES, "distill_divergence": DIVERGENCES, "dataset_format": FORMATS,
            "noise_type": INJECTORS, "ls_format": DOC_FORMATS}


@pytest.mark.parametrize("field", sorted(_registries()))
def test_every_plug_in_point_is_a_registry(field):
    registry = _registries()[field]
    assert isinstance(registry, Registry) and registry.field == field and len(registry) >= 3
    name = sorted(registry)[0]
    assert registry.lookup(name) is registry[name]
    with pytest.raises(ValueError) as err:
        registry.lookup("no-such-name")
    assert str(err.value) == f"{field} must be one of {sorted(registry)}, got 'no-such-name'"


def test_register_decorates_and_refuses_a_second_entry():
    reg = Registry("thing", entry=lambda fn, *, scale: (fn, scale))

    @reg.register("double", scale=2)
    def double(x):
        return 2 * x

    assert double(3) == 6 and reg.lookup("double") == (double, 2)
    with pytest.raises(ValueError, match="thing 'double' is registered twice"):
        reg.register("double", scale=3)(double)


def test_objective_registry_names_its_classes():
    from ls_llm.objectives import OBJECTIVES, build_objective

    assert all(cls.name == name for name, cls in OBJECTIVES.items())
    with pytest.raises(ValueError, match="objective must be one of"):
        build_objective("label_smoothin")
