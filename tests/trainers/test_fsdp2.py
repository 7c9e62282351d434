"""FSDP2 (raw `fully_shard`, gloo, 2 processes, lm_head sharded on its own) equals 1 process.

accelerate's FSDP falls back to DDP on CPU, so this uses torch directly (tests/trainers/fsdp2_worker.py)."""

from pathlib import Path

WORKER = Path(__file__).with_name("fsdp2_worker.py")


def test_fsdp2_two_ranks_equal_one_process(fsdp2_equals_one_process):
    fsdp2_equals_one_process(WORKER)
