"""lm-eval hooks named by the task YAMLs (``!function utils.<name>``); the logic lives in ls_llm.evaluation."""

from ls_llm.evaluation.schema import load_task_docs
from ls_llm.evaluation.scoring import sample_metrics, score_choice, score_math


def load_data(**kwargs):
    """``custom_dataset``: the task's docs from the hub, or from ``data_dir`` in the run metadata."""
    return load_task_docs(**kwargs)


def verify_math(resps, docs):
    """Filter: every sample of the task scored in one math-verify batch."""
    return score_math(resps, [doc["answer"] for doc in docs], tolerances=[doc.get("tolerance") for doc in docs])


def verify_choice(resps, docs):
    return score_choice(resps, docs)


def process_results(doc, results):
    # results holds one entry per request; generate_until tasks have one request whose filtered
    # response is the list of k verdict records.
    return sample_metrics(results[0])
