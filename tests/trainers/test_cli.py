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
