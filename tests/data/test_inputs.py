"""Data a cluster user really sends (issue #23): bytes that are not UTF-8, one enormous line, a file of mixed
formats that loses most of its rows to missing fields. Each stops loading with one ValueError naming the file,
line or row, before anything is tokenised."""

import json
import logging
from pathlib import Path

import pytest

from ls_llm.data.args import LsDataArguments
from ls_llm.data.loading import load_traces

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def _rows(n: int, start: int = 0) -> list[str]:
    return [json.dumps({"problem": f"What is {i}+1?", "solution": f"{i}+1=\\boxed{{{i + 1}}}"}) for i in
            range(start, start + n)]


def _load(path, **kwargs):
    return load_traces(LsDataArguments(dataset_name=str(path), dataset_answer_instruction="", **kwargs))


def test_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    lines = _rows(5)
    lines[3] = lines[3].replace("What", "Caf\u00e9: what")
    path.write_bytes("\n".join(lines[:3]).encode() + b"\n" + lines[3].encode("latin-1") + b"\n"
                     + "\n".join(lines[4:]).encode() + b"\n")
    with pytest.raises(ValueError, match=r"latin1\.jsonl' line 4: not UTF-8 text \(byte 0xe9\)"):
        _load(path)


def test_utf8_character_split_across_read_blocks_is_fine_and_later_lines_are_counted(tmp_path):
    """The check reads 1 MiB blocks: a valid character across a block boundary passes, and a bad byte in a later
    block is named by its line in the whole file."""
    opening = '{"problem": "'
    first = opening + "x" * ((1 << 20) - 1 - len(opening)) + "\u00e9" + '", "solution": "\\\\boxed{1}"}'
    assert first.encode()[(1 << 20) - 1:(1 << 20) + 1] == "\u00e9".encode()  # its two bytes straddle 1 MiB
    path = tmp_path / "big.jsonl"
    path.write_text(first + "\n" + "\n".join(_rows(3)) + "\n", encoding="utf-8")
    assert len(_load(path, dataset_max_row_chars=2_000_000)["train"]) == 4
    path.write_bytes(path.read_bytes() + b'{"problem": "\xff", "solution": "\\\\boxed{1}"}\n')
    with pytest.raises(ValueError, match=r"big\.jsonl' line 5: not UTF-8"):
        _load(path, dataset_max_row_chars=2_000_000)


def test_enormous_row_is_named_before_tokenisation(tmp_path):
    path = tmp_path / "huge.jsonl"
    lines = _rows(4)
    lines[2] = json.dumps({"id": "giant", "problem": "1+1?", "solution": "x" * 2_000_000 + "\\boxed{2}"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"row 'giant' \(row 3 of .*huge\.jsonl'\) has 2000\d+ characters.*"
                                         r"dataset_max_row_chars=1000000"):
        _load(path)
    assert len(_load(path, dataset_max_row_chars=3_000_000)["train"]) == 4


def test_skipping_most_rows_for_missing_fields_stops(tmp_path, caplog):
    """A mixed-format file: 22 problem/solution rows kept of 64, the other 42 (messages rows) skipped."""
    path = tmp_path / "mixed.jsonl"
    chat = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
            for i in range(42)]
    path.write_text("\n".join(_rows(22) + chat) + "\n")
    with pytest.raises(ValueError, match=r"42 rows \(of 64\) of .*mixed\.jsonl'.*dataset_max_skipped=0\.5"):
        _load(path, dataset_format="problem_solution")
    with caplog.at_level(logging.WARNING):  # a few skipped rows still warn and train
        assert len(_load(path, dataset_format="problem_solution", dataset_max_skipped=0.7)["train"]) == 22
    assert "42 rows (of 64)" in caplog.text


def test_a_line_that_is_not_a_json_object_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = _rows(4)
    path.write_text("\n".join([*lines[:2], '{"problem": "1+1?", "solution": ', *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"data file '.*bad\.jsonl' line 3: not valid JSON"):
        _load(path)
    path.write_text("\n".join([*lines[:3], "[1, 2]", lines[3]]) + "\n")
    with pytest.raises(ValueError, match=r"data file '.*bad\.jsonl' line 4: expected a JSON object, got list"):
        _load(path)
