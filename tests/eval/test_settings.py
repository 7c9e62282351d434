"""The evaluation journal across settings and run folders (issue #23, case 5): a re-run with another seed,
dtype or chat template generates afresh instead of replaying samples made under other settings; a journal line
that is valid JSON of the wrong shape is skipped like a torn line; a run folder holds one run's files only."""

import json
import shutil
from pathlib import Path

import pytest

from ls_llm.cli.eval import main
from ls_llm.evaluation.resume import read_journal, request_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"


def _args(model, out, *extra):
    return ["--model", str(model), "--backend", "hf", "--limit", "2", "--max-gen-toks", "4", "--num-samples", "1",
            "--batch-size", "4", "--data-dir", str(FIXTURES / "upstream"), "--output", str(out),
            "--suite", "math500", *extra]


def _counts(out) -> tuple[int, int]:
    config = json.loads((out / "results.json").read_text())["config"]
    return config["samples_generated"], config["samples_replayed"]


@pytest.mark.parametrize("change", [["--seed", "7"], ["--dtype", "bfloat16"], "chat_template"])
def test_another_setting_generates_afresh(tiny_checkpoint, tmp_path, change):
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    out = tmp_path / "run"
    assert main(_args(model, out)) == 0
    assert _counts(out) == (2, 0)
    assert main(_args(model, out)) == 0
    assert _counts(out) == (0, 2)  # the same settings replay
    if change == "chat_template":  # a system prompt in the template: every prompt differs
        config_file = model / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        if "chat_template" in config:
            config["chat_template"] = "<|im_start|>system\nBe brief.<|im_end|>\n" + config["chat_template"]
            config_file.write_text(json.dumps(config))
        else:
            template = model / "chat_template.jinja"
            template.write_text("<|im_start|>system\nBe brief.<|im_end|>\n" + template.read_text())
        change = []
    assert main(_args(model, out, *change)) == 0
    assert _counts(out) == (2, 0)


@pytest.mark.parametrize("line", [[1, 2], {"key": 3, "output": "x"}, {"output": "x"}, "text", None,
                                  {"key": "k", "output": ["x"]}])
def test_journal_line_of_another_shape_is_skipped_like_a_torn_line(tmp_path, line):
    journal = tmp_path / "j.jsonl"
    key = request_key("m", ("a", {}))
    journal.write_text(json.dumps(line) + "\n" + json.dumps({"key": key, "output": "kept"}) + "\n")
    assert read_journal(journal) == {key: ["kept"]}


def test_run_folder_holds_one_runs_samples_only(tiny_checkpoint, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "samples_aime24.jsonl").write_text('{"from": "another model"}\n')
    assert main(_args(tiny_checkpoint, out)) == 0
    assert sorted(p.name for p in out.glob("samples_*.jsonl")) == ["samples_math500.jsonl"]


PAYLOAD = """
import os, sys, torch

class Payload:
    def __reduce__(self):
        return (os.system, ("echo PAYLOAD-RAN",))

torch.save({"python": Payload()}, sys.argv[1])
"""


def test_pickle_payload_as_eval_weights_is_one_line(tiny_checkpoint, tmp_path, capfd):
    import subprocess
    import sys

    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    (model / "model.safetensors").unlink()
    subprocess.run([sys.executable, "-c", PAYLOAD, str(model / "pytorch_model.bin")], check=True, timeout=120)
    capfd.readouterr()
    assert main(_args(model, tmp_path / "run")) == 2
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("ls-llm eval: error:")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err[-2000:]
    assert "pytorch_model.bin" in lines[0] and "weights-only" in lines[0], lines[0]
    assert "PAYLOAD-RAN" not in captured.out + captured.err and not (tmp_path / "run").exists()
