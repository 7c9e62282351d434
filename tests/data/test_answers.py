"""Answer extraction and math-verify equivalence (ls_llm.answers)."""

import threading

import pytest

from ls_llm.answers import (
    extract_final_answer,
    gsm8k_gold,
    is_equivalent,
    last_boxed,
    strip_thinking,
    verify_batch,
)


def test_strip_thinking_drops_up_to_last_close():
    assert strip_thinking("<think>a</think>b</think> tail") == " tail"
    assert strip_thinking("no thinking here") == "no thinking here"
    assert strip_thinking("  <think>never closed \\boxed{3}") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x \\boxed{1} then \\boxed{\\frac{a}{b}} end", "\\frac{a}{b}"),
        ("\\boxed{\\{1,2\\}} and {stray}", "\\{1,2\\}"),
        ("nested \\boxed{x^{2}+\\sqrt{y_{1}}}", "x^{2}+\\sqrt{y_{1}}"),
        ("frame \\fbox{42}", "42"),
        ("tex form \\boxed 5$", "5"),
        ("none at all", None),
        ("\\boxed{1} then truncated \\boxed{2", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_extract_final_answer_ignores_boxes_inside_thinking():
    assert extract_final_answer("<think>maybe \\boxed{3}</think> so \\boxed{4}") == "4"
    assert extract_final_answer("<think>maybe \\boxed{3}</think> no box") is None


def test_gsm8k_gold():
    assert gsm8k_gold("He pays 2*500=<<2*500=1000>>1000.\n#### 1,000") == "1000"
    with pytest.raises(ValueError, match="answer_text"):
        gsm8k_gold("no marker")


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("027", "27", True),
        ("27.0", "27", True),
        ("28", "27", False),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{3}{4}", "\\frac34", True),
        ("(1, 2]", "(1,2]", True),
        ("(1, 2)", "(1,2]", False),
        ("90^\\circ", "90", True),
        ("\\frac{\\sqrt{2}}{2}", "\\sqrt2/2", True),
        (None, "27", False),
        ("", "27", False),
        ("{", "{", False),  # unparsable never counts as correct, even when the strings match
    ],
)
def test_is_equivalent(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected


def test_verify_batch_each_status_in_process_and_in_workers():
    base = [("27", "27"), ("3", "27"), (None, "27"), ("\\frac{", "1")]
    want = ["correct", "wrong", "missing", "unparsable"]
    assert verify_batch(*zip(*base, strict=True), workers=1) == want
    many = base * 20  # over the in-process threshold: runs in worker processes
    assert verify_batch(*zip(*many, strict=True), workers=2, chunk_size=7) == want * 20


def test_verify_batch_works_from_a_thread():
    # math-verify's signal timeouts fail off the main thread; the worker processes avoid that.
    out = []
    thread = threading.Thread(target=lambda: out.extend(verify_batch(["1", "2"], ["1", "1"])))
    thread.start()
    thread.join()
    assert out == ["correct", "wrong"]


def test_verify_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        verify_batch(["1"], [])
    with pytest.raises(ValueError, match="workers"):
        verify_batch(["1"], ["1"], workers=0)


def test_gold_that_math_verify_cannot_parse_falls_back_to_text():
    assert is_equivalent("a+b+c", "a + b + c")
    assert not is_equivalent("a+b", "a + b + c")
