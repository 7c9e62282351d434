"""Oracle check of the evaluation tasks: known-right and known-wrong outputs through the real lm-eval pipeline.

For every task with a data file, a stand-in model answers each problem three ways and lm-eval runs the
task exactly as ``ls-llm eval`` does (prompt, filter, ``process_results``, aggregation):

* gold: the stored gold answer in a box (must score 100%);
* model-style: the gold as a model writes it (``4.5\\times 10^{33}`` for ``4.5e33``, ``-\\frac{1}{3}`` for
  ``-1./3``, ``\\dfrac``, braced fractions, sets in another order, a value inside the row's tolerance,
  the unit in the box), after a ``<think>`` section that boxes a wrong answer; choice tasks answer
  "The answer is (X)." (MMLU-Pro's own format), "**Answer:** X", ``\\boxed{Option X}``, ... (target >= 99.5%);
* wrong: a wrong answer in the same style (must score 0%).

    python -m ls_llm.bench.eval_oracle --data-dir ../shared/data/eval

prints a markdown table (rows, gold %, model-style %, wrong %) and lists every model-style miss and
every wrong answer scored right by task and row. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ls_llm.answer_forms import normalize_latex, plain_number, split_top_level
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

KINDS = ("gold", "model", "wrong")
TARGETS = {"gold": 100.0, "model": 99.5, "wrong": 0.0}
_THOUSANDS = re.compile(r"\d,(?:\\!)?\d{3}\b")
# "x=", "t\\in", "\\angle BEA_1=", "f(x)=": a name the model leaves out of a bare answer.
_PREFIX = re.compile(r"^(?:\\angle\s*)?[A-Za-z](?:_\{?\w+\}?)?[A-Za-z0-9_{}]*(?:\([a-z]\))?\s*(?:=|\\in\b)\s*(?=\S)")
_E = re.compile(r"^([-+]?\d+(?:\.\d*)?)[eE]([-+]?\d+)$")
_BARE_POINT_FRACTION = re.compile(r"^([-+]?)(\d+)\./(\d+)$")
_FRAC_SHORT = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_CHOICE_STYLES = ("The answer is ({label}).", "**Answer:** {label}", "So \\boxed{{Option {label}}}.",
                  "The correct option is {label}.", "Final answer: $\\boxed{{\\text{{({label})}}}}$",
                  "The answer is: **{label}**")


def model_style_math(gold: str, *, tolerance: float | None = None, unit: str | None = None, variant: int = 0) -> str:
    """The gold written the way a model writes it (never the stored text when another form exists).

    ``variant`` (the row number) rotates extras on plain numbers: none, a unit in the box, an ``x =``.
    """
    raw = gold.strip()
    parts = split_top_level(normalize_latex(raw))
    if len(parts) > 1 and not _THOUSANDS.search(raw):  # a multi-answer gold: the same set in another order
        return ", ".join(model_style_math(part, tolerance=tolerance) for part in reversed(parts))
    text = _PREFIX.sub("", normalize_latex(raw))  # a model answers "90", not "\\angle BEA_1=90"
    if match := _E.match(raw):
        text = f"{match.group(1).rstrip('.')} \\times 10^{{{int(match.group(2))}}}"
    elif match := _BARE_POINT_FRACTION.match(raw):
        text = f"{match.group(1)}\\frac{{{match.group(2)}}}{{{match.group(3)}}}"
    elif tolerance and (value := plain_number(text)) is not None:
        text = f"{float(value[0]) + 0.5 * tolerance:g}"  # inside the benchmark's stated error
    elif re.fullmatch(r"0*\d+", text) and text != "0":
        text = text.lstrip("0")  # AIME's "025" written "25"
    else:
        text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text).replace("\\frac", "\\dfrac")
    if unit:
        return f"{text} \\text{{ {unit}}}"
    if plain_number(gold) is not None and variant % 3:
        return f"{text}\\ \\mathrm{{cm}}" if variant % 3 == 1 else f"x = {text}"
    return text


def wrong_math(gold: str, other: str, *, tolerance: float | None = None) -> str:
    """A wrong answer: a plain-number gold moved well outside its tolerance, else another row's gold."""
    value = plain_number(gold)
    if value is not None:
        shift = max(1.0, abs(float(value[0])) * 0.5, 3 * (tolerance or 0))
        return f"{float(value[0]) + shift:g}"
    return other


def _think(wrong: str) -> str:
    return f"<think>\nLet me guess first: \\boxed{{{wrong}}}. That does not check out; redo it.\n</think>\n"


def math_outputs(docs: list[dict]) -> dict[str, list[str]]:
    outputs = {kind: [] for kind in KINDS}
    for i, doc in enumerate(docs):
        other = next((d["answer"] for d in docs[i + 1:] + docs[:i] if "".join(d["answer"].split())
                      != "".join(doc["answer"].split())), "-98765.4321")
        wrong = wrong_math(doc["answer"], other, tolerance=doc.get("tolerance"))
        styled = model_style_math(doc["answer"], tolerance=doc.get("tolerance"), unit=doc.get("unit"), variant=i)
        outputs["gold"].append(f"The final answer is $\\boxed{{{doc['answer']}}}$.")
        outputs["model"].append(_think(wrong) + f"So the final answer is $\\boxed{{{styled}}}$.")
        outputs["wrong"].append(_think(doc["answer"]) + f"So the final answer is $\\boxed{{{wrong}}}$.")
    return outputs


def choice_outputs(docs: list[dict]) -> dict[str, list[str]]:
    outputs = {kind: [] for kind in KINDS}
    for i, doc in enumerate(docs):
        gold, labels = doc["answer"], doc["labels"]
        wrong = labels[(labels.index(gold) + 1) % len(labels)]
        style = _CHOICE_STYLES[i % len(_CHOICE_STYLES)]
        outputs["gold"].append(f"\\boxed{{{gold}}}")
        outputs["model"].append(_think(wrong) + style.format(label=gold))
        outputs["wrong"].append(_think(gold) + style.format(label=wrong))
    return outputs


def _stand_in_lm(respond: Callable[[int], str]):
    """An lm-eval model that answers each request with ``respond(doc_id)`` (questions repeat in ARC)."""
    from lm_eval.api.model import LM

    class StandIn(LM):
        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            return [respond(req.doc_id) for req in requests]

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            # lm-eval's LM interface requires it; run_oracle refuses such tasks before any request is made.
            raise RuntimeError("unreachable: run_oracle scores generate_until tasks only")

        loglikelihood_rolling = loglikelihood

    return StandIn()


def run_oracle(data_dir: Path, tasks: list[str] | None = None) -> list[dict]:
    """One row per task: its size, the % scored correct for each kind of output, and the misses."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(DEFAULT_TASKS_DIR), include_defaults=False,
                          metadata={"data_dir": str(data_dir.resolve())})
    names = tasks or sorted(p.name for p in data_dir.iterdir() if (p / "test.jsonl").is_file()
                            and p.name in manager.all_tasks)
    loaded = manager.load(names)
    for name, task in loaded["tasks"].items():
        if task.OUTPUT_TYPE != "generate_until":
            raise ValueError(f"task {name!r} has output_type {task.OUTPUT_TYPE!r}: the oracle scores generated "
                             "answers (generate_until tasks) only")
        task.set_config(key="repeats", value=1)
    rows = []
    for name, task in sorted(loaded["tasks"].items()):
        docs = list(task.test_docs())
        outputs = choice_outputs(docs) if "labels" in docs[0] else math_outputs(docs)
        row = {"task": name, "rows": len(docs), "misses": {}}
        for kind in KINDS:
            lm = _stand_in_lm(outputs[kind].__getitem__)
            result = evaluate(lm=lm, task_dict={name: task}, log_samples=True, bootstrap_iters=0, verbosity="ERROR")
            samples = sorted(result["samples"][name], key=lambda s: s["doc_id"])
            correct = [s["filtered_resps"][0][0]["verdict"] == "correct" for s in samples]
            row[kind] = 100.0 * sum(correct) / len(correct)
            bad = [s for s, ok in zip(samples, correct, strict=True) if ok != (kind != "wrong")]
            row["misses"][kind] = [(s["doc_id"], s["target"], s["filtered_resps"][0][0]) for s in bad]
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| task | rows | gold % | model-style % | wrong % |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['task']} | {r['rows']} | {r['gold']:.1f} | {r['model']:.1f} | {r['wrong']:.1f} |" for r in rows]
    for row in rows:
        for kind in KINDS:
            for doc_id, target, record in row["misses"][kind]:
                lines.append(f"- {row['task']} row {doc_id} ({kind}): gold `{target}`, "
                             f"read `{record['answer']}` -> {record['verdict']}")
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
