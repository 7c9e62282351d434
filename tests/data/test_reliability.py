"""Faults and user errors of `ls-llm noise` / `ls-llm audit` (issue #14): outputs published as a set, a full
disk or a bad --tokenizer as one line with exit 2, an audit with nothing to check refused, and verification
workers that die with their parent."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "data" / "math.jsonl"

# `ls-llm noise`, killed right after the first file of its set is moved into place.
KILL_BETWEEN_FILES = """
import os, signal, sys
import ls_llm.files as io
from ls_llm.cli import noise

move = io._move
def move_then_die(src, dst):
    move(src, dst)
    os.kill(os.getpid(), signal.SIGKILL)

io._move = move_then_die
noise.main(sys.argv[1:])
"""


def _noise_argv(out, *extra):
    return [str(DATA), "--type", "answer", "--rate", "0.5", "--out", str(out), *extra]


def _error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"ls-llm {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_noise_killed_between_files_leaves_no_out(tmp_path):
    out = tmp_path / "noisy.jsonl"
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_FILES, *_noise_argv(out)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / "noisy.manifest.jsonl").exists() and not out.exists()  # --out is moved last


def _full_disk(limit_bytes):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def test_noise_full_disk_exit_2_nothing_left(tmp_path):
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    run = [sys.executable, "-m", "ls_llm.cli", "noise"]
    warm = subprocess.run([*run, *_noise_argv(tmp_path / "first.jsonl")], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)  # the datasets cache exists: only outputs are written
    assert warm.returncode == 0, warm.stderr[-2000:]
    out = tmp_path / "out" / "noisy.jsonl"
    proc = subprocess.run([*run, *_noise_argv(out)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env, preexec_fn=_full_disk(2000))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "File too large" in _error_line(proc.stderr, "noise")
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []  # no file, no staging folder


def test_audit_full_disk_exit_2_no_folder(tmp_path):
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    run = [sys.executable, "-m", "ls_llm.cli", "audit", str(DATA), "--workers", "1", "--no-plot"]
    warm = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert warm.returncode == 0, warm.stderr[-2000:]
    proc = subprocess.run([*run, "--out", str(tmp_path / "audit")], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env, preexec_fn=_full_disk(2000))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "File too large" in _error_line(proc.stderr, "audit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no audit folder, no staging folder


def test_noise_missing_tokenizer_names_the_flag(tmp_path, capsys):
    from ls_llm.cli import noise

    argv = [str(DATA), "--type", "token", "--rate", "0.5", "--out", str(tmp_path / "n.jsonl"),
            "--tokenizer", str(tmp_path / "no-tokenizer")]
    assert noise.main(argv) == 2
    assert "--tokenizer" in _error_line(capsys.readouterr().err, "noise")
    assert list(tmp_path.iterdir()) == []


def test_audit_with_no_gold_answer_is_refused(tmp_path, capsys):
    from ls_llm.cli import audit

    # one trace per problem (three traces of one prompt would be audited by consensus, which needs no reference)
    rows = [{"messages": [{"role": "user", "content": f"2+{i}?"}, {"role": "assistant", "content": "\\boxed{4}"}]}
            for i in range(3)]
    data = tmp_path / "no_answers.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert audit.main([str(data), "--out", str(tmp_path / "audit"), "--workers", "1"]) == 2
    assert "nothing to audit" in _error_line(capsys.readouterr().err, "audit")
    assert not (tmp_path / "audit").exists()


def test_audit_outputs_appear_together(tmp_path, capsys):
    from ls_llm.cli import audit

    out = tmp_path / "audit"
    assert audit.main([str(DATA), "--out", str(out), "--workers", "1", "--no-plot"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clean.jsonl", "noisy.jsonl", "report.json", "traces.jsonl"]
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]  # the staging folder was renamed, nothing else


POOL_THEN_WAIT = """
import sys, time
from ls_llm.answers import worker_pool

pool = worker_pool(2)
futures = [pool.submit(time.sleep, 60) for _ in range(2)]
time.sleep(1.0)
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_verification_workers_die_with_their_parent():
    proc = subprocess.Popen([sys.executable, "-c", POOL_THEN_WAIT], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    workers = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    proc.kill()  # SIGKILL: the parent runs no clean-up
    proc.wait(timeout=10)
    deadline = time.time() + 10
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def test_concurrent_writers_do_not_rename_each_others_temporary_file(tmp_path):
    """Two sweep shards prepare the same data at once: each must write its own temporary file. With one shared
    name, the first rename took the other's file away and that shard died (FileNotFoundError)."""
    from ls_llm.files import read_jsonl, write_atomic, write_jsonl

    out = tmp_path / "train.jsonl"
    other = tmp_path / ".train.jsonl.tmp"  # what another writer's half-written file was called
    other.write_text("half\n")
    write_jsonl(out, [{"a": 1}])
    write_atomic(tmp_path / "spec.json", "{}")
    assert read_jsonl(out) == [{"a": 1}]
    assert other.read_text() == "half\n"  # left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [".train.jsonl.tmp", "spec.json", "train.jsonl"]


def test_writers_in_one_process_publish_whole_copies(tmp_path):
    """Threads share a pid, so a pid-based temporary name would clash there too: every writer gets its own."""
    from concurrent.futures import ThreadPoolExecutor

    from ls_llm.files import read_jsonl, write_jsonl

    out = tmp_path / "train.jsonl"
    rows = [{"i": i, "text": "x" * 200} for i in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: write_jsonl(out, rows), range(16)))
    assert read_jsonl(out) == rows and [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    from ls_llm.files import write_jsonl

    out = tmp_path / "train.jsonl"
    out.write_text("old\n")

    def rows():
        yield {"a": 1}
        raise OSError(28, "No space left on device")

    try:
        write_jsonl(out, rows())
    except OSError:
        pass
    else:
        raise AssertionError("the error must reach the caller")
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["train.jsonl"]
