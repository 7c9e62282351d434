"""A bad checkpoint folder stops `ls-llm eval` before generation: exit 2, one line naming the folder and the
file, and no run folder left behind."""

import json
import shutil
import struct
from pathlib import Path

import pytest

from ls_llm.cli.eval import main
from ls_llm.evaluation import runner
from ls_llm.evaluation.checkpoint import check_checkpoint, safetensors_expected_size

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"


def _drop(name):
    return lambda folder: (folder / name).unlink()


def _truncate(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _bad_config(folder):
    (folder / "config.json").write_text('{"model_type": "qwen2",')


def _sharded_with_a_shard_missing(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("breaks", "named"),
    [
        (_drop("model.safetensors"), "has no weights: none of model.safetensors"),
        (_truncate, "weight file model.safetensors is truncated"),
        (_drop("tokenizer.json"), "has no tokenizer: none of tokenizer.json"),
        (_bad_config, "config.json is not valid JSON"),
        (_sharded_with_a_shard_missing, "weight shard model-00002-of-00002.safetensors named in "
                                        "model.safetensors.index.json is missing"),
    ],
)
def test_bad_checkpoint_folder_exit_2_one_line_no_run_folder(breaks, named, tiny_checkpoint, tmp_path, capsys,
                                                             monkeypatch):
    def refuse(cfg):
        raise AssertionError("the model must not load for a bad checkpoint")

    monkeypatch.setattr(runner, "build_lm", refuse)
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    breaks(folder)
    out = tmp_path / "runs" / "ckpt"
    code = main(["--model", str(folder), "--backend", "hf", "--suite", "math500", "--limit", "1",
                 "--data-dir", str(FIXTURES / "upstream"), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and named in err and str(folder) in err, err
    assert not out.exists() and not out.parent.exists()


def test_intact_checkpoint_passes_and_header_size_matches_the_file(tiny_checkpoint):
    assert check_checkpoint(str(tiny_checkpoint)) == tiny_checkpoint.resolve()
    weights = tiny_checkpoint / "model.safetensors"
    assert safetensors_expected_size(weights) == weights.stat().st_size


def test_safetensors_size_from_a_hand_written_header(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    file = tmp_path / "x.safetensors"
    file.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    assert safetensors_expected_size(file) == 8 + len(header) + 8
    file.write_bytes(b"\1\2")
    assert safetensors_expected_size(file) is None
