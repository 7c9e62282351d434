"""Noise injection: determinism, realized rates, and that each corruption does what it says."""

import math
import random

import pytest

from ls_llm.answers import extract_final_answer
from ls_llm.data.noise import completion_of, inject_noise
from ls_llm.data.synthetic import generate_split, tokenizer_path
from ls_llm.data.trace_edits import perturb_number, replace_answer


@pytest.fixture(scope="module")
def rows():
    return generate_split("train", 1500, seed=0)


def _within_sampling_error(realized: float, rho: float, n: int) -> bool:
    return abs(realized - rho) <= 4 * math.sqrt(rho * (1 - rho) / n) + 1e-9


def test_deterministic_for_a_seed(rows):
    first = inject_noise(rows[:200], noise_type="answer", rate=0.3, seed=5)
    assert first == inject_noise(rows[:200], noise_type="answer", rate=0.3, seed=5)
    assert first[1] != inject_noise(rows[:200], noise_type="answer", rate=0.3, seed=6)[1]


@pytest.mark.parametrize("noise_type", ["answer", "perturb", "swap", "step"])
@pytest.mark.parametrize("rho", [0.0, 0.2, 1.0])
def test_realized_rate_matches_rho(rows, noise_type, rho):
    _, manifest, summary = inject_noise(rows, noise_type=noise_type, rate=rho, seed=1)
    n = summary["units"]
    assert _within_sampling_error(summary["realized_rate"], rho, n), summary
    assert summary["corrupted_rows"] == sum(m["corrupted"] for m in manifest)


def test_answer_noise_changes_answer_everywhere_and_keeps_gold(rows):
    noisy, manifest, _ = inject_noise(rows, noise_type="answer", rate=0.5, seed=2)
    answers = {r["answer"] for r in rows}
    for clean, row, entry in zip(rows, noisy, manifest, strict=True):
        assert row["answer"] == clean["answer"]  # the gold column is never touched
        if not entry["corrupted"]:
            assert row["messages"] == clean["messages"]
            continue
        text = completion_of(row)
        new = extract_final_answer(text)
        assert new == entry["new_answer"] != clean["answer"] and new in answers
        last_step = text.split("</think>")[0].strip().splitlines()[-1]
        assert last_step.endswith(f"= {new}")  # the derivation now ends on the wrong answer too


def test_perturbation_is_small_and_numeric():
    rng = random.Random(0)
    for value in ["7", "120", "-45", "3.25", "1000"]:
        for _ in range(50):
            new, how = perturb_number(value, rng)
            assert new != value and float(new) != float(value), (value, new, how)
            if how.startswith("offset"):
                assert abs(float(new) - float(value)) <= 3
            else:  # one digit changed, same length, no leading zero
                assert len(new) == len(value) and sum(a != b for a, b in zip(new, value, strict=True)) == 1
                assert not (len(new) > 1 and new.lstrip("-")[0] == "0" and "." not in new[:3])
    assert perturb_number("\\frac{1}{2}", rng) is None


def test_replace_answer_is_whole_token_only():
    text = "<think>\n69 + 169 = 238\n238 - 169 = 69\n</think>\nSo 69 it is: \\boxed{69}."
    new, count = replace_answer(text, "69", "70")
    assert new == "<think>\n69 + 169 = 238\n238 - 169 = 70\n</think>\nSo 70 it is: \\boxed{70}."
    assert count == 3


def test_swap_and_token_and_step_edits(rows):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    swapped, manifest, _ = inject_noise(rows[:100], noise_type="swap", rate=1.0, seed=0)
    clean = [completion_of(r) for r in rows[:100]]
    assert all(
        completion_of(r) in clean and completion_of(r) != c for r, c in zip(swapped, clean, strict=True)
    )
    _, _, summary = inject_noise(rows[:400], noise_type="token", rate=0.1, seed=0, tokenizer=tok)
    assert _within_sampling_error(summary["realized_rate"], 0.1, summary["units"]), summary
    stepped, _, _ = inject_noise(rows[:100], noise_type="step", rate=0.5, seed=0)
    for row, before in zip(stepped, rows[:100], strict=True):
        assert extract_final_answer(completion_of(row)) == before["answer"]  # the label survives step noise


def test_bad_rho_and_missing_tokenizer(rows):
    for rho in (-0.1, 1.01):
        with pytest.raises(ValueError, match="noise_rho"):
            inject_noise(rows[:5], noise_type="answer", rate=rho, seed=0)
    with pytest.raises(ValueError, match="tokenizer"):
        inject_noise(rows[:5], noise_type="token", rate=0.1, seed=0)
    with pytest.raises(ValueError, match="noise_type"):
        inject_noise(rows[:5], noise_type="label", rate=0.1, seed=0)


def test_box_edits_read_boxes_as_the_answer_logic_does():
    # One parser (ls_llm.answers): TeX's brace-less `\boxed 5` (read as 5) and an \fbox with nested braces.
    from ls_llm.data.trace_edits import replace_boxed_answer

    assert extract_final_answer("so it is \\boxed 5 in all") == "5"
    assert replace_boxed_answer("so it is \\boxed 5 in all", "5", "7") == ("so it is \\boxed 7 in all", 1)
    text = "<think>\n2 / 4 = \\frac{1}{2}\n</think>\n\\fbox{\\frac{1}{2}} and \\fbox{ {1}/2 }"
    assert replace_boxed_answer(text, "\\frac{1}{2}", "\\frac{1}{3}") == (
        text.replace("\\fbox{\\frac{1}{2}}", "\\fbox{\\frac{1}{3}}"), 1)
