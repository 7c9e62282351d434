"""Audit: flags exactly the answer-noised rows; reports by group; CLI outputs and refusals."""

import json
from pathlib import Path

import pytest

from ls_llm.data.args import LsDataArguments
from ls_llm.data.audit import audit_rows
from ls_llm.data.loading import load_rows
from ls_llm.data.noise import inject_noise

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
SOURCES = [str(FIXTURES / name) for name in ("math.jsonl", "gsm8k.jsonl", "r1.jsonl")]


@pytest.fixture(scope="module")
def fixture_rows():
    return load_rows(LsDataArguments(dataset_mixture=SOURCES, dataset_rendering="r1"))


def test_clean_fixture_audits_all_correct(fixture_rows):
    result = audit_rows(fixture_rows, workers=1)
    assert result.statuses == ["correct"] * len(fixture_rows)
    assert result.report["overall"]["frac_bad"] == 0.0


@pytest.mark.parametrize("workers", [1, 2])
def test_audit_flags_exactly_the_answer_noised_rows(fixture_rows, workers):
    noisy, manifest, summary = inject_noise(fixture_rows, noise_type="answer", rate=0.5, seed=3)
    corrupted = [m["corrupted"] for m in manifest]
    assert 0 < sum(corrupted) < len(corrupted)
    rows = noisy * 4 if workers == 2 else noisy  # enough rows for the worker-process path
    result = audit_rows(rows, workers=workers)
    assert [s != "correct" for s in result.statuses] == corrupted * (len(rows) // len(noisy))
    assert set(result.statuses) <= {"correct", "wrong"}
    assert result.report["overall"]["frac_wrong"] == pytest.approx(summary["row_rate"])


def test_report_groups_and_statuses():
    def row(rid, completion, answer, subject):
        return {
            "id": rid,
            "messages": [{"role": "assistant", "content": completion}],
            "answer": answer,
            "source": "s",
            "subject": subject,
            "level": None,
        }

    rows = [
        row("a", "so \\boxed{4}", "4", "x"),
        row("b", "so \\boxed{5}", "4", "x"),
        row("c", "no box here", "4", "y"),
        row("d", "\\boxed{\\frac{}{}}", "4", "y"),
        row("e", "\\boxed{4}", None, "y"),
    ]
    result = audit_rows(rows, workers=1)
    assert result.statuses == ["correct", "wrong", "missing", "unparsable", "no_reference"]
    report = result.report
    assert report["overall"]["checked"] == 4 and report["overall"]["frac_wrong"] == 0.25
    assert report["by_subject"]["x"]["frac_wrong"] == 0.5 and report["by_subject"]["y"]["checked"] == 2
    assert "by_level" not in report


def test_noise_then_audit_cli_round_trip(tmp_path, capsys):
    from ls_llm.cli import audit as audit_cli
    from ls_llm.cli import noise as noise_cli

    out = tmp_path / "noisy.jsonl"
    argv = [SOURCES[1], "--type", "answer", "--rate", "0.5", "--seed", "1", "--out", str(out)]
    assert noise_cli.main(argv) == 0
    summary = json.loads((tmp_path / "noisy.summary.json").read_text())
    manifest = [json.loads(line) for line in (tmp_path / "noisy.manifest.jsonl").read_text().splitlines()]
    assert summary["corrupted_rows"] == sum(m["corrupted"] for m in manifest) > 0
    assert noise_cli.main(argv) == 2 and "exists" in capsys.readouterr().err  # no silent overwrite
    assert noise_cli.main([*argv, "--rate", "1.5", "--overwrite"]) == 2
    assert "noise_rho" in capsys.readouterr().err
    first = out.read_text()  # --noise-rho (the recipe's name for rho) is --rate's long form: the same rows
    assert noise_cli.main([*argv[:3], "--noise-rho", "0.5", *argv[5:], "--overwrite"]) == 0
    assert out.read_text() == first

    audit_dir = tmp_path / "audit"
    assert audit_cli.main([str(out), "--out", str(audit_dir), "--workers", "1"]) == 0
    noisy_ids = [json.loads(line)["id"] for line in (audit_dir / "noisy.jsonl").read_text().splitlines()]
    assert noisy_ids == [m["id"] for m in manifest if m["corrupted"]]
    assert (audit_dir / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert audit_cli.main([str(out), "--out", str(audit_dir)]) == 2


def test_audit_bench_reads_the_data_it_is_given_and_no_path_of_its_own(tmp_path):
    from ls_llm.bench.math_rows import math_rows as _rows

    rows, origin = _rows(3, 0, None)
    assert origin == "generated MATH-like answers" and len(rows) == 3
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]  # trace_scores renders the chat
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"problem": f"{i}+1?", "solution": f"\\\\boxed{{{i + 1}}}"}) + "\n"
                            for i in range(2)))
    rows, origin = _rows(5, 0, str(path))
    assert origin == str(path) and sorted(r["answer"] for r in rows) == ["1", "2"]
