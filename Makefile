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

.PHONY: install demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m ls_llm.bench.objectives --quick

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) -m ls_llm.bench.objectives

lint: $(VENV)/.installed
	$(BIN)/ruff check ls_llm eval tests

clean:
	rm -rf $(VENV) build dist *.egg-info
