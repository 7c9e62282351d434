"""The smoke sweep end to end (sweeps/smoke.yaml: one seed, two noise rates, two objectives, one distilled
student and the student trained alone; ~30 steps each) through ls-llm train / distill and ls_llm.evaluation;
then resumption."""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from ls_llm.cli.sweep import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_smoke_sweep_runs_reports_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes name their model / tokenizer relative to the repository
    raw = yaml.safe_load((REPO / "sweeps/smoke.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "out")
    raw["recipe"] = str(REPO / "recipes/demo/sweep_base.yaml")
    raw["distill"]["recipe"] = str(REPO / "recipes/demo/sweep_distill.yaml")
    sweep_file = tmp_path / "smoke.yaml"
    sweep_file.write_text(yaml.safe_dump(raw))

    assert main([str(sweep_file), "--threads", "1"]) == 0
    out = tmp_path / "out"
    report = out / "report"
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert sorted(r["cell_id"] for r in rows) == sorted([
        "train-ce-answer0-s0", "train-ce-answer0.4-s0", "train-ls0.3-answer0-s0", "train-ls0.3-answer0.4-s0",
        "distill-ls0.3-answer0.4-s0", "student-alone-answer0.4-s0"])
    assert "6 of 6 cells finished" in (report / "results.md").read_text()
    for png in ("accuracy_vs_noise.png", "ece_vs_noise.png", "student_by_teacher.png"):
        assert (report / png).stat().st_size > 1000

    for row in rows:
        cell = out / "cells" / row["cell_id"]
        argv = json.loads((cell / "argv.json").read_text())
        assert f"--noise_rho={row['noise_rho']}" in argv
        # The accuracy in the CSV is lm-eval's, recomputed here from its per-sample verdicts.
        samples = [json.loads(line) for line in (cell / "eval_test" / "samples_sweep_arith_test.jsonl").open()]
        assert len(samples) == int(row["n_test"]) == 16
        assert float(row["test_acc"]) == pytest.approx(sum(s["acc"] for s in samples) / len(samples))
        assert 0.0 <= float(row["ece"]) <= 1.0
    assert "--alpha=0.3" in json.loads((out / "cells/train-ls0.3-answer0-s0/argv.json").read_text())
    # Tracking: a point every 10 steps; the last one is the final model, so its validation accuracy (our greedy
    # decoding and answer comparison) must equal lm-eval's on the same 16 validation rows.
    for row in rows:
        result = json.loads((out / "cells" / row["cell_id"] / "result.json").read_text())
        curve = result["curve"]
        assert [p["step"] for p in curve] == [10, 20, 30]
        assert curve[-1]["val_acc"] == pytest.approx(result["val_acc"]) and curve[-1]["n_val"] == 16
        manifest = [json.loads(line) for line in (out / "cells" / row["cell_id"] / "noise_manifest.jsonl").open()]
        corrupted = sum(m["corrupted"] for m in manifest)
        if result["noise_rho"] > 0:
            assert curve[-1]["n_corrupted"] == min(50, corrupted) > 0
            assert curve[-1]["mem_injected"] + curve[-1]["mem_true"] + curve[-1]["mem_other"] == pytest.approx(1.0)
        else:
            assert corrupted == 0 and "mem_injected" not in curve[-1]
    assert (report / "curves.csv").is_file() and (report / "curves_answer.png").stat().st_size > 1000
    student_argv = json.loads((out / "cells/distill-ls0.3-answer0.4-s0/argv.json").read_text())
    assert f"--teacher_model_name_or_path={out / 'cells/train-ls0.3-answer0.4-s0/model'}" in student_argv
    # The student trained alone: `ls-llm train` on the base recipe with the student's keys, no teacher.
    alone_argv = json.loads((out / "cells/student-alone-answer0.4-s0/argv.json").read_text())
    assert alone_argv[0] == raw["recipe"] and not any("teacher" in a for a in alone_argv)
    assert "none (student trained alone)" in (report / "results.md").read_text()

    # Resume: finished cells are skipped; a cell whose result is missing (interrupted) is run again.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}
    redo = out / "cells/train-ce-answer0.4-s0"
    (redo / "result.json").unlink()
    shutil.rmtree(redo / "eval_test")
    assert main([str(sweep_file), "--threads", "1"]) == 0
    for path, stamp in stamps.items():
        if redo not in path.parents:
            assert path.stat().st_mtime_ns == stamp, path
    assert (redo / "result.json").is_file() and (redo / "eval_test").is_dir()
    assert os.path.getsize(report / "results.csv") > 0
