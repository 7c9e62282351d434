"""DeepSpeed ZeRO-2/3 on CPU (2 gloo ranks) against one process on the same global batch: the head-loss contract
under a partitioned model. Each 2-rank run also records how much of the lm_head every rank holds, so a model
that is silently replicated instead of partitioned fails the test."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

pytest.importorskip("deepspeed")

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
TOKENIZER = ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(stage: int, command: str, argv: list[str]) -> None:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "accelerate_configs" / f"cpu_zero{stage}_2proc.yaml"), "--main_process_port", str(_free_port()),
           str(ROOT / "tests" / "zero" / "zero_worker.py"), command, *argv]
    # TOKENIZERS_PARALLELISM=false: the tokenizers thread pool can abort a rank at interpreter exit (exit -6).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT),
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if "Warning" not in ln and "return func" not in ln]
        pytest.fail("\n".join(lines[-80:]))


def _single(command: str, argv: list[str]) -> None:
    from ls_llm.cli import distill, train

    assert (train if command == "train" else distill).main(argv) == 0


def _partition(out: Path) -> list[dict]:
    return [json.loads((out / f"partition-rank{r}.json").read_text()) for r in range(2)]


def _assert_partitioned(out: Path, who: str = "student") -> None:
    records = [r[who] for r in _partition(out)]
    full = records[0]["full"]
    assert all(r["full"] == full for r in records)
    assert all(0 < r["local"] <= (full + 1) // 2 + 64 for r in records), records  # half (plus padding) each
    assert sum(r["local"] for r in records) >= full


def _compare(a: Path, b: Path, name: str = "model.safetensors", *, atol=1e-6) -> None:
    ours, ref = load_file(a / name), load_file(b / name)
    assert set(ours) == set(ref)
    for key, value in ref.items():
        torch.testing.assert_close(ours[key], value.to(ours[key].dtype), rtol=1e-4, atol=atol, msg=key)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Saved initial weights: a model initialised from its config under zero.Init draws other random numbers
    than one initialised in one process, so both runs load the same weights instead."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(FIX / "trainers" / "tiny-qwen2")).save_pretrained(path)
    return str(path)


def _train_argv(out: Path, batch: int, *extra: str, weights: str) -> list[str]:
    # SGD: Adam would turn float-rounding differences of near-zero gradients into visible updates.
    return [str(FIX / "trainers" / "tiny.yaml"), "--model_name_or_path", weights, "--model_init_from_config", "false",
            "--tokenizer_name_or_path", str(TOKENIZER), "--dataset_name", str(FIX / "trainers" / "arith_train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", str(batch), "--optim", "sgd",
            "--learning_rate", "0.5", "--max_steps", "2", "--save_strategy", "no", *extra]


@pytest.mark.parametrize("stage", [3, 2])
def test_sft_label_smoothing(tmp_path, stage, tiny_weights):
    _launch(stage, "train", _train_argv(tmp_path / "zero", 2, weights=tiny_weights))
    _single("train", _train_argv(tmp_path / "single", 4, weights=tiny_weights))
    _compare(tmp_path / "zero", tmp_path / "single")
    if stage == 3:
        _assert_partitioned(tmp_path / "zero")
    else:  # ZeRO-2 partitions optimizer state and gradients, not parameters: every rank holds the whole head
        assert all(r["student"]["local"] == r["student"]["full"] for r in _partition(tmp_path / "zero"))


def test_zero3_routed_objectives(tmp_path, tiny_weights):
    """Objectives routed by segment (answer span smoothed with the answer prior) under a partitioned head."""
    routed = ["--segment_objectives", json.dumps({"answer": {"objective": "label_smoothing", "alpha": 0.3,
                                                             "smoothing_prior": "answer"}})]
    _launch(3, "train", _train_argv(tmp_path / "zero", 2, *routed, weights=tiny_weights))
    _single("train", _train_argv(tmp_path / "single", 4, *routed, weights=tiny_weights))
    _compare(tmp_path / "zero", tmp_path / "single")
    _assert_partitioned(tmp_path / "zero")


def test_zero3_trace_weights(tmp_path, tiny_weights):
    """Per-trace weights (0 / 0.5 / 1 from a consensus column): Σ w·ℓ / Σ w·n over both ranks' rows."""
    weighted = ["--dataset_name", str(FIX / "trainers" / "arith_weighted.jsonl"), "--trace_weight_from",
                json.dumps({"column": "consensus_status", "map": {"agrees": 1.0, "no_majority": 0.5, "disagrees": 0.0}})]
    _launch(3, "train", _train_argv(tmp_path / "zero", 2, *weighted, weights=tiny_weights))
    _single("train", _train_argv(tmp_path / "single", 4, *weighted, weights=tiny_weights))
    _compare(tmp_path / "zero", tmp_path / "single")
    _assert_partitioned(tmp_path / "zero")


def test_zero3_lora_with_trained_head_copy(tmp_path, tiny_weights):
    """LoRA on q/v and `modules_to_save: [lm_head]`: the head copy lives in a submodule of the head wrapper."""
    peft = ["--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj", "--lora_modules_to_save", "lm_head",
            "--lora_r", "4", "--lora_dropout", "0.0"]
    _launch(3, "train", _train_argv(tmp_path / "zero", 2, *peft, weights=tiny_weights))
    _single("train", _train_argv(tmp_path / "single", 4, *peft, weights=tiny_weights))
    _compare(tmp_path / "zero", tmp_path / "single", "adapter_model.safetensors")
    _assert_partitioned(tmp_path / "zero")


def _distill_recipe(tmp_path: Path, out: Path, batch: int, **kw) -> str:
    recipe = dict(model_name_or_path=str(tmp_path / "student"), tokenizer_name_or_path=str(TOKENIZER),
                  teacher_tokenizer_name_or_path=str(TOKENIZER), dataset_name=str(FIX / "distill" / "arith_train.jsonl"),
                  completion_only_loss=True, max_length=160, teacher_model_name_or_path=str(tmp_path / "teacher"),
                  distill_alpha=0.5, teacher_smoothing=0.1, output_dir=str(out), per_device_train_batch_size=batch,
                  max_steps=2, optim="sgd", learning_rate=0.5, use_cpu=True, bf16=False, report_to="none",
                  save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, seed=0, **kw)
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture
def teacher(tmp_path):
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(3)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=418, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                         tie_word_embeddings=False, pad_token_id=0))
    model.save_pretrained(tmp_path / "teacher")
    AutoTokenizer.from_pretrained(TOKENIZER).save_pretrained(tmp_path / "teacher")
    config = Qwen2Config.from_pretrained(ROOT / "recipes" / "demo" / "distill-student")
    torch.manual_seed(4)
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "student")


def test_zero3_online_distillation(tmp_path, teacher):
    """Teacher and student both partitioned; the teacher's head is gathered by its own hooks."""
    _launch(3, "distill", [_distill_recipe(tmp_path, tmp_path / "zero", 2)])
    _single("distill", [_distill_recipe(tmp_path, tmp_path / "single", 4)])
    _compare(tmp_path / "zero", tmp_path / "single")
    _assert_partitioned(tmp_path / "zero", "student")
    _assert_partitioned(tmp_path / "zero", "teacher")


def test_zero3_cached_distillation(tmp_path, teacher):
    from ls_llm.cli import distill_cache

    cache = dict(teacher_cache_dir=str(tmp_path / "cache"), distill_top_k=16)
    assert distill_cache.main([_distill_recipe(tmp_path, tmp_path / "build", 4, **cache)]) == 0
    _launch(3, "distill", [_distill_recipe(tmp_path, tmp_path / "zero", 2, **cache)])
    _single("distill", [_distill_recipe(tmp_path, tmp_path / "single", 4, **cache)])
    _compare(tmp_path / "zero", tmp_path / "single")
    _assert_partitioned(tmp_path / "zero")
