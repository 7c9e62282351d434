"""Resume journal and report tables, checked against hand-built inputs."""

import json
from types import SimpleNamespace

from ls_llm.evaluation.report import compare_table, markdown_table, rows_from_results
from ls_llm.evaluation.resume import JournaledLM, read_journal, request_key
from ls_llm.files import write_atomic


class CountingLM:
    """An lm-eval-like model that numbers its generations, to tell fresh ones from replayed ones."""

    def __init__(self, start=0):
        self.calls, self.count, self.rank = [], start, 0

    def generate_until(self, requests):
        self.calls.append(len(requests))
        out = []
        for req in requests:
            self.count += 1
            out.append(f"{req.args[0]}#{self.count}")
        return out


def _reqs(prompts, k):
    gen = {"until": [], "do_sample": True, "temperature": 0.6}
    return [SimpleNamespace(args=(p, gen)) for p in prompts for _ in range(k)]


def test_journal_replays_each_sample_once_and_generates_only_the_rest(tmp_path):
    journal = tmp_path / "j.jsonl"
    first = JournaledLM(CountingLM(), journal, fingerprint="m", chunk_size=3)
    out1 = first.generate_until(_reqs(["a", "b"], k=2))
    assert out1 == ["a#1", "a#2", "b#3", "b#4"] and first.lm.calls == [3, 1]

    # k grows from 2 to 3 and a new prompt appears: only the 1 + 1 + 3 missing samples are generated.
    second = JournaledLM(CountingLM(start=100), journal, fingerprint="m", chunk_size=100)
    out2 = second.generate_until(_reqs(["a", "b", "c"], k=3))
    assert out2[:2] == ["a#1", "a#2"] and out2[3:5] == ["b#3", "b#4"]
    assert (second.replayed, second.generated, second.lm.calls) == (4, 5, [5])
    assert out2[2] == "a#101" and out2[5:] == ["b#102", "c#103", "c#104", "c#105"]

    # Another model (fingerprint) never reuses these samples.
    other = JournaledLM(CountingLM(), journal, fingerprint="other-model")
    other.generate_until(_reqs(["a"], k=1))
    assert other.replayed == 0


def test_torn_last_line_is_ignored(tmp_path):
    journal = tmp_path / "j.jsonl"
    key = request_key("m", ("a", {}))
    journal.write_text(json.dumps({"key": key, "output": "kept"}) + "\n" + '{"key": "' + key[:10])
    assert read_journal(journal) == {key: ["kept"]}


def test_samples_appended_after_a_torn_line_are_kept(tmp_path):
    """Resuming after a kill mid-write: the torn tail is cut before appending, so the new samples stay readable."""
    journal = tmp_path / "j.jsonl"
    first = JournaledLM(CountingLM(), journal, fingerprint="m")
    first.generate_until(_reqs(["a"], k=1))
    with journal.open("a") as f:
        f.write('{"key": "torn')
    second = JournaledLM(CountingLM(start=100), journal, fingerprint="m")
    second.generate_until(_reqs(["a", "b"], k=1))
    third = JournaledLM(CountingLM(start=200), journal, fingerprint="m")
    assert third.generate_until(_reqs(["a", "b"], k=1)) == ["a#1", "b#101"] and third.generated == 0


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new" and [p.name for p in path.parent.iterdir()] == ["r.json"]


RESULTS = {
    "results": {
        "aime24": {"acc,verify": 0.25, "acc_stderr,verify": 0.05, "pass_at_k,verify": 0.5},
        "math500": {"acc,verify": 0.8, "acc_stderr,verify": 0.01, "pass_at_k,verify": 0.9},
    },
    "groups": {"ls_math": {"acc,verify": 0.525, "acc_stderr,verify": 0.0255, "pass_at_k,verify": 0.7}},
    "group_subtasks": {"ls_math": ["aime24", "math500"]},
    "configs": {"aime24": {"repeats": 16}, "math500": {"repeats": 4}},
    "n-samples": {"aime24": {"effective": 30}, "math500": {"effective": 500}},
}


def test_markdown_table_rows_and_suite_mean():
    table = markdown_table(rows_from_results(RESULTS)).splitlines()
    assert table[2] == "| aime24 | 30 | 16 | 25.0 | 5.0 | 50.0 |"
    assert table[3] == "| math500 | 500 | 4 | 80.0 | 1.0 | 90.0 |"
    assert table[4] == "| **ls_math** (suite mean) | - | - | 52.5 | 2.5 | 70.0 |"


def test_compare_table_lines_up_runs():
    other = json.loads(json.dumps(RESULTS))
    other["results"]["aime24"]["acc,verify"] = 0.5
    del other["results"]["math500"]
    table = compare_table({"base": rows_from_results(RESULTS), "ls": rows_from_results(other)}).splitlines()
    assert table[0] == "| task | base | ls |"
    assert table[2] == "| aime24 | 25.0 ± 5.0 | 50.0 ± 5.0 |"
    assert table[3] == "| math500 | 80.0 ± 1.0 | - |"
