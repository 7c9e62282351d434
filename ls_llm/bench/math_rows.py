"""MATH-style rows for the benchmarks: MATH's train answers when /work/shared/data holds them, else generated ones."""

from __future__ import annotations

import os
import random

from ls_llm.data.args import LsDataArguments
from ls_llm.data.loading import load_rows

MATH_TRAIN = "/work/shared/data/train/math/train.jsonl"
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
            {"id": f"gen-{i}", "messages": [{"role": "assistant", "content": completion}], "answer": answer}
        )
    return rows


def math_rows(n: int, seed: int) -> tuple[list[dict], str]:
    """n rows (shuffled by `seed`) and where they came from."""
    if os.path.exists(MATH_TRAIN):
        rows = load_rows(LsDataArguments(dataset_name=MATH_TRAIN, dataset_answer_instruction=""))
        random.Random(seed).shuffle(rows)
        return rows[:n], MATH_TRAIN
    return generated_rows(n, seed), "generated MATH-like answers"
