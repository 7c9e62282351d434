"""Audit detectors without a clean reference: consensus on hand-built groups, the verifier column, the loss flag,
precision/recall against `ls-llm noise`'s manifest, and the CLI's refusals (one line, exit 2, nothing written)."""

import json
import re
from pathlib import Path

import pytest

from ls_llm.data.consensus import answer_key, consensus
from ls_llm.data.detectors import score_against_manifest, top_fraction_flags, verifier_flags

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def _group(spec):
    """rows and answers from [(problem, [answers], reference)]."""
    rows, answers = [], []
    for pid, anss, ref in spec:
        for k, a in enumerate(anss):
            rows.append({"id": f"{pid}-{k}", "problem_id": pid, "answer": ref,
                         "messages": [{"role": "user", "content": f"problem {pid}"},
                                      {"role": "assistant", "content": f"so \\boxed{{{a}}}" if a else "no box"}]})
            answers.append(a)
    return rows, answers


def _run(spec, **kw):
    rows, answers = _group(spec)
    return consensus(rows, answers=answers, **{"workers": 1, **kw})


def test_equivalent_forms_form_one_class():
    result = _run([("p", ["\\frac12", "0.5", "\\dfrac{1}{2}", "1/2", "3"], "0.5")])
    assert result.status == ["agrees"] * 4 + ["disagrees"]
    assert result.share == pytest.approx([0.8] * 4 + [0.2])
    assert result.reference_status == ["agrees"] * 5


def test_symbolic_forms_need_math_verify():
    assert answer_key("x+1") != answer_key("1+x")  # not the cheap key's job
    result = _run([("p", ["x+1", "1+x", "2x"], None)])
    assert result.status == ["agrees", "agrees", "disagrees"]
    assert result.reference_status == ["missing"] * 3  # works with no reference at all


def test_cheap_key_is_conservative():
    assert answer_key("6 +  3i") == answer_key("6+3i") == answer_key("$6+3i$")
    assert answer_key("\\left( 1,2 \\right)") == answer_key("(1, 2)")
    assert answer_key("3 2x") != answer_key("32x")  # "3 2x" is a product in TeX: never merged by the key


def test_reference_agrees_by_key_when_math_verify_cannot_parse_it():
    ref = "\\dfrac{1}{29,\\!322,\\!216}"  # math-verify parses neither side: every verdict is "unparsable"
    result = _run([("p", [ref, ref, ref, "5"], ref)])
    assert result.status == ["agrees"] * 3 + ["disagrees"]
    assert result.reference_status == ["agrees"] * 4


def test_ties_and_all_different_have_no_majority():
    result = _run([("tie", ["1", "1", "2", "2"], "1"), ("diff", ["1", "2", "3"], "1")])
    assert result.status == ["no_majority"] * 7
    assert result.share == pytest.approx([0.5] * 4 + [1 / 3] * 3)
    assert result.reference_status == ["no_majority"] * 7


def test_suspect_and_disagreeing_reference():
    result = _run([("s", ["7", "7", "7", "8"], "5"), ("d", ["7", "7", "8", "9"], "5"), ("a", ["5", "5", "6"], "5.0")])
    assert result.reference_status == ["suspect"] * 4 + ["disagrees"] * 4 + ["agrees"] * 3
    assert result.status == ["agrees"] * 3 + ["disagrees"] + ["agrees"] * 2 + ["disagrees"] * 2 + \
        ["agrees"] * 2 + ["disagrees"]


def test_missing_answers_never_win_and_prompt_grouping():
    rows, answers = _group([("p", [None, None, None, "4"], "4")])
    for row in rows:
        del row["problem_id"]  # grouped by the identical prompt
    result = consensus(rows, answers=answers, workers=1)
    assert result.status == ["no_majority"] * 4  # 3 traces without an answer are not a class
    assert result.share == [0.0, 0.0, 0.0, 0.25]


def test_worker_path_equals_in_process():
    spec = [(f"p{i}", ["\\frac12", "0.5", "x+1", "1+x", str(i)], "1/2") for i in range(12)]
    one, two = _run(spec), _run(spec, workers=2)
    assert one.status == two.status and one.reference_status == two.reference_status


def test_verifier_flags_and_bad_values():
    rows = [{"id": "a", "s": 0.2}, {"id": "b", "s": 0.9}, {"id": "c", "s": 1}]
    assert verifier_flags(rows, "s", 0.5, source="f.jsonl") == [True, False, False]
    assert verifier_flags(rows, "s", 0.5, source="f.jsonl", flag_above=True) == [False, True, True]
    for bad, text in ((float("nan"), "nan"), ("0.3", "'0.3'"), (None, "no verifier column"), (True, "True")):
        rows_bad = [dict(rows[0]), {"id": "b", "s": bad}]
        with pytest.raises(ValueError, match=f"'f.jsonl' row 1 \\(id 'b'\\).*{text}"):
            verifier_flags(rows_bad, "s", 0.5, source="f.jsonl")


def test_top_fraction_flags():
    assert top_fraction_flags([0.1, 3.0, None, 2.0, 0.5], 0.5) == [False, True, False, True, False]
    for q in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--flag-top-loss"):
            top_fraction_flags([1.0], q)


def test_precision_recall_by_type():
    manifest = [{"corrupted": c, "type": t} for c, t in
                [(True, "answer"), (True, "answer"), (False, "answer"), (False, "answer"), (True, "box"), (False, "box")]]
    flags = {"d": [True, False, True, False, True, True]}
    got = score_against_manifest(flags, manifest)["d"]
    assert got["overall"]["precision"] == pytest.approx(2 / 4)
    assert got["overall"]["recall"] == pytest.approx(2 / 3)
    assert got["overall"]["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert got["by_type"]["answer"]["precision"] == pytest.approx(0.5)
    assert got["by_type"]["answer"]["recall"] == pytest.approx(0.5)
    assert got["by_type"]["box"]["recall"] == pytest.approx(1.0)


# ---- through the CLI --------------------------------------------------------------------------------------------

def _traces(tmp_path, k=4, n=12, noisy=(), extra=None):
    """k identical clean traces per problem (answers i*7), as `ls-llm generate` writes them."""
    rows = []
    for i in range(n):
        for s in range(k):
            value = i * 7 + (100 if (i, s) in noisy else 0)
            rows.append({"prompt": f"What is {i} times 7?", "completion": f"{i} * 7 = {value}. \\boxed{{{value}}}",
                         "problem_id": f"p{i}", "sample_index": s, "answer": str(i * 7), **(extra or {})})
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def _audit(argv, capsys):
    from ls_llm.cli.audit import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    if code == 2:  # one line naming the problem (datasets' progress bars aside)
        assert [line for line in out.err.splitlines() if "ls-llm audit" in line] == \
            [out.err.strip().splitlines()[-1]], out.err
        assert "Traceback" not in out.err
    return code, out


def test_cli_consensus_without_reference(tmp_path, capsys):
    path, rows = _traces(tmp_path, noisy={(0, 1), (3, 2)})
    for row in rows:
        row["answer"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = _audit([path, "--out", tmp_path / "out", "--workers", 1, "--no-plot"], capsys)
    assert code == 0, out.err
    assert "detectors run: consensus" in out.out and "not run: reference" in out.out
    traced = [json.loads(x) for x in (tmp_path / "out" / "traces.jsonl").read_text().splitlines()]
    assert [r["consensus_status"] == "disagrees" for r in traced] == \
        [(i, s) in {(0, 1), (3, 2)} for i in range(12) for s in range(4)]
    assert {r["reference_status"] for r in traced} == {"missing"}


def test_cli_nothing_to_run_is_refused(tmp_path, capsys):
    path, rows = _traces(tmp_path, k=1)
    for row in rows:
        row["answer"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = _audit([path, "--out", tmp_path / "out"], capsys)
    assert code == 2 and "nothing to audit" in out.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad,needle", [("NaN", "nan"), ('"high"', "'high'"), (None, "no verifier column")])
def test_cli_bad_verifier_column(tmp_path, capsys, bad, needle):
    path, rows = _traces(tmp_path, n=3)
    for row in rows:
        row["rm"] = 0.5
    text = "".join(json.dumps(r) + "\n" for r in rows).splitlines()
    text[5] = text[5].replace('"rm": 0.5', "" if bad is None else f'"rm": {bad}').replace(", }", "}")
    path.write_text("\n".join(text) + "\n")
    code, out = _audit([path, "--out", tmp_path / "out", "--verifier-column", "rm", "--verifier-threshold", 0.3],
                       capsys)
    assert code == 2, out.err
    assert "row 5" in out.err and needle in out.err and str(path) in out.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,needle", [(["--verifier-column", "rm"], "go together"),
                                         (["--flag-top-loss", "0.1"], "needs --score-model"),
                                         (["--flag-top-loss", "1.5", "--score-model", "m"], "fraction in \\(0, 1\\)"),
                                         (["--majority", "0"], "majority must be in"),
                                         (["--flag-loss-column", "loss"], "--flag-loss-column must be one of")])
def test_cli_flag_combinations_refused(tmp_path, capsys, argv, needle):
    path, _ = _traces(tmp_path, n=2)
    code, out = _audit([path, "--out", tmp_path / "out", *argv], capsys)
    assert code == 2 and re.search(needle, out.err), out.err
    assert not (tmp_path / "out").exists()


def test_cli_precision_recall_on_injected_noise(tmp_path, capsys):
    """`ls-llm noise --type answer` on k=4 traces per problem; the audit finds its manifest beside the data."""
    from ls_llm.cli.noise import main as noise_main

    clean, _ = _traces(tmp_path, k=4, n=15)
    noisy = tmp_path / "noisy.jsonl"
    assert noise_main([str(clean), "--type", "answer", "--rate", "0.2", "--seed", "1", "--out", str(noisy)]) == 0
    capsys.readouterr()
    code, out = _audit([noisy, "--out", tmp_path / "out", "--workers", 1], capsys)
    assert code == 0, out.err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    manifest = [json.loads(x) for x in (tmp_path / "noisy.manifest.jsonl").read_text().splitlines()]
    truth = [m["corrupted"] for m in manifest]
    traced = [json.loads(x) for x in (tmp_path / "out" / "traces.jsonl").read_text().splitlines()]
    flags = [r["consensus_status"] == "disagrees" for r in traced]
    tp = sum(f and t for f, t in zip(flags, truth))
    got = report["detection"]["consensus"]["overall"]
    assert got["precision"] == pytest.approx(tp / sum(flags)) and got["recall"] == pytest.approx(tp / sum(truth))
    assert report["detection"]["reference"]["overall"]["f1"] == 1.0  # the clean reference finds exactly them
    assert set(report["detection"]["consensus"]["by_type"]) == {"answer"}
    assert (tmp_path / "out" / "detectors.png").is_file()
    assert "| consensus | answer |" in out.out


def test_detector_columns_reach_trace_routing(tmp_path, capsys):
    """The audit's traces.jsonl loads for training with the statuses a recipe routes by (trace_objective_column)."""
    from ls_llm.data.args import LsDataArguments
    from ls_llm.data.loading import load_traces

    path, _ = _traces(tmp_path, noisy={(1, 0)}, n=3)
    code, out = _audit([path, "--out", tmp_path / "out", "--workers", 1, "--no-plot"], capsys)
    assert code == 0, out.err
    train = load_traces(LsDataArguments(dataset_name=str(tmp_path / "out" / "traces.jsonl")))["train"]
    assert train["consensus_status"] == ["agrees"] * 4 + ["disagrees"] + ["agrees"] * 7
    assert set(train["reference_status"]) == {"agrees"} and set(train["audit_status"]) == {"correct", "wrong"}


def test_cli_detectors_scored_against_the_reference_without_a_manifest(tmp_path, capsys):
    """A teacher's own traces carry no manifest: with a reference on every row, each other detector is scored
    against the reference verdict (hand-counted: consensus flags the two minority traces, both wrong; a third
    wrong trace sits in a problem whose four traces all disagree with the reference and agree with each other)."""
    path, rows = _traces(tmp_path, noisy={(0, 1), (3, 2)} | {(5, s) for s in range(4)})
    code, out = _audit([path, "--out", tmp_path / "out", "--workers", 1], capsys)
    assert code == 0, out.err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["detection_truth"] == "reference answers"
    got = report["detection"]["consensus"]["overall"]
    assert (got["rows"], got["corrupted"], got["flagged"]) == (48, 6, 2)
    assert got["precision"] == pytest.approx(1.0) and got["recall"] == pytest.approx(2 / 6)
    assert "reference" not in report["detection"]  # the truth is not scored against itself
    assert "against the reference answers:" in out.out
    assert (tmp_path / "out" / "detectors.png").exists()


def test_a_manifest_of_other_rows_is_refused(tmp_path):
    """Ids that do not name the rows: another data set's manifest (it was aligned by position and scored)."""
    from ls_llm.data.detectors import read_manifest

    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"id": i, "corrupted": False}) + "\n" for i in ("x", "y", "z")))
    with pytest.raises(ValueError, match="no entry for row id 'a'"):
        read_manifest(path, [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    path.write_text("".join(json.dumps({"corrupted": c}) + "\n" for c in (True, False, True)))  # no ids: by position
    assert [e["corrupted"] for e in read_manifest(path, [{"id": "a"}, {"id": "b"}, {"id": "c"}])] == [True, False, True]
