"""Issue 23, case 1 for `ls-llm eval`: a second evaluation into a folder another one is writing is refused with
one line naming the folder and the first one's pid."""

import os
import subprocess
import sys
import time
from pathlib import Path

from ls_llm.cli.eval import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "eval"


def test_second_eval_into_a_running_folder_is_refused(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--model", str(tiny_checkpoint), "--backend", "hf", "--limit", "1", "--max-gen-toks", "4",
            "--num-samples", "1", "--suite", "math500", "--data-dir", str(FIXTURES / "upstream"), "--output", str(out)]
    env = {**os.environ, "READY": str(tmp_path / "ready"), "GO": str(tmp_path / "go")}
    first = subprocess.Popen([sys.executable, str(ROOT / "tests" / "pause_driver.py"),
                              "ls_llm.evaluation.runner:build_lm", "eval", *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (tmp_path / "ready").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.1)
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("ls-llm eval: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        assert str(out) in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
    finally:
        first.kill()
        first.wait(timeout=60)
