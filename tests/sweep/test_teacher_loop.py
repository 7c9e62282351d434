"""The teacher loop in a sweep (`traces:`, ls_llm.sweep.teacher_loop): a teacher fine-tuned from the seed's base
writes k traces per training problem, every detector judges them under each reference-error rate, and train cells
train on them, routed by the detectors' columns (the third study's E5)."""

import json
from pathlib import Path

import pytest
import yaml

from ls_llm.files import read_jsonl
from ls_llm.sweep import load_sweep
from ls_llm.sweep import runner as runner_module
from ls_llm.sweep.config import SweepError
from ls_llm.sweep.runner import RESULT_FILE, collect, run_sweep
from ls_llm.sweep.teacher_loop import simulated_verifier, traces_file, wrong_references

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "ls_llm/data/assets/arith_tokenizer"
CONFIG = REPO / "recipes/demo/tiny-qwen2/config.json"
DROP_CONSENSUS = {"name": "drop_consensus", "objective": "ce", "trace_objective_column": "consensus",
                  "trace_objectives": {"disagrees": "drop"}}


def _sweep_file(tmp_path, **changes) -> Path:
    (tmp_path / "ft.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nmax_steps: 8\n"
                                      "warmup_steps: 1\nlogging_steps: 4\nlearning_rate: 1.0e-3\n")
    (tmp_path / "pre.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nmax_steps: 12\n"
                                       f"warmup_steps: 2\nlogging_steps: 6\nmodel_name_or_path: {CONFIG}\n"
                                       f"tokenizer_name_or_path: {TOKENIZER}\n")
    raw = {"name": "t", "recipe": "ft.yaml", "output_dir": str(tmp_path / "out"), "noise_type": "reference",
           "noise_rho": [0.0, 0.5], "seeds": [0], "overrides": {"tokenizer_name_or_path": str(TOKENIZER)},
           "data": {"train_size": 16, "validation_size": 8, "test_size": 8, "split_by": "expression"},
           "bases": {"recipe": "pre.yaml", "seeds": [7], "data": {"train_size": 100, "validation_size": 8,
                                                                   "test_size": 8}},
           "traces": {"data": {"train_size": 40, "validation_size": 4, "test_size": 4, "seed": 5}, "k": 3,
                      "overrides": {"max_steps": 6}, "verifiers": {"v90": {"recall": 0.9, "false_positive_rate": 0.05}}},
           "variants": [{"name": "ce", "objective": "ce"}, {**DROP_CONSENSUS, "noise_rho": [0.0]},
                        {"name": "drop_reference", "objective": "ce", "trace_objective_column": "reference",
                         "trace_objectives": {"wrong": "drop", "missing": "drop", "unparsable": "drop"}}],
           "eval": {"max_gen_toks": 40, "batch_size": 16}, **changes}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_wrong_references_move_the_drawn_share_to_nearby_numbers():
    answers = [str(n) for n in range(10, 50)]
    refs, changed = wrong_references(answers, 0.25, seed=3)
    assert sum(changed) == 10 and refs == wrong_references(answers, 0.25, seed=3)[0]
    assert all((r != a) == c for r, a, c in zip(refs, answers, changed, strict=True))
    assert all(abs(int(r) - int(a)) < 100 for r, a in zip(refs, answers, strict=True))
    assert wrong_references(answers, 0.0, seed=3) == (answers, [False] * 40)
    with pytest.raises(ValueError, match="'x' .* not a number"):
        wrong_references(["x"], 1.0, seed=0)


def test_a_simulated_verifier_flags_at_its_recall_and_false_positive_rate():
    wrong = [i % 4 == 0 for i in range(20000)]
    flags = simulated_verifier(wrong, recall=0.7, false_positive_rate=0.15, seed=1, name="v")
    bad = [f for f, w in zip(flags, wrong, strict=True) if w]
    good = [f for f, w in zip(flags, wrong, strict=True) if not w]
    assert sum(bad) / len(bad) == pytest.approx(0.7, abs=0.02)
    assert sum(good) / len(good) == pytest.approx(0.15, abs=0.01)
    assert flags == simulated_verifier(wrong, recall=0.7, false_positive_rate=0.15, seed=1, name="v")
    assert flags != simulated_verifier(wrong, recall=0.7, false_positive_rate=0.15, seed=2, name="v")


def test_cells_of_a_traces_sweep_and_what_is_refused(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path))
    cells = {c.cell_id: c for c in sweep.cells()}
    assert list(cells)[:3] == ["base-s7", "teacher-s0", "traces-s0"]
    assert cells["teacher-s0"].needs == ("base-s7",)
    assert cells["traces-s0"].needs == ("teacher-s0", "base-s7")
    assert cells["train-ce-reference0.5-s0"].needs == ("base-s7", "traces-s0")
    assert "train-drop_consensus-reference0.5-s0" not in cells
    root = Path(sweep.output_dir)
    argv = runner_module._argv(sweep, cells["train-ce-reference0.5-s0"], root)
    assert f"--dataset_name={root / 'cells/traces-s0/traces_ref0.5.jsonl'}" in argv
    assert "--dataset_format=prompt_completion" in argv and not any(a.startswith("--noise") for a in argv)
    teacher = runner_module._argv(sweep, cells["teacher-s0"], root)
    assert f"--dataset_name={root / 'teacher_data/train.jsonl'}" in teacher and "--max_steps=6" in teacher
    for change, match in (({"noise_type": "box"}, "noise_type must be 'reference'"),
                          ({"bases": None}, "traces: needs `bases:`"),
                          ({"traces": {"data": {}, "k": 1}}, "traces.k must be"),
                          ({"traces": {"data": {}, "verifiers": {"v": {"recall": 2}}}}, "traces.verifiers.v"),
                          ({"traces": {"data": {}, "overrides": {"dataset_name": "x"}}}, "traces.overrides.dataset_name"),
                          ({"traces": {"data": {}, "loss_share": 1.5}}, "traces.loss_share"),
                          ({"traces": {"data": {}, "loss_model": "student"}}, "traces.loss_model must be"),
                          ({"traces": {"data": {}, "loss_column": "loss"}}, "traces.loss_column must be one of"),
                          ({"traces": {"k": 3}}, "traces must be a mapping with a `data:`"),
                          ({"traces": {"data": {}, "overrides": {"model_name_or_path": "x"}}},
                           "traces.overrides.model_name_or_path"),
                          ({"variants": [{"name": "ce", "objective": "ce", "noise_type": "box"}]},
                           r"variants\[0\] \('ce'\).noise_type: a traces sweep injects nothing"),
                          ({"variants": [{"name": "fc", "objective": "forward_correction", "noise_rate": "${noise_rho}"}]},
                           "is the reference-error rate"),
                          ({"variants": [{"name": "d", "trace_objective_column": "consensus_status"}]},
                           "trace_objective_column must be a column of the traces"),
                          ({"variants": [{"name": "d", "trace_objective_column": "reference",
                                          "trace_objectives": {"disagrees": "drop"}}]},
                           "'disagrees' is not a value of 'reference'"),
                          ({"variants": [{"name": "w", "trace_weight_column": "loss_score"}]}, "'consensus_share'"),
                          ({"track": {"every": 5, "corrupted_rows": 10}}, "track.corrupted_rows: a traces sweep")):
        with pytest.raises(SweepError, match=match):
            load_sweep(_sweep_file(tmp_path, **change))
    with pytest.raises(SweepError, match="noise_type must be one of"):  # `reference` only with traces
        load_sweep(_sweep_file(tmp_path, traces=None))


def test_the_endpoint_of_a_traces_sweep_counts_clean_references_too():
    """Under `reference` noise, rate 0 is not clean data (the traces carry the teacher's errors): its gain counts."""
    from ls_llm.sweep.stats import endpoint_diffs

    rows = [{"variant": v, "noise_type": t, "noise_rho": r, "seed": 0, "test_acc": acc}
            for t in ("reference", "box") for v, r, acc in (("ce", 0.0, 0.3), ("drop", 0.0, 0.5))]
    got = endpoint_diffs(rows, {"drop": "ce"}, {("drop", "reference"): (0.0,), ("drop", "box"): (0.0,)})
    assert got == {("drop", "reference"): {0: pytest.approx(0.2)}}  # box at 0: clean, no endpoint


def test_the_loop_runs_end_to_end_with_a_real_teacher(tmp_path):
    """Base -> teacher -> `ls-llm generate`'s library path -> audit -> train cells, on a tiny model (whose traces
    are mostly unboxed: the wiring is what is checked here; the detectors are checked on scripted traces below)."""
    sweep = load_sweep(_sweep_file(tmp_path, variants=[{"name": "ce", "objective": "ce"},
                                                       {**DROP_CONSENSUS, "noise_rho": [0.0]}]))
    assert run_sweep(sweep) == []
    root = Path(sweep.output_dir)
    traces = json.loads((root / "cells/traces-s0" / RESULT_FILE).read_text())
    assert traces["traces"] == 48 and traces["problems"] == 16
    generated = read_jsonl(root / "cells/traces-s0/generated/traces.jsonl")
    clean, noisy = (read_jsonl(traces_file(root / "cells/traces-s0", r)) for r in (0.0, 0.5))
    assert [r["completion"] for r in clean] == [r["completion"] for r in noisy] == [g["completion"] for g in generated]
    assert len({r["problem_id"] for r in noisy if r["answer"] != r["true_answer"]}) == 8
    rows = {r["cell_id"]: r for r in collect(sweep)}
    assert rows["traces-s0"]["kind"] == "traces" and "test_acc" not in rows["traces-s0"]
    assert rows["teacher-s0"]["kind"] == "teacher" and "test_acc" in rows["teacher-s0"]
    assert {"train-ce-reference0-s0", "train-ce-reference0.5-s0", "train-drop_consensus-reference0-s0"} <= set(rows)
    assert run_sweep(sweep) == [] and collect(sweep) == list(rows.values())  # resumed: nothing runs again
    # sampling at another temperature redoes the traces and what trains on them, not the teacher
    hotter = load_sweep(_sweep_file(tmp_path, traces={**yaml.safe_load((tmp_path / "sweep.yaml").read_text())["traces"],
                                                      "temperature": 0.7},
                                    variants=[{"name": "ce", "objective": "ce"}, {**DROP_CONSENSUS, "noise_rho": [0.0]}]))
    assert sorted(c.cell_id for c in hotter.cells() if not runner_module.finished(hotter, root, c)) == [
        "traces-s0", "train-ce-reference0-s0", "train-ce-reference0.5-s0", "train-drop_consensus-reference0-s0"]


def _scripted_teacher(monkeypatch):
    """`generate_traces` replaced by a teacher whose traces are known: per problem, samples 0 and 1 are the
    reference solution; sample 2 is wrong (answer + 1) on even problems, unboxed on every fifth, else right."""
    import ls_llm.evaluation.generate as generate_module

    def scripted(cfg):
        rows = []
        for n, row in enumerate(read_jsonl(cfg.data)):
            for j in range(cfg.num_samples):
                text = row["solution"]
                if j == 2 and n % 5 == 0:
                    text = text.replace("\\boxed{", "").replace("}", "")
                elif j == 2 and n % 2 == 0:
                    text = text.replace(f"\\boxed{{{row['answer']}}}", f"\\boxed{{{int(row['answer']) + 1}}}")
                rows.append({"id": f"{row['id']}#{j}", "problem_id": row["id"], "sample_index": j,
                             "prompt": [{"role": "user", "content": row["problem"]}], "completion": text,
                             "answer": row["answer"]})
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        (cfg.out_dir / generate_module.TRACES_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"rows": len(rows)}

    monkeypatch.setattr(generate_module, "generate_traces", scripted)


BAD = ("flagged", "disagrees", "wrong", "missing", "unparsable")


def test_each_detector_is_scored_against_the_oracle_and_routes_its_cells(tmp_path, monkeypatch):
    _scripted_teacher(monkeypatch)
    traces = yaml.safe_load(_sweep_file(tmp_path).read_text())["traces"]
    sweep = load_sweep(_sweep_file(tmp_path, traces={**traces, "loss_model": "teacher"}))
    assert run_sweep(sweep) == []
    root = Path(sweep.output_dir)
    result = json.loads((root / "cells/traces-s0" / RESULT_FILE).read_text())
    clean, noisy = (read_jsonl(traces_file(root / "cells/traces-s0", r)) for r in (0.0, 0.5))
    wrong = [r["oracle"] == "wrong" for r in clean]
    expected = [i % 3 == 2 and ((i // 3) % 2 == 0 or (i // 3) % 5 == 0) for i in range(48)]  # wrong or unboxed
    assert wrong == expected and result["teacher_trace_acc"] == pytest.approx(1 - sum(wrong) / 48)
    # clean references: the reference check is the oracle; two right of three: the wrong or unboxed one disagrees
    assert [r["reference"] in BAD for r in clean] == wrong
    assert [r["consensus"] == "disagrees" for r in clean] == wrong
    assert result["detection"]["0"]["consensus"]["precision"] == result["detection"]["0"]["consensus"]["recall"] == 1
    # a wrong reference turns the problem's right traces into "wrong" for the reference check, not for the oracle
    changed = {r["problem_id"] for r in noisy if r["answer"] != r["true_answer"]}
    assert len(changed) == 8 == result["detection"]["0.5"]["wrong_references"]
    assert all(r["reference"] == "wrong" for r in noisy if r["problem_id"] in changed and r["oracle"] == "right")
    assert [r["oracle"] for r in noisy] == [r["oracle"] for r in clean]
    flagged_ref = sum(r["reference"] in BAD for r in noisy)
    assert result["detection"]["0.5"]["loss_share"] == pytest.approx(flagged_ref / 48)
    assert sum(r["loss"] == "flagged" for r in noisy) == flagged_ref  # the reference audit's share, ceil(q n)
    assert [r["verifier_v90"] == "flagged" for r in clean] == simulated_verifier(
        wrong, recall=0.9, false_positive_rate=0.05, seed=0, name="v90")
    assert [r["verifier_v90"] for r in clean] == [r["verifier_v90"] for r in noisy]
    for rate, rows in (("0", clean), ("0.5", noisy)):
        for name in ("reference", "consensus", "loss", "verifier_v90"):
            tp = sum(r[name] in BAD and w for r, w in zip(rows, wrong, strict=True))
            assert result["detection"][rate][name]["true_positives"] == tp, (rate, name)
    rows = collect(sweep)
    assert {"train-drop_reference-reference0.5-s0", "train-drop_consensus-reference0-s0"} <= {r["cell_id"] for r in rows}
    from ls_llm.sweep.report import write_report

    paths = write_report(sweep, rows, tmp_path / "report")
    text = paths["markdown"].read_text()
    assert text.startswith(f"# Sweep `t`: {len(sweep.cells())} of {len(sweep.cells())} cells finished")
    assert "| 0.5 | loss | 1 |" in text and "teacher's traces right" in text
