"""ls_llm: label smoothing and noise-corrected objectives for LLM fine-tuning on noisy traces.

Importing the package is cheap: it does not import trl, lm-eval or vllm. Use the subpackages:
``ls_llm.objectives`` (torch only), ``ls_llm.data``, ``ls_llm.trainers``, ``ls_llm.cli``.
"""

__version__ = "0.1.0"
