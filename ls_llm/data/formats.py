"""Row converters: each dataset format becomes trl's conversational ``messages`` plus a gold ``answer``.

A converter reads one raw row (already renamed through the recipe's field map) and returns a
:class:`Converted`; it raises :class:`MissingFieldError` when a required field is absent or empty,
so the loader can count and report such rows instead of failing on the first one.
Formats are looked up in :data:`FORMATS`; ``auto`` picks one from the column names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ls_llm.answers import gsm8k_gold, last_boxed
from ls_llm.registry import Registry

__all__ = [
    "FORMATS",
    "RENDERINGS",
    "Converted",
    "MissingFieldError",
    "RenderOptions",
    "detect_format",
    "remove_calculator_annotations",
]

_CALC_RE = re.compile(r"<<[^<>]*>>")
_GSM8K_FINAL_RE = re.compile(r"\n?####[^\n]*\s*$")
RENDERINGS = ("plain", "r1")


class MissingFieldError(KeyError):
    """A row lacks a field its format requires; ``field`` names it."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class RenderOptions:
    """How prompts and completions are built: see ``LsDataArguments`` for each field's meaning."""

    system_prompt: str | None = None
    answer_instruction: str | None = None
    rendering: str = "plain"


@dataclass
class Converted:
    messages: list[dict[str, str]]
    answer: str | None


def _field(row: dict, name: str) -> object:
    value = row.get(name)
    if value is None or (isinstance(value, str | list) and len(value) == 0):
        raise MissingFieldError(name)
    return value


def _first_field(row: dict, names: Iterable[str]) -> str:
    for name in names:
        if row.get(name) not in (None, ""):
            return str(row[name])
    raise MissingFieldError("|".join(names))


def _optional_answer(row: dict) -> str | None:
    value = row.get("answer")
    return None if value is None or str(value).strip() == "" else str(value).strip()


def remove_calculator_annotations(text: str) -> str:
    """Drop GSM8K's ``<<48/2=24>>`` calculator annotations."""
    return _CALC_RE.sub("", text)


def _chat(user: str, assistant: str, opts: RenderOptions, *, add_instruction: bool) -> list[dict[str, str]]:
    if add_instruction and opts.answer_instruction:
        user = f"{user.rstrip()}\n\n{opts.answer_instruction}"
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return _with_system(messages, opts)


def _with_system(messages: list[dict[str, str]], opts: RenderOptions) -> list[dict[str, str]]:
    # A conversation that already carries its own system message keeps it.
    if opts.system_prompt and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": opts.system_prompt}, *messages]
    return messages


def _render_solution(solution: str, gold: str | None, opts: RenderOptions) -> str:
    """A worked solution as the assistant turn; ``r1`` wraps it as thinking and states the answer."""
    solution = solution.strip()
    if opts.rendering == "r1":
        final = f"The final answer is $\\boxed{{{gold}}}$." if gold is not None else ""
        return f"<think>\n{solution}\n</think>\n\n{final}".rstrip()
    if gold is not None and last_boxed(solution) is None:
        return f"{solution}\nThe final answer is $\\boxed{{{gold}}}$."
    return solution


Converter = Callable[[dict, RenderOptions], Converted]
FORMATS = Registry("dataset_format")  # name -> Converter; `auto` is detect_format below


@FORMATS.register("messages")
def convert_messages(row: dict, opts: RenderOptions) -> Converted:
    raw = _field(row, "messages")
    messages = [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in raw]
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise MissingFieldError("messages[assistant]")
    return Converted(_with_system(messages, opts), _optional_answer(row))


def _as_messages(value: object, default_role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in value]


@FORMATS.register("prompt_completion")
def convert_prompt_completion(row: dict, opts: RenderOptions) -> Converted:
    messages = _as_messages(_field(row, "prompt"), "user") + _as_messages(
        _field(row, "completion"), "assistant"
    )
    return Converted(_with_system(messages, opts), _optional_answer(row))


@FORMATS.register("problem_solution")
def convert_problem_solution(row: dict, opts: RenderOptions) -> Converted:
    """MATH style: the gold answer is the last ``\\boxed{}`` of the solution."""
    problem, solution = str(_field(row, "problem")), str(_field(row, "solution"))
    gold = _optional_answer(row) or last_boxed(solution)
    return Converted(_chat(problem, _render_solution(solution, gold, opts), opts, add_instruction=True), gold)


@FORMATS.register("question_answer")
def convert_question_answer(row: dict, opts: RenderOptions) -> Converted:
    """GSM8K style: gold after ``####``; ``<<...>>`` annotations removed from the solution."""
    question, answer_text = str(_field(row, "question")), str(_field(row, "answer"))
    if "####" in answer_text:
        gold = gsm8k_gold(answer_text)
        solution = _GSM8K_FINAL_RE.sub("", remove_calculator_annotations(answer_text))
    else:  # a bare answer with no worked solution
        gold, solution = answer_text.strip(), ""
    return Converted(
        _chat(question, _render_solution(solution, gold, opts), opts, add_instruction=True), gold
    )


_R1_PROMPT_FIELDS = ("problem", "question", "prompt")
_R1_TRACE_FIELDS = ("generation", "response", "trace", "output")


@FORMATS.register("r1")
def convert_r1(row: dict, opts: RenderOptions) -> Converted:
    """R1-style trace: ``<think>...</think>`` then the final answer, kept verbatim as the assistant turn.

    The gold answer is the row's ``answer`` field; without one it stays unknown (None) rather than
    being read from the trace itself, which would make every trace look correct.
    """
    prompt = _first_field(row, _R1_PROMPT_FIELDS)
    trace = _first_field(row, _R1_TRACE_FIELDS)
    return Converted(_chat(prompt, trace.strip(), opts, add_instruction=True), _optional_answer(row))


@FORMATS.register("problem")
def convert_problem(row: dict, opts: RenderOptions) -> Converted:
    """A problem alone (``problem``, optional ``answer``): a prompt to generate from, with no assistant turn to
    train on (`ls-llm generate` reads it; training on it stops at the missing assistant turn)."""
    user = str(_field(row, "problem"))
    if opts.answer_instruction:
        user = f"{user.rstrip()}\n\n{opts.answer_instruction}"
    return Converted(_with_system([{"role": "user", "content": user}], opts), _optional_answer(row))


def detect_format(columns: Iterable[str]) -> str:
    """The format implied by a dataset's (mapped) column names; ValueError when none fits."""
    cols = set(columns)
    has_trace = bool(cols & set(_R1_TRACE_FIELDS))
    checks = [
        ("messages", "messages" in cols),
        ("prompt_completion", {"prompt", "completion"} <= cols),
        ("r1", has_trace and bool(cols & set(_R1_PROMPT_FIELDS))),
        ("problem_solution", {"problem", "solution"} <= cols),
        ("question_answer", {"question", "answer"} <= cols),
        ("problem", "problem" in cols),  # last: a problem with a solution or a trace is one of the above
    ]
    for name, ok in checks:
        if ok:
            return name
    raise ValueError(
        f"dataset_format='auto' cannot tell the format from columns {sorted(cols)}; set dataset_format "
        f"to one of {sorted(FORMATS)} or map the columns with dataset_field_map"
    )

