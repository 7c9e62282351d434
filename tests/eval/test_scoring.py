"""Scoring helpers against hand-checked references: math equivalence, choice extraction, schemas."""

import pytest

from ls_llm.evaluation.schema import GPQA_SHUFFLE_SEED, gpqa_doc, normalize_rows
from ls_llm.evaluation.scoring import extract_choice, sample_metrics, score_choice, score_math


@pytest.mark.parametrize(
    ("pred", "gold", "verdict"),
    [
        ("25", "025", "correct"),  # AIME golds with leading zeros
        ("27", "27.0", "correct"),  # AMC golds stored as floats
        ("\\textbf{073}", "073", "correct"),
        ("(2,\\infty)", "(2, \\infty)", "correct"),
        ("[2,\\infty)", "(2,\\infty)", "wrong"),  # closed vs open interval
        ("\\dfrac{5}{6}", "\\frac{5}{6}", "correct"),
        ("0.5", "\\frac{1}{2}", "correct"),
        ("90^\\circ", "90^\\circ", "correct"),
        ("-5, 3", "3, -5", "correct"),  # multi-answer OlympiadBench golds compare as sets
        ("26", "025", "wrong"),
        ("104.", "104", "correct"),  # a full stop inside the box (AoPS solutions do this)
        ("np.arcsin(10/13)", "np.arcsin(10/13)", "correct"),  # numpy spelling, read as \arcsin
        ("np.arccos(10/13)", "np.arcsin(10/13)", "wrong"),
        ("E_{2},E_{1}", "E_{1},E_{2}", "correct"),  # a gold math-verify cannot parse: compared as text
    ],
)
def test_math_verdicts(pred, gold, verdict):
    records = score_math([[f"Thus \\boxed{{{pred}}}."]], [gold], workers=1)
    assert records[0][0]["verdict"] == verdict


def test_math_missing_and_truncated_thinking():
    outputs = [["no box at all", "<think>\\boxed{7} and then the budget ran out", "</think>\\boxed{7}"]]
    verdicts = [r["verdict"] for r in score_math(outputs, ["7"], workers=1)[0]]
    assert verdicts == ["missing", "missing", "correct"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{C}", "C"),
        ("so \\boxed{(c)}", "C"),
        ("so \\boxed{\\text{C}}", "C"),
        ("so \\boxed{C. several viral particles}", "C"),
        ("so \\boxed{an iron nail}", "4"),  # the option's own text
        ("so \\boxed{4}", "4"),  # ARC's numeric labels as given
        ("Therefore, the answer is (B).", "B"),
        ("I cannot decide.", None),
        ("\\boxed{Z}", "Z"),
    ],
)
def test_extract_choice(text, expected):
    labels = ["1", "2", "3", "4"] if "nail" in text or "{4}" in text else ["A", "B", "C", "D"]
    options = ["a wax crayon", "a plastic spoon", "a rubber eraser", "an iron nail"]
    assert extract_choice(text, labels, options) == expected


def test_choice_verdicts_and_metrics():
    doc = {"labels": ["A", "B", "C", "D"], "options": ["w", "x", "y", "z"], "answer": "B"}
    outs = [["\\boxed{B}", "\\boxed{A}", "nothing", "\\boxed{Q}"]]
    records = score_choice(outs, [doc])[0]
    assert [r["verdict"] for r in records] == ["correct", "wrong", "missing", "unparsable"]
    assert sample_metrics(records) == {"acc": 0.25, "pass_at_k": 1.0}
    assert sample_metrics(records[1:]) == {"acc": 0.0, "pass_at_k": 0.0}


def test_gpqa_shuffle_is_deterministic_and_keeps_the_correct_text():
    rows = [{"Question": f"Q{i}?", "Correct Answer": "right", "Incorrect Answer 1": "w1",
             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"} for i in range(40)]
    docs = [gpqa_doc(row, "gpqa_diamond", i) for i, row in enumerate(rows)]
    assert docs == [gpqa_doc(row, "gpqa_diamond", i) for i, row in enumerate(rows)]
    assert all(d["options"][d["labels"].index(d["answer"])] == "right" for d in docs)
    assert len({d["answer"] for d in docs}) == 4  # the correct answer is not always at the same letter
    assert GPQA_SHUFFLE_SEED == 0


@pytest.mark.parametrize(
    ("fmt", "row", "named"),
    [
        ("math", {"question": "1+1?", "solution": "two, no box"}, "gold answer"),
        ("math", {"answer": "2"}, "problem text"),
        ("arc", {"question": "q", "answerKey": "A"}, "'choices'"),
        ("arc", {"question": "q", "choices": {"text": ["a"], "label": ["A"]}}, "'answerKey'"),
        ("mmlu_pro", {"question": "q", "options": ["a", "b"]}, "'answer' letter or 'answer_index'"),
        ("gpqa", {"Question": "q", "Correct Answer": "a", "Incorrect Answer 1": "b",
                  "Incorrect Answer 2": "c"}, "'Incorrect Answer 3'"),
    ],
)
def test_missing_fields_name_task_row_and_field(fmt, row, named):
    with pytest.raises(ValueError) as err:
        normalize_rows([row], task="some_task", fmt=fmt)
    message = str(err.value)
    assert "'some_task'" in message and "row 0" in message and named in message


def test_math_gold_sources_in_priority_order():
    rows = [{"Problem": "p", "Answer": 27.0}, {"question": "p", "final_answer": ["$3$", "$-5$"]},
            {"problem": "p", "solution": ["first \\boxed{1}", "then \\boxed{\\frac{1}{2}}"]}]
    assert [d["answer"] for d in normalize_rows(rows, task="t", fmt="math")] == ["27", "3, -5", "\\frac{1}{2}"]


def test_math_gold_reads_a_worked_answer_by_its_final_line_or_box():
    # A held-out GSM8K split under --data-dir keeps its worked solution in `answer`: the gold is what follows
    # `####` (thousands separators dropped), never the whole solution text.
    rows = [{"question": "p", "answer": "48/2 = <<48/2=24>>24\n48+24 = <<48+24=72>>72\n#### 72"},
            {"question": "p", "answer": "so 1000+234\n#### 1,234"},
            {"problem": "p", "answer": "First 1+1 = 2.\nSo the answer is \\boxed{2}."}]
    assert [d["answer"] for d in normalize_rows(rows, task="t", fmt="math")] == ["72", "1234", "2"]


def test_math_gold_refuses_a_worked_answer_without_a_final_one():
    with pytest.raises(ValueError) as err:
        normalize_rows([{"question": "p", "answer": "7"}, {"question": "p", "answer": "First 3.\nThen 7."}],
                       task="heldout", fmt="math")
    message = str(err.value)
    assert "'heldout'" in message and "row 1" in message and "'answer'" in message and "####" in message
