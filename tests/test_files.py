"""The one jsonl reader (ls_llm.files.read_jsonl) that data, evaluation and the sweep share: blank lines skipped, a
bad line named by file and line, each caller's wording kept."""

import json

import pytest

from ls_llm.files import read_jsonl


def _write(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_rows_and_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    _write(path, [json.dumps({"a": 1}), "", "   ", json.dumps({"a": "é"}), json.dumps([1, 2])])
    assert read_jsonl(path) == [{"a": 1}, {"a": "é"}, [1, 2]]  # any JSON value unless objects are asked for


def test_a_bad_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    _write(path, [json.dumps({"a": 1}), "", '{"a": x}', json.dumps({"a": 3})])
    with pytest.raises(ValueError, match=r"rows\.jsonl line 3: not valid JSON \(Expecting value, column 7\)"):
        read_jsonl(path)
    _write(path, [json.dumps({"a": 1}), json.dumps([1])])
    with pytest.raises(ValueError, match=r"^data 'x' line 2: expected a JSON object, got list$"):
        read_jsonl(path, what="data 'x'", objects=True)


def test_not_utf8_is_refused_unless_replaced(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": "caf\xe9"}\n')
    with pytest.raises(UnicodeDecodeError):
        read_jsonl(path)
    assert read_jsonl(path, errors="replace") == [{"a": "caf\ufffd"}]


def test_eval_task_rows_name_the_task_and_line(tmp_path):
    from ls_llm.evaluation.schema import read_task_rows

    path = tmp_path / "math500" / "test.jsonl"
    with pytest.raises(FileNotFoundError, match=r"task 'math500': data file .* not found \(--data-dir DIR"):
        read_task_rows(path, "math500")
    path.parent.mkdir()
    _write(path, [json.dumps({"problem": "1+1", "answer": "2"}), "not json"])
    with pytest.raises(ValueError, match=r"^task 'math500': .*test\.jsonl line 2: not valid JSON"):
        read_task_rows(path, "math500")
