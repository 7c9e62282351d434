"""Synthetic arithmetic task and its shipped digit-level tokenizer."""

import json
import re

import pytest

from ls_llm.data.synthetic import (
    SyntheticConfig,
    generate_split,
    split_of,
    tokenizer_path,
    write_synthetic_dataset,
)

# Independent reading of the question text: the reference the generator's answers are checked against.
_SENTENCE_OPS = [
    (re.compile(r"gets (\d+) more"), lambda a, b: a + b),
    (re.compile(r"gives away (\d+)"), lambda a, b: a - b),
    (re.compile(r"becomes (\d+) times"), lambda a, b: a * b),
]


def _solve_question(question: str) -> int:
    sentences = question.split(". ")
    value = int(re.search(r"has (\d+)", sentences[0]).group(1))
    for sentence in sentences[1:]:
        for pattern, apply in _SENTENCE_OPS:
            match = pattern.search(sentence)
            if match:
                value = apply(value, int(match.group(1)))
    return value


def test_answers_are_right_and_traces_consistent():
    cfg = SyntheticConfig(min_steps=1, max_steps=5, max_operand=999, max_multiplier=9)
    for row in generate_split("train", 300, seed=3, cfg=cfg):
        question, trace = (m["content"] for m in row["messages"])
        assert int(row["answer"]) == _solve_question(question) >= 0
        assert trace.endswith(f"\\boxed{{{row['answer']}}}.")
        lines = re.findall(r"^(\d+) ([-+*]) (\d+) = (\d+)$", trace, flags=re.M)
        assert len(lines) == row["num_steps"]
        for a, op, b, c in lines:
            assert {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] == int(c)
        assert lines[-1][3] == row["answer"]


def test_splits_are_reproducible_and_disjoint():
    cfg = SyntheticConfig()
    train = generate_split("train", 400, seed=1, cfg=cfg)
    assert train == generate_split("train", 400, seed=1, cfg=cfg)
    assert train != generate_split("train", 400, seed=2, cfg=cfg)
    test = generate_split("test", 200, seed=1, cfg=cfg)
    other_seed_train = generate_split("train", 400, seed=7, cfg=cfg)
    questions = lambda rows: {r["messages"][0]["content"] for r in rows}  # noqa: E731
    assert not questions(test) & (questions(train) | questions(other_seed_train))
    assert all(split_of(q, cfg) == "test" for q in questions(test))


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="min_steps"):
        SyntheticConfig(min_steps=3, max_steps=2)
    with pytest.raises(ValueError, match="ops"):
        SyntheticConfig(ops=("div",))
    with pytest.raises(ValueError, match="exceeds"):
        generate_split(
            "train", 50, cfg=SyntheticConfig(min_steps=1, max_steps=1, max_operand=1, ops=("add",))
        )


def test_write_dataset_and_refuse_overwrite(tmp_path):
    paths = write_synthetic_dataset(tmp_path, train_size=20, validation_size=5, test_size=10, seed=0)
    rows = [json.loads(line) for line in open(paths["test"], encoding="utf-8")]
    assert len(rows) == 10 and rows[0]["messages"][1]["role"] == "assistant"
    with pytest.raises(ValueError, match="overwrite"):
        write_synthetic_dataset(tmp_path, train_size=20)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_path())


def test_tokenizer_digits_one_per_token_and_round_trip(tokenizer):
    text = "Tom has 9081726354 coins.\n<think>\n120 * 7 = 840\n</think>\nThe answer is \\boxed{840}."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    pieces = [tokenizer.decode([i]) for i in ids]
    assert [p for p in pieces if any(ch.isdigit() for ch in p)] == list("9081726354" + "1207840" + "840")
    assert "<think>" in pieces and "</think>" in pieces
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_chat_template_renders_and_masks_assistant(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Ana has 3 pens."},
        {"role": "assistant", "content": "\\boxed{3}"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nAna has 3 pens.<|im_end|>\n"
        "<|im_start|>assistant\n\\boxed{3}<|im_end|>\n"
    )
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "\\boxed{3}<|im_end|>"


def test_tokenizer_saved_beside_a_qwen2_model_reloads_unchanged(tmp_path):
    # transformers 5 reloads it as Qwen2Tokenizer there; that must not add `<|endoftext|>` (vocab + 1).
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from ls_llm.data.synthetic import tokenizer_path

    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert len(again) == len(tok) and again.get_vocab() == tok.get_vocab()
    assert again("12+3=15").input_ids == tok("12+3=15").input_ids


def test_expression_split_keeps_every_test_computation_out_of_train():
    """split_by: expression: no test expression occurs in train (by question, most of them do at small operands)."""
    by_question = SyntheticConfig(min_steps=1, max_steps=2, max_operand=9, ops=("add", "sub"))
    by_expression = SyntheticConfig(min_steps=1, max_steps=2, max_operand=9, ops=("add", "sub"), split_by="expression")

    def overlap(cfg):
        train = {r["expression"] for r in generate_split("train", 1500, seed=0, cfg=cfg)}
        test = [r["expression"] for r in generate_split("test", 150, seed=0, cfg=cfg)]
        return sum(e in train for e in test) / len(test)

    assert overlap(by_question) > 0.3 and overlap(by_expression) == 0.0
    with pytest.raises(ValueError, match="split_by"):
        SyntheticConfig(split_by="answer")
