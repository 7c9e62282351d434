"""Shared test configuration: offline, deterministic, GPU tests skipped (never faked) without CUDA."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fsdp2_equals_one_process(tmp_path):
    """Run a 2-rank FSDP2 worker script (it writes init.pt, fsdp.pt, single.pt into a folder) and check the
    FSDP2 update equals the 1-process update, and that training moved the lm_head."""
    import subprocess
    import sys

    def check(worker):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([sys.executable, str(worker), str(tmp_path)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        init, fsdp, single = (torch.load(tmp_path / f"{n}.pt") for n in ("init", "fsdp", "single"))
        for name, value in single.items():
            torch.testing.assert_close(fsdp[name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert not torch.equal(init["lm_head.weight"], single["lm_head.weight"])

    return check
