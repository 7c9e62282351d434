"""Oracle check of the evaluation tasks: known-right and known-wrong outputs through the real lm-eval pipeline.

For every task with a data file, a stand-in model answers each problem in every form of
:mod:`ls_llm.bench.answer_styles` and lm-eval runs the task exactly as ``ls-llm eval`` does (prompt,
filter, ``process_results``, aggregation):

* gold: the stored gold answer in a box (must score 100%);
* model-style: the gold as models write it, boxed or stated, in every notation the gold allows, after a
  ``<think>`` section that states a wrong answer (target >= 99.5%);
* wrong: wrong answers in the same forms, after a ``<think>`` that states the right one (target <= 0.1%).

    python -m ls_llm.bench.eval_oracle --data-dir ../shared/data/eval

prints a markdown table (rows, outputs, gold %, model-style %, wrong %), a table per form, and lists every
model-style miss and every wrong answer scored right by task, row and form. Exit status 1 when a target is
missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ls_llm.bench.answer_styles import (  # noqa: F401  (model_style_math, wrong_math: re-exported)
    CHOICE_FORMS,
    MATH_FORMS,
    choice_form,
    math_form,
    model_style_math,
    wrong_math,
)
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

# Heavy imports stay inside functions (lm_eval): a benchmark loads only what the case it runs needs.

KINDS = ("gold", "model", "wrong")
TARGETS = {"gold": 100.0, "model": 99.5, "wrong": 0.1}


def _think(stated: str) -> str:
    return f"<think>\nLet me guess first: \\boxed{{{stated}}}. The answer is {stated}. That does not check out.\n</think>\n"


def math_outputs(docs: list[dict]) -> dict[str, list[list[str]]]:
    """``kind -> one list of outputs per doc`` (gold: one; model and wrong: one per form of ``MATH_FORMS``)."""
    outputs = {kind: [] for kind in KINDS}
    for i, doc in enumerate(docs):
        gold, problem = doc["answer"], doc.get("problem", "")
        other = next((d["answer"] for d in docs[i + 1:] + docs[:i] if "".join(d["answer"].split())
                      != "".join(gold.split())), "-98765.4321")
        style = {"tolerance": doc.get("tolerance"), "unit": doc.get("unit"), "variant": i}
        styled, in_order = model_style_math(gold, **style), model_style_math(gold, **style, reorder=False)
        forms = [(t, wrong_math(gold, other, tolerance=doc.get("tolerance"), variant=i + j))
                 for j, (_, t) in enumerate(MATH_FORMS)]
        outputs["gold"].append([f"The final answer is $\\boxed{{{gold}}}$."])
        outputs["model"].append([_think(w) + math_form(t, styled, problem, in_order=in_order) for t, w in forms])
        outputs["wrong"].append([_think(styled) + math_form(t, w, problem) for t, w in forms])
    return outputs


def choice_outputs(docs: list[dict]) -> dict[str, list[list[str]]]:
    outputs = {kind: [] for kind in KINDS}
    for doc in docs:
        gold, labels, options = doc["answer"], doc["labels"], doc["options"]
        wrong = labels[(labels.index(gold) + 1) % len(labels)]
        outputs["gold"].append([f"\\boxed{{{gold}}}"])
        outputs["model"].append([_think(wrong) + choice_form(t, labels, options, gold, wrong) for _, t in CHOICE_FORMS])
        outputs["wrong"].append([_think(gold) + choice_form(t, labels, options, wrong, gold) for _, t in CHOICE_FORMS])
    return outputs


def _stand_in_lm(outputs: list[list[str]]):
    """An lm-eval model that answers the j-th copy of a doc's request with ``outputs[doc_id][j]`` (lm-eval
    sends the ``repeats`` copies of a request in order and keeps the answers in that order)."""
    from lm_eval.api.model import LM

    class StandIn(LM):
        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            seen: dict[int, int] = {}
            answers = []
            for req in requests:
                seen[req.doc_id] = seen.get(req.doc_id, -1) + 1
                answers.append(outputs[req.doc_id][seen[req.doc_id]])
            return answers

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            # lm-eval's LM interface requires it; run_oracle refuses such tasks before any request is made.
            raise RuntimeError("unreachable: run_oracle scores generate_until tasks only")

        loglikelihood_rolling = loglikelihood

    return StandIn()


def _load(data_dir: Path, tasks: list[str] | None) -> dict:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(DEFAULT_TASKS_DIR), include_defaults=False,
                          metadata={"data_dir": str(data_dir.resolve())})
    names = tasks or sorted(p.name for p in data_dir.iterdir() if (p / "test.jsonl").is_file()
                            and p.name in manager.all_tasks)
    loaded = manager.load(names)["tasks"]
    for name, task in loaded.items():
        if task.OUTPUT_TYPE != "generate_until":
            raise ValueError(f"task {name!r} has output_type {task.OUTPUT_TYPE!r}: the oracle scores generated "
                             "answers (generate_until tasks) only")
    return loaded


def run_oracle(data_dir: Path, tasks: list[str] | None = None) -> list[dict]:
    """One row per task: its size, the % scored correct for each kind of output, per form, and the misses."""
    from lm_eval.evaluator import evaluate

    rows = []
    for name, task in sorted(_load(data_dir, tasks).items()):
        docs = list(task.test_docs())
        choice = "labels" in docs[0]
        outputs = choice_outputs(docs) if choice else math_outputs(docs)
        forms = [form for form, _ in (CHOICE_FORMS if choice else MATH_FORMS)]
        row = {"task": name, "rows": len(docs), "outputs": 0, "misses": {}, "forms": {}}
        for kind in KINDS:
            task.set_config(key="repeats", value=len(outputs[kind][0]))
            result = evaluate(lm=_stand_in_lm(outputs[kind]), task_dict={name: task}, log_samples=True,
                              bootstrap_iters=0, verbosity="ERROR")
            samples = sorted(result["samples"][name], key=lambda s: s["doc_id"])
            names = ["gold"] if kind == "gold" else forms
            scored = [(s, names[j], rec) for s in samples for j, rec in enumerate(s["filtered_resps"][0])]
            correct = [rec["verdict"] == "correct" for _, _, rec in scored]
            row[kind] = 100.0 * sum(correct) / len(correct)
            row["outputs"] += len(scored)
            for (_, form, _), ok in zip(scored, correct, strict=True):
                row["forms"].setdefault((kind, form), []).append(ok)
            row["misses"][kind] = [(s["doc_id"], form, s["target"], rec) for (s, form, rec), ok
                                   in zip(scored, correct, strict=True) if ok != (kind != "wrong")]
        rows.append(row)
    return rows


def _pct(values: list[bool]) -> str:
    return f"{100.0 * sum(values) / len(values):.1f}" if values else "-"


def markdown(rows: list[dict]) -> str:
    lines = ["| task | rows | outputs | gold % | model-style % | wrong % |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['rows']} | {r['outputs']} | {r['gold']:.1f} | {r['model']:.2f} | {r['wrong']:.2f} |"
              for r in rows]
    for forms, label in ((MATH_FORMS, "math"), (CHOICE_FORMS, "choice")):
        tasks = [r for r in rows if ("model", forms[0][0]) in r["forms"]]
        if not tasks:
            continue
        lines += ["", f"| {label} form | " + " | ".join(f"{r['task']} right % / wrong %" for r in tasks) + " |",
                  "|---|" + "---:|" * len(tasks)]
        for form, _ in forms:
            cells = [f"{_pct(r['forms'].get(('model', form), []))} / {_pct(r['forms'].get(('wrong', form), []))}"
                     for r in tasks]
            lines.append(f"| {form} | " + " | ".join(cells) + " |")
    lines.append("")
    for row in rows:
        for kind in KINDS:
            for doc_id, form, target, record in row["misses"][kind]:
                lines.append(f"- {row['task']} row {doc_id} ({kind}, {form}): gold `{target}`, "
                             f"read `{record['answer']}` ({record.get('rule')}) -> {record['verdict']}")
    return "\n".join(lines)


def meets_targets(rows: list[dict]) -> bool:
    return all(r["gold"] >= TARGETS["gold"] and r["model"] >= TARGETS["model"] and r["wrong"] <= TARGETS["wrong"]
               for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="DIR/<task>/test.jsonl, as for ls-llm eval")
    parser.add_argument("--tasks", nargs="+", default=None, help="task names (default: every task with data)")
    args = parser.parse_args(argv)
    if not args.data_dir.is_dir():
        raise SystemExit(f"--data-dir {args.data_dir} is not a folder")
    rows = run_oracle(args.data_dir, args.tasks)
    print(markdown(rows))
    return 0 if meets_targets(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
