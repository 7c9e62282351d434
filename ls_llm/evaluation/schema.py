"""Task rows -> one canonical doc per task family, whatever the copy of the data calls its fields.

Local copies of the same benchmark name things differently (``problem`` or ``question``; a string,
a number or a list as the answer; only a ``\\boxed{}`` inside the solution). Every loader below maps
its row onto a fixed doc so the prompts and the scoring see one shape:

* math:   ``{"problem", "answer", "solution", "tolerance", "unit", "answer_hint"}`` (``answer`` is the
  gold as a string; the last three come from OlympiadBench's ``error``, ``unit``, ``answer_type`` and
  ``is_multiple_answer`` and are None / empty elsewhere)
* choice: ``{"question", "labels", "options", "answer"}`` (``answer`` is one of ``labels``)

A row that lacks a field fails with a ValueError naming the task, the row and the field.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ls_llm.answers import gsm8k_gold, last_boxed
from ls_llm.files import read_jsonl
from ls_llm.registry import Registry

# Heavy imports stay inside functions (datasets): `ls-llm` imports this module before it knows a command needs
# them.

# Seed of GPQA's per-question option shuffle: fixed so every run and every model sees the same order.
GPQA_SHUFFLE_SEED = 0
LETTERS = string.ascii_uppercase


def _missing(task: str, index: int, row: dict, wanted: str) -> ValueError:
    return ValueError(f"task {task!r}: row {index} has no {wanted} (fields present: {sorted(row)})")


def _first(row: dict, names: Iterable[str]) -> Any:
    for name in names:
        value = row.get(name)
        if value is not None and value != "" and value != []:
            return value
    return None


def _strip_dollars(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text[1:-1].strip()
    return text


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 27.0 -> "27"; math-verify would accept either, humans prefer 27
    return str(value).strip()


def _math_gold(row: dict, task: str, index: int) -> str:
    answer = _first(row, ("answer", "Answer"))
    if answer is not None and not isinstance(answer, list):
        return _final_of(_as_text(answer), task, index)
    final = answer if isinstance(answer, list) else _first(row, ("final_answer",))
    if final is not None:
        items = final if isinstance(final, list) else [final]
        # OlympiadBench lists multi-part answers ("$3$", "$5$"); math-verify compares them as a set.
        return ", ".join(_strip_dollars(_as_text(item)) for item in items)
    boxed = last_boxed(_solution_text(row))
    if boxed is not None:
        return boxed.strip()
    raise _missing(task, index, row, "gold answer ('answer', 'final_answer', or a \\boxed{} in 'solution')")


def _final_of(answer: str, task: str, index: int) -> str:
    """The gold in an `answer` field: itself, or where it is a worked solution (GSM8K keeps one there), its final
    ``#### x`` line or its last \\boxed{}; a worked solution with neither is refused, never scored as the gold."""
    if "####" in answer:
        return gsm8k_gold(answer)
    if "\n" not in answer:
        return answer
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed.strip()
    lines = answer.count("\n") + 1
    raise ValueError(f"task {task!r}: row {index} 'answer' is a worked solution ({lines} lines) "
                     "with no final '#### ANSWER' line or \\boxed{}: put the final answer alone in 'answer'")


def _solution_text(row: dict) -> str:
    solution = row.get("solution") or ""
    return "\n\n".join(map(str, solution)) if isinstance(solution, list) else str(solution)


def _tolerance(row: dict, task: str, index: int) -> float | None:
    """OlympiadBench's ``error``: the absolute error a numeric answer may have ("1e-1"; one per part
    of a multi-part answer, "0.1,1" -- the widest is used)."""
    error = row.get("error")
    if error is None or str(error).strip() == "":
        return None
    try:
        values = [float(part) for part in str(error).split(",") if part.strip()]
    except ValueError as err:
        raise ValueError(f"task {task!r}: row {index} error={error!r} is not a number (or comma-separated numbers)") from err
    if not values or min(values) < 0:
        raise ValueError(f"task {task!r}: row {index} error={error!r} must be a non-negative number")
    return max(values)


# OlympiadBench's own prompt (OpenBMB/OlympiadBench, inference/code/evaluators/evaluator.py) names the
# answer type and says when several answers are expected; scoring requires the full set, so ours does too.
_ANSWER_TYPES = {"Numerical": "a numerical value", "Expression": "an expression", "Equation": "an equation",
                 "Interval": "an interval"}


def _answer_type_text(answer_type: str) -> str | None:
    return next((text for key, text in _ANSWER_TYPES.items() if key in answer_type), None)


def answer_hint(row: dict) -> str:
    """The sentence(s) put before the instruction: how many answers, of which type, in which unit."""
    kinds = [_answer_type_text(part) for part in str(row.get("answer_type") or "").split(",")]
    kinds = [kind for kind in kinds if kind is not None]
    tuple_like = "Tuple" in str(row.get("answer_type") or "")  # ambiguous in OlympiadBench: not named
    hint = ""
    if row.get("is_multiple_answer"):
        hint = "The problem has multiple answers"
        if kinds and not tuple_like:
            hint += (f", each of them should be {kinds[0]}" if len(set(kinds)) == 1
                     else f", with the answers in order being {', '.join(kinds)}")
        hint += ". Put all of them, separated by commas, in one \\boxed{}. "
    elif kinds and not tuple_like:
        hint = f"The answer should be {kinds[0]}. "
    if row.get("unit"):
        hint += f"The answer is in {row['unit']}: put only its value in \\boxed{{}} and the unit after it. "
    return hint


# A task YAML's `ls_format` -> the function turning one dataset row into the task's doc (row, task, index) -> doc.
DOC_FORMATS = Registry("ls_format")


@DOC_FORMATS.register("math")
def math_doc(row: dict, task: str, index: int) -> dict:
    problem = _first(row, ("problem", "question", "Problem", "Question"))
    if problem is None:
        raise _missing(task, index, row, "problem text ('problem' or 'question')")
    return {"problem": str(problem), "answer": _math_gold(row, task, index), "solution": _solution_text(row),
            "tolerance": _tolerance(row, task, index), "unit": str(row["unit"]) if row.get("unit") else None,
            "answer_hint": answer_hint(row)}


@DOC_FORMATS.register("arc")
def arc_doc(row: dict, task: str, index: int) -> dict:
    question = _first(row, ("question",))
    choices = row.get("choices")
    key = _first(row, ("answerKey",))
    if question is None:
        raise _missing(task, index, row, "'question'")
    if not isinstance(choices, dict) or "text" not in choices or "label" not in choices:
        raise _missing(task, index, row, "'choices' with 'text' and 'label'")
    if key is None:
        raise _missing(task, index, row, "'answerKey'")
    labels = [str(label).strip() for label in choices["label"]]
    if str(key).strip() not in labels:
        raise ValueError(f"task {task!r}: row {index} answerKey={key!r} is not one of the labels {labels}")
    return {"question": str(question), "labels": labels, "options": list(map(str, choices["text"])),
            "answer": str(key).strip()}


@DOC_FORMATS.register("mmlu_pro")
def mmlu_pro_doc(row: dict, task: str, index: int) -> dict:
    question, options = _first(row, ("question",)), row.get("options")
    if question is None:
        raise _missing(task, index, row, "'question'")
    if not isinstance(options, list) or not options:
        raise _missing(task, index, row, "'options' (a list)")
    labels = list(LETTERS[: len(options)])
    answer_index = row.get("answer_index")
    # Upstream has rows whose letter and index disagree; the letter is what the dataset authors'
    # evaluation script and lm-eval's mmlu_pro score against, so it wins.
    if isinstance(row.get("answer"), str) and row["answer"].strip().upper() in labels:
        answer = row["answer"].strip().upper()
    elif isinstance(answer_index, int) and 0 <= answer_index < len(labels):
        answer = labels[answer_index]
    else:
        raise _missing(task, index, row, f"'answer' letter or 'answer_index' within {labels[0]}-{labels[-1]}")
    return {"question": str(question), "labels": labels, "options": list(map(str, options)), "answer": answer}


@DOC_FORMATS.register("gpqa")
def gpqa_doc(row: dict, task: str, index: int) -> dict:
    fields = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
    for field in fields:
        if _first(row, (field,)) is None:
            raise _missing(task, index, row, repr(field))
    question = str(row["Question"]).strip()
    options = [str(row[field]).strip() for field in fields[1:]]
    order = list(range(4))
    # Seeded by the question text (str seeds hash with sha512, so PYTHONHASHSEED does not matter).
    random.Random(f"gpqa:{GPQA_SHUFFLE_SEED}:{question}").shuffle(order)
    labels = list(LETTERS[:4])
    return {"question": question, "labels": labels, "options": [options[i] for i in order],
            "answer": labels[order.index(0)]}


def read_task_rows(path: Path, task: str) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"task {task!r}: data file {path} not found (--data-dir DIR reads DIR/{task}/test.jsonl)")
    return read_jsonl(path, what=f"task {task!r}: {path}")


def normalize_rows(rows: Iterable[dict], *, task: str, fmt: str) -> list[dict]:
    try:
        to_doc = DOC_FORMATS.lookup(fmt)
    except ValueError as err:
        raise ValueError(f"task {task!r}: {err}") from None
    return [to_doc(dict(row), task, index) for index, row in enumerate(rows)]


def load_task_docs(
    *,
    ls_task: str,
    ls_format: str,
    hub_path: str,
    hub_name: str | None = None,
    hub_split: str = "test",
    data_dir: str | None = None,
    **_unused: Any,
) -> dict:
    """lm-eval ``custom_dataset`` hook: ``{"test": Dataset}`` of canonical docs.

    lm-eval calls it with the task's ``dataset_kwargs`` and the run metadata (where ``data_dir``
    lives); other metadata keys are ignored. Without ``data_dir`` the hub dataset is used.
    """
    import datasets

    if data_dir:
        rows = read_task_rows(Path(data_dir) / ls_task / "test.jsonl", ls_task)
    else:
        rows = datasets.load_dataset(hub_path, hub_name, split=hub_split)
    docs = normalize_rows(rows, task=ls_task, fmt=ls_format)
    if not docs:
        raise ValueError(f"task {ls_task!r}: no rows found")
    return {"test": datasets.Dataset.from_list(docs)}
