"""Every task loads through lm-eval's TaskManager from fixtures in each schema variant, and its
YAML-wired scoring (filter + process_results) gets gold / wrong / thinking outputs right."""

import json
from pathlib import Path

import pytest

from ls_llm.answers import last_boxed
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

MATH = ["aime24", "aime25", "amc23", "math500", "minerva_math", "olympiadbench"]
CHOICE = ["arc_challenge", "gpqa_diamond", "mmlu_pro"]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
VARIANTS = ("upstream", "local")
DEFAULT_K = {"aime24": 16, "aime25": 16, "amc23": 16}


def _manager(data_dir):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(DEFAULT_TASKS_DIR), include_defaults=False,
                       metadata={"data_dir": str(data_dir)})


@pytest.fixture(scope="module", params=VARIANTS)
def loaded(request):
    return request.param, _manager(FIXTURES / request.param).load(["ls_math", "ls_ood"])


def _score(task, outputs):
    """Run the task's own filter and process_results (as wired in its YAML) on given outputs."""
    docs = list(task.test_docs())
    filter_fn = task.config.filter_list[0]["filter"][0]["filter_fn"]
    records = filter_fn([[text] for text in outputs], docs)
    return [task.config.process_results(doc, [rec]) for doc, rec in zip(docs, records, strict=True)], records


def _gold_text(doc):
    if "labels" in doc:
        return f"The correct option is {doc['answer']}. \\boxed{{{doc['answer']}}}"
    if last_boxed(doc["solution"]) is not None:
        return doc["solution"]  # the dataset's own worked solution
    return f"Working omitted. The final answer is $\\boxed{{{doc['answer']}}}$."


def _wrong(doc):
    if "labels" in doc:
        return next(label for label in doc["labels"] if label != doc["answer"])
    return "-98765.4321"


def test_suites_hold_the_issue_tasks(loaded):
    _, tasks = loaded
    assert sorted(tasks["tasks"]) == sorted(MATH + CHOICE)
    assert sorted(tasks["group_map"]["ls_math"]) == sorted(MATH)
    assert sorted(tasks["group_map"]["ls_ood"]) == sorted(CHOICE)


def test_every_task_loads_with_prompt_and_defaults(loaded):
    variant, tasks = loaded
    for name, task in tasks["tasks"].items():
        docs = list(task.test_docs())
        raw = (FIXTURES / variant / name / "test.jsonl").read_text().splitlines()
        assert len(docs) == len(raw) >= 2, name
        prompt = task.doc_to_text(docs[0])
        assert "\\boxed{}" in prompt
        if name in CHOICE:
            assert all(f"{label}. {option}" in prompt for label, option in zip(docs[0]["labels"], docs[0]["options"]))
        assert task.config.repeats == DEFAULT_K.get(name, task.config.repeats)
        assert 1 <= task.config.repeats <= 16
        gen = task.config.generation_kwargs
        assert (gen["temperature"], gen["top_p"], gen["max_gen_toks"]) == (0.6, 0.95, 32768)


def test_gold_solutions_score_all_correct(loaded):
    _, tasks = loaded
    for name, task in tasks["tasks"].items():
        metrics, records = _score(task, [_gold_text(doc) for doc in task.test_docs()])
        assert all(m == {"acc": 1.0, "pass_at_k": 1.0} for m in metrics), (name, records)


def test_wrong_answers_score_all_wrong(loaded):
    _, tasks = loaded
    for name, task in tasks["tasks"].items():
        metrics, records = _score(task, [f"So the answer is \\boxed{{{_wrong(doc)}}}." for doc in task.test_docs()])
        assert all(m["acc"] == 0.0 for m in metrics), (name, records)
        assert all(r[0]["verdict"] == "wrong" for r in records), (name, records)


def test_only_the_answer_after_thinking_counts(loaded):
    _, tasks = loaded
    for name, task in tasks["tasks"].items():
        docs = list(task.test_docs())
        right_last = [f"<think>Maybe \\boxed{{{_wrong(d)}}}? No.</think>{_gold_text(d)}" for d in docs]
        wrong_last = [f"<think>{_gold_text(d)}</think>Final: \\boxed{{{_wrong(d)}}}" for d in docs]
        assert all(m["acc"] == 1.0 for m in _score(task, right_last)[0]), name
        assert all(m["acc"] == 0.0 for m in _score(task, wrong_last)[0]), name


def test_local_variants_normalise_to_upstream_golds():
    tasks = _manager(FIXTURES / "local").load(["ls_math", "ls_ood"])
    golds = {name: [d["answer"] for d in task.test_docs()] for name, task in tasks["tasks"].items()}
    assert golds["aime24"][:2] == ["025", "073"]  # leading zeros kept in the gold, matched numerically
    assert golds["amc23"][0] == "27"  # 27.0 in the file
    assert golds["minerva_math"][0] == last_boxed(json.loads(
        (FIXTURES / "local" / "minerva_math" / "test.jsonl").read_text().splitlines()[0])["solution"])
    assert golds["olympiadbench"] == ["\\frac{1}{2}", "[1,4]"]  # only a \boxed{} in a solution list
    assert golds["mmlu_pro"] == ["C", "B"]  # answer_index 2, answer letter "B"


def test_scoring_bench_reads_the_suite_from_its_task_file_and_its_data_from_the_command_line(tmp_path, capsys):
    from ls_llm.bench.scoring import main, math_tasks

    assert math_tasks() == MATH  # eval/tasks/ls_math.yaml is the one list
    (tmp_path / "ls_math.yaml").write_text("group: ls_math\ntask: [math500]\n")
    assert math_tasks(tmp_path) == ["math500"]
    with pytest.raises(SystemExit) as stop:  # no default pointing outside the checkout
        main([])
    assert stop.value.code == 2 and "--data-dir" in capsys.readouterr().err
