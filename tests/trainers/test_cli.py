"""`ls-llm train`: bad recipes stop before training (message naming the problem, exit 2, nothing written);
a tiny recipe trains and prints its summary."""

import json
import shutil
from pathlib import Path

import pytest

from ls_llm.cli.train import main


def _argv(h, tmp_path, *extra, **paths):
    from ls_llm.data.synthetic import tokenizer_path

    defaults = {
        "model_name_or_path": str(h.FIXTURES / "tiny-qwen2" / "config.json"),
        "tokenizer_name_or_path": tokenizer_path(),
        "dataset_name": str(h.FIXTURES / "arith_train.jsonl"),
        "output_dir": str(tmp_path / "run"),
    }
    defaults.update(paths)
    argv = [str(h.FIXTURES / "tiny.yaml")]
    for key, value in defaults.items():
        argv += [f"--{key}", value]
    return argv + list(extra)


def _tokenizer_without_template(tmp_path):
    from ls_llm.data.synthetic import tokenizer_path

    dst = tmp_path / "tok"
    shutil.copytree(tokenizer_path(), dst)
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((dst / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg))
    return str(dst)


def _bad_dataset(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"foo": "no messages here"}\n' * 4)
    return str(path)


BAD_INPUTS = {
    "unknown_key": (lambda t: (["--not_a_field", "1"], {}), "not_a_field"),
    "out_of_range": (lambda t: (["--alpha", "1.5"], {}), "alpha"),
    "renamed_param": (lambda t: (["--objective", "forward_correction", "--noise_rate", "1.2"], {}),
                      "noise_rate"),
    "smoothing_factor": (lambda t: (["--label_smoothing_factor", "0.1"], {}), "label_smoothing"),
    "dataset_fields": (lambda t: (["--dataset_on_missing", "error"], {"dataset_name": _bad_dataset(t)}), "messages"),
    "no_chat_template": (lambda t: ([], {"tokenizer_name_or_path": _tokenizer_without_template(t)}), "chat template"),
    "missing_model": (lambda t: ([], {"model_name_or_path": str(t / "nope" / "config.json")}), "model_name_or_path"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_stops_before_training(h, tmp_path, capsys, case):
    make, expected = BAD_INPUTS[case]
    extra, paths = make(tmp_path)
    code = main(_argv(h, tmp_path, *extra, **paths))
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert not (tmp_path / "run").exists()


def test_unknown_recipe_key_in_yaml(h, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"include: {h.FIXTURES / 'tiny.yaml'}\nlearnin_rate: 0.1\n")
    argv = _argv(h, tmp_path)
    argv[0] = str(recipe)
    assert main(argv) == 2
    assert "learnin_rate" in capsys.readouterr().err


def test_recipe_trains_and_summarizes(h, tmp_path, capsys):
    assert main(_argv(h, tmp_path, "--max_steps", "2", "--save_strategy", "no")) == 0
    out = capsys.readouterr().out
    assert "objective=label_smoothing" in out and "model saved to" in out
    assert (Path(tmp_path / "run") / "model.safetensors").exists()


def _weighted_file(tmp_path, bad_row: int, value) -> str:
    """The weighted fixture with one row's consensus_share replaced (raw JSON text, so NaN / Infinity stay)."""
    lines = (Path(__file__).resolve().parents[1] / "fixtures" / "trainers" / "arith_weighted.jsonl").read_text().splitlines()
    row = json.loads(lines[bad_row - 1])
    if value is _MISSING:
        row.pop("consensus_share")
        text = json.dumps(row)
    else:
        row["consensus_share"] = "@@"
        text = json.dumps(row).replace('"@@"', value)
    lines[bad_row - 1] = text
    path = tmp_path / "weighted.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


_MISSING = object()
BAD_WEIGHTS = {  # case -> (row, raw JSON value, what the message must show)
    "negative": (3, "-0.5", "-0.5"),
    "nan": (5, "NaN", "nan"),
    "inf": (2, "Infinity", "inf"),
    "text": (7, '"high"', "'high'"),
    "bool": (4, "true", "True"),
    "missing": (6, _MISSING, "None"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEIGHTS))
def test_bad_trace_weight_stops_before_training(h, tmp_path, capsys, case):
    row, value, shown = BAD_WEIGHTS[case]
    data = _weighted_file(tmp_path, row, value)
    code = main(_argv(h, tmp_path, "--trace_weight_column", "consensus_share", dataset_name=data))
    err = capsys.readouterr().err
    assert code == 2, err
    line = err.strip().splitlines()[-1]  # earlier lines: datasets' progress bars
    assert "Traceback" not in err, err
    assert data in line and f"row {row} " in line and shown in line, line
    assert not (tmp_path / "run").exists()


def test_trace_weight_column_that_does_not_exist(h, tmp_path, capsys):
    data = str(h.FIXTURES / "arith_weighted.jsonl")
    code = main(_argv(h, tmp_path, "--trace_weight_from", '{"column": "consensus_shar"}', dataset_name=data))
    err = capsys.readouterr().err
    assert code == 2 and "consensus_shar" in err and data in err, err
    assert not (tmp_path / "run").exists()


def test_trace_weight_map_value_not_listed(h, tmp_path, capsys):
    data = str(h.FIXTURES / "arith_weighted.jsonl")
    table = '{"column": "consensus_status", "map": {"agrees": 1.0, "disagrees": 0.0}}'
    code = main(_argv(h, tmp_path, "--trace_weight_from", table, dataset_name=data))
    err = capsys.readouterr().err
    assert code == 2 and "row 3 " in err and "'no_majority' is not listed" in err, err
    assert not (tmp_path / "run").exists()


def test_weighted_recipe_trains_from_the_cli(h, tmp_path, capsys):
    data = str(h.FIXTURES / "arith_weighted.jsonl")
    table = '{"column": "consensus_status", "map": {"agrees": 1.0, "no_majority": 0.5, "disagrees": 0.0}}'
    argv = _argv(h, tmp_path, "--trace_weight_from", table, "--max_steps", "2", "--save_strategy", "no",
                 dataset_name=data)
    assert main(argv) == 0
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"] \
        if (tmp_path / "run" / "trainer_state.json").exists() else None
    assert (tmp_path / "run" / "model.safetensors").exists(), history
