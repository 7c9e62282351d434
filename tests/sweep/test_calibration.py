"""ECE against a per-bin loop written from the definition, and the answer-token positions."""

import random

import pytest
import torch

from ls_llm.answers import last_boxed_span
from ls_llm.sweep.calibration import (
    answer_token_confidence,
    computed_span,
    expected_calibration_error,
)


def _reference_ece(conf: list[float], hit: list[int], n_bins: int) -> float:
    total, ece = len(conf), 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        idx = [i for i, c in enumerate(conf) if lo <= c < hi or (b == n_bins - 1 and c == 1.0)]
        if idx:
            acc = sum(hit[i] for i in idx) / len(idx)
            mean_conf = sum(conf[i] for i in idx) / len(idx)
            ece += len(idx) / total * abs(acc - mean_conf)
    return ece


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_definition(n_bins):
    rng = random.Random(n_bins)
    conf = [rng.random() for _ in range(500)] + [0.0, 1.0, 0.5]
    hit = [int(rng.random() < c ** 2) for c in conf]
    got = expected_calibration_error(torch.tensor(conf, dtype=torch.float64), torch.tensor(hit), n_bins)
    assert got == pytest.approx(_reference_ece(conf, hit, n_bins), abs=1e-12)


def test_ece_extremes():
    # Perfectly calibrated bins give 0; always-confident-and-wrong gives 1.
    assert expected_calibration_error(torch.tensor([1.0, 1.0]), torch.tensor([1, 1])) == 0.0
    assert expected_calibration_error(torch.tensor([1.0, 1.0]), torch.tensor([0, 0])) == 1.0
    assert expected_calibration_error(torch.zeros(0), torch.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([1]), 0)


class _Oracle(torch.nn.Module):
    """Predicts the next token of known sequences with probability p (the rest spread evenly)."""

    def __init__(self, vocab: int, p: float):
        super().__init__()
        self.vocab, self.p = vocab, p

    def forward(self, input_ids, attention_mask):
        nxt = torch.roll(input_ids, -1, dims=1)
        probs = torch.full((*input_ids.shape, self.vocab), (1 - self.p) / (self.vocab - 1))
        probs.scatter_(2, nxt.unsqueeze(-1), self.p)
        return type("Out", (), {"logits": probs.log()})()


def test_answer_tokens_teacher_forced():
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    rows = [{"problem": "Tom has 3 pens.", "solution": "3 + 40 = 43\n43 - 0 = 43\nThe answer is \\boxed{43}."},
            {"problem": "Ana has 7 pens.", "solution": "The answer is \\boxed{7}."}]
    spans = answer_token_confidence(_Oracle(len(tok), 0.8), tok, rows, batch_size=1)
    # Digits are single tokens: "43" and "7" are three boxed answer tokens, every one predicted with p = 0.8;
    # the computed answer is the last "= 43" (two tokens; the second row computes nothing).
    conf, hit = spans["boxed"]
    assert conf.tolist() == pytest.approx([0.8, 0.8, 0.8])
    assert hit.tolist() == [1.0, 1.0, 1.0]
    assert spans["computed"][0].tolist() == pytest.approx([0.8, 0.8])
    batched = answer_token_confidence(_Oracle(len(tok), 0.8), tok, rows, batch_size=2)  # padding changes nothing
    assert batched["boxed"][0].tolist() == pytest.approx(conf.tolist())


def test_computed_span_is_last_result_not_an_operand():
    text = "10 - 9 = 1\n1 + 10 = 11\n11 - 10 = 1\nThe answer is \\boxed{1}."
    start, end = computed_span(text, last_boxed_span(text))
    assert text[start - 2 : end + 1] == "= 1\n" and start == text.rindex("= 1\n") + 2
    assert computed_span("x = 12 \\boxed{1}", last_boxed_span("x = 12 \\boxed{1}")) is None
    decimal = "y = 1.5\nso \\boxed{1}"  # "1" is not computed by "= 1.5"; "= 1." ending a sentence is
    assert computed_span(decimal, last_boxed_span(decimal)) is None
    sentence = "so y = 1. Then \\boxed{1}"
    assert computed_span(sentence, last_boxed_span(sentence)) == (sentence.index("1"), sentence.index("1") + 1)


def test_answer_tokens_of_any_trace_the_answer_logic_reads():
    # An \\fbox with nested braces, in a trace that is not `a op b = c`: its answer is what ls_llm.answers reads.
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    rows = [{"problem": "Half of one?", "solution": "x = \\frac{1}{2}\nSo the answer is \\fbox{\\frac{1}{2}}."}]
    spans = answer_token_confidence(_Oracle(len(tok), 0.8), tok, rows, batch_size=1)
    # This tokenizer spells `\\frac{1}{2}` in 11 tokens; the box's closing brace is not an answer token.
    assert spans["boxed"][0].tolist() == pytest.approx([0.8] * 11)
    assert spans["computed"][0].tolist() == pytest.approx([0.8] * 11)  # where `x = ...` derives it
    # A box only inside the thinking is no final answer (as the evaluation reads it): refused, naming the row.
    with pytest.raises(ValueError, match="no final"):
        answer_token_confidence(_Oracle(len(tok), 0.8), tok, [{"problem": "q", "solution": "<think>\\boxed{3}</think>"
                                                                                            " so it is 3"}])
