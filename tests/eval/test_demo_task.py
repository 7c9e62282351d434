"""The demo's evaluation task (`make eval-demo`, recipes/demo/data/eval): its YAML includes the project's math
template, and its rows are the demo's validation problems with their answers, in the form the trained model saw."""

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT / "recipes" / "demo" / "data" / "eval"


def test_demo_task_reads_the_validation_problems():
    from ls_llm.evaluation.schema import load_task_docs

    task = yaml.safe_load((EVAL / "arith_demo.yaml").read_text())
    assert (EVAL / task["include"]).resolve() == ROOT / "eval" / "tasks" / "_math_template_yaml"
    assert task["doc_to_text"] == "{{problem}}"  # the demo trained on the problem alone, no instruction
    docs = load_task_docs(**task["dataset_kwargs"], data_dir=str(EVAL))["test"]
    validation = [json.loads(line) for line in (ROOT / "recipes/demo/data/arith_validation.jsonl").open()]
    assert len(docs) == len(validation) == 64
    for doc, row in zip(docs, validation, strict=True):
        user = next(m["content"] for m in row["messages"] if m["role"] == "user")
        assert doc["problem"] == user and doc["answer"] == row["answer"]
