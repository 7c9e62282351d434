"""sweeps/e5_readings.py and sweeps/e6_readings.py (the pre-registered readings of E5 and E6) on synthetic reports:
the pairing each registration fixes, Holm's verdicts, and E6's gate."""

import csv
import importlib.util
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / f"sweeps/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[dict]) -> None:
    fields = sorted({k for r in rows for k in r})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _row(kind, variant, rate, seed, acc, noise="reference"):
    return {"cell_id": f"{kind}-{variant}-{noise}{rate:g}-s{seed}", "kind": kind, "variant": variant,
            "noise_type": noise, "noise_rho": rate, "seed": seed, "val_acc": acc, "test_acc": acc}


def test_e5_pairs_each_method_at_its_rate_with_ce_and_holm_decides(tmp_path, capsys):
    pytest.importorskip("scipy")
    e5 = _script("e5_readings")
    rng = random.Random(0)
    rows = [{**_row("teacher", "teacher", 0.0, s, 0.35, "none")} for s in range(6)]
    wobble = (0.02, -0.02, 0.01, -0.01, 0.03, -0.03)  # a zero mean difference
    for s in range(6):
        ce = 0.30 + rng.uniform(-0.05, 0.05)
        rows += [_row("train", "ce", 0.0, s, ce), _row("train", "ce_early", 0.0, s, ce + 0.02)]
        for method, rate in e5.FAMILY + (("drop_loss", 0.0),):
            gain = {"drop_oracle": 0.20, "drop_reference": 0.15}.get(method, 0.0)
            rows.append(_row("train", method, rate, s, ce + gain + wobble[(s + len(method)) % 6] / (1 + 4 * gain)))
    _write(tmp_path / "results.csv", rows)
    e5.main(str(REPO / "sweeps/e5_teacher.yaml"), str(tmp_path))
    out = capsys.readouterr().out
    primary = out.split("## Primary")[1].split("## Secondary")[0]
    verdicts = {ln.split("|")[1].strip(): ln.rstrip().rsplit("|", 2)[1].strip() for ln in primary.splitlines()
                if ln.startswith("| drop") or ln.startswith("| weight") or ln.startswith("| route")}
    assert verdicts["drop_oracle"] == verdicts["drop_reference"] == "helps"
    assert verdicts["drop_consensus"] == "not detected" and len(verdicts) == 8
    assert "- drop_reference: 7" in out  # about 75% of the oracle filter's gain


def test_e6_reads_nothing_when_the_ce_teacher_does_not_memorise(tmp_path, capsys):
    e6 = _script("e6_readings")
    rows, curves = [], []
    for s in range(6):
        for v in ("teacher_ce", "teacher_ls0.3", "from_ce", "from_ls0.3", "from_ce_top8", "from_ls0.3_top8", "alone"):
            kind = "train" if v.startswith("teacher") else "student" if v == "alone" else "distill"
            rows.append(_row(kind, v, 0.4, s, 0.3 + (0.2 if v == "from_ls0.3" else 0.0), "perturb"))
            curves += [{"variant": v, "seed": s, "step": step, "mem_injected": 0.1} for step in (150, 300, 450)]
    _write(tmp_path / "results.csv", rows)
    _write(tmp_path / "curves.csv", curves)
    e6.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "**fails**" in out and "Primary" not in out
    for c in curves:
        c["mem_injected"] = 0.1 + 0.001 * c["step"] * (c["seed"] + 2) / 4
    _write(tmp_path / "curves.csv", curves)
    e6.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "**passes**" in out and "| from_ls0.3 − from_ce | 6 |" in out
