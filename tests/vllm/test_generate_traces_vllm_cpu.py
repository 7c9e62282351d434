"""`ls-llm generate --backend vllm` on the CPU build: a trace dataset, and seeded sampling reproducible sample by
sample, so a run that lost its last journal writes (a kill) is completed into exactly the uninterrupted run."""

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm")

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = ROOT / "tests" / "fixtures" / "eval" / "generate_problems.jsonl"


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "traces.jsonl").read_text(encoding="utf-8").splitlines()]


def test_vllm_generate_sampled_resume_equals_uninterrupted(qwen2_hd64, tmp_path):
    from ls_llm.cli.generate import main

    out = tmp_path / "gen"
    argv = ["--model", str(qwen2_hd64), "--data", str(PROBLEMS), "--num-samples", "3", "--out", str(out),
            "--backend", "vllm", "--dtype", "float32", "--max-model-len", "256", "--max-gen-toks", "16",
            "--temperature", "1.0", "--top-p", "1.0", "--seed", "7", "--resume-chunk", "3"]
    assert main(argv) == 0
    rows = _rows(out)
    problems = [json.loads(line) for line in PROBLEMS.read_text().splitlines()]
    assert [(r["problem_id"], r["sample_index"]) for r in rows] == [(p["id"], j) for p in problems for j in range(3)]
    assert [r["answer"] for r in rows[::3]] == [p.get("answer") for p in problems]
    assert any(len({r["completion"] for r in rows[i:i + 3]}) > 1 for i in range(0, len(rows), 3))  # sampled
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["backend"] == "vllm" and manifest["samples_generated"] == len(rows)

    journal = out / "generations.journal.jsonl"
    kept = journal.read_text(encoding="utf-8").splitlines()[:6]
    journal.write_text("\n".join(kept) + "\n", encoding="utf-8")  # what a kill after two journal writes leaves
    (out / "traces.jsonl").unlink()
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples_replayed"] == 6 and manifest["samples_generated"] == len(rows) - 6
    assert _rows(out) == rows
