"""The pre-registered readings of the tracked curves (ls_llm.sweep.memorisation), against hand-computed values."""

import pytest

from ls_llm.sweep.memorisation import first_step_reaching, last_value, mean_curve, memorisation_table, rise

STEPS = (500, 1000, 1500, 2000, 2500, 3000, 3500, 4000)


def curve(injected, val=None):
    val = val or [0.0] * len(injected)
    return [{"step": s, "mem_injected": m, "val_acc": v} for s, m, v in zip(STEPS, injected, val)]


def test_rise_is_last_minus_smallest_of_first_half():
    c = curve([0.05, 0.02, 0.03, 0.04, 0.01, 0.10, 0.15, 0.20])  # the 0.01 at step 2500 is in the second half
    assert rise(c) == pytest.approx(0.20 - 0.02)
    assert last_value(c) == 0.20
    assert rise(c[:1]) is None  # one point: step 500 <= 500 / 2 is false -> no first half
    assert rise([{"step": 500, "val_acc": 0.3}]) is None


def test_first_step_reaching_and_mean_curve():
    a = curve([0] * 8, [0.1, 0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6])
    b = curve([0] * 8, [0.1, 0.2, 0.3, 0.45, 0.7, 0.7, 0.7, 0.7])
    assert first_step_reaching(a) == 1500
    assert first_step_reaching(b) == 2500
    assert first_step_reaching(curve([0] * 8)) is None
    mean = mean_curve([a, b])
    assert [p["step"] for p in mean] == list(STEPS)
    assert mean[3]["val_acc"] == pytest.approx(0.525)
    assert first_step_reaching(mean) == 2000
    assert len(mean_curve([a, b[:4]])) == 4  # only the steps every curve has


def _rows(variant, seeds_curves, rate=0.4):
    return [{"variant": variant, "seed": s, "noise_rho": rate, "curve": c} for s, c in seeds_curves.items()]


def test_table_memorises_prevents_and_speed():
    ce = {s: curve([0.05, 0.03 + 0.001 * s, 0.04, 0.05, 0.1, 0.15, 0.18, 0.2 + 0.01 * s],
                   [0.1, 0.3, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6]) for s in range(5)}
    ls = {s: curve([0.05, 0.04, 0.03, 0.03, 0.03, 0.03, 0.04, 0.03 + 0.005 * s],
                   [0.2, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6] if s < 4 else [0.1, 0.3, 0.55] + [0.6] * 5)
          for s in range(5)}
    rows = _rows("ce", ce) + _rows("ls", ls) + _rows("ce", {0: curve([0.9] * 8)}, rate=0.2)
    table = memorisation_table(rows, {"ce": "ce", "ls": "ce"}, 0.4, n_seeds=5)
    lines = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()[2:]}
    # ce: last 0.20..0.24 (mean 0.22); rise = last - (0.03 + 0.001 s): mean 0.22 - 0.032 = 0.188 -> memorises
    assert lines["ce"][1].startswith("22.0 [")
    assert lines["ce"][2].startswith("+18.8 [")
    assert lines["ce"][3] == "yes"
    assert lines["ce"][4:6] == ["—", "—"]  # its own reference
    assert lines["ce"][6] == "1500"
    # ls: last 0.03..0.05, rise = last - 0.03: mean +1.0 -> no; minus ce: 0.04 - 0.22 = -18 points -> prevents
    assert lines["ls"][2].startswith("+1.0 [")
    assert lines["ls"][3] == "no"
    assert lines["ls"][4].startswith("-18.0 [")
    assert lines["ls"][5] == "yes"
    assert lines["ls"][6] == "1000"
    assert lines["ls"][7].rstrip(" |") == "4 / 1 / 0"  # seeds 0-3 reach 50% at 1000 vs ce's 1500; seed 4 ties
    assert memorisation_table(rows, {"ce": "ce"}, 0.1, n_seeds=5) == ""


def test_noisy_rise_is_not_memorisation():
    """A mean rise of 10 points whose interval covers 0 is not memorisation (the interval must lie above 0)."""
    rises = [0.40, -0.10, 0.30, -0.15, 0.05]  # mean 0.10, wide
    rows = _rows("ce", {s: curve([0.2] * 4 + [0.2] * 3 + [0.2 + r]) for s, r in enumerate(rises)})
    line = memorisation_table(rows, {"ce": "ce"}, 0.4, n_seeds=5).splitlines()[2].split(" | ")
    assert line[2].startswith("+10.0 [")
    assert line[3] == "no"


def test_curves_without_injected_share_keep_the_speed_columns():
    """Token noise has no injected answer: the memorisation columns are `—`, the speed columns stay."""
    rows = _rows("ce", {s: [{"step": st, "val_acc": 0.6} for st in STEPS] for s in range(3)})
    rows += _rows("fc", {s: [{"step": st, "val_acc": 0.6} for st in STEPS] for s in range(3)})
    line = memorisation_table(rows, {"ce": "ce", "fc": "ce"}, 0.4, n_seeds=3).splitlines()[3].split(" | ")
    assert line[1:6] == ["—", "—", "—", "—", "—"]
    assert line[6:] == ["500", "0 / 3 / 0 |"]


def test_continuations_have_no_speed_reading():
    """ce_more continues ce's final model (init_from) and nls continues it too, compared with ce_more: their curves
    start at step 2500, where ce already was above 50%. "First step at 50%" would call them later than ce (2500 vs
    1500) or tied; neither is a speed reading, so both columns are `—`. The memorisation columns stay."""
    ce = {s: curve([0.05, 0.04, 0.04, 0.03], [0.2, 0.4, 0.6, 0.7]) for s in range(3)}
    after = {s: [{"step": 2500, "mem_injected": 0.03 + 0.01 * s, "val_acc": 0.7}] for s in range(3)}
    rows = _rows("ce", ce) + _rows("ce_more", after) + _rows("nls", after)
    table = memorisation_table(rows, {"ce": "ce", "ce_more": "ce", "nls": "ce_more"}, 0.4, n_seeds=3,
                               continued=frozenset({"ce_more", "nls"}))
    lines = {line.split(" | ")[0].strip("| "): line.rstrip(" |").split(" | ") for line in table.splitlines()[2:]}
    assert lines["ce"][6:] == ["1500", "—"]
    assert lines["ce_more"][4].startswith("+1.0 [")  # 0.04 - 0.03 at the last step, paired with ce
    assert lines["ce_more"][6:] == ["—", "—"] and lines["nls"][6:] == ["—", "—"]
    plain = memorisation_table(rows, {"ce": "ce", "ce_more": "ce"}, 0.4, n_seeds=3)  # without `continued`
    assert plain.splitlines()[3].rstrip(" |").split(" | ")[6:] == ["2500", "0 / 0 / 3"]  # what it would have said
