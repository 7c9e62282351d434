"""`ls-llm generate` with the HF backend on a tiny model: the rows against transformers' own greedy decoding, the
manifest, resume after SIGKILL, refusal of mixed settings, one-line user errors, and the output read as is by
load_traces, `ls-llm train`, `ls-llm distill` and `ls-llm audit`."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ls_llm.cli.generate import main

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = ROOT / "tests" / "fixtures" / "eval" / "generate_problems.jsonl"
MAX_GEN = 12


def _save_model(path: Path, *, seed: int = 0, head_scale: float = 20.0) -> Path:
    """A tiny Qwen2 with the arithmetic tokenizer; the lm_head scaled up so that greedy decoding has no near-ties
    (batched and unbatched decoding then pick the same tokens)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer")
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return _save_model(tmp_path_factory.mktemp("teacher"))


def _argv(model, out, *extra, data=PROBLEMS, k=2):
    return ["--model", str(model), "--data", str(data), "--num-samples", str(k), "--out", str(out),
            "--backend", "hf", "--max-gen-toks", str(MAX_GEN), "--batch-size", "3", *extra]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "traces.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def greedy_run(teacher, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "greedy"
    assert main(_argv(teacher, out, "--temperature", "0")) == 0
    return out


def _reference_greedy(model_path: Path, prompt: list[dict]) -> str:
    """transformers' own greedy decoding of one chat-templated prompt, alone (no batch, no padding)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    out = model.generate(ids, do_sample=False, max_new_tokens=MAX_GEN, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_rows_columns_and_greedy_text_equal_transformers(teacher, greedy_run):
    from ls_llm.answers import extract_final_answer

    problems = [json.loads(line) for line in PROBLEMS.read_text().splitlines()]
    rows = _rows(greedy_run)
    assert len(rows) == 2 * len(problems)
    assert [(r["problem_id"], r["sample_index"]) for r in rows] == [(p["id"], j) for p in problems for j in (0, 1)]
    for row in rows:
        problem = problems[[p["id"] for p in problems].index(row["problem_id"])]
        assert row["prompt"] == [{"role": "user", "content": problem["problem"] + "\n\nPlease reason step by step, "
                                  "and put your final answer within \\boxed{}."}]
        assert row["answer"] == problem.get("answer")
        assert row["predicted_answer"] == extract_final_answer(row["completion"])
    for row in rows[::2]:
        assert row["completion"] == _reference_greedy(teacher, row["prompt"])
    manifest = json.loads((greedy_run / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["rows"] == len(rows)
    assert manifest["settings"]["temperature"] == 0.0 and manifest["settings"]["backend"] == "hf"
    assert str(teacher.resolve()) in manifest["model_fingerprint"] and "model.safetensors" in manifest["model_fingerprint"]


def test_output_read_by_load_traces_and_audit(greedy_run, tmp_path, capsys):
    from ls_llm.cli import audit
    from ls_llm.data.args import LsDataArguments
    from ls_llm.data.loading import load_traces

    rows = _rows(greedy_run)
    data = load_traces(LsDataArguments(dataset_name=str(greedy_run / "traces.jsonl"), dataset_on_missing="error"))
    train = data["train"]
    assert len(train) == len(rows)
    assert [c[0]["content"] for c in train["completion"]] == [r["completion"] for r in rows]
    assert [p[-1]["content"] for p in train["prompt"]] == [r["prompt"][-1]["content"] for r in rows]
    assert train["answer"] == [r["answer"] for r in rows]
    assert audit.main([str(greedy_run / "traces.jsonl"), "--out", str(tmp_path / "audit"), "--no-plot",
                       "--workers", "1"]) == 0
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert report["overall"]["rows"] == len(rows)
    assert report["overall"]["no_reference"] == sum(r["answer"] is None for r in rows)


def _train_recipe(tmp_path, traces: Path, **extra) -> str:
    import yaml

    recipe = dict(model_name_or_path=str(ROOT / "recipes" / "demo" / "distill-student" / "config.json"),
                  model_init_from_config=True,
                  tokenizer_name_or_path=str(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"),
                  dataset_name=str(traces), dataset_on_missing="error", completion_only_loss=True, max_length=128,
                  output_dir=str(tmp_path / "student"), per_device_train_batch_size=4, max_steps=1,
                  learning_rate=1e-3, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
                  logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, seed=0, **extra)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_output_trains_and_distills(teacher, greedy_run, tmp_path):
    from ls_llm.cli import distill, train

    traces = greedy_run / "traces.jsonl"
    assert train.main([_train_recipe(tmp_path / "sft", traces)]) == 0
    assert (tmp_path / "sft" / "student" / "model.safetensors").exists()
    recipe = _train_recipe(tmp_path / "kd", traces, teacher_model_name_or_path=str(teacher), distill_alpha=0.5)
    assert distill.main([recipe]) == 0
    assert (tmp_path / "kd" / "student" / "model.safetensors").exists()


def test_rerun_replays_and_other_settings_or_model_are_refused(teacher, greedy_run, tmp_path, capsys):
    before = (greedy_run / "traces.jsonl").read_bytes()
    assert main(_argv(teacher, greedy_run, "--temperature", "0")) == 0
    assert (greedy_run / "traces.jsonl").read_bytes() == before
    manifest = json.loads((greedy_run / "manifest.json").read_text())
    assert manifest["samples_generated"] == 0 and manifest["samples_replayed"] == len(_rows(greedy_run))
    capsys.readouterr()
    assert main(_argv(teacher, greedy_run, "--temperature", "0.7")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temperature: 0.0 there, 0.7 now" in err and "another --out" in err
    other = _save_model(tmp_path / "other", seed=1)
    assert main(_argv(other, greedy_run, "--temperature", "0")) == 2
    assert "model_fingerprint" in capsys.readouterr().err
    assert (greedy_run / "traces.jsonl").read_bytes() == before


def _problems_without_prompt(tmp_path):
    path = tmp_path / "noprompt.jsonl"
    path.write_text('{"id": "a", "problem": "", "answer": "1"}\n{"id": "b", "problem": "", "answer": "2"}\n')
    return ["--data", str(path)]


BAD = {
    "zero_samples": (lambda t: ["--num-samples", "0"], "num_samples"),
    "missing_model": (lambda t: ["--model", str(t / "nope")], "nope"),
    "no_prompt": (_problems_without_prompt, "problem"),
    "unknown_columns": (lambda t: ["--data", str(_write(t / "x.jsonl", '{"foo": 1}\n'))], "foo"),
    "missing_data": (lambda t: ["--data", str(t / "missing.jsonl")], "missing.jsonl"),
    "bad_top_p": (lambda t: ["--top-p", "1.5"], "top_p"),
    "longer_than_context": (lambda t: ["--max-gen-toks", "1020"], "exceed the model's context of 1024 tokens"),
    "two_references": (lambda t: ["--data", str(_write(t / "two.jsonl", '{"problem": "What is 1+1?", "answer": "2"}\n'
                                                        '{"problem": "What is 1+1?", "answer": "3"}\n'))],
                       "two reference answers"),
    "config_list_value": (lambda t: ["--config", str(_write(t / "c.yaml", "limit: [1]\n"))], "'limit': [1] is a list"),
    "config_bool_value": (lambda t: ["--config", str(_write(t / "c.yaml", "top_p: true\n"))], "'top_p': True is a"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_user_errors_one_line_exit_2_nothing_written(teacher, tmp_path, capsys, case):
    make, expected = BAD[case]
    out = tmp_path / "out"
    code = main(_argv(teacher, out) + make(tmp_path))
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]  # (datasets' progress bar aside)
    assert len(errors) == 1 and errors[0].startswith("ls-llm generate: error:") and expected in errors[0], err
    assert "Traceback" not in err
    assert not out.exists()


def test_config_file_with_flag_override(teacher, tmp_path):
    import yaml

    config = tmp_path / "gen.yaml"
    config.write_text(yaml.safe_dump({"model": str(teacher), "data": str(PROBLEMS), "num_samples": 3,
                                      "out": str(tmp_path / "from_yaml"), "backend": "hf", "max_gen_toks": 4,
                                      "limit": 2, "batch_size": "3"}))
    assert main(["--config", str(config), "--num-samples", "1"]) == 0
    rows = _rows(tmp_path / "from_yaml")
    assert [(r["problem_id"], r["sample_index"]) for r in rows] == [("p0", 0), ("p1", 0)]
    config.write_text("num_sample: 3\n")
    assert main(["--config", str(config)]) == 2


def _run_cli(argv, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-m", "ls_llm.cli", "generate", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def _journal_lines(out: Path) -> int:
    path = out / "generations.journal.jsonl"
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def test_sigkill_then_rerun_equals_uninterrupted_run(teacher, tmp_path):
    """Greedy, k = 3, one sample per journal write: killed after a few writes, the re-run completes with every
    sample once (journal lines = samples) and the same rows as the uninterrupted run."""
    out = tmp_path / "killed"
    argv = _argv(teacher, out, "--temperature", "0", "--resume-chunk", "1", "--batch-size", "1", "--max-gen-toks", "40",
                 k=3)
    total = 3 * len(PROBLEMS.read_text().splitlines())
    proc = _run_cli(argv)
    deadline = time.time() + 120
    while _journal_lines(out) < 4 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _journal_lines(out)
    assert 4 <= done < total, f"the kill came too late to test a resume ({done} of {total} samples written)"
    assert not (out / "traces.jsonl").exists()
    assert _run_cli(argv).wait() == 0
    assert _journal_lines(out) == total
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples_replayed"] == done and manifest["samples_generated"] == total - done
    reference = tmp_path / "uninterrupted"
    assert main(_argv(teacher, reference, "--temperature", "0", "--max-gen-toks", "40", k=3)) == 0
    assert _rows(out) == _rows(reference)


class _CountingLM:
    """A stand-in model: every sample is a new text, so a replayed or duplicated sample shows."""

    def __init__(self, start=0, fail_on_call=None):
        self.count, self.calls, self.fail_on_call = start, 0, fail_on_call

    def generate_until(self, requests, disable_tqdm=False):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt  # a kill between two journal writes
        self.count += len(requests)
        return [f"sample {self.count - len(requests) + i} \\boxed{{{i}}}" for i in range(len(requests))]


def _fake_requests(k=4, n=3):
    from ls_llm.evaluation.generate import Problem, _requests
    from ls_llm.evaluation.generate_config import GenerateConfig

    cfg = GenerateConfig(model="m", data="d", out="o", num_samples=k, backend="hf")
    problems = [Problem(f"q{i}", [{"role": "user", "content": f"q{i}"}], None, {}) for i in range(n)]
    return problems, _requests(problems, [f"<ctx {i}>" for i in range(n)], cfg, per_request_seed=False)


def test_a_chunk_smaller_than_k_never_replays_a_sibling_sample(tmp_path):
    """The k copies of a prompt are one journal key; split over two calls, the second would replay the first's."""
    from ls_llm.evaluation.generate import _generate
    from ls_llm.evaluation.resume import JournaledLM

    _, requests = _fake_requests()
    lm = JournaledLM(_CountingLM(), tmp_path / "journal.jsonl", fingerprint="f", chunk_size=3)
    texts, _ = _generate(lm, requests, 3, 4)
    assert len(texts) == 12 and len(set(texts)) == 12


def test_resume_keeps_the_journaled_samples_and_generates_only_the_rest(tmp_path):
    from ls_llm.evaluation.generate import _generate, trace_rows
    from ls_llm.evaluation.resume import JournaledLM

    problems, requests = _fake_requests()
    journal = tmp_path / "journal.jsonl"
    first = JournaledLM(_CountingLM(fail_on_call=3), journal, fingerprint="f", chunk_size=4)
    with pytest.raises(KeyboardInterrupt):
        _generate(first, requests, 4, 4)
    kept = [json.loads(line)["output"] for line in journal.read_text().splitlines()]
    assert len(kept) == 8
    second = JournaledLM(_CountingLM(start=100), journal, fingerprint="f", chunk_size=4)
    texts, _ = _generate(second, requests, 4, 4)
    assert texts[:8] == kept and len(set(texts)) == 12 and second.generated == 4
    rows = trace_rows(problems, texts, 4)
    assert [(r["problem_id"], r["sample_index"]) for r in rows] == [(f"q{i}", j) for i in range(3) for j in range(4)]
    assert [r["predicted_answer"] for r in rows[:4]] == ["0", "1", "2", "3"]


def test_predicted_answer_is_the_final_answer_outside_thinking():
    from ls_llm.evaluation.generate import Problem, trace_rows

    problem = Problem("p", [{"role": "user", "content": "?"}], "4", {})
    texts = ["<think>maybe \\boxed{3}</think> so \\boxed{\\frac{1}{2}}", "<think>\\boxed{3}</think> no answer"]
    assert [r["predicted_answer"] for r in trace_rows([problem], texts, 2)] == ["\\frac{1}{2}", None]


def test_second_generate_into_a_running_folder_is_refused(teacher, tmp_path, capsys):
    """Issue 23, case 1 for `ls-llm generate`: one writer per run folder, the second named with the first's pid."""
    out = tmp_path / "run"
    argv = _argv(teacher, out, "--temperature", "0")
    env = {**os.environ, "READY": str(tmp_path / "ready"), "GO": str(tmp_path / "go")}
    first = subprocess.Popen([sys.executable, str(ROOT / "tests" / "pause_driver.py"),
                              "ls_llm.evaluation.backends:build_lm", "generate", *argv], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not (tmp_path / "ready").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-3000:]
            time.sleep(0.1)
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
        assert str(out) in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
        (tmp_path / "go").touch()
        assert first.wait(timeout=300) == 0  # the first run is not disturbed by the refused one
    finally:
        first.kill()
        first.wait(timeout=60)
    assert len(_rows(out)) == 2 * sum(1 for _ in PROBLEMS.open(encoding="utf-8"))


def test_backend_auto_resolves_before_the_manifest(teacher, tmp_path):
    """`--backend auto` (the default) is resolved first: the manifest and the journal name the backend that ran."""
    pytest.importorskip("lm_eval")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vLLM is importable here: auto would pick it")
    out = tmp_path / "auto"
    argv = [a for a in _argv(teacher, out, "--temperature", "0") if a not in ("--backend", "hf")]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["backend"] == "hf"
