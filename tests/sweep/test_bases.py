"""Pretrained bases in a sweep (`bases:`), the early-stopping reading (`early_stop_of`) and the teacher-forced
memorisation measure (ls_llm.sweep.tracking.completion_logprobs), for the third study's design (issue #25)."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ls_llm.sweep import load_sweep
from ls_llm.sweep import runner as runner_module
from ls_llm.sweep.config import SweepError
from ls_llm.sweep.memorisation import best_point
from ls_llm.sweep.runner import RESULT_FILE, collect, fingerprint, finished
from ls_llm.sweep.shards import shard_cells
from ls_llm.sweep.tracking import completion_logprobs

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "ls_llm/data/assets/arith_tokenizer"
CONFIG = REPO / "recipes/demo/tiny-qwen2/config.json"


def _sweep_file(tmp_path, **changes) -> Path:
    (tmp_path / "ft.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nmax_steps: 30\n"
                                      "warmup_steps: 3\nlogging_steps: 10\nlearning_rate: 1.0e-3\n")
    (tmp_path / "pre.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nmax_steps: 20\n"
                                       f"warmup_steps: 2\nlogging_steps: 10\nmodel_name_or_path: {CONFIG}\n"
                                       f"tokenizer_name_or_path: {TOKENIZER}\n")
    raw = {"name": "b", "recipe": "ft.yaml", "output_dir": str(tmp_path / "out"), "noise_type": "box",
           "noise_rho": [0.4], "seeds": [0],
           "overrides": {"tokenizer_name_or_path": str(TOKENIZER)},
           "data": {"train_size": 60, "validation_size": 12, "test_size": 12, "max_operand": 9, "ops": ["mul"],
                    "max_multiplier": 5, "split_by": "expression"},
           "bases": {"recipe": "pre.yaml", "seeds": [7],
                     "data": {"train_size": 200, "validation_size": 12, "test_size": 12, "ops": ["add", "sub"]}},
           "variants": [{"name": "ce", "objective": "ce"}, {"name": "ce_early", "early_stop_of": "ce"}],
           "track": {"every": 10, "validation_rows": 12, "corrupted_rows": 30, "keep_models": True},
           "eval": {"max_gen_toks": 40, "batch_size": 16}, **changes}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bases_come_first_and_seeds_take_them_in_turn(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, seeds=[0, 1, 2], bases={"recipe": "pre.yaml", "seeds": [7, 8]},
                                   variants=[{"name": "ce", "objective": "ce"},
                                             {"name": "nls", "init_from": "ce", "objective": "ce"}]))
    ids = [c.cell_id for c in sweep.cells()]
    assert ids[:2] == ["base-s7", "base-s8"]
    cells = {c.cell_id: c for c in sweep.cells()}
    assert [cells[f"train-ce-box0.4-s{s}"].needs for s in (0, 1, 2)] == [("base-s7",), ("base-s8",), ("base-s7",)]
    assert cells["train-nls-box0.4-s1"].needs == ("train-ce-box0.4-s1",)  # its base through its source
    root = Path(sweep.output_dir)
    argv = runner_module._argv(sweep, cells["train-ce-box0.4-s1"], root)
    assert f"--model_name_or_path={root / 'cells/base-s8/model'}" in argv and "--model_init_from_config=false" in argv
    base_argv = runner_module._argv(sweep, cells["base-s8"], root)
    assert base_argv[0] == str(tmp_path / "pre.yaml") and "--seed=8" in base_argv
    assert f"--dataset_name={root / 'base_data/train.jsonl'}" in base_argv
    assert not any(a.startswith("--noise") for a in base_argv)


def test_bases_spread_over_shards_and_do_not_pull_their_cells_along(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, seeds=[0, 1, 2, 3], bases={"recipe": "pre.yaml", "seeds": [7]}))
    shards = [[c.cell_id for c in shard_cells(sweep, i, 2)] for i in (0, 1)]
    assert shards[0][0] == "base-s7" and "base-s7" not in shards[1]
    assert all(any(i.startswith("train-") for i in shard) for shard in shards)  # both shards fine-tune
    sweep = load_sweep(_sweep_file(tmp_path, seeds=[0, 1], bases={"recipe": "pre.yaml", "seeds": [7, 8]}))
    assert sorted(shard_cells(sweep, i, 2)[0].cell_id for i in (0, 1)) == ["base-s7", "base-s8"]


def test_a_changed_base_makes_its_fine_tuning_stale(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, seeds=[0, 1], bases={"recipe": "pre.yaml", "seeds": [7, 8]}))
    root = Path(sweep.output_dir)
    for cell in sweep.cells():
        (root / "cells" / cell.cell_id).mkdir(parents=True)
        (root / "cells" / cell.cell_id / RESULT_FILE).write_text(json.dumps({"fingerprint": fingerprint(sweep, cell, root)}))
    assert all(finished(sweep, root, c) for c in sweep.cells())
    (tmp_path / "pre.yaml").write_text((tmp_path / "pre.yaml").read_text().replace("max_steps: 20", "max_steps: 21"))
    stale = sorted(c.cell_id for c in sweep.cells() if not finished(sweep, root, c))
    assert stale == ["base-s7", "base-s8", "train-ce-box0.4-s0", "train-ce-box0.4-s1"]


@pytest.mark.parametrize(("change", "message"), [
    ({"variants": [{"name": "ce_early", "early_stop_of": "ce"}, {"name": "ce", "objective": "ce"}]},
     "early_stop_of must name an earlier variant"),
    ({"variants": [{"name": "ce", "objective": "ce"}, {"name": "e", "early_stop_of": "ce", "alpha": 0.1}]},
     "cannot set 'alpha'"),
    ({"track": None}, "needs `track:`"),
    ({"track": {"every": 10, "validation_rows": 0}}, "validation_rows > 0"),
    ({"select": {"best": ["ce", "ce_early"]}}, "select.best: 'ce_early' is an early-stopping reading"),
    ({"bases": {"recipe": "pre.yaml", "seeds": [1], "overrides": {"seed": 3}}}, "bases.overrides.seed: set by the sweep"),
    ({"bases": {"recipe": "pre.yaml", "seeds": [1], "overrides": {"noise_rho": 0.1}}}, "bases.overrides.noise_rho"),
    ({"distill": {"recipe": "ft.yaml", "teachers": ["ce"], "noise_rho": 0.4, "student_base": "next"}},
     "student_base: next needs `bases:` with two or more seeds"),
    ({"bases": {"recipe": "nope.yaml", "seeds": [1]}}, "bases.recipe must name a recipe file"),
    ({"bases": {"recipe": "pre.yaml", "seeds": [1, 1]}}, "bases.seeds must be distinct"),
    ({"bases": {"recipe": "pre.yaml", "seeds": [1], "step": 3}}, "bases: unknown key 'step'"),
])
def test_bad_bases_and_readings_are_refused_naming_the_field(tmp_path, change, message):
    with pytest.raises(SweepError, match=re.escape(message)):
        load_sweep(_sweep_file(tmp_path, **change))


def test_a_reading_runs_nothing_and_is_paired_where_its_source_runs(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, variants=[
        {"name": "ce", "objective": "ce"}, {"name": "ce_early", "early_stop_of": "ce"},
        {"name": "ls", "objective": "label_smoothing", "alpha": 0.1, "compare_with": "ce_early"}]))
    assert [c.variant for c in sweep.cells() if c.kind == "train"] == ["ce", "ls"]
    assert sweep.expected_rates()[("ce_early", "box")] == (0.4,)
    assert sweep.references()["ls"] == "ce_early" and sweep.early_readings("ce") == ["ce_early"]


def test_a_cell_waits_for_a_base_another_shard_holds_and_never_retries_a_failed_one(tmp_path, monkeypatch):
    sweep = load_sweep(_sweep_file(tmp_path))
    base = sweep.cells()[0]
    root = Path(sweep.output_dir)
    calls = []

    def locked_twice_then_done(sweep_, cell, data, *, root):
        calls.append(cell.cell_id)
        if len(calls) < 3:
            raise runner_module.FolderLocked("held by another shard")
        (root / "cells" / cell.cell_id).mkdir(parents=True)
        (root / "cells" / cell.cell_id / RESULT_FILE).write_text(json.dumps({"fingerprint": fingerprint(sweep, cell, root)}))

    monkeypatch.setattr(runner_module, "run_cell", locked_twice_then_done)
    monkeypatch.setattr(runner_module, "BASE_WAIT_S", 0.0)
    runner_module._ensure_base(sweep, base, {}, root=root, failed=[])
    assert calls == ["base-s7"] * 3 and finished(sweep, root, base)

    shutil.rmtree(root / "cells")
    calls.clear()

    def fails(sweep_, cell, data, *, root):
        calls.append(cell.cell_id)
        raise RuntimeError("loss is nan")

    monkeypatch.setattr(runner_module, "run_cell", fails)
    failed = []
    for _ in range(2):
        with pytest.raises(RuntimeError, match="base base-s7, which this cell fine-tunes, failed"):
            runner_module._ensure_base(sweep, base, {}, root=root, failed=failed)
    assert calls == ["base-s7"]  # tried once; the second cell that needs it fails at once


def _metrics(value: float) -> dict:
    """A model's evaluation as the runner records it (ls_llm.sweep.evaluation.evaluation), every number `value`."""
    names = ("val_acc", "test_acc", "ece", "answer_token_acc", "answer_token_conf", "computed_ece",
             "computed_answer_token_acc", "computed_answer_token_conf")
    return {**dict.fromkeys(names, value), "n_val": 12, "n_test": 12, "answer_tokens": 30, "computed_answer_tokens": 30}


def test_adding_a_reading_makes_its_source_cells_stale_and_a_reading_row_holds_only_the_best_models_numbers(tmp_path):
    plain = load_sweep(_sweep_file(tmp_path, variants=[{"name": "ce", "objective": "ce"}]))
    root = Path(plain.output_dir)
    cell = next(c for c in plain.cells() if c.kind == "train")
    (root / "cells" / cell.cell_id).mkdir(parents=True)
    final = {"cell_id": cell.cell_id, "kind": "train", "variant": "ce", "noise_type": "box", "noise_rho": 0.4,
             "seed": 0, "teacher": None, "source": None, "base": "base-s7", **_metrics(0.4), "cell_seconds": 60.0, "train_seconds": 50.0, "curve": [{"step": 10, "val_acc": 0.6}],
             "fingerprint": fingerprint(plain, cell, root)}
    (root / "cells" / cell.cell_id / RESULT_FILE).write_text(json.dumps(final))
    assert finished(plain, root, cell)
    with_reading = load_sweep(_sweep_file(tmp_path))
    assert not finished(with_reading, root, cell)  # it kept no best model: it must run again

    base = with_reading.cells()[0]
    (root / "cells" / base.cell_id).mkdir(parents=True)
    (root / "cells" / base.cell_id / RESULT_FILE).write_text(json.dumps(
        {"cell_id": base.cell_id, "kind": "base", "variant": "base", "noise_type": "none", "noise_rho": 0.0,
         "seed": 7, **_metrics(0.01), "pretrain_val_acc": 0.9, "cell_seconds": 300.0,
         "fingerprint": fingerprint(with_reading, base, root)}))
    final |= {"fingerprint": fingerprint(with_reading, cell, root),  # (its base finished, recorded above)
              "early": {"step": 10, "tracked_val_acc": 0.6, **_metrics(0.45)}}
    (root / "cells" / cell.cell_id / RESULT_FILE).write_text(json.dumps(final))
    rows = {r["cell_id"]: r for r in collect(with_reading)}
    reading = rows[f"{cell.cell_id}@ce_early"]
    assert reading == {"cell_id": f"{cell.cell_id}@ce_early", "variant": "ce_early", "kind": "train",
                       "noise_type": "box", "noise_rho": 0.4, "seed": 0, "teacher": None, "source": None,
                       "base": "base-s7", "reading_of": cell.cell_id, "early_step": 10, **_metrics(0.45)}
    from ls_llm.sweep.report import compute_lines, summary_markdown, to_csv

    assert compute_lines(list(rows.values())).startswith("2 cells, 6.0 min")  # the reading is not a third cell
    summary = summary_markdown(with_reading, list(rows.values()))
    assert "2 of 2 cells finished" in summary.splitlines()[0]
    assert "| base-s7 | 90.0 | 1.0 | 1.0 | 5.0 |" in summary
    assert to_csv(list(rows.values())).splitlines()[0].endswith("reading_of,early_step,pretrain_val_acc")


def test_a_cell_whose_inputs_change_while_it_runs_is_not_recorded(tmp_path, monkeypatch):
    sweep = load_sweep(_sweep_file(tmp_path, bases=None, track=None, variants=[{"name": "ce", "objective": "ce"}]))
    cell = sweep.cells()[0]

    def edit_the_recipe(kind, argv, callbacks=()):
        (tmp_path / "ft.yaml").write_text((tmp_path / "ft.yaml").read_text().replace("max_steps: 30", "max_steps: 31"))

    monkeypatch.setattr(runner_module, "train_cell", edit_the_recipe)
    monkeypatch.setattr(runner_module, "evaluation", lambda *a, **k: {"val_acc": 0.0, "test_acc": 0.0})
    with pytest.raises(RuntimeError, match="changed while it ran"):
        runner_module.run_cell(sweep, cell, {}, root=Path(sweep.output_dir))
    assert not (Path(sweep.output_dir) / "cells" / cell.cell_id / RESULT_FILE).exists()


class _Saver:
    """Stands in for a model and a tokenizer: save_pretrained writes the step it was saved at."""

    step = 0

    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "step.txt").write_text(str(_Saver.step))


def test_the_kept_best_model_is_the_earliest_of_the_best_validation_steps(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ls_llm.sweep import tracking

    accuracies = iter([0.2, 0.5, 0.5, 0.7, 0.7, 0.1])
    monkeypatch.setattr(tracking, "measure", lambda *a, **k: {"val_acc": next(accuracies)})
    callback = tracking.TrackingCallback(every=10, out=tmp_path / "t.jsonl", validation=[{"problem": "p", "answer": "1"}],
                                         train_rows=[], manifest=tmp_path / "none.jsonl", keep_best=tmp_path / "best",
                                         keep_models=tmp_path / "tracked")
    callback.on_train_begin(None, None, None)
    saver = _Saver()
    for step in (10, 20, 30, 40, 50, 60):
        _Saver.step = step
        callback.on_step_end(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None, model=saver,
                             processing_class=saver)
    assert (tmp_path / "best/step.txt").read_text() == "40"
    assert sorted(p.name for p in (tmp_path / "tracked").iterdir()) == [f"step-{s}" for s in (10, 20, 30, 40, 50, 60)]
    assert [json.loads(line)["val_acc"] for line in (tmp_path / "t.jsonl").open()] == [0.2, 0.5, 0.5, 0.7, 0.7, 0.1]


def _reference_logprob(model, tokenizer, problem: str, completion: str) -> float:
    """One row, no padding, float64 weights: the sum of log p of the completion's tokens, the conversation written
    out as the shipped template writes it (not through apply_chat_template)."""
    prompt_text = f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prompt_text + f"{completion}<|im_end|>\n", add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt)] == prompt
    model64 = model.double()
    with torch.no_grad():
        logits = model64(input_ids=torch.tensor([ids])).logits[0]
    model.float()
    logp = torch.log_softmax(logits.double(), -1)
    return sum(float(logp[i - 1, ids[i]]) for i in range(len(prompt), len(ids)))


def test_completion_logprobs_equal_a_one_row_float64_reference():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(CONFIG))
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    problems = ["What is 3 * 4?", "Ann has 2 apples. Then Ann gets 5 more apples. How many apples does Ann have now?",
                "7 * 8 * 2"]
    completions = ["<think>\n3 * 4 = 12\n</think>\nThe answer is \\boxed{12}.", "\\boxed{7}",
                   "<think>\n7 * 8 = 56\n56 * 2 = 112\n</think>\nThe answer is \\boxed{113}."]
    got = completion_logprobs(model, tokenizer, problems, completions, batch_size=2)  # padding in the first batch
    want = [_reference_logprob(model, tokenizer, p, c) for p, c in zip(problems, completions)]
    assert got == pytest.approx(want, abs=1e-3)
    assert all(g < 0 for g in got)


@pytest.mark.slow
def test_a_sweep_pretrains_its_base_fine_tunes_it_and_reads_the_best_step(tmp_path, monkeypatch):
    from ls_llm.cli.sweep import main

    monkeypatch.chdir(REPO)
    path = _sweep_file(tmp_path)
    assert main([str(path), "--threads", "1"]) == 0
    out = tmp_path / "out"
    base = json.loads((out / "cells/base-s7/result.json").read_text())
    assert 0.0 <= base["pretrain_val_acc"] <= 1.0 and base["kind"] == "base"
    cell = out / "cells/train-ce-box0.4-s0"
    argv = json.loads((cell / "argv.json").read_text())
    assert f"--model_name_or_path={out / 'cells/base-s7/model'}" in argv
    result = json.loads((cell / "result.json").read_text())
    curve = result["curve"]
    assert [p["step"] for p in curve] == [10, 20, 30]
    assert all(-1e9 < p["tf_gap"] < 1e9 and 0 <= p["tf_injected"] <= 1 for p in curve)

    # The last point is the final model: its teacher-forced gap is recomputed here, one row at a time, from the
    # clean rows, the manifest and the noisy rows the run trained on.
    model = AutoModelForCausalLM.from_pretrained(cell / "model")
    tokenizer = AutoTokenizer.from_pretrained(cell / "model")
    sweep = load_sweep(path)
    noisy = {r["id"]: r["messages"][-1]["content"]
             for r in runner_module.noisy_train_rows(sweep, sweep.cells()[1], runner_module.data_paths(out / "data"),
                                                     tmp_path / "scratch")}
    clean = {json.loads(line)["id"]: json.loads(line) for line in (out / "data/train.jsonl").open()}
    manifest = [json.loads(line) for line in (cell / "noise_manifest.jsonl").open()]
    gaps = [_reference_logprob(model, tokenizer, clean[m["id"]]["problem"], noisy[m["id"]])
            - _reference_logprob(model, tokenizer, clean[m["id"]]["problem"], clean[m["id"]]["solution"])
            for m in manifest if m["corrupted"]][:30]
    assert gaps and all(noisy[m["id"]] != clean[m["id"]]["solution"] for m in manifest if m["corrupted"])
    assert curve[-1]["tf_gap"] == pytest.approx(sum(gaps) / len(gaps), abs=1e-3)
    assert curve[-1]["tf_injected"] == pytest.approx(sum(g > 0 for g in gaps) / len(gaps))

    # Early stopping: the kept model is the tracked model of the best validation step.
    best = best_point(curve)
    assert result["early"]["step"] == best["step"] and result["early"]["tracked_val_acc"] == best["val_acc"]
    kept = load_file(cell / "best/model.safetensors")
    tracked = load_file(cell / f"tracked/step-{best['step']}/model.safetensors")
    assert kept.keys() == tracked.keys() and all(torch.equal(kept[k], tracked[k]) for k in kept)
    rows = {r["cell_id"]: r for r in collect(sweep)}
    reading = rows["train-ce-box0.4-s0@ce_early"]
    assert reading["variant"] == "ce_early" and reading["test_acc"] == result["early"]["test_acc"]
    assert reading["early_step"] == best["step"] and "curve" not in reading and "train_seconds" not in reading
    report = (out / "report/results.md").read_text()
    assert "ce_early" in report and "teacher-forced" in report
    assert "tf_gap" in (out / "report/curves.csv").read_text().splitlines()[0]


def test_think_false_writes_bare_steps_and_leaves_earlier_sweeps_data_and_cells_as_they_were(tmp_path):
    from dataclasses import asdict

    from ls_llm.sweep.config import DataSpec
    from ls_llm.sweep.data import prepare_data
    from ls_llm.sweep.runner import TEMPLATE

    default = DataSpec(train_size=5, validation_size=2, test_size=2)
    assert default.settings() == {k: v for k, v in asdict(default).items() if k != "think"}  # as stamped before
    bare = DataSpec(train_size=5, validation_size=2, test_size=2, think=False)
    assert bare.settings()["think"] is False
    paths = prepare_data(bare, tmp_path / "bare", TEMPLATE)
    rows = [json.loads(line) for line in paths["train"].open()]
    assert rows and all("<think>" not in r["solution"] and r["solution"].endswith(f"\\boxed{{{r['answer']}}}.")
                        for r in rows)
    with pytest.raises(ValueError, match="another spec"):
        prepare_data(default, tmp_path / "bare", TEMPLATE)


def _distill(**changes) -> dict:
    return {"recipe": str(REPO / "recipes/demo/sweep_distill.yaml"), "teachers": ["ce"], "noise_rho": 0.4,
            "overrides": {"max_steps": 6, "tokenizer_name_or_path": str(TOKENIZER), "teacher_tokenizer_name_or_path":
                          str(TOKENIZER)}, "student_alone": {"max_steps": 6}, **changes}


def test_students_fine_tune_a_base_the_same_or_the_next(tmp_path):
    """E6: with `bases`, each student (and the student alone) starts from a pretrained base, the teacher's own or
    the next one (no pretraining shared with its teacher); nothing else may name the student's model."""
    for which, expected in (("same", ["base-s7", "base-s8"]), ("next", ["base-s8", "base-s7"])):
        sweep = load_sweep(_sweep_file(tmp_path, seeds=[0, 1], bases={"recipe": "pre.yaml", "seeds": [7, 8]},
                                       track=None, variants=[{"name": "ce", "objective": "ce"}],
                                       distill=_distill(student_base=which)))
        cells = {c.cell_id: c for c in sweep.cells()}
        root = Path(sweep.output_dir)
        for seed, base in zip((0, 1), expected, strict=True):
            assert cells[f"train-ce-box0.4-s{seed}"].base == f"base-s{7 + seed}"  # the teacher: its seed's base
            for cell_id in (f"distill-ce-box0.4-s{seed}", f"student-alone-box0.4-s{seed}"):
                assert cells[cell_id].base == base and base in cells[cell_id].needs, (which, cell_id)
                argv = runner_module._argv(sweep, cells[cell_id], root)
                assert f"--model_name_or_path={root / 'cells' / base / 'model'}" in argv, argv
                assert "--model_init_from_config=false" in argv
    for change, match in (({"student_base": "other"}, "student_base must be 'same' or 'next'"),
                          ({"student_alone": {"model_name_or_path": "x"}}, "distill.student_alone.model_name_or_path"),
                          ({"overrides": {"model_init_from_config": True}}, "distill.overrides.model_init_from_config")):
        with pytest.raises(SweepError, match=match):
            load_sweep(_sweep_file(tmp_path, seeds=[0, 1], bases={"recipe": "pre.yaml", "seeds": [7, 8]}, track=None,
                                   variants=[{"name": "ce", "objective": "ce"}], distill=_distill(**change)))
    with pytest.raises(SweepError, match="next needs `bases:` with two or more"):
        load_sweep(_sweep_file(tmp_path, track=None, variants=[{"name": "ce", "objective": "ce"}],
                               distill=_distill(student_base="next")))


def test_a_student_distilled_from_a_base_runs(tmp_path):
    sweep = load_sweep(_sweep_file(tmp_path, bases={"recipe": "pre.yaml", "seeds": [7, 8],
                                                    "data": {"train_size": 100, "validation_size": 8, "test_size": 8}},
                                   track=None, variants=[{"name": "ce", "objective": "ce"}],
                                   overrides={"tokenizer_name_or_path": str(TOKENIZER), "max_steps": 6},
                                   distill=_distill(student_base="next")))
    assert runner_module.run_sweep(sweep) == []
    rows = {r["cell_id"]: r for r in collect(sweep)}
    assert {"base-s7", "base-s8", "train-ce-box0.4-s0", "distill-ce-box0.4-s0", "student-alone-box0.4-s0"} == set(rows)
    root = Path(sweep.output_dir)
    argv = json.loads((root / "cells/distill-ce-box0.4-s0/argv.json").read_text())
    assert f"--model_name_or_path={root / 'cells/base-s8/model'}" in argv


def test_a_cell_another_sweep_made_in_a_shared_folder_is_never_redone_over(tmp_path):
    """E5 and E6 share E4's output folder (its bases). A cell id both sweeps have, with other settings, would be
    stale to each and redone over the other's result: refused, naming the sweep that made it."""
    sweep = load_sweep(_sweep_file(tmp_path, bases=None, track=None, variants=[{"name": "ce", "objective": "ce"}]))
    cell = sweep.cells()[0]
    folder = Path(sweep.output_dir) / "cells" / cell.cell_id
    folder.mkdir(parents=True)
    (folder / RESULT_FILE).write_text(json.dumps({"cell_id": cell.cell_id, "sweep": "e4_perturb", "fingerprint": "x"}))
    with pytest.raises(RuntimeError, match="was made by sweep 'e4_perturb'.*distinct cell ids"):
        runner_module.run_cell(sweep, cell, {}, root=Path(sweep.output_dir))
    assert json.loads((folder / RESULT_FILE).read_text())["sweep"] == "e4_perturb"  # untouched
