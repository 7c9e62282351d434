"""`ls-llm eval` end to end on a tiny random Qwen2 with the hf backend, resume, compare, bad input."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from ls_llm.cli.eval import main
from ls_llm.evaluation import evaluate, fingerprint, runner
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
ALL_TASKS = ["aime24", "aime25", "amc23", "math500", "minerva_math", "olympiadbench",
             "arc_challenge", "gpqa_diamond", "mmlu_pro"]


def _args(model, out, *extra):
    return ["--model", str(model), "--backend", "hf", "--limit", "2", "--max-gen-toks", "8",
            "--num-samples", "1", "--batch-size", "4", "--data-dir", str(FIXTURES / "upstream"),
            "--output", str(out), *extra]


def test_hf_backend_whole_path_resumes_and_compares(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(tiny_checkpoint, out, "--suite", "all")) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) >= set(ALL_TASKS)
    assert {"ls_math", "ls_ood"} <= set(results["group_subtasks"])
    # The share of answers each extraction rule found, per task (issue 22).
    assert set(results["answer_rules"]) == set(ALL_TASKS)
    assert all(abs(sum(shares.values()) - 1) < 1e-3 for shares in results["answer_rules"].values())
    assert results["config"]["samples_generated"] == 2 * len(ALL_TASKS)
    for task in ALL_TASKS:
        samples = [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]
        assert len(samples) == 2 and all(len(s["resps"][0]) == 1 for s in samples)
        assert all(s["filtered_resps"][0][0]["verdict"] in {"correct", "wrong", "missing", "unparsable"}
                   for s in samples)
        assert all(s["arguments"][0][1]["max_gen_toks"] == 8 for s in samples)
        assert samples[0]["arguments"][0][0].startswith("<|im_start|>user\n")  # the chat template was applied
    assert "**ls_math** (suite mean)" in (out / "results.md").read_text()
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Same command again: every sample comes from the journal, nothing is generated, same scores.
    before = {task: (out / f"samples_{task}.jsonl").read_text() for task in ALL_TASKS}
    assert main(_args(tiny_checkpoint, out, "--suite", "all")) == 0
    again = json.loads((out / "results.json").read_text())
    assert (again["config"]["samples_generated"], again["config"]["samples_replayed"]) == (0, 2 * len(ALL_TASKS))
    assert again["results"] == results["results"]
    assert before == {task: (out / f"samples_{task}.jsonl").read_text() for task in ALL_TASKS}

    shutil.copytree(out, tmp_path / "copy")
    capsys.readouterr()
    chart = tmp_path / "cmp.png"
    assert main(["compare", str(out), str(tmp_path / "copy"), "--output", str(chart)]) == 0
    printed = capsys.readouterr().out
    assert "| task | run | copy |" in printed and "| math500 |" in printed
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_python_api_with_an_extra_task_folder(tiny_checkpoint, tmp_path):
    """The sweep's use: a custom task (reusing the math template) in its own include path."""
    tasks, data = tmp_path / "tasks", tmp_path / "data" / "arith_sum"
    tasks.mkdir()
    data.mkdir(parents=True)
    (tasks / "arith_sum.yaml").write_text(
        f"task: arith_sum\ninclude: {DEFAULT_TASKS_DIR / '_math_template_yaml'}\nrepeats: 1\n"
        "dataset_kwargs: {ls_task: arith_sum, ls_format: math, hub_path: none, hub_split: test}\n")
    (data / "test.jsonl").write_text('{"question": "2+3=?", "answer": 5}\n{"question": "4*4=?", "answer": "16"}\n')
    results = evaluate(str(tiny_checkpoint), suite="arith_sum", backend="hf", include_path=[str(tasks)],
                       data_dir=str(tmp_path / "data"), max_gen_toks=4, batch_size="2",
                       output=str(tmp_path / "run"))
    assert results["results"]["arith_sum"]["acc,verify"] == 0.0  # a random model does not box 5
    assert [s["target"] for s in results["samples"]["arith_sum"]] == ["5", "16"]


@pytest.fixture
def no_model_load(monkeypatch):
    def refuse(cfg):
        raise AssertionError("the model must not load for bad input")

    monkeypatch.setattr(runner, "build_lm", refuse)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--model": "/does/not/exist"}, "'/does/not/exist' does not exist"),
        ({"--suite": "math500,aime2024"}, "unknown task(s) ['aime2024']"),
        ({"--num-samples": "0"}, "num_samples must be >= 1, got 0"),
        ({"--backend": "tpu"}, "backend must be one of ['hf', 'vllm'], got 'tpu'"),
        ({"--data-dir": "BROKEN"}, "task 'math500': row 1 has no gold answer"),
        ({"--data-dir": "EMPTY"}, "task 'math500': data file"),
    ],
)
def test_bad_input_fails_before_the_model_loads(change, message, tiny_checkpoint, tmp_path, capsys, no_model_load):
    broken = tmp_path / "broken" / "math500"
    broken.mkdir(parents=True)
    (broken / "test.jsonl").write_text(
        '{"problem": "1+1", "answer": "2"}\n{"problem": "2+2", "solution": "four"}\n')
    (tmp_path / "empty").mkdir()
    dirs = {"BROKEN": str(tmp_path / "broken"), "EMPTY": str(tmp_path / "empty")}
    args = _args(tiny_checkpoint, tmp_path / "out", "--suite", "math500")
    for flag, value in change.items():
        args[args.index(flag) + 1] = dirs.get(value, value)
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no empty run folder


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_backend_without_vllm_is_a_clear_error(tiny_checkpoint, tmp_path, capsys, no_model_load):
    args = _args(tiny_checkpoint, tmp_path / "out", "--suite", "math500")
    args[args.index("--backend") + 1] = "vllm"
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the package(s) ['vllm']" in err[0], err
    assert "pip install" in err[0] and "--backend hf" in err[0]
    assert not (tmp_path / "out").exists()


def test_compare_of_a_missing_run_is_one_line_exit_2(tmp_path, capsys):
    # (the compare command's own import of evaluation.report once shadowed the error reporter: a TypeError traceback)
    assert main(["compare", str(tmp_path / "no-such-run"), "--output", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ls-llm eval compare: error:") and len(err.strip().splitlines()) == 1, err
    assert "no-such-run" in err and not (tmp_path / "c.png").exists()


def test_vllm_model_args_carry_parallelism_and_memory_settings():
    from ls_llm.evaluation.backends import BACKENDS
    from ls_llm.evaluation.config import EvalConfig

    cfg = EvalConfig(model="ckpt", tensor_parallel_size=4, data_parallel_size=2, gpu_memory_utilization=0.85,
                     max_model_len=36000, max_gen_toks=32768, enforce_eager=True, model_args='{"max_num_seqs": 8}')
    backend = BACKENDS["vllm"]
    assert backend.model_args(cfg) == {
        "pretrained": "ckpt", "dtype": "auto", "tensor_parallel_size": 4, "data_parallel_size": 2,
        "gpu_memory_utilization": 0.85, "max_gen_toks": 32768, "seed": 1234, "max_model_len": 36000,
        "enforce_eager": True, "max_num_seqs": 8}


def test_evaluation_imports_no_training_code_and_no_heavy_eval_deps():
    import subprocess
    import sys

    code = ("import sys, ls_llm.evaluation, ls_llm.evaluation.runner, ls_llm.cli.eval, ls_llm.bench.scoring\n"
            "bad = [m for m in ('trl', 'lm_eval', 'vllm', 'ls_llm.trainers', 'ls_llm.objectives') if m in sys.modules]\n"
            "print(bad)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_overrides_reach_the_tasks_and_greedy_generates_once(tiny_checkpoint):
    from ls_llm.evaluation.config import EvalConfig

    def load(**fields):
        cfg = EvalConfig(model=str(tiny_checkpoint), suite="aime24,arc_challenge",
                         data_dir=str(FIXTURES / "upstream"), **fields)
        tasks = runner.task_manager(cfg).load(cfg.task_names())["tasks"]
        runner.apply_overrides(cfg, tasks)
        return {name: (t.config.repeats, t.config.generation_kwargs) for name, t in tasks.items()}

    default = load()
    assert (default["aime24"][0], default["arc_challenge"][0]) == (16, 1)
    assert default["aime24"][1]["temperature"] == 0.6 and default["aime24"][1]["max_gen_toks"] == 32768
    tuned = load(num_samples=3, temperature=1.0, top_p=0.9, max_gen_toks=100)
    assert tuned["aime24"][0] == tuned["arc_challenge"][0] == 3
    assert {k: tuned["aime24"][1][k] for k in ("temperature", "top_p", "max_gen_toks")} == \
        {"temperature": 1.0, "top_p": 0.9, "max_gen_toks": 100}
    greedy = load(temperature=0.0)
    assert greedy["aime24"][0] == 1 and greedy["aime24"][1]["do_sample"] is False


def test_checkpoint_fingerprint_changes_when_weights_change(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    before = fingerprint.checkpoint_fingerprint(ckpt)
    weights = next(ckpt.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert fingerprint.checkpoint_fingerprint(ckpt) != before


def test_interrupted_run_resumes_without_regenerating(tiny_checkpoint, tmp_path, monkeypatch):
    real_build = runner.build_lm

    class DiesOnSecondChunk:
        def __init__(self, lm):
            self.lm, self.calls = lm, 0

        def __getattr__(self, name):
            return getattr(self.lm, name)

        def generate_until(self, requests):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt("power cut")
            return self.lm.generate_until(requests)

    out = tmp_path / "run"
    args = _args(tiny_checkpoint, out, "--suite", "math500,arc_challenge,mmlu_pro", "--resume-chunk", "2")
    monkeypatch.setattr(runner, "build_lm", lambda cfg: DiesOnSecondChunk(real_build(cfg)))
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert not (out / "results.json").exists()
    assert len((out / runner.JOURNAL_FILE).read_text().splitlines()) == 2  # the first chunk survived

    monkeypatch.setattr(runner, "build_lm", real_build)
    assert main(args) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert (config["samples_replayed"], config["samples_generated"]) == (2, 4)


def test_avg_at_k_pass_at_k_and_unweighted_suite_mean(tiny_checkpoint, tmp_path, monkeypatch):
    """A scripted model answers MATH-500 right on every other sample and everything else wrong;
    the numbers lm-eval reports must be the hand-computed ones."""
    real_build = runner.build_lm
    golds = {json.loads(line)["problem"]: json.loads(line)["answer"]
             for line in (FIXTURES / "upstream" / "math500" / "test.jsonl").read_text().splitlines()}

    class Scripted:
        def __init__(self, lm):
            self.lm, self.seen = lm, {}

        def __getattr__(self, name):
            return getattr(self.lm, name)

        def generate_until(self, requests):
            out = []
            for req in requests:
                gold = next((g for p, g in golds.items() if p in req.args[0]), None)
                self.seen[req.args[0]] = self.seen.get(req.args[0], 0) + 1
                right = gold is not None and self.seen[req.args[0]] % 2 == 1
                out.append(f"<think>\\boxed{{0}}</think>\\boxed{{{gold if right else -1}}}")
            return out

    monkeypatch.setattr(runner, "build_lm", lambda cfg: Scripted(real_build(cfg)))
    results = evaluate(str(tiny_checkpoint), suite="ls_math", backend="hf", num_samples=2,
                       data_dir=str(FIXTURES / "upstream"), output=str(tmp_path / "run"), batch_size="4")
    math500 = results["results"]["math500"]
    assert (math500["acc,verify"], math500["pass_at_k,verify"]) == (0.5, 1.0)
    assert math500["acc_stderr,verify"] == 0.0  # every problem scores exactly 1/2
    assert all(results["results"][t]["acc,verify"] == 0.0 for t in ALL_TASKS[:6] if t != "math500")
    # fixtures hold 3 MATH-500 problems out of 15: a size-weighted mean would give 0.1, not 0.5 / 6
    assert results["groups"]["ls_math"]["acc,verify"] == pytest.approx(0.5 / 6)
    assert results["groups"]["ls_math"]["pass_at_k,verify"] == pytest.approx(1 / 6)
