"""Evaluation of checkpoints with lm-evaluation-harness (task definitions in ``eval/tasks``).

``evaluate(model, suite=..., backend=...)`` runs a suite and writes a run folder. This package reads
checkpoint folders only: it never imports the training code, and lm-eval / vllm load only when a
run starts.
"""

from ls_llm.evaluation.config import SUITES, EvalConfig
from ls_llm.evaluation.runner import evaluate

__all__ = ["SUITES", "EvalConfig", "evaluate"]
