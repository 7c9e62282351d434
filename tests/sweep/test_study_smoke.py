"""The second study's sweep features end to end on a tiny grid (~30 steps per cell): a model continued from
another cell (`init_from`), the audited `drop` baseline, tracked models, teachers matched on validation, a
post-hoc-smoothed and a cached top-k student."""

import json
from pathlib import Path

import pytest
import yaml

from ls_llm.cli.sweep import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_study_features_run_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    raw = yaml.safe_load((REPO / "sweeps/smoke.yaml").read_text())
    raw.update(
        name="study_smoke", output_dir=str(tmp_path / "out"), recipe=str(REPO / "recipes/demo/sweep_base.yaml"),
        noise_type="box", noise_rho=[0.4],
        variants=[{"name": "ce", "objective": "ce"}, {"name": "ls", "objective": "label_smoothing", "alpha": 0.3},
                  {"name": "more", "objective": "ce", "init_from": "ce", "max_steps": 5, "learning_rate": 3e-4},
                  {"name": "drop", "objective": "ce", "audit": True, "trace_objective_column": "audit_status",
                   "trace_objectives": {"wrong": "drop"}}],
        track={"every": 10, "validation_rows": 16, "corrupted_rows": 20, "keep_models": True},
        distill={"recipe": str(REPO / "recipes/demo/sweep_distill.yaml"), "teachers": ["ce", "ls"],
                 "noise_rho": 0.4, "match_teachers": True, "overrides": {"max_steps": 20, "warmup_steps": 2},
                 "students": [{"name": "ls", "teacher": "ls"},
                              {"name": "ce_posthoc", "teacher": "ce", "teacher_smoothing": 0.3},
                              {"name": "ls_cached", "teacher": "ls", "cache_top_k": 4}]},
    )
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(raw))
    assert main([str(sweep_file), "--threads", "1"]) == 0
    cells = tmp_path / "out" / "cells"

    def result(cell_id):
        return json.loads((cells / cell_id / "result.json").read_text())

    # init_from: trained from ce's final model, and its weights moved on from there
    argv = json.loads((cells / "train-more-box0.4-s0/argv.json").read_text())
    assert f"--model_name_or_path={cells / 'train-ce-box0.4-s0/model'}" in argv
    from safetensors.torch import load_file

    ce_w = load_file(cells / "train-ce-box0.4-s0/model/model.safetensors")
    more_w = load_file(cells / "train-more-box0.4-s0/model/model.safetensors")
    assert any(not ce_w[k].equal(more_w[k]) for k in ce_w)
    # its steps count on from ce's 30 (the curves of both share one axis)
    assert [(p["step"], p["own_step"]) for p in result("train-more-box0.4-s0")["curve"]] == [(35, 5)]

    # drop: the audit flags exactly the rows the injector corrupted (the same injection as at load time)
    audited = [json.loads(line) for line in (cells / "train-drop-box0.4-s0/train_audited.jsonl").open()]
    manifest = [json.loads(line) for line in (cells / "train-ce-box0.4-s0/noise_manifest.jsonl").open()]
    assert [r["audit_status"] == "wrong" for r in audited] == [m["corrupted"] for m in manifest]
    assert 0 < sum(m["corrupted"] for m in manifest) < len(manifest)

    # teachers' tracked models, the matching, and each student's teacher
    assert sorted(p.name for p in (cells / "train-ls-box0.4-s0/tracked").iterdir()) == ["step-10", "step-20",
                                                                                          "step-30"]
    for student, teacher in (("ls", "ls"), ("ce_posthoc", "ce"), ("ls_cached", "ls")):
        res = result(f"distill-{student}-box0.4-s0")
        chosen = res["matching"][teacher]
        argv = json.loads((cells / f"distill-{student}-box0.4-s0/argv.json").read_text())
        teacher_dir = Path(next(a for a in argv if a.startswith("--teacher_model_name_or_path="))
                           .split("=", 1)[1])
        expected = ("model" if chosen["final"] else f"tracked/step-{chosen['step']}")
        assert teacher_dir == cells / f"train-{teacher}-box0.4-s0" / expected and teacher_dir.is_dir()
        curve = {p["step"]: p["val_acc"] for p in result(f"train-{teacher}-box0.4-s0")["curve"]}
        assert chosen["val_acc"] == curve[chosen["step"]]
    assert "--teacher_smoothing=0.3" in json.loads((cells / "distill-ce_posthoc-box0.4-s0/argv.json").read_text())
    assert any(p.name.startswith("shard-") for p in (cells / "distill-ls_cached-box0.4-s0/teacher_cache").iterdir())
    report = (tmp_path / "out/report/results.md").read_text()
    assert "### Teachers matched on validation accuracy" in report and "| seed | ce (step, val acc) |" in report
