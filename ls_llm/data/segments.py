"""Trace segments: which trained completion tokens are the final answer and which are reasoning.

``answer``: the final answer of the completion: the contents of the last ``\\boxed{}`` after any ``</think>``
(the project's one boxed parser, ls_llm.answers), else the value of a final ``#### x`` line (GSM8K) or of a
final "The answer is x" line. ``reasoning``: every other trained token. A completion with no answer is all
reasoning (the caller counts them).

Tokens are matched to characters through a fast tokenizer's offsets: the conversation is rendered with the
chat template and tokenized with ``return_offsets_mapping``; that tokenization must reproduce the ids trl
trained on (checked, row by row), so the segment of token i is the one of the characters it covers.
"""

from __future__ import annotations

import re

from ls_llm.answers import answer_part_start, last_boxed_span

SEGMENTS = ("reasoning", "answer")
REASONING, ANSWER = 0, 1
NOT_TRAINED = -1

_HASH_LINE = re.compile(r"^[ \t]*####[ \t]*(?P<x>\S[^\n]*?)[ \t]*$", re.MULTILINE)
_SAYS_LINE = re.compile(r"\b[Tt]he (?:final )?answer is:?[ \t]*(?P<x>[^\n]*?)[ \t.]*$", re.MULTILINE)


def answer_span(text: str) -> tuple[int, int] | None:
    """Character span of the final answer in a completion, or None (see the module docstring)."""
    start = answer_part_start(text)
    part = text[start:]
    span = last_boxed_span(part)
    if span is None:
        for pattern in (_HASH_LINE, _SAYS_LINE):
            found = list(pattern.finditer(part))
            if found and found[-1].group("x").strip("$ "):
                x = found[-1]
                inner = x.group("x")
                lead = len(inner) - len(inner.lstrip("$ "))
                span = (x.start("x") + lead, x.start("x") + len(inner.rstrip("$ ")))
                break
    if span is None or span[0] >= span[1]:
        return None
    return start + span[0], start + span[1]


def _conversation(row: dict) -> tuple[list | str, str]:
    """(what trl tokenizes, the text of the trained completion) for a prompt/completion or messages row."""
    if "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, str):
            return prompt + completion, completion
        turns = [m for m in completion if m["role"] == "assistant"]
        return list(prompt) + list(completion), (turns[-1]["content"] if turns else "")
    if "messages" in row:
        turns = [m for m in row["messages"] if m["role"] == "assistant"]
        return row["messages"], (turns[-1]["content"] if turns else "")
    raise ValueError(f"cannot find the completion of a row with columns {sorted(row)}: segments need "
                     "prompt/completion or messages columns (or a precomputed ls_segments column)")


def _render(tokenizer, conversation, chat_template) -> tuple[str, list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"segment routing needs a fast tokenizer (character offsets); {type(tokenizer).__name__} "
                         "is not one")
    if isinstance(conversation, str):
        text, special = conversation, True
    else:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, chat_template=chat_template)
        special = False
    enc = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    return text, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def token_segments(row: dict, tokenizer, *, chat_template: str | None = None) -> tuple[list[int], bool]:
    """Per token of ``row["input_ids"]``: ANSWER / REASONING where ``row["labels"]`` trains it, else
    NOT_TRAINED; and whether an answer span was found."""
    ids, labels = list(row["input_ids"]), list(row["labels"])
    conversation, content = _conversation(row)
    text, full_ids, offsets = _render(tokenizer, conversation, chat_template)
    shift = _locate(ids, full_ids)
    if shift is None:
        raise ValueError("tokenizing the rendered conversation does not reproduce the training tokens of row "
                         f"{row.get('id', '?')!r} ({len(full_ids)} vs {len(ids)} tokens): segments cannot be "
                         "mapped onto tokens")
    span = _span_in(text, content, offsets[shift:shift + len(ids)], labels)
    segments = []
    for (a, b), label in zip(offsets[shift:shift + len(ids)], labels, strict=True):
        if label == -100:
            segments.append(NOT_TRAINED)
        else:
            segments.append(ANSWER if span is not None and a < span[1] and b > span[0] else REASONING)
    return segments, span is not None and ANSWER in segments


def _locate(ids: list[int], full_ids: list[int]) -> int | None:
    """Offset of trl's (possibly truncated: keep_start or keep_end) ids inside the full tokenization."""
    n = len(ids)
    if full_ids[:n] == ids:
        return 0
    if n and full_ids[-n:] == ids:
        return len(full_ids) - n
    return None


def _span_in(text: str, content: str, offsets, labels) -> tuple[int, int] | None:
    """The answer span in the rendered ``text``: found in the completion's own text where the template kept
    it verbatim, else in the rendered text from the first trained token on."""
    trained = [a for (a, _), label in zip(offsets, labels, strict=True) if label != -100]
    if not trained:
        return None
    first = min(trained)
    for needle in (content, content.strip()):
        pos = text.rfind(needle) if needle else -1
        if pos >= 0 and pos + len(needle) > first:
            span = answer_span(needle)
            return None if span is None else (pos + span[0], pos + span[1])
    span = answer_span(text[first:])
    return None if span is None else (first + span[0], first + span[1])
