"""Data layer: load reasoning-trace datasets, inject controlled noise, audit real noise.

Submodules (imported on use, so ``import ls_llm.data`` stays cheap):
``loading`` (``LsDataArguments``, ``load_traces``), ``formats`` (row converters), ``noise``
(injector registry), ``audit`` (answer checks), ``synthetic`` (arithmetic task + tokenizer).
"""
