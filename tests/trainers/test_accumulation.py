"""Gradient accumulation is exact for every objective: batch 4 x accumulation 1 == batch 1 x accumulation 4,
over sequences of very different lengths (so a per-micro-batch mean would weight them differently)."""

import pytest
import torch

from ls_llm.objectives import OBJECTIVES

LENGTHS = [5, 61, 17, 38]


def _one_step(h, tmp_path, objective, batch, accumulation):
    from ls_llm.trainers import LsSFTTrainer

    model = h.tiny_model(128, seed=1)
    args = h.config(tmp_path, objective=objective, per_device_train_batch_size=batch,
                    gradient_accumulation_steps=accumulation, max_steps=1, optim="sgd", learning_rate=1.0,
                    max_grad_norm=0.0, logging_steps=1)
    trainer = LsSFTTrainer(model=model, args=args, train_dataset=h.token_dataset(LENGTHS, 128),
                           processing_class=h.tokenizer())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logged = next(r for r in trainer.state.log_history if "ce_loss" in r)
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}, logged


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_accumulation_invariance(h, tmp_path, objective):
    big, big_log = _one_step(h, tmp_path, objective, batch=4, accumulation=1)
    small, small_log = _one_step(h, tmp_path, objective, batch=1, accumulation=4)
    for name in big:
        assert big[name].abs().max() > 0 or "bias" in name, f"{name} did not move"
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
    for key in ("objective_loss", "ce_loss", "mean_token_accuracy", "entropy", "mean_p_y"):
        assert small_log[key] == pytest.approx(big_log[key], rel=1e-5, abs=1e-7), key
