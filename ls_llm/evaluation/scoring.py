"""Scoring of generated answers: the math and multiple-choice verdicts behind every task's metrics.

lm-eval hands a task's filter *all* responses at once (one list of k samples per doc), so math
scoring runs as a single :func:`ls_llm.answers.verify_batch` call over the whole task, in worker
processes, instead of one math-verify call per doc on the main thread. Each sample becomes a small
record ``{"answer": extracted or None, "verdict": "correct" | "wrong" | "missing" | "unparsable"}``
that lands in the per-sample logs; :func:`sample_metrics` turns a doc's k records into avg@k
(mean correctness) and pass@k.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from ls_llm.answer_forms import split_top_level
from ls_llm.answers import extract_final_answer, last_boxed, strip_thinking, verify_batch

_SCRIPT_BRACES = re.compile(r"([_^])\{(\w|\\[A-Za-z]+)\}")
_LAYOUT = re.compile(r"\\(?:left|right)(?![a-zA-Z])|\\[,;!]")
# Worker processes for math-verify; the runner lowers it to 1 where forking is unsafe.
VERIFY_WORKERS_ENV = "LS_LLM_VERIFY_WORKERS"
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$", re.S)


def _verify_workers() -> int:
    value = os.environ.get(VERIFY_WORKERS_ENV, "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{VERIFY_WORKERS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def score_math(outputs: Sequence[Sequence[str]], golds: Sequence[str], *,
               tolerances: Sequence[float | None] | None = None, workers: int | None = None) -> list[list[dict]]:
    """Verdict records for each doc's samples; ``outputs[i]`` are the k generations of doc ``i``.

    ``tolerances[i]``: the absolute error allowed for a numeric answer to doc ``i`` (None: exact).
    """
    if len(outputs) != len(golds):
        raise ValueError(f"outputs and golds differ in length: {len(outputs)} != {len(golds)}")
    answers = [[_unwrap(extract_final_answer(text)) for text in samples] for samples in outputs]
    flat_answers = [answer for samples in answers for answer in samples]
    flat_golds = [gold for samples, gold in zip(answers, golds, strict=True) for _ in samples]
    tolerances = tolerances if tolerances is not None else [None] * len(golds)
    if len(tolerances) != len(golds):
        raise ValueError(f"tolerances and golds differ in length: {len(tolerances)} != {len(golds)}")
    flat_tols = [tol for samples, tol in zip(answers, tolerances, strict=True) for _ in samples]
    statuses = verify_batch(flat_answers, flat_golds, tolerances=flat_tols, workers=workers or _verify_workers())
    verdicts = iter(_same_text_fallback(flat_answers, flat_golds, statuses))
    return [[{"answer": answer, "verdict": next(verdicts)} for answer in samples] for samples in answers]


def _same_text_fallback(answers: list, golds: list, statuses: list[str]) -> list[str]:
    # answer_status never calls an unparsable prediction correct, but a few golds are themselves not
    # mathematics math-verify parses (Minerva's "np.arcsin(10/13)", "E_{1},E_{2}"); an answer written
    # exactly like such a gold is right.
    return ["correct" if status == "unparsable" and answer is not None and _squash(answer) == _squash(gold)
            else status for answer, gold, status in zip(answers, golds, statuses, strict=True)]


def _squash(text: str) -> str:
    """Text of an answer math-verify cannot read, with layout-only differences removed: spacing,
    ``\\dfrac``/``\\tfrac``, ``\\left``/``\\right``, braces around a one-character sub- or superscript
    (``E_{1}`` is ``E_1``); a comma-separated list compares as a set."""
    text = _LAYOUT.sub("", "".join(text.split())).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _SCRIPT_BRACES.sub(r"\1\2", text)
    return ",".join(sorted(split_top_level(text)))


def _unwrap(answer: str | None) -> str | None:
    """``\\textbf{073}`` -> ``073``: math-verify reads a formatting wrapper around the whole answer as text."""
    if answer is None:
        return None
    answer = answer.strip()
    while match := _TEXT_WRAP.match(answer):
        answer = match.group(1).strip()
    return answer


# An explicit statement of the choice: "the answer is", "Answer:", "**Answer:**", "The correct option is",
# "the answer would be". A bare "answer" ("Let me answer a question") is not one.
_STATEMENT = re.compile(
    r"\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|should\s+be|must\s+be)\b)?(?:\s*(?:\*\*|__))?\s*[:：]"
    r"|\b(?:answer|option|choice)\s+(?:is|would\s+be|should\s+be|must\s+be)\b", re.I)
# What follows a statement: decoration (bold, $, \text{, "option"), then one label, maybe in brackets.
_STATED_LABEL = re.compile(
    r"^(?P<deco>[\s*_$]*(?:\\(?:text|textbf|mathrm|mathbf|boxed)\{)?\s*(?:(?:option|choice)\s+)?)"
    r"(?P<open>[(\[])?\s*(?P<label>[A-Za-z0-9]+)\s*(?P<close>[)\]])?", re.I)
# A bare label that runs on into a sentence ("I think it is B", "A good guess") is a word.
_RUNS_ON = re.compile(r"[ \t]+(?!(?:because|since|as|which|for)\b)[a-z]")
_BOX_PREFIX = re.compile(r"^(?:option|choice|answer)\s*[:.]?\s*", re.I)
_SEPARATOR = re.compile(r"\s*(?:,|&|/|;|\band\b|\\text\{\s*and\s*\})\s*", re.I)
_LABEL_HEAD = re.compile(r"^[(\[]?\s*([A-Za-z0-9]+)\s*(?:[)\]]|[.:]\s|[.:]?$)")
# A choice of several labels ("B, C") keeps this separator so it can be told apart from a missing answer.
MULTI_SEPARATOR = ","


def _clean_label(text: str) -> str:
    return (_unwrap(text.strip().strip("$ .")) or "").strip()


def _match_label(token: str, labels: Sequence[str]) -> str | None:
    token = token.strip().strip("()[] .:")
    return next((label for label in labels if token.casefold() == label.casefold()), None)


def _boxed_choice(boxed: str, labels: Sequence[str], options: Sequence[str]) -> str | None:
    """The label inside a box: ``C``, ``(C)``, ``Option D``, ``\\text{C}``, ``C. text``, the option's text;
    several labels (``B, C``) come back joined by ``MULTI_SEPARATOR`` and are scored wrong."""
    cleaned = _BOX_PREFIX.sub("", _clean_label(boxed))
    if (label := _match_label(cleaned, labels)) is not None:
        return label
    for label, option in zip(labels, options, strict=False):
        if cleaned.casefold().strip(" .") == option.strip().casefold():
            return label
    parts = [_match_label(part, labels) for part in _SEPARATOR.split(cleaned)]
    if len(parts) > 1 and None not in parts:
        return MULTI_SEPARATOR.join(parts)
    head = _LABEL_HEAD.match(cleaned)
    if head is not None and (label := _match_label(head.group(1), labels)) is not None:
        return label  # "C. several viral particles", "(C) several viral particles"
    token = re.match(r"[A-Za-z0-9]+", cleaned)
    if token is None:
        return cleaned or None
    word = token.group(0)
    return word.upper() if len(word) == 1 and word.isalpha() else word


def _names_its_option(text: str, start: int, end: int, option: str) -> bool:
    """The words at the label go on as that option's text: "A cell wall" (label A + "cell wall", or the
    option "A cell wall" itself)."""
    head = option.strip().casefold()[:30]
    return bool(head) and (text[end:].strip(" .:)").casefold().startswith(head)
                           or text[start:].casefold().startswith(head))


def _stated_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The label of the last explicit statement ("The answer is (B)", "**Answer:** B") naming a label.

    The option's whole text names it too ("The answer is a nucleus."). A lower-case letter, or a bare
    one that runs on into a sentence, counts only when set off (brackets, bold, ``\\text{}``) or
    followed by its option's text: the "a" of "the answer is a good guess" and the "I" of "Answer: I
    think it is B" are words, not options.
    """
    found = None
    for statement in _STATEMENT.finditer(text):
        tail = text[statement.end():].lstrip(" *_:$(").casefold()
        by_text = [lab for lab, opt in zip(labels, options, strict=False) if len(opt.strip()) >= 3
                   and tail.startswith(opt.strip().casefold())]
        if by_text:  # "The answer is a nucleus.": the option's own text
            found = max(by_text, key=lambda lab: len(options[labels.index(lab)]))
            continue
        match = _STATED_LABEL.match(text[statement.end():])
        if match is None or (label := _match_label(match.group("label"), labels)) is None:
            continue
        set_off = bool(match.group("open") or match.group("close") or match.group("deco").strip())
        start, end = statement.end() + match.start("label"), statement.end() + match.end("label")
        runs_on = match.group("label").islower() or _RUNS_ON.match(text, end)
        option = options[labels.index(label)] if labels.index(label) < len(options) else ""
        if not set_off and runs_on and not _names_its_option(text, start, end, option):
            continue
        found = label
    return found


def extract_choice(text: str, labels: Sequence[str], options: Sequence[str] = ()) -> str | None:
    """The option label the model chose, or None when it gave none.

    Reads the last ``\\boxed{}`` after any thinking section (see :func:`_boxed_choice`); without a box,
    the last explicit statement of a label (:func:`_stated_choice`). Letters match case-insensitively;
    numeric ARC labels ("1".."4") as given. A box holding something outside ``labels`` is returned as
    written so the caller can tell it apart from a missing answer.
    """
    visible = strip_thinking(text)
    boxed = last_boxed(visible)
    if boxed is not None:
        return _boxed_choice(boxed, labels, options)
    return _stated_choice(visible, labels, options)


def choice_verdict(choice: str | None, gold: str, labels: Sequence[str]) -> str:
    if choice is None:
        return "missing"
    if choice in labels:
        return "correct" if choice == gold else "wrong"
    if all(part in labels for part in choice.split(MULTI_SEPARATOR)):
        return "wrong"  # several labels: a hedge is not an answer
    return "unparsable"


def score_choice(outputs: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[dict]]:
    """Verdict records for multiple-choice docs (canonical ``labels``/``options``/``answer``)."""
    if len(outputs) != len(docs):
        raise ValueError(f"outputs and docs differ in length: {len(outputs)} != {len(docs)}")
    records = []
    for samples, doc in zip(outputs, docs, strict=True):
        per_doc = []
        for text in samples:
            choice = extract_choice(text, doc["labels"], doc["options"])
            per_doc.append({"answer": choice, "verdict": choice_verdict(choice, doc["answer"], doc["labels"])})
        records.append(per_doc)
    return records


def sample_metrics(records: Sequence[dict]) -> dict[str, float]:
    """avg@k (``acc``: mean correctness over the k samples) and ``pass_at_k`` (any sample correct)."""
    if not records:
        raise ValueError("a doc has no scored samples")
    correct = [record["verdict"] == "correct" for record in records]
    return {"acc": sum(correct) / len(correct), "pass_at_k": float(any(correct))}
