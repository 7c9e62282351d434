"""MATH-style rows for the benchmarks: the rows of ``--data`` (any file the data loader reads), else generated ones.
No path outside the checkout is read unless the command line names it."""

from __future__ import annotations

import random

from ls_llm.data.args import LsDataArguments
from ls_llm.data.loading import load_rows

_ANSWER_SHAPES = (
    lambda r: str(r.randint(0, 999)),
    lambda r: f"\\frac{{{r.randint(1, 50)}}}{{{r.randint(2, 60)}}}",
    lambda r: f"{r.randint(1, 9)}\\sqrt{{{r.randint(2, 30)}}}",
    lambda r: f"({r.randint(-9, 0)}, {r.randint(1, 9)}]",
    lambda r: f"{r.randint(1, 9)}x^2 + {r.randint(1, 9)}x",
    lambda r: f"{r.randint(10, 170)}^\\circ",
)


def generated_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = rng.choice(_ANSWER_SHAPES)(rng)
        completion = f"We simplify step by step.\nHence the result is $\\boxed{{{answer}}}$."
        rows.append(
            {"id": f"gen-{i}", "messages": [{"role": "user", "content": f"Simplify expression {i}."},
                                             {"role": "assistant", "content": completion}], "answer": answer}
        )
    return rows


def math_rows(n: int, seed: int, data: str | None = None) -> tuple[list[dict], str]:
    """``n`` rows of ``data`` (shuffled by ``seed``), or ``n`` generated ones without it; and where they came from."""
    if data is None:
        return generated_rows(n, seed), "generated MATH-like answers"
    rows = load_rows(LsDataArguments(dataset_name=data, dataset_answer_instruction=""))
    random.Random(seed).shuffle(rows)
    return rows[:n], data
