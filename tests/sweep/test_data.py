"""The sweep's data: splits disjoint, rows in the format training and evaluation both read, written once."""

import json
from pathlib import Path

import pytest
import yaml

from ls_llm.files import read_jsonl
from ls_llm.sweep.config import DataSpec
from ls_llm.sweep.data import TEST_TASK, VALIDATION_TASK, prepare_data
from ls_llm.sweep.runner import TEMPLATE


def test_splits_disjoint_and_eval_copies(tmp_path):
    spec = DataSpec(train_size=60, validation_size=10, test_size=12)
    paths = prepare_data(spec, tmp_path, TEMPLATE)
    rows = {s: read_jsonl(paths[s]) for s in ("train", "validation", "test")}
    assert [len(rows[s]) for s in ("train", "validation", "test")] == [60, 10, 12]
    problems = {s: {r["problem"] for r in rows[s]} for s in rows}
    assert not problems["train"] & problems["test"] and not problems["train"] & problems["validation"]
    for row in rows["test"]:
        assert row["solution"].endswith(f"\\boxed{{{row['answer']}}}.")
    assert read_jsonl(paths["eval_data"] / TEST_TASK / "test.jsonl") == rows["test"]
    assert read_jsonl(paths["eval_data"] / VALIDATION_TASK / "test.jsonl") == rows["validation"]
    task = yaml.safe_load((paths["tasks"] / f"{TEST_TASK}.yaml").read_text())
    assert task["include"] == str(TEMPLATE) and Path(task["include"]).is_file()
    assert task["doc_to_text"] == "{{problem}}"


def test_written_once_and_other_spec_refused(tmp_path):
    spec = DataSpec(train_size=20, validation_size=4, test_size=4)
    paths = prepare_data(spec, tmp_path, TEMPLATE)
    stamp = paths["train"].stat().st_mtime_ns
    prepare_data(spec, tmp_path, TEMPLATE)
    assert paths["train"].stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="another spec"):
        prepare_data(DataSpec(train_size=21, validation_size=4, test_size=4), tmp_path, TEMPLATE)
    assert json.loads((tmp_path / "spec.json").read_text())["train_size"] == 20


def test_training_prompt_is_the_eval_prompt(tmp_path, monkeypatch):
    # The base recipe trains on exactly the text the eval tasks prompt with: the bare problem as the user turn.
    from ls_llm.data.loading import load_traces
    from ls_llm.trainers.recipe import parse_recipe
    from ls_llm.trainers.run import sft_arg_types

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    paths = prepare_data(DataSpec(train_size=8, validation_size=2, test_size=2), tmp_path, TEMPLATE)
    _, data_args, _, _ = parse_recipe([str(repo / "recipes/demo/sweep_base.yaml"), f"--dataset_name={paths['train']}",
                                       "--dataset_format=problem_solution"], sft_arg_types())
    train = load_traces(data_args)["train"]
    for row, raw in zip(train, read_jsonl(paths["train"]), strict=True):
        assert row["prompt"] == [{"role": "user", "content": raw["problem"]}]
        assert row["completion"] == [{"role": "assistant", "content": raw["solution"]}]
