"""A sweep cell's fingerprint covers everything it reads (issue #23, case 4): the content of the files its keys
name (model config.json, tokenizer, data, an include of its recipe) and its parents' fingerprints (a plain distill
cell's teacher, an `init_from` source), so a change to any of them makes the cell stale instead of `done`."""

import json
import shutil
from pathlib import Path

import yaml

from ls_llm.sweep import load_sweep
from ls_llm.sweep.runner import RESULT_FILE, fingerprint, finished

REPO = Path(__file__).resolve().parents[2]


def _sweep(tmp_path, **changes):
    model = tmp_path / "tiny-qwen2"
    if not model.exists():
        shutil.copytree(REPO / "recipes/demo/tiny-qwen2", model)
        shutil.copytree(REPO / "ls_llm/data/assets/arith_tokenizer", tmp_path / "tokenizer")
        (tmp_path / "base.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nmax_steps: 5\n")
        (tmp_path / "d.yaml").write_text(f"include: {REPO / 'recipes/demo/sweep_base.yaml'}\nobjective: ce\n")
    raw = {"name": "t", "recipe": str(tmp_path / "base.yaml"), "output_dir": str(tmp_path / "out"),
           "noise_type": "answer", "noise_rho": [0.4], "seeds": [0],
           "overrides": {"model_name_or_path": str(model / "config.json"),
                         "tokenizer_name_or_path": str(tmp_path / "tokenizer")},
           "variants": [{"name": "ce", "objective": "ce"}, {"name": "ls0.3", "objective": "label_smoothing",
                                                            "alpha": 0.3},
                        {"name": "ce_more", "init_from": "ce", "objective": "ce"}],
           "distill": {"recipe": str(tmp_path / "d.yaml"), "teachers": ["ls0.3"], "noise_rho": 0.4}, **changes}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_sweep(path)


def _cell(sweep, cell_id):
    return next(c for c in sweep.cells() if c.cell_id == cell_id)


def _finish(sweep, root):
    """Record every cell as done under the fingerprints the sweep has now (parents first, as the runner does)."""
    for cell in sweep.cells():
        folder = root / "cells" / cell.cell_id
        (folder / "model").mkdir(parents=True, exist_ok=True)
        (folder / "model" / "model.safetensors").write_bytes(b"trained")  # inside the sweep: not a read input
        (folder / RESULT_FILE).write_text(json.dumps({"fingerprint": fingerprint(sweep, cell, root)}))


def test_model_config_named_in_overrides_makes_every_cell_stale(tmp_path):
    sweep = _sweep(tmp_path)
    root = Path(sweep.output_dir)
    _finish(sweep, root)
    assert all(finished(sweep, root, c) for c in sweep.cells())
    config = tmp_path / "tiny-qwen2" / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 3', '"num_hidden_layers": 4'))
    assert '"num_hidden_layers": 4' in config.read_text()
    assert not any(finished(sweep, root, c) for c in sweep.cells())


def test_tokenizer_and_recipe_include_are_read_inputs(tmp_path):
    sweep = _sweep(tmp_path)
    root = Path(sweep.output_dir)
    _finish(sweep, root)
    vocab = next((tmp_path / "tokenizer").glob("tokenizer.json"))
    vocab.write_text(vocab.read_text() + " ")
    assert not any(finished(sweep, root, c) for c in sweep.cells())
    _finish(sweep, root)
    (tmp_path / "base.yaml").write_text((tmp_path / "base.yaml").read_text() + "warmup_steps: 3\n")
    assert not any(finished(sweep, root, c) for c in sweep.train_cells())


def test_changed_teacher_makes_its_plain_distill_cell_stale(tmp_path):
    sweep = _sweep(tmp_path)
    root = Path(sweep.output_dir)
    _finish(sweep, root)
    distill = next(c for c in sweep.cells() if c.kind == "distill")
    assert distill.teacher == "train-ls0.3-answer0.4-s0" and finished(sweep, root, distill)
    changed = _sweep(tmp_path, variants=[{"name": "ce", "objective": "ce"},
                                         {"name": "ls0.3", "objective": "label_smoothing", "alpha": 0.6},
                                         {"name": "ce_more", "init_from": "ce", "objective": "ce"}])
    assert not finished(changed, root, _cell(changed, distill.teacher))
    assert not finished(changed, root, _cell(changed, distill.cell_id))  # before the teacher re-ran, too
    assert finished(changed, root, _cell(changed, "train-ce-answer0.4-s0"))  # untouched cells stay done


def test_rerun_parent_makes_its_init_from_child_stale(tmp_path):
    sweep = _sweep(tmp_path)
    root = Path(sweep.output_dir)
    _finish(sweep, root)
    child = _cell(sweep, "train-ce_more-answer0.4-s0")
    assert child.source == "train-ce-answer0.4-s0" and finished(sweep, root, child)
    (root / "cells" / child.source / RESULT_FILE).write_text(json.dumps({"fingerprint": "re-run-elsewhere"}))
    assert not finished(sweep, root, child)


def test_files_inside_the_sweep_folder_do_not_change_fingerprints(tmp_path):
    """A cell's own output and its parents' models are not read inputs (the parents' fingerprints cover them)."""
    sweep = _sweep(tmp_path)
    root = Path(sweep.output_dir)
    _finish(sweep, root)
    before = {c.cell_id: fingerprint(sweep, c, root) for c in sweep.cells()}
    for cell in sweep.cells():
        (root / "cells" / cell.cell_id / "model" / "model.safetensors").write_bytes(b"trained again")
    assert before == {c.cell_id: fingerprint(sweep, c, root) for c in sweep.cells()}


def test_sweep_override_of_the_wrong_type_is_refused_before_any_cell(tmp_path):
    import pytest

    from ls_llm.sweep.runner import run_sweep

    sweep = _sweep(tmp_path, variants=[{"name": "ce", "objective": "ce", "dataset_system_prompt": ["hello", "world"]}],
                   distill=None)
    with pytest.raises(ValueError, match=r"variant 'ce': dataset_system_prompt must be str, got \['hello', 'world'\]"):
        run_sweep(sweep)
    assert not Path(sweep.output_dir).exists()


def test_unreadable_recipe_of_a_cell_is_one_line_in_list(tmp_path, capsys):
    from ls_llm.cli.sweep import main

    sweep = _sweep(tmp_path, distill=None)
    _finish(sweep, Path(sweep.output_dir))  # a finished cell's fingerprint is taken to list it
    (tmp_path / "base.yaml").write_text("include: nowhere.yaml\n")
    assert main([str(tmp_path / "sweep.yaml"), "--list"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nowhere.yaml" in err and "included by" in err, err
    assert sweep.cells()
