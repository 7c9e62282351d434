"""Tokenizers with the chat templates the data tests run under (built here, offline)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "data"
CHATML = ("{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def _bpe(template: str):
    """A byte-level BPE trained here on the fixtures' text, with Qwen's special tokens and the given template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = [p.read_text() for p in DATA.glob("*.jsonl")]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = template
    return fast


def chat_tokenizer(name: str):
    """By name: "shipped" (digits and arithmetic), "qwen3" (Qwen3's template, thinking blocks) or "chatml_no_markers"."""
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    if name == "shipped":
        return AutoTokenizer.from_pretrained(tokenizer_path())
    if name == "qwen3":
        return _bpe((ROOT / "tests" / "fixtures" / "tokenizers" / "qwen3_chat_template.jinja").read_text())
    return _bpe(CHATML)


@pytest.fixture(scope="session")
def chat_tokenizers():
    """name -> tokenizer (see chat_tokenizer), each built once per session."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = chat_tokenizer(name)
        return cache[name]

    return get
