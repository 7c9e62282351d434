"""Build the small tokenizer shipped with the synthetic arithmetic task.

``python -m ls_llm.data.arith_tokenizer [OUT_DIR]`` rebuilds ``ls_llm/data/assets/arith_tokenizer``
(the built files are committed; this script only documents and reproduces them).

Design: byte-level BPE trained on the generator's own text, with numbers pre-split into single
digits, so template words become single tokens while every digit is its own token (a tiny model
then learns column arithmetic instead of memorising multi-digit tokens). Byte-level keeps it
lossless: any text, even outside the task, encodes and decodes back exactly.
"""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from pathlib import Path

from ls_llm.data.synthetic import SyntheticConfig, generate_problem, tokenizer_path

# Heavy imports stay inside functions (transformers, tokenizers): `ls-llm` imports this module before it knows
# a command needs them.

PAD, EOT, IM_START = "<|pad|>", "<|im_end|>", "<|im_start|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
VOCAB_SIZE = 512

# Role-tagged (ChatML-like). The assistant turn, with its <|im_end|>, sits inside
# {% generation %} so trl's assistant_only_loss trains the model to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def _corpus(num_problems: int = 4000, seed: int = 0):
    """Text the BPE merges are learned from: problems of every difficulty plus chat scaffolding."""
    rng = random.Random(seed)
    base = SyntheticConfig(min_steps=1, max_steps=6, max_operand=9999, max_multiplier=12)
    for think in (True, False):
        cfg = replace(base, think=think)
        for _ in range(num_problems // 2):
            problem = generate_problem(rng, cfg)
            yield f"user\n{problem['question']}\nassistant\n{problem['trace']}\n"
    yield "system\nYou are a helpful assistant. Put the final answer in \\boxed{}.\n"


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` with pad/eos, think tokens and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=[PAD, EOT, IM_START],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    # Byte-level BPE over the full byte alphabet never emits an unknown token. unk_token is still named
    # (as the existing pad token): transformers 5 reloads a tokenizer saved next to a qwen2 config as
    # Qwen2Tokenizer, which otherwise appends its default unk `<|endoftext|>` and grows the vocabulary by one.
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, unk_token=PAD, eos_token=EOT,
                                   chat_template=CHAT_TEMPLATE, model_max_length=2048)
    # Like Qwen3: think tags are single added tokens but not "special", so decoding keeps them.
    fast.add_tokens([THINK_OPEN, THINK_CLOSE], special_tokens=False)
    return fast


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0]) if args else Path(tokenizer_path())
    build_tokenizer().save_pretrained(str(out))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
