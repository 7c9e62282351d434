"""Sweep files: grid expansion, sharding, bad input named; the report's statistics and selection."""

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import yaml

from ls_llm.sweep import SweepError, load_sweep
from ls_llm.sweep.report import (
    paired_table,
    picked_on_validation,
    student_table,
    summary_markdown,
    to_csv,
)
from ls_llm.sweep.runner import _result_by_id, cell_argv
from ls_llm.sweep.shards import _SHARD_COST, shard_cells
from ls_llm.sweep.stats import mean_std

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "name": "t", "recipe": str(REPO / "recipes/demo/sweep_base.yaml"), "output_dir": "out",
    "noise_type": "answer", "noise_rho": [0.0, 0.4], "seeds": [0, 1],
    "variants": [{"name": "ce", "objective": "ce"}, {"name": "ls", "objective": "label_smoothing", "alpha": -0.1}],
}


def _write(tmp_path, **changes) -> Path:
    raw = {**BASE, **changes}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_grid_ids_are_unique_and_seed_major(tmp_path):
    sweep = load_sweep(_write(tmp_path, noise_rho=[0.0, 0.2, 0.4], seeds=[0, 1, 2]))
    assert len(sweep.train_cells()) == 2 * 3 * 3 and sweep.noise_rho == (0.0, 0.2, 0.4)
    ids = [c.cell_id for c in sweep.cells()]
    assert len(set(ids)) == len(ids)
    # seed-major: every cell of seed 0 comes before any cell of seed 1
    seeds = [c.seed for c in sweep.cells()]
    assert seeds == sorted(seeds)


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_reads_as_ls_llm_sweep_reads_it(path, monkeypatch, tmp_path):
    """As `ls-llm sweep` would, short of training: load the file, check its override types, and parse the command
    line of one cell per (variant or student, noise type, rate) with the argument types of the run the cell is
    (`ls-llm train` or the distill command), so a variant key no recipe field holds, or a value out of its range,
    fails here and not an hour into the sweep."""
    from ls_llm.objectives import build_objective
    from ls_llm.sweep.override_types import check_override_types
    from ls_llm.trainers.recipe import parse_recipe
    from ls_llm.trainers.run import distill_arg_types, sft_arg_types

    monkeypatch.chdir(REPO)
    sweep = load_sweep(path)
    assert Path(sweep.recipe).is_file() and sweep.cells()
    if sweep.distill is not None:
        assert Path(sweep.distill.recipe).is_file()
    check_override_types(sweep)
    data = {"train": tmp_path / "train.jsonl"}
    seen = set()
    for cell in sweep.cells():
        key = (cell.kind, cell.variant, cell.noise_type, cell.noise_rho)
        if key in seen or cell.kind == "traces":  # a traces cell runs no recipe (generation and the audit)
            continue
        seen.add(key)
        model_dir = tmp_path / "cells" / cell.cell_id / "model"
        argv = cell_argv(sweep, cell, data, model_dir=model_dir, teacher_dir=tmp_path / "teacher")
        distill = cell.kind == "distill"
        *_, args, _ = parse_recipe([*argv, "--use_cpu", "true"], distill_arg_types() if distill else sft_arg_types())
        assert args.output_dir == str(model_dir) and args.seed == cell.seed
        build_objective(args.objective, **args.objective_kwargs())
        args.routing_plan()
        if cell.kind == "train":
            wanted = sweep.variant(cell.variant).recipe_keys(cell.noise_rho).get("objective")
            assert wanted is None or args.objective == wanted, (cell.cell_id, args.objective)
        if distill:
            assert args.cached or args.teacher_model_name_or_path == str(tmp_path / "teacher")
    assert seen


def test_shards_partition_and_keep_teacher(tmp_path):
    recipe = tmp_path / "d.yaml"
    recipe.write_text("objective: ce\n")
    sweep = load_sweep(_write(tmp_path, distill={"recipe": str(recipe), "teachers": ["ce", "ls"], "noise_rho": 0.4,
                                                 "student_alone": {"max_steps": 7}}))
    assert [c.cell_id for c in sweep.distill_cells() if c.kind == "student"] == [
        "student-alone-answer0.4-s0", "student-alone-answer0.4-s1"]
    shards = [shard_cells(sweep, i, 3) for i in range(3)]
    flat = [c.cell_id for s in shards for c in s]
    assert sorted(flat) == sorted(c.cell_id for c in sweep.cells())
    for shard in shards:
        ids = [c.cell_id for c in shard]
        for cell in shard:
            if cell.kind == "distill":
                assert cell.teacher in ids and ids.index(cell.teacher) < ids.index(cell.cell_id)


def test_shards_balance_cost_not_count():
    # Under round-robin, paper_cpu's teachers (ce and ls0.3 at 0.4, every seed) and so all six
    # distillation cells fell on one shard; the cost-balanced split spreads them.
    sweep = load_sweep(REPO / "sweeps/paper_cpu.yaml")
    shards = [shard_cells(sweep, i, 2) for i in range(2)]
    loads = [sum(_SHARD_COST[c.kind] for c in shard) for shard in shards]
    assert abs(loads[0] - loads[1]) <= max(_SHARD_COST.values())
    assert all(any(c.kind == "distill" for c in shard) for shard in shards)


def test_cell_argv_passes_negative_values_and_fixed_keys(tmp_path):
    sweep = load_sweep(_write(tmp_path))
    cell = sweep.train_cells()[-1]  # ls, rate 0.4, seed 1
    argv = cell_argv(sweep, cell, {"train": Path("d/train.jsonl")}, model_dir=Path("m"))
    assert argv[0] == BASE["recipe"]
    assert "--alpha=-0.1" in argv and "--noise_rho=0.4" in argv and "--seed=1" in argv
    assert "--noise_seed=1" in argv and "--output_dir=m" in argv and "--dataset_name=d/train.jsonl" in argv


def test_student_alone_cell_is_a_train_run_with_the_student_keys(tmp_path):
    recipe = tmp_path / "d.yaml"
    recipe.write_text("objective: ce\n")
    sweep = load_sweep(_write(tmp_path, overrides={"max_steps": 5, "learning_rate": 0.1},
                              distill={"recipe": str(recipe), "teachers": ["ce"], "noise_rho": 0.4,
                                       "student_alone": {"model_name_or_path": "student.json", "max_steps": 9}}))
    cell = next(c for c in sweep.distill_cells() if c.kind == "student")
    argv = cell_argv(sweep, cell, {"train": Path("d/train.jsonl")}, model_dir=Path("m"))
    assert argv[0] == BASE["recipe"]  # the train recipe, not the distillation one
    assert "--model_name_or_path=student.json" in argv and "--learning_rate=0.1" in argv
    assert "--max_steps=9" in argv and "--max_steps=5" not in argv and "--noise_rho=0.4" in argv
    assert not any("teacher" in a for a in argv)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"noise_rho": [0.0, 1.5]}, "noise_rho"),
        ({"noise_type": "nope"}, "noise_type must be one of"),
        ({"noise_type": ["answer", "answer"]}, "noise_type must be one of"),
        ({"seeds": [0, 0]}, "seeds must be distinct"),
        ({"variants": [{"name": "a b"}]}, "variants\\[0\\].name"),
        ({"variants": [{"name": "x"}, {"name": "x"}]}, "'x' is used twice"),
        ({"recipe": "nope.yaml"}, "recipe 'nope.yaml'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"data": {"train_sz": 3}}, "data: unknown key 'train_sz'"),
        ({"select": {"ls": ["ce"]}}, "select.ls"),
        ({"distill": {"recipe": "x.yaml", "teachers": ["nope"], "noise_rho": 0.4}}, "distill.teachers"),
        ({"distill": {"recipe": str(REPO / "recipes/demo/sweep_distill.yaml"), "teachers": ["ce"], "noise_rho": 0.4,
                      "student_alone": [1]}}, "distill.student_alone must be a mapping"),
    ],
)
def test_bad_sweep_named(tmp_path, changes, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(_write(tmp_path, **changes))


@pytest.mark.parametrize(
    ("raw", "message"),
    [  # rho's old names in a sweep file: each refused with one line naming the new one
        ({"noise_rates": [0.0, 0.4]}, r"^noise_rates: renamed noise_rho"),
        ({"noise_rates": {"answer": [0.4]}, "noise_rho": None}, r"^noise_rates: renamed noise_rho"),
        ({"variants": [{"name": "ce", "objective": "ce", "noise_rates": [0.4]}]},
         r"^variants\[0\]\.noise_rates: renamed noise_rho"),
        ({"variants": [{"name": "fc", "objective": "forward_correction", "noise_rate": "${noise_rate}"}]},
         r"^variants\[0\]\.noise_rate: the placeholder \$\{noise_rate\} was renamed \$\{noise_rho\}"),
        ({"variants": [{"name": "r", "segment_objectives": {"answer": {"noise_rate": "${noise_rate}"}}}]},
         r"^variants\[0\]\.segment_objectives\.answer\.noise_rate: the placeholder"),
        ({"overrides": {"run_name": "x-${noise_rate}"}}, r"^overrides\.run_name: the placeholder"),
        ({"distill": {"recipe": str(REPO / "recipes/demo/sweep_distill.yaml"), "teachers": ["ce"], "noise_rate": 0.4}},
         r"^distill\.noise_rate: renamed distill\.noise_rho"),
    ],
)
def test_old_noise_rate_names_are_refused_naming_noise_rho(tmp_path, raw, message):
    with pytest.raises(SweepError, match=message) as err:
        load_sweep(_write(tmp_path, **raw))
    assert "\n" not in str(err.value)


def test_noise_rho_placeholder_and_distill_key(tmp_path):
    recipe = str(REPO / "recipes/demo/sweep_distill.yaml")
    sweep = load_sweep(_write(tmp_path, variants=[
        {"name": "ce", "objective": "ce"},
        {"name": "fc", "objective": "forward_correction", "noise_rate": "${noise_rho}", "run_name": "r${noise_rho}"}],
        distill={"recipe": recipe, "teachers": ["fc"], "noise_rho": 0.4}))
    assert sweep.variant("fc").recipe_keys(0.4) == {"objective": "forward_correction", "noise_rate": 0.4,
                                                    "run_name": "r0.4"}
    assert {c.noise_rho for c in sweep.distill_cells()} == {0.4} and sweep.noise_rho == (0.0, 0.4)


def test_a_result_written_before_the_rename_reads_as_noise_rho(tmp_path):
    # A sweep's finished cells keep their result.json (same fingerprint): one written before rho was named
    # noise_rho everywhere is read with the new name, so its report still has the column.
    folder = tmp_path / "cells" / "train-ce-answer0.4-s0"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"cell_id": "train-ce-answer0.4-s0", "noise_rate": 0.4}))
    assert _result_by_id(tmp_path, "train-ce-answer0.4-s0") == {"cell_id": "train-ce-answer0.4-s0", "noise_rho": 0.4}


def test_cli_bad_input_exit_2(tmp_path, capsys):
    from ls_llm.cli.sweep import main

    assert main([str(_write(tmp_path, noise_rho=[2]))]) == 2
    assert "noise_rho" in capsys.readouterr().err
    sweep_file = _write(tmp_path, output_dir=str(tmp_path / "out"))
    assert main([str(sweep_file), "--only", "train-ce-answer0-s0,train-nope-answer0-s0"]) == 2
    assert "no cell 'train-nope-answer0-s0'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _row(variant, rate, seed, val, test, kind="train"):
    return {"cell_id": f"{kind}-{variant}-answer{rate:g}-s{seed}", "kind": kind, "variant": variant, "teacher": None,
            "noise_type": "answer", "noise_rho": rate, "seed": seed, "val_acc": val, "test_acc": test, "ece": 0.1, "cell_seconds": 60.0,
            "computed_ece": 0.2}


def test_mean_std_is_sample_std():
    values = [0.2, 0.5, 0.9]
    assert mean_std(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)))
    assert mean_std([0.3]) == (0.3, 0.0)


def test_selection_uses_validation_not_test():
    rows = [_row("a", 0.4, 0, val=0.9, test=0.1), _row("b", 0.4, 0, val=0.5, test=0.8),
            _row("a", 0.4, 1, val=0.2, test=0.9), _row("b", 0.4, 1, val=0.6, test=0.3)]
    picked = picked_on_validation(rows, {"fam": ["a", "b"]})
    assert [(p["seed"], p["picked"], p["test_acc"]) for p in picked] == [(0, "a", 0.1), (1, "b", 0.3)]
    assert {p["variant"] for p in picked} == {"fam (val-picked)"}


def test_markdown_marks_partial_and_missing(tmp_path):
    sweep = load_sweep(_write(tmp_path))
    rows = [_row("ce", 0.0, 0, 0.5, 0.4), _row("ce", 0.0, 1, 0.5, 0.6), _row("ce", 0.4, 0, 0.5, 0.3)]
    text = summary_markdown(sweep, rows)
    assert "3 of 8 cells finished" in text
    # 40 and 60: mean 50, sd 14.14, t(0.975, 1) 12.706: half-width 127.06
    assert "| ce | 50.0 [-77.1, 177.1] | 30.0 (n=1) |" in text
    assert "- train-ls-answer0.4-s1" in text
    assert "3 cells, 3.0 min" in text and "train: 60 s/cell" in text
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r["test_acc"] for r in parsed] == ["0.4", "0.6", "0.3"]


def test_paired_table_differences_per_seed():
    rows = [_row("ce", 0.4, 0, 0.5, 0.30), _row("ce", 0.4, 1, 0.5, 0.50), _row("ls", 0.4, 0, 0.5, 0.60),
            _row("ls", 0.4, 1, 0.5, 0.40), _row("ls", 0.6, 0, 0.5, 0.9)]  # no ce at 0.6: nothing to pair
    lines = paired_table(rows, "ce", (0.4, 0.6), n_seeds=2).splitlines()
    # differences +30 and -10 points: mean 10, sample std 28.28; t(0.975, 1) = 12.706, half-width
    # 12.706 * 28.28 / sqrt(2) = 254.1
    assert lines[2] == "| ls | +10.0 [-244.1, +264.1] | — |"
    assert len(lines) == 3


def test_student_table_pairs_teachers_and_puts_the_lone_student_last():
    teacher = _row("ce", 0.4, 0, 0.5, 0.30)
    rows = [_row("alone", 0.4, 0, 0.2, 0.10, kind="student"), teacher,
            {**_row("ce", 0.4, 0, 0.4, 0.50, kind="distill"), "teacher": teacher["cell_id"]},
            {**_row("ce", 0.4, 1, 0.4, 0.70, kind="distill"), "teacher": "train-ce-answer0.4-s1"}]  # teacher missing
    lines = student_table(rows, n_seeds=2).splitlines()
    assert lines[2].startswith("| ce | 30.0 (n=1) | 60.0 [-67.1, 187.1] | 40.0 [40.0, 40.0] |")
    assert lines[3].startswith("| none (student trained alone) | — | 10.0 (n=1) | 20.0 (n=1) |")
    assert len(lines) == 4


def test_fingerprint_changes_with_what_the_cell_runs(tmp_path):
    from ls_llm.sweep.runner import fingerprint

    sweep = load_sweep(_write(tmp_path))
    cell = sweep.train_cells()[-1]
    same = fingerprint(load_sweep(_write(tmp_path)), cell, tmp_path)
    assert fingerprint(sweep, cell, tmp_path) == same
    variants = [{"name": "ce", "objective": "ce"}, {"name": "ls", "objective": "label_smoothing", "alpha": -0.2}]
    assert fingerprint(load_sweep(_write(tmp_path, variants=variants)), cell, tmp_path) != same
    assert fingerprint(load_sweep(_write(tmp_path, eval={"max_gen_toks": 9})), cell, tmp_path) != same


def test_import_does_not_load_torch_trl_or_lm_eval():
    # ls_llm/sweep/__init__.py's promise: only the two modules that run models (tracking, calibration) import torch
    # at the top, and the runner imports them inside the functions that use them; every other module, and the
    # CLI (`--report`, `--list`), loads none of these.
    import subprocess
    import sys

    code = ("import importlib, pkgutil, sys, ls_llm.sweep, ls_llm.cli.sweep\n"
            "for m in pkgutil.iter_modules(ls_llm.sweep.__path__):\n"
            "    if m.name not in ('tracking', 'calibration'):\n"
            "        importlib.import_module('ls_llm.sweep.' + m.name)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'lm_eval', 'vllm', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_several_noise_types_expand_and_stay_apart_in_tables(tmp_path):
    sweep = load_sweep(_write(tmp_path, noise_type=["answer", "perturb"], select={"fam": ["ce", "ls"]}))
    assert len(sweep.train_cells()) == 2 * 2 * 2 * 2  # types x variants x rates x seeds
    assert {c.noise_type for c in sweep.train_cells()} == {"answer", "perturb"}
    rows = []
    for i, cell in enumerate(sweep.train_cells()):
        rows.append({**_row(cell.variant, cell.noise_rho, cell.seed, val=i / 100, test=i / 100),
                     "noise_type": cell.noise_type, "cell_id": cell.cell_id})
    text = summary_markdown(sweep, rows)
    answer = text.index("## Clean test accuracy (`answer` noise)")
    perturb = text.index("## Clean test accuracy (`perturb` noise)")
    assert answer < perturb
    # each section holds its own type's rows only, and the val-picked family of that type
    answer_part = text[answer:perturb]
    assert "| fam (val-picked) |" in answer_part and "| ce |" in answer_part
    # the endpoint table has one column per noise type
    assert "| variant (− reference) | `answer` noise | `perturb` noise |" in text


def _endpoint_rows():
    rows = []
    for seed, gain in ((0, 0.1), (1, 0.3)):
        for rate in (0.0, 0.4):
            rows += [_row("ce", rate, seed, 0.5, 0.5), _row("ls", rate, seed, 0.5, 0.5 + gain)]
    curve = [{"step": 5, "val_acc": 0.3, "mem_injected": 0.1}, {"step": 10, "val_acc": 0.6, "mem_injected": 0.4}]
    return [{**r, "curve": curve} if r["noise_rho"] > 0 else r for r in rows]


def test_report_headings_are_neutral_unless_the_sweep_file_names_its_endpoint(tmp_path):
    text = summary_markdown(load_sweep(_write(tmp_path)), _endpoint_rows())
    assert "## Test-accuracy gain over the reference, averaged over the noisy rates\n" in text
    assert "### Memorisation and speed, noise 0.4 (ls_llm.sweep.memorisation)\n" in text
    assert "Primary endpoint" not in text and "pre-registered" not in text
    report = {"endpoint": "Primary endpoint", "memorisation_note": "the pre-registered readings"}
    text = summary_markdown(load_sweep(_write(tmp_path, report=report)), _endpoint_rows())
    assert "## Primary endpoint: test-accuracy gain over the reference, averaged over the noisy rates\n" in text
    assert "### Memorisation and speed, noise 0.4 (the pre-registered readings, ls_llm.sweep.memorisation)\n" in text


@pytest.mark.parametrize(("report", "message"), [
    ({"endpont": "x"}, "report: unknown key 'endpont'"),
    ({"endpoint": ""}, "report.endpoint must be a non-empty string"),
    ({"student_endpoint": 3}, "report.student_endpoint must be a non-empty string, got 3"),
    ("Primary", "report must be a mapping"),
])
def test_bad_report_keys_are_named(tmp_path, report, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(_write(tmp_path, report=report))


def test_paired_table_reference_does_not_depend_on_hash_order(tmp_path):
    # The per-noise-type paired table's default reference was the first of a *set* of variant names: with a
    # variant compared with its own control, its rows were labelled after whichever name the hash put first.
    import json
    import os
    import subprocess
    import sys

    variants = [{"name": "ce", "objective": "ce"}, {"name": "more", "objective": "ce", "max_steps": 5},
                {"name": "nls", "objective": "label_smoothing", "alpha": -0.1, "compare_with": "more"}]
    path = _write(tmp_path, variants=variants, noise_rho=[0.4])
    rows = [_row(v, 0.4, s, 0.5, 0.5 + i / 10 + s / 100) for i, v in enumerate(("ce", "more", "nls")) for s in (0, 1)]
    code = ("import json, sys\nfrom ls_llm.sweep import load_sweep\nfrom ls_llm.sweep.report import summary_markdown\n"
            "text = summary_markdown(load_sweep(sys.argv[1]), json.loads(sys.argv[2]))\n"
            "start = text.index('### Gain over ce')\nprint(text[start:text.index('###', start + 3)])")
    outs = {subprocess.run([sys.executable, "-c", code, str(path), json.dumps(rows)], capture_output=True, text=True,
                           check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in range(6)}
    assert len(outs) == 1
    lines = [line for line in outs.pop().splitlines() if line]
    assert lines[1] == "| variant − its reference | noise 0.4 |"
    assert [line.split(" |")[0] for line in lines[3:]] == ["| more", "| nls − more"]


def test_report_dir_lets_two_sweeps_share_an_output_folder(tmp_path, capsys):
    """Sweeps sharing an output folder (and its pretrained bases) each write their report to their own folder."""
    from ls_llm.cli.sweep import main

    for name, report in (("a", None), ("b", {"dir": "report-b"})):
        sweep_file = _write(tmp_path, name=name, output_dir=str(tmp_path / "out"), **({"report": report} if report else {}))
        assert main([str(sweep_file), "--report"]) == 0
    assert (tmp_path / "out/report/results.md").read_text().startswith("# Sweep `a`")
    assert (tmp_path / "out/report-b/results.md").read_text().startswith("# Sweep `b`")
    assert main([str(_write(tmp_path, report={"dir": "../elsewhere"}))]) == 2
    assert "report.dir must be a folder name" in capsys.readouterr().err
