"""scripts/device_check.sh starts and passes on a machine without CUDA (its CUDA parts skipped, said so), so the
one call on a lent GPU box is known to get past its own setup."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_runs_on_cpu(tmp_path):
    env = {**os.environ, "PY": sys.executable, "DEVICE_WHEELS_DIR": str(tmp_path / "no-wheels"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "device_check.sh"), "--out", str(tmp_path), "--skip-bench"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "device_check.md").read_text()
    assert "skipped: no CUDA device" in report
    assert "LsSFTTrainer step" in report and "LsDistillTrainer online step" in report
    assert report.rstrip().endswith("OK")
