"""Sweeps: a grid of recipe variants run through the project's own train / distill / eval paths.

    ls-llm sweep sweeps/paper_cpu.yaml            # run (resumable), then write the report
    ls-llm sweep sweeps/paper_cpu.yaml --report   # only rewrite the CSV / markdown / plots

Only `tracking` and `calibration`, which run models, import torch / transformers at the top; the runner imports
them inside the functions that train and score a cell. Every other submodule imports torch / transformers /
lm-eval only inside the functions that need them, so `--report` and `--list` load none of them.
"""

from ls_llm.sweep.config import Cell, SweepConfig, SweepError
from ls_llm.sweep.load import load_sweep

__all__ = ["Cell", "SweepConfig", "SweepError", "load_sweep"]
