"""The project's tasks run from lm-eval's own `lm_eval` CLI, local data included (issue 22)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ls_llm.cli.eval import lm_eval_command
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

ROOT = Path(__file__).resolve().parents[2]
LM_EVAL = Path(sys.executable).parent / "lm_eval"


@pytest.mark.skipif(not LM_EVAL.exists(), reason="lm-eval's CLI is not installed next to this Python")
def test_lm_eval_cli_runs_the_tasks_with_local_data(tiny_checkpoint, tmp_path):
    data = ROOT / "tests" / "fixtures" / "eval" / "local"
    command = shlex.split(lm_eval_command(DEFAULT_TASKS_DIR, task="math500,arc_challenge", model=str(tiny_checkpoint),
                                          data_dir=str(data)))
    command[0] = str(LM_EVAL)
    command[command.index("--output_path") + 1] = str(tmp_path / "out")
    command += ["--limit", "1", "--gen_kwargs", "max_gen_toks=8", "--device", "cpu", "--batch_size", "2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               LS_LLM_VERIFY_WORKERS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    # Our tasks (the verify filter), not lm-eval's built-in arc_challenge; our data, not the hub.
    assert set(results["results"]) == {"math500", "arc_challenge"}
    assert all("verify" in key for task in results["results"].values() for key in task if "acc" in key)
    assert results["configs"]["math500"]["metadata"]["data_dir"] == str(data)
    samples = [json.loads(line) for line in next((tmp_path / "out").rglob("samples_math500_*.jsonl")).open()]
    assert samples and all("verdict" in record for record in samples[0]["filtered_resps"][0])


def test_tasks_subcommand_prints_the_include_path_and_the_command(capsys):
    from ls_llm.cli.eval import main

    assert main(["tasks"]) == 0
    printed = capsys.readouterr().out
    assert f"--include_path {DEFAULT_TASKS_DIR}" in printed
    assert "--apply_chat_template" in printed and '"data_dir"' in printed
