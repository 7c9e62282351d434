"""MoE models train with the router load-balancing loss that trl's SFTTrainer adds: with `objective: ce`,
LsSFTTrainer's logged loss and its update equal trl's, with the aux loss on, under gradient accumulation too,
for Qwen3-MoE, Mixtral and GPT-OSS built tiny from a config."""

import pytest
import torch

LENGTHS = [5, 61, 17, 38]
VOCAB = 128


def _moe(family: str, coef: float):
    from transformers import (
        GptOssConfig,
        GptOssForCausalLM,
        MixtralConfig,
        MixtralForCausalLM,
        Qwen3MoeConfig,
        Qwen3MoeForCausalLM,
    )

    common = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, pad_token_id=0,
                  num_experts_per_tok=2, router_aux_loss_coef=coef)
    torch.manual_seed(1)
    if family == "qwen3_moe":
        return Qwen3MoeForCausalLM(Qwen3MoeConfig(**common, head_dim=8, intermediate_size=64,
                                                  moe_intermediate_size=16, num_experts=4))
    if family == "gpt_oss":
        return GptOssForCausalLM(GptOssConfig(**common, head_dim=8, intermediate_size=16, num_local_experts=4))
    return MixtralForCausalLM(MixtralConfig(**common, intermediate_size=16, num_local_experts=4))


def _one_step(h, tmp_path, trainer_cls, family, *, coef=0.5, batch=2, accumulation=2):
    model = _moe(family, coef)
    args = h.config(tmp_path / trainer_cls.__name__, per_device_train_batch_size=batch,
                    gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=1.0,
                    max_grad_norm=0.0, logging_steps=1)
    trainer = trainer_cls(model=model, args=args, train_dataset=h.token_dataset(LENGTHS, VOCAB),
                          processing_class=h.tokenizer())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logged = next(r for r in trainer.state.log_history if "loss" in r)
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}, logged


@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral", "gpt_oss"])
@pytest.mark.parametrize("batch,accumulation", [(2, 2), (4, 1)])
def test_moe_step_equals_trl_with_the_router_aux_loss(h, tmp_path, family, batch, accumulation):
    from trl import SFTTrainer

    from ls_llm.trainers import LsSFTTrainer

    ours, our_log = _one_step(h, tmp_path, LsSFTTrainer, family, batch=batch, accumulation=accumulation)
    trl, trl_log = _one_step(h, tmp_path, SFTTrainer, family, batch=batch, accumulation=accumulation)
    router = [n for n in ours if ".gate." in n or ".router." in n]
    assert router, "no router weights found"
    for name in ours:
        torch.testing.assert_close(ours[name], trl[name], rtol=1e-4, atol=1e-6, msg=name)
    assert our_log["loss"] == pytest.approx(trl_log["loss"], rel=1e-5)
    assert our_log["aux_loss"] == pytest.approx(trl_log["aux_loss"], rel=1e-5)
    assert our_log["num_tokens"] == trl_log["num_tokens"]


def test_moe_aux_loss_moves_the_router(h, tmp_path):
    """The aux loss is really in the update: the router's step differs from one without it (coefficient 0)."""
    from ls_llm.trainers import LsSFTTrainer

    with_aux, log = _one_step(h, tmp_path / "on", LsSFTTrainer, "qwen3_moe", coef=0.5)
    without, log0 = _one_step(h, tmp_path / "off", LsSFTTrainer, "qwen3_moe", coef=0.0)
    assert "aux_loss" in log and "aux_loss" not in log0
    gate = next(n for n in with_aux if n.endswith("mlp.gate.weight"))
    assert (with_aux[gate] - without[gate]).abs().max() > 1e-4
