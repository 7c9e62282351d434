"""Issue 22: wrong answers never credited, every way a model states its answer read.

Golds are copied rows (tests/fixtures/eval/issue22, from the Minerva OCW set) or written in the
benchmarks' own storage forms; answers are written the way Qwen2.5-Math, R1 distills and Llama models
write them. The reference for numbers is plain arithmetic (Fraction), not the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ls_llm.answers import answer_status, last_boxed
from ls_llm.evaluation.scoring import choice_verdict, extract_choice, score_choice, score_math

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "issue22"


def _minerva_golds() -> dict[str, str]:
    rows = [json.loads(line) for line in (FIXTURES / "minerva_rows.jsonl").read_text().splitlines()]
    return {str(i): last_boxed(row["solution"]) for i, row in enumerate(rows)}


# --- (1) wrong answers credited -----------------------------------------------------------------------------

@pytest.mark.parametrize("pred", ["0", "2.55e-10", "1.3e-8", "1.3 \\times 10^{-8}", "1.24 \\times 10^{-9}",
                                  "1.24 \\times 10^{-7}", "0.0"])
def test_tiny_numbers_are_compared_relatively(pred):
    gold = _minerva_golds()["0"]
    assert gold == "1.24e-8"
    assert answer_status(pred, gold) == "wrong"
    assert answer_status("1.24 \\times 10^{-8}", gold) == "correct"
    assert answer_status("\\boxed{1.24e-8}", gold) == "correct"


@pytest.mark.parametrize(("pred", "gold", "verdict"), [
    ("1e-30", "6.6e-34", "wrong"),
    ("6.6 \\times 10^{-33}", "6.6e-34", "wrong"),  # an exponent 10x off
    ("6.6 \\times 10^{-34}", "6.6e-34", "correct"),
    ("0", "0.0000001", "wrong"),  # zero never equals a non-zero gold
    ("0.333333", "\\frac{1}{3}", "correct"),  # ordinary sizes keep math-verify's 6-decimal rule
    ("0.3333", "\\frac{1}{3}", "wrong"),
])
def test_numbers_of_every_size(pred, gold, verdict):
    assert answer_status(pred, gold) == verdict


def test_a_symbolic_gold_that_parses_to_a_number_does_not_credit_wrong_answers():
    golds = _minerva_golds()
    hbar, thirds = golds["1"], golds["2"]
    for wrong in ["\\hbar \\omega(v+1 / 2)+\\frac{E_{0}^{2} e^{2}}{2 m \\omega^{2}}", "2"]:
        assert answer_status(wrong, hbar) == "wrong"
    for wrong in ["\\frac{1}{2} E_{1}+\\frac{2}{3} E_{2}", "\\frac{2}{3} E_{1}", "\\frac{1}{3} E_{1}+\\frac{2}{3} E_{3}"]:
        assert answer_status(wrong, thirds) == "wrong"
    assert answer_status("\\frac{1}{3} E_1 + \\frac{2}{3} E_2", thirds) == "correct"
    same = score_math([["\\boxed{\\hbar\\omega(v+1/2)-\\dfrac{E_0^2 e^2}{2 m \\omega^2}}"]], [hbar], workers=1)
    assert same[0][0]["verdict"] == "correct"


ARC_OPTIONS = ["A tree removes a gas from the air.", "A tree adds water to the soil.", "$5$ m/s",
               "(A) only the roots"]


@pytest.mark.parametrize(("text", "expected"), [
    ("\\boxed{A tree removes a gas from the air.}", "A"),  # the option's text, not the letter-like word
    ("\\boxed{A tree adds water to the soil.}", "B"),
    ("\\boxed{A tree adds water to the soil}", "B"),  # without the option's full stop
    ("\\boxed{(A) only the roots}", "D"),  # MMLU-Pro option opening with its own "(A) ..."
    ("\\boxed{A tree}", "A TREE"),  # neither a label nor an option: unparsable, never A
])
def test_boxed_option_text_is_that_option(text, expected):
    labels = ["A", "B", "C", "D"]
    choice = extract_choice(text, labels, ARC_OPTIONS)
    assert (choice or "").upper() == expected
    if expected not in labels:
        assert choice_verdict(choice, "A", labels) == "unparsable"


# --- (2) multiple choice in every listed form ---------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Reasoning first.\n\n(B)", "Reasoning first.\n\n**B**", "Reasoning first.\nB", "B) A tree adds water to the soil.",
    "**Final Answer**\nB", "**Final Answer**\n\n**B**", "Option B is correct.", "**B** is the correct answer.",
    "The answer is b.", "I think it's A, no wait, B.", "<think>The answer is (A).</think>\nThe answer is (B).",
    "The answer is A tree adds water to the soil.", "So the answer is: a tree adds water to the soil",
    "The answer is (A). On reflection, the answer is (B).", "\\boxed{b}",
])
def test_choice_forms_are_read(text):
    labels = ["A", "B", "C", "D"]
    assert extract_choice(text, labels, ARC_OPTIONS) == "B"


@pytest.mark.parametrize("text", [
    "the answer is a good guess", "Let me answer a question", "Vitamin A.", "I think so.", "A tree is nice.",
    "<think>The answer is (B).</think>",
])
def test_no_letter_from_an_ordinary_word(text):
    assert extract_choice(text, list("ABCDEFGHIJ"), ["x"] * 10) is None


def test_option_text_starting_with_a_dollar_sign():
    assert extract_choice("The answer is 5 m/s.", ["A", "B", "C", "D"], ARC_OPTIONS) == "C"


def test_choice_records_carry_the_rule():
    docs = [{"labels": ["A", "B"], "options": ["yes", "no"], "answer": "B"}]
    records = score_choice([["\\boxed{B}", "The answer is (B).", "Thinking.\n**B**", "no idea"]], docs)[0]
    assert [r["rule"] for r in records] == ["boxed", "stated", "final line", None]
    assert [r["verdict"] for r in records] == ["correct", "correct", "correct", "missing"]


# --- (3) math forms -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "gold", "verdict"), [
    ("So the angle is $\\boxed{30°}$.", "30", "correct"),
    ("\\boxed{30°}", "30^\\circ", "correct"),
    ("\\boxed{45°}", "30", "wrong"),
    ("\\boxed{x = 58,500}", "58500", "correct"),
    ("\\boxed{58,500}", "58,\\!500", "correct"),
    ("\\boxed{58,501}", "58500", "wrong"),
    ("\\boxed{a = -2, b = -2}", "-2,-2", "correct"),  # a multiset, not the set {-2}
    ("\\boxed{-2}", "-2,-2", "wrong"),
    ("\\boxed{b = 3, a = -2}", "-2,3", "correct"),  # named parts: which is which is stated
    ("\\boxed{a = 3, b = -2}", "-2,3", "wrong"),
    ("\\boxed{3, -2}", "-2,3", "correct"),  # unnamed: a multiset
    ("\\boxed{58{,}500}", "58500", "correct"),
    ("\\boxed{1}, \\boxed{-2}", "-2,1", "correct"),  # one box per part
    ("$x = \\boxed{1}$ and $y = \\boxed{-2}$", "1,-2", "correct"),
    ("\\boxed{1}, \\boxed{-3}", "-2,1", "wrong"),
    ("\\boxed{12.5\\%}", "12.5", "correct"),  # percent both ways
    ("\\boxed{62.5}", "62.5\\%", "correct"),
    ("\\boxed{6.25}", "62.5\\%", "wrong"),
    ("The final answer is 5.", "5", "correct"),
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5", "correct"),
    ("**Answer:** 5", "5", "correct"),
    ("**Answer:** 6", "5", "wrong"),
    ("**Final Answer**\n\\[ \\frac{1}{2} \\]", "0.5", "correct"),
    ("<think>\\boxed{5}</think>\nThe answer is 4.", "5", "wrong"),
])
def test_math_forms(text, gold, verdict):
    record = score_math([[text]], [gold], workers=1)[0][0]
    assert record["verdict"] == verdict, record


def test_the_rule_that_found_each_answer_is_recorded():
    from ls_llm.final_answer import find_final_answer

    assert find_final_answer("so \\boxed{3}") == ("3", "boxed")
    assert find_final_answer("\\boxed{1}, \\boxed{2}") == ("1, 2", "boxed parts")
    assert find_final_answer("The final answer is $3$.") == ("3", "stated")
    assert find_final_answer("Then \\boxed{1}. Later we see \\boxed{2}.") == ("2", "boxed")
    assert find_final_answer("nothing") == (None, None)
    records = score_math([["\\boxed{3}", "The answer is 3.", "no"]], ["3"], workers=1)[0]
    assert [r["rule"] for r in records] == ["boxed", "stated", None]


def test_share_per_rule_for_results_json():
    from ls_llm.evaluation.scoring import rule_shares

    records = score_math([["\\boxed{3}", "The answer is 3.", "no", "\\boxed{1}, \\boxed{2}"]], ["3"], workers=1)
    samples = [{"filtered_resps": [records[0]]}]
    assert rule_shares(samples) == {"boxed": 0.25, "boxed parts": 0.25, "none": 0.25, "stated": 0.25}


@pytest.mark.parametrize(("options", "text", "expected"), [
    (["C", "NO_{2}", "O_{2}", "CO"], "The answer is C.", "C"),  # ARC: option A's text is the symbol C
    (["C", "NO_{2}", "O_{2}", "CO"], "The answer is CO.", "D"),
    (["R", "rr", "Rr", "RR"], "\\boxed{Rr}", "C"),  # alleles: case tells the options apart
    (["R", "rr", "Rr", "RR"], "The answer is RR.", "D"),
    (["4", "40", "6", "8"], "The answer is 4.", "A"),  # a one-character option text
    (["4", "40", "6", "8"], "The answer is 42.", None),
])
def test_option_texts_that_look_like_labels_or_differ_by_case(options, text, expected):
    assert extract_choice(text, ["A", "B", "C", "D"], options) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("I choose B.", "B"), ("I'll go with B.", "B"), ("Let me choose a method.", None), ("I will go with the flow.", None),
    ("So it is C-section.", None), ("I hope this helps.", None), ("It is I who decides.", None),
    ("Reasoning.\n-1 m/s^2", "B"),  # the option's text on the final line, sign included
])
def test_more_statements_and_ordinary_words(text, expected):
    assert extract_choice(text, list("ABCDEFGHIJ"), ["1 m/s^2", "-1 m/s^2"] + ["x"] * 8) == expected


def test_numeric_labels_in_a_corrected_statement():
    labels, options = ["1", "2", "3", "4"], ["a wax crayon", "a plastic spoon", "a rubber eraser", "an iron nail"]
    assert extract_choice("I think it's 1, no wait, 4.", labels, options) == "4"
    assert extract_choice("It is 2 times larger, so the answer is (3).", labels, options) == "3"


@pytest.mark.parametrize("text", ["The answer is (A) or (B)", "**Answer:** (A) or (B)", "Answer: A/B",
                                  "I choose A, B and C", "The answer is A or B."])
def test_a_hedged_statement_is_never_credited(text):
    """Several choices stated after "the answer is" score like a hedged box: wrong whatever the gold (the first
    named was credited)."""
    labels = ["A", "B", "C", "D"]
    choice = extract_choice(text, labels, ARC_OPTIONS)
    assert choice_verdict(choice, "A", labels) != "correct" and choice_verdict(choice, "B", labels) != "correct"


def test_a_hedge_between_option_texts_is_never_credited():
    labels, options = ["A", "B", "C", "D"], ["red", "blue", "green", "yellow"]
    choice = extract_choice("The answer: blue or green", labels, options)
    assert choice_verdict(choice, "B", labels) == "wrong" and choice_verdict(choice, "C", labels) == "wrong"


@pytest.mark.parametrize("text", ["A) red\nB) blue\nC) green\nD) yellow", "Let me list the options:\nA) red\nB) blue"])
def test_the_options_listed_again_are_no_answer(text):
    """The last line of an echoed option list is not the model's choice (it was read as "D")."""
    assert extract_choice(text, ["A", "B", "C", "D"], ["red", "blue", "green", "yellow"]) is None


def test_an_answer_after_the_list_still_counts():
    options = ["red", "blue", "green", "yellow"]
    assert extract_choice("A) red\nB) blue\n\nThe answer is B", ["A", "B", "C", "D"], options) == "B"
    assert extract_choice("So the answer is B\nB) blue", ["A", "B", "C", "D"], options) == "B"
