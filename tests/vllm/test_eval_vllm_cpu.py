"""`ls-llm eval --backend vllm` on the vLLM CPU build: end to end with resumption, the same greedy generations
as the HF backend, and bad input refused in one line (exit 2, no run folder) before any engine starts."""

import json

import pytest

pytest.importorskip("vllm")

from pathlib import Path  # noqa: E402

from ls_llm.cli.eval import main  # noqa: E402

EVAL_DATA = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "upstream"

TASKS = ("math500", "arc_challenge")  # one math task, one multiple choice


def _args(model, out, *extra):
    return ["--model", str(model), "--suite", ",".join(TASKS), "--data-dir", str(EVAL_DATA), "--output", str(out),
            "--max-gen-toks", "16", "--max-model-len", "2048", "--dtype", "float32", *extra]


def _samples(out, task):
    return [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]


def test_two_tasks_k2_then_resumed_without_regenerating(qwen2_hd64, tmp_path):
    out = tmp_path / "run"
    args = _args(qwen2_hd64, out, "--backend", "vllm", "--limit", "2", "--num-samples", "2")
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(TASKS) <= set(results["results"])
    assert results["config"]["samples_generated"] == 2 * 2 * 2  # tasks x problems x samples
    assert results["config"]["model_args"]["enforce_eager"] is True  # the CPU build's defaults
    assert results["config"]["model_args"]["gpu_memory_utilization"] == 0.25
    for task in TASKS:
        samples = _samples(out, task)
        assert len(samples) == 2 and all(len(s["resps"][0]) == 2 for s in samples)
    assert all((out / name).is_file() for name in ("results.md", "results.png"))

    assert main(args) == 0  # the same command again: every sample replayed from the journal
    again = json.loads((out / "results.json").read_text())
    assert again["config"]["samples_generated"] == 0 and again["config"]["samples_replayed"] == 8
    assert again["results"] == results["results"]


def test_greedy_generations_equal_the_hf_backend(qwen2_hd64, tmp_path):
    """Temperature 0, float32 on both backends: the same text, up to one difference of detokenization.

    The byte-level tokenizer lets a random model end on an incomplete UTF-8 sequence: HF's `decode` writes
    one U+FFFD per dangling byte, vLLM's incremental detokenizer holds those bytes back and never emits them.
    The token ids themselves are equal (test_generate_vllm_cpu.py)."""
    runs = {}
    for backend, extra in (("vllm", []), ("hf", ["--batch-size", "1"])):
        out = tmp_path / backend
        assert main(_args(qwen2_hd64, out, "--backend", backend, "--limit", "3", "--temperature", "0",
                          "--max-gen-toks", "24", *extra)) == 0
        runs[backend] = {t: [r.rstrip("\ufffd") for s in _samples(out, t) for r in s["resps"][0]] for t in TASKS}
    for task in TASKS:
        assert len(runs["vllm"][task]) == 3 and any(runs["vllm"][task])
        assert runs["vllm"][task] == runs["hf"][task], task


@pytest.mark.parametrize(
    ("model", "flags", "message", "hint"),
    [
        (dict(hidden=64, heads=4, kv_heads=2), [], "head_dim=16 is not supported by vLLM's CPU attention",
         "use --backend hf"),
        (dict(architecture="FooForCausalLM"), [], "Model architectures ['FooForCausalLM'] are not supported",
         "use --backend hf"),
        ({}, ["--gpu-memory-utilization", "1.0"], "--gpu-memory-utilization=1.0 asks the vLLM CPU engine for",
         "lower --gpu-memory-utilization"),
        ({}, ["--data-parallel-size", "2"], "data_parallel_size=2 needs GPUs", "use --data-parallel-size 1"),
        ({}, ["--max-model-len", "4096"], "max_model_len", "change --max-model-len"),
    ],
    ids=["head_dim_16", "architecture", "memory_fraction", "data_parallel", "max_model_len"],
)
def test_refused_before_the_engine_starts(model, flags, message, hint, qwen2_hd64, make_qwen2, tmp_path, capsys,
                                          monkeypatch):
    from ls_llm.evaluation import runner

    monkeypatch.setattr(runner, "build_lm", lambda cfg: pytest.fail("no engine may start for refused input"))
    checkpoint = make_qwen2(tmp_path / "model", **model) if model else qwen2_hd64
    capsys.readouterr()  # transformers' progress bar while saving
    args = _args(checkpoint, tmp_path / "out", "--backend", "vllm", "--limit", "1")
    for flag, value in zip(flags[::2], flags[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ls-llm eval: error: "), err
    assert message in err[0] and hint in err[0], err[0]
    assert not (tmp_path / "out").exists()
