"""Files and folders the atomic writers publish get the mode the umask gives an ordinary open() / mkdir()
(issue #23, case 8): mkstemp's 0600 and mkdtemp's 0700 left results.json, eval samples and the audit folder
unreadable to a colleague on a shared cluster."""

import os
import stat

import pytest

from ls_llm import files as io


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_staged_folders_follow_the_umask(tmp_path, umask):
    reference = tmp_path / "reference.txt"
    reference.write_text("x")  # an ordinary open(): the mode every writer must give
    (tmp_path / "reference-dir").mkdir()
    io.write_atomic(tmp_path / "results.json", "{}")
    io.write_jsonl(tmp_path / "samples.jsonl", [{"a": 1}])
    with io.staged_dir(tmp_path / "audit") as stage:
        (stage / "summary.json").write_text("{}")
    with io.staged_files({"out": tmp_path / "noisy.jsonl"}) as staged:
        io.write_atomic(staged["out"], "{}\n")
    for path in ("results.json", "samples.jsonl", "noisy.jsonl", "audit/summary.json"):
        assert _mode(tmp_path / path) == _mode(reference) == 0o666 & ~umask, path
    assert _mode(tmp_path / "audit") == _mode(tmp_path / "reference-dir") == 0o777 & ~umask
