"""data.weights.TraceWeights: each recipe form, and every refused value naming where the row is."""

import math

import pytest

from ls_llm.data.weights import TraceWeights


def _w(spec, value, column="c"):
    return TraceWeights.from_recipe(None, {"column": column, **spec}).weight({column: value}, "file.jsonl row 7")


def test_forms():
    assert TraceWeights.from_recipe(None, None) is None
    assert TraceWeights.from_recipe("c", None).weight({"c": 3}, "x") == 3.0
    assert _w({}, 0.25) == 0.25
    assert [_w({"threshold": 0.5}, v) for v in (0.49, 0.5, 0.9)] == [0.0, 1.0, 1.0]
    table = {"map": {"agrees": 1.0, "disagrees": 0, True: 0.5}, "default": 0.2}
    assert [_w(table, v) for v in ("agrees", "disagrees", True, "other")] == [1.0, 0.0, 0.5, 0.2]



def test_a_map_matches_values_as_the_column_holds_them():
    """A value equal to a key matches it whatever its spelling: `1` and `1.0` (an integer column read as float),
    `true` and "true" (the default took 1.0 for 1.0 under {1: 0.0})."""
    spec = {"map": {1: 0.0, "true": 0.25, 2.5: 0.5}, "default": 1.0}
    assert [_w(spec, v) for v in (1, 1.0, "1", True, "true", 2.5, "2.5", 3)] == [0.0, 0.0, 0.0, 0.25, 0.25, 0.5,
                                                                                  0.5, 1.0]

@pytest.mark.parametrize("spec,value,match", [
    ({}, -1.0, "row 7: c=-1.0 is not a finite number >= 0"),
    ({}, math.nan, "c=nan"),
    ({}, math.inf, "c=inf"),
    ({}, 1e39, "c=1e\\+39 is larger than"),
    ({}, "0.5x", "c='0.5x' is not a number"),
    ({}, True, "c=True is not a number"),
    ({}, None, "row 7: no 'c' value"),
    ({"threshold": 0.5}, math.nan, "c=nan"),
    ({"threshold": 0.5}, "high", "is not a number"),
    ({"map": {"a": 1.0}}, "b", "c='b' is not listed in trace_weight_from.map"),
])
def test_refused_values_name_the_row_and_value(spec, value, match):
    with pytest.raises(ValueError, match=match):
        _w(spec, value)
