"""The inputs a cluster user really sends to `ls-llm train` (issue #23): recipes with the wrong shape or type, an
alias bomb, bytes that are not UTF-8, model paths that are files or lack config.json, a read-only output folder,
rows longer than max_length. Each one is one line naming the key / file / value, exit 2, nothing left behind,
or (rows cut by max_length) a line said before training."""

import os
import sys
from pathlib import Path

import pytest

from ls_llm.cli.train import main


@pytest.fixture(autouse=True)
def _library_logs_to_this_stderr():
    import logging

    for handler in logging.getLogger("datasets").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stderr



def _one_error_line(err: str, command: str = "train") -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"ls-llm {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _write(path: Path, data: str | bytes) -> str:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

# case -> recipe text (including tiny.yaml) or a function of tmp_path giving it, words expected in the error line
RECIPES = {
    "include_list": ("include: [{tiny}]\n", ["include", "one file name"]),
    "env_empty_with_include": ("include: {tiny}\nenv:\n", None),
    "env_list_with_include": ("include: {tiny}\nenv: [A, B]\n", ["env", "mapping"]),
    "missing_include": ("include: nowhere/base.yaml\n", ["base.yaml", "does not exist", "included by", "recipe.yaml"]),
    "alias_bomb_report_to": ("include: {tiny}\n" + BOMB.replace("a: &a", "x_a: &a") + "report_to: *i\n",
                             ["recipe.yaml", "expands to more than"]),
    "alias_bomb_string_field": ("include: {tiny}\n" + BOMB + "dataset_system_prompt: *i\n",
                                ["recipe.yaml", "expands to more than"]),
    "list_for_string": ("include: {tiny}\ndataset_system_prompt: [hello, world]\n",
                        ["dataset_system_prompt", "['hello', 'world']", "str", "list"]),
    "dict_for_float": ("include: {tiny}\nlearning_rate: {{a: 1}}\n", ["learning_rate", "float", "dict"]),
    "fraction_for_int": ("include: {tiny}\nmax_steps: 2.5\n", ["max_steps", "2.5", "int", "float"]),
    "bool_for_int": ("include: {tiny}\nper_device_train_batch_size: true\n",
                     ["per_device_train_batch_size", "True", "int", "bool"]),
    "int_for_bool": ("include: {tiny}\nbf16: 1\n", ["bf16", "1", "bool", "int"]),
    "mapping_as_key": ("include: {tiny}\n{{a: 1}}: 2\n", ["recipe.yaml", "key must be a name", "line 2"]),
    "nested_too_deep": ("include: {tiny}\nreport_to: " + "[" * 20000 + "]" * 20000 + "\n",
                        ["recipe.yaml", "too deep"]),
    "nested_list": ("include: {tiny}\nreport_to: [[none]]\n", ["report_to", "[['none']]"]),
}


@pytest.mark.parametrize("case", sorted(RECIPES))
def test_recipe_shape_and_types_are_one_line(h, tmp_path, capsys, case):
    text, words = RECIPES[case]
    if case == "env_empty_with_include":  # an empty `env:` beside include is no error: it trains
        text += "max_steps: 1\nsave_strategy: 'no'\n"
    recipe = _write(tmp_path / "recipe.yaml", text.format(tiny=h.FIXTURES / "tiny.yaml"))
    argv = h.cli_argv(tmp_path / "run")
    argv[0] = recipe
    if words is None:
        assert main(argv) == 0
        return
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert all(word in line for word in words), line
    assert not (tmp_path / "run").exists()


def test_recipe_values_that_convert_are_kept(h, tmp_path):
    """The check refuses only what cannot be meant: YAML's `1e-4` (a string to PyYAML) is a float, an int is a
    float, `resume_from_checkpoint: true` is the string field's 'true', a JSON mixture list is a list."""
    from ls_llm.trainers.recipe import parse_recipe
    from ls_llm.trainers.run import sft_arg_types

    recipe = _write(tmp_path / "recipe.yaml", f"include: {h.FIXTURES / 'tiny.yaml'}\nlearning_rate: 1e-4\n"
                    "weight_decay: 0\ndataset_mixture: [{source: x.jsonl, weight: 1}]\n"
                    "dataset_field_map: {q: question}\n")
    _, data, args, _ = parse_recipe([recipe, "--output_dir", str(tmp_path / "o")], sft_arg_types())
    assert args.learning_rate == 1e-4 and data.dataset_mixture[0]["source"] == "x.jsonl"
    assert data.dataset_field_map == {"q": "question"}


def test_recipe_not_utf8_names_file_and_line(h, tmp_path, capsys):
    recipe = _write(tmp_path / "recipe.yaml", f"include: {h.FIXTURES / 'tiny.yaml'}\n".encode()
                    + b"# caf\xe9 latin-1\n")
    argv = h.cli_argv(tmp_path / "run")
    argv[0] = recipe
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "recipe.yaml" in line and "line 2" in line and "UTF-8" in line, line


def test_alias_bomb_is_refused_fast(tmp_path):
    import time

    from ls_llm.trainers.recipe import load_recipe
    from ls_llm.trainers.recipe_types import RecipeError

    deep = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i + 1}: &a{i + 1} [*{'a' if i == 0 else f'a{i}'}, *{'a' if i == 0 else f'a{i}'}]\n" for i in range(60))
    path = _write(tmp_path / "bomb.yaml", deep.replace("&a [", "&a [", 1))
    start = time.monotonic()
    with pytest.raises(RecipeError, match="expands to more than"):
        load_recipe(path)
    assert time.monotonic() - start < 5


def _pretrained(h, path: Path, vocab_size: int, **overrides) -> str:
    h.tiny_model(vocab_size, **overrides).save_pretrained(path)
    return str(path)


def test_model_vocabulary_smaller_than_tokenizer_is_refused_before_training(h, tmp_path, capsys):
    model = _pretrained(h, tmp_path / "v100", 100)  # the shipped tokenizer has 418 tokens
    assert main(h.cli_argv(tmp_path / "run", "--model_init_from_config", "false", model_name_or_path=model)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "v100" in line and "100" in line and "418" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["weights_file", "no_config"])
def test_model_path_that_is_a_file_or_lacks_config(h, tmp_path, capsys, case):
    model = Path(_pretrained(h, tmp_path / "model", 418))
    if case == "no_config":
        (model / "config.json").unlink()
    path = model / "model.safetensors" if case == "weights_file" else model
    assert main(h.cli_argv(tmp_path / "run", "--model_init_from_config", "false", model_name_or_path=str(path))) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(path) in line and ("is a file" if case == "weights_file" else "no config.json") in line, line


def test_eval_model_that_is_a_file_is_named_as_a_file(tmp_path):
    from ls_llm.evaluation.checkpoint import check_checkpoint

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a checkpoint folder"):
        check_checkpoint(str(weights))


def test_read_only_output_dir_is_refused_before_training(h, tmp_path, capsys, monkeypatch):
    """Refused before any model is loaded (it failed at the first save, after save_steps of training)."""
    out = tmp_path / "run"
    out.mkdir()
    os.chmod(out, 0o555)
    if os.geteuid() == 0:  # root writes into a 0555 folder anyway: answer as the kernel answers an ordinary user
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == out and mode & os.W_OK
                            else access(p, mode, **kw))
    try:
        assert main(h.cli_argv(out, "--max_steps", "2")) == 2
        captured = capsys.readouterr()
        line = _one_error_line(captured.err)
        assert str(out) in line and "read-only" in line, line
        assert "{'loss'" not in captured.out
    finally:
        os.chmod(out, 0o755)


def _token_counts(h, max_length: int) -> tuple[int, int]:
    """(rows whose prompt alone reaches max_length, other rows whose whole text passes it), from the chat
    template directly: the reference the report must agree with."""
    tokenizer = h.tokenizer()
    dropped = cut = 0
    for row in h.message_rows():
        prompt, whole = row["messages"][:-1], row["messages"]
        n_prompt = len(tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True,
                                                     return_dict=True)["input_ids"])
        n_whole = len(tokenizer.apply_chat_template(whole, tokenize=True, return_dict=True)["input_ids"])
        dropped += n_prompt >= max_length
        cut += n_prompt < max_length <= n_whole
    return dropped, cut


def test_rows_dropped_or_cut_by_max_length_are_said_before_training(h, tmp_path, capsys):
    dropped, cut = _token_counts(h, 45)
    assert dropped and cut  # the fixture exercises both
    assert main(h.cli_argv(tmp_path / "run", "--max_length", "45", "--max_steps", "1", "--save_strategy", "no")) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("max_length=45"))
    assert f"{dropped} of 24 train rows dropped" in line and "prompt" in line, line
    assert f"{cut} of the {24 - dropped} kept rows cut at 45 tokens" in line and "final answer" in line, line


def test_max_length_below_every_prompt_is_one_line(h, tmp_path, capsys):
    assert _token_counts(h, 8)[0] == 24
    assert main(h.cli_argv(tmp_path / "run", "--max_length", "8")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "max_length=8" in line and "every train prompt" in line and "24 rows" in line, line
    assert not (tmp_path / "run").exists()


EVIL = """
import os, sys, torch

class Payload:
    def __reduce__(self):
        return (os.system, ("echo PAYLOAD-RAN",))

torch.save({"python": Payload()}, sys.argv[1])
"""


def _plant_payload(path: Path) -> None:
    import subprocess

    subprocess.run([sys.executable, "-c", EVIL, str(path)], check=True, timeout=120)


def test_pickle_payload_in_a_checkpoint_is_one_line_and_not_advertised(h, tmp_path, capfd):
    out = tmp_path / "run"
    assert main(h.cli_argv(out, "--max_steps", "2")) == 0
    _plant_payload(out / "checkpoint-2" / "rng_state.pth")
    capfd.readouterr()
    assert main(h.cli_argv(out, "--max_steps", "4", "--resume_from_checkpoint", "true")) == 2
    captured = capfd.readouterr()
    line = _one_error_line(captured.err)
    assert "checkpoint-2/rng_state.pth" in line and "weights-only" in line and "posix.system" in line, line
    assert "PAYLOAD-RAN" not in captured.out + captured.err
    assert "--resume_from_checkpoint true" not in captured.out  # the failed run does not advertise it
    assert (out / "checkpoint-2" / "rng_state.pth").exists()  # refused, not silently deleted


def test_pickle_payload_as_model_weights_is_one_line(h, tmp_path, capfd):
    model = tmp_path / "model"
    h.tiny_model(418).save_pretrained(model)
    (model / "model.safetensors").unlink()  # transformers 5 writes only safetensors: a .bin model from elsewhere
    _plant_payload(model / "pytorch_model.bin")
    capfd.readouterr()
    assert main(h.cli_argv(tmp_path / "run", "--model_init_from_config", "false", model_name_or_path=str(model))) == 2
    captured = capfd.readouterr()
    line = _one_error_line(captured.err)
    assert "pytorch_model.bin" in line and "weights-only" in line, line
    assert "PAYLOAD-RAN" not in captured.out + captured.err


def test_resuming_a_tied_embedding_model_does_not_report_the_tied_head_missing(h, tmp_path, capfd):
    model = tmp_path / "tied"
    h.tiny_model(418, tie_word_embeddings=True).save_pretrained(model)
    out = tmp_path / "run"
    argv = h.cli_argv(out, "--model_init_from_config", "false", model_name_or_path=str(model))
    assert main(argv + ["--max_steps", "2"]) == 0
    capfd.readouterr()
    assert main(argv + ["--max_steps", "4", "--resume_from_checkpoint", "true"]) == 0
    captured = capfd.readouterr()
    assert "resuming from" in captured.out and "missing keys" not in captured.out + captured.err


def test_tied_parameter_names_against_the_model_config(h):
    tied = h.tiny_model(418, tie_word_embeddings=True)
    from ls_llm.trainers.sft import tied_parameter_names

    assert tied_parameter_names(tied) == {"model.embed_tokens.weight", "lm_head.weight"}
    assert tied_parameter_names(h.tiny_model(418)) == set()


def test_validation_rows_cut_by_max_length_are_said_too(h, tmp_path, capsys):
    argv = h.cli_argv(tmp_path / "run", "--max_length", "45", "--max_steps", "1", "--save_strategy", "no",
                 "--dataset_validation_size", "8", "--eval_strategy", "steps", "--eval_steps", "100")
    assert main(argv) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("max_length=45"))
    assert "train rows dropped" in line and "validation rows dropped" in line, line
