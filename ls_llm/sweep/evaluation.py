"""A sweep cell's evaluation: greedy accuracy on the sweep's validation and test splits through
`ls_llm.evaluation.evaluate` (hf backend, math-verify) and the answer-token calibration (ls_llm.sweep.calibration)."""

from __future__ import annotations

from pathlib import Path

from ls_llm.evaluation import evaluate
from ls_llm.files import read_jsonl
from ls_llm.sweep.config import SweepConfig
from ls_llm.sweep.data import TEST_TASK, VALIDATION_TASK

# Heavy imports stay inside functions (torch, transformers).


def accuracy(sweep: SweepConfig, model_dir: Path, task: str, *, data: dict[str, Path], out: Path) -> tuple[float, int]:
    results = evaluate(str(model_dir), suite=task, backend="hf", include_path=[str(data["tasks"])],
                       data_dir=str(data["eval_data"]), max_gen_toks=sweep.eval.max_gen_toks, temperature=0.0,
                       batch_size=str(sweep.eval.batch_size), output=str(out), verify_workers=1, device="cpu")
    row = results["results"][task]
    return float(row["acc,verify"]), int(results["n-samples"][task]["effective"])


def evaluation(sweep: SweepConfig, model_dir: Path, data: dict[str, Path], *, out_dir: Path) -> dict:
    """Validation and test accuracy and the answer-token calibration of one model."""
    val_acc, n_val = accuracy(sweep, model_dir, VALIDATION_TASK, data=data, out=out_dir / "eval_validation")
    test_acc, n_test = accuracy(sweep, model_dir, TEST_TASK, data=data, out=out_dir / "eval_test")
    return {"val_acc": val_acc, "n_val": n_val, "test_acc": test_acc, "n_test": n_test,
            **calibration(model_dir, data, sweep)}


def calibration(model_dir: Path, data: dict[str, Path], sweep: SweepConfig) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ls_llm.sweep.calibration import answer_token_confidence, expected_calibration_error

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    spans = answer_token_confidence(model, tokenizer, read_jsonl(data["test"]), batch_size=sweep.eval.batch_size)
    result = {}
    for kind, prefix in (("boxed", ""), ("computed", "computed_")):
        conf, hit = spans[kind]
        result.update({f"{prefix}ece": expected_calibration_error(conf, hit, sweep.eval.ece_bins),
                       f"{prefix}answer_token_acc": float(hit.mean()) if hit.numel() else float("nan"),
                       f"{prefix}answer_token_conf": float(conf.mean()) if conf.numel() else float("nan"),
                       f"{prefix}answer_tokens": int(conf.numel())})
    return result
