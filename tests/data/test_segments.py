"""Trace segments: the answer span of each supported format, and its tokens on trl's prepared rows."""

from pathlib import Path

import pytest

from ls_llm.data.args import LsDataArguments
from ls_llm.data.loading import load_traces
from ls_llm.data.segments import ANSWER, NOT_TRAINED, REASONING, answer_span, token_segments

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "data"
ARITH = ROOT / "tests" / "fixtures" / "trainers" / "arith_train.jsonl"


@pytest.mark.parametrize("text,answer", [
    ("2 + 3 = 5, so \\boxed{5}.", "5"),
    ("First \\boxed{1}; finally \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),  # the last box, nested braces
    ("So $\\boxed{x^{2}+\\sqrt{y_{1}}}$ is it", "x^{2}+\\sqrt{y_{1}}"),
    ("<think>\ntry \\boxed{7}\n</think>\n\nThe answer is $\\boxed{9}$.", "9"),  # after </think> only
    ("<think>\n\\boxed{7} is a guess\n</think>\nSo it is 9.\nThe answer is 9.", "9"),  # no box after </think>
    ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
    ("Half of 48 is 24.\n####  1,024 \n", "1,024"),
    ("We add them. The final answer is: $12$.", "12"),
    ("We add them.\nThe answer is \\frac{1}{2}", "\\frac{1}{2}"),
    ("It is \\fbox{4}.", "4"),
])
def test_answer_span_per_format(text, answer):
    start, end = answer_span(text)
    assert text[start:end] == answer


@pytest.mark.parametrize("text", ["Just some reasoning, no final answer.", "<think>\n\\boxed{3} unfinished",
                                  "", "\\boxed{unclosed", "#### "])
def test_no_answer(text):
    assert answer_span(text) is None


CASES = {  # fixture -> (format, tokenizers it is tokenized with)
    "math.jsonl": ("problem_solution", ("qwen3", "chatml_no_markers")),
    "gsm8k.jsonl": ("question_answer", ("qwen3", "chatml_no_markers")),
    "r1.jsonl": ("r1", ("qwen3", "chatml_no_markers")),
    "messages.jsonl": ("messages", ("qwen3", "chatml_no_markers")),
    "prompt_completion.jsonl": ("prompt_completion", ("chatml_no_markers",)),
    "arith": ("messages", ("shipped", "qwen3")),
}


def _prepared(tok, data, tmp_path, **kw):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id))
    args = LsSFTConfig(output_dir=str(tmp_path), completion_only_loss=True, max_length=kw.pop("max_length", 4096),
                       use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=1, **kw)
    return LsSFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok).train_dataset


@pytest.mark.parametrize("case", [(f, t) for f, (_, toks) in CASES.items() for t in toks], ids=str)
def test_answer_tokens_on_prepared_rows(case, chat_tokenizers, tmp_path):
    name, which = case
    tok = chat_tokenizers(which)
    path = ARITH if name == "arith" else DATA / name
    data = load_traces(LsDataArguments(dataset_name=str(path), dataset_format=CASES[name][0], dataset_max_samples=4,
                                       dataset_answer_instruction=""))["train"]
    for row in _prepared(tok, data, tmp_path):
        segments, found = token_segments(row, tok)
        assert len(segments) == len(row["input_ids"])
        for seg, label in zip(segments, row["labels"]):
            assert (seg == NOT_TRAINED) == (label == -100)
        completion = row["completion"][-1]["content"]
        span = answer_span(completion)
        assert found == (span is not None)
        answer_ids = [i for i, s in zip(row["input_ids"], segments) if s == ANSWER]
        if span is not None:
            # The answer tokens cover the answer's characters and little else (a token may straddle the edge).
            decoded = tok.decode(answer_ids)
            want = completion[span[0]:span[1]]
            assert want.replace(" ", "") in decoded.replace(" ", ""), (decoded, want)
            assert len(decoded) <= len(want) + 4, (decoded, want)
            assert REASONING in segments


def test_no_answer_is_all_reasoning_and_truncation_keeps_alignment(chat_tokenizers, tmp_path):
    from datasets import Dataset

    tok = chat_tokenizers("chatml_no_markers")
    rows = [{"prompt": [{"role": "user", "content": "What is 4-1?"}],
             "completion": [{"role": "assistant", "content": "I do not know."}]},
            {"prompt": [{"role": "user", "content": "What is 9/3?"}],
             "completion": [{"role": "assistant", "content": "9/3 = 3, so \\boxed{3} and more words after it"}]}]
    prepared = _prepared(tok, Dataset.from_list(rows), tmp_path, max_length=24)
    none, boxed = (token_segments(r, tok) for r in prepared)
    assert not none[1] and set(none[0]) == {NOT_TRAINED, REASONING}
    assert len(boxed[0]) == len(prepared[1]["input_ids"]) == 24  # truncated (keep_start): still aligned


def test_mismatched_tokens_are_refused(chat_tokenizers):
    tok = chat_tokenizers("chatml_no_markers")
    row = {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "\\boxed{1}"}],
           "input_ids": [5, 6, 7], "labels": [5, 6, 7]}
    with pytest.raises(ValueError, match="does not reproduce the training tokens"):
        token_segments(row, tok)
