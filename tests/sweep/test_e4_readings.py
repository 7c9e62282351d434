"""sweeps/e4_readings.py (E4's pre-registered readings) on synthetic reports: the gate decides whether anything is
compared, Holm decides the verdicts, and seeds map to their bases as the sweep file assigns them."""

import csv
import importlib.util
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAMILY = ("ls0.1", "ls0.3", "ls_answer0.1", "ls_answer0.3", "nls", "fc_answer")


def _script():
    spec = importlib.util.spec_from_file_location("e4_readings", REPO / "sweeps/e4_readings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(tmp_path: Path, *, rise_per_step: float, effect: dict[str, float]) -> Path:
    rng = random.Random(0)
    rows = [{"cell_id": f"base-s{b}", "kind": "base", "variant": "base", "noise_type": "none", "noise_rho": 0.0,
             "seed": b, "val_acc": 0.5, "test_acc": 0.5, "pretrain_val_acc": 0.6, "early_step": ""}
            for b in (100, 101, 102)]
    curves = []
    for seed in range(6):
        for rho in (0.0, 0.2, 0.4):
            for variant in ("ce", "ce_early") + (FAMILY if rho else ("ls0.3", "ls_answer0.3")):
                acc = 0.3 + rng.uniform(-0.05, 0.05) + effect.get(variant, 0.0)
                rows.append({"cell_id": f"train-{variant}-perturb{rho:g}-s{seed}", "kind": "train", "variant": variant,
                             "noise_type": "perturb", "noise_rho": rho, "seed": seed, "val_acc": acc, "test_acc": acc,
                             "pretrain_val_acc": "", "early_step": 300 if variant == "ce_early" else ""})
                if variant != "ce_early" and rho:
                    curves += [{"variant": variant, "noise_rho": rho, "seed": seed, "step": step, "val_acc": 0.3,
                                "mem_injected": 0.1 + rise_per_step * i + rng.uniform(0, 0.01), "tf_gap": i}
                               for i, step in enumerate((150, 300, 450, 600, 750))]
    for name, table in (("results.csv", rows), ("curves.csv", curves)):
        with open(tmp_path / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return tmp_path


def test_a_large_effect_is_detected_under_holm_and_a_small_one_is_not(tmp_path, capsys):
    pytest.importorskip("scipy")
    report = _report(tmp_path, rise_per_step=0.15, effect={"ls0.3": 0.2, "ls0.1": 0.01})
    _script().main(str(REPO / "sweeps/e4_perturb.yaml"), str(report))
    out = capsys.readouterr().out
    assert "**passes**" in out
    primary = out.split("## Primary")[1].split("## Secondary")[0]
    line = {ln.split("|")[1].strip(): ln for ln in primary.splitlines() if ln.startswith("| ")}
    assert line["ls0.3"].rstrip().endswith("| helps |")
    assert line["ls0.1"].rstrip().endswith("| not detected |")
    assert "fine-tuned by seeds [0, 3]" in out  # seed s -> base 100 + s mod 3


def test_a_failed_gate_reads_no_comparison(tmp_path, capsys):
    report = _report(tmp_path, rise_per_step=0.0, effect={"ls0.3": 0.2})
    _script().main(str(REPO / "sweeps/e4_perturb.yaml"), str(report))
    out = capsys.readouterr().out
    assert "**fails**" in out and "none of its comparisons is read" in out
    assert "helps" not in out and "Primary" not in out
