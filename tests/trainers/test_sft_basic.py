"""LsSFTTrainer basics: parameters change, metrics are logged, and objective=ce is trl's SFTTrainer."""

import pytest
import torch
from datasets import Dataset


def _train(trainer_cls, h, tmp_path, **cfg):
    tok = h.tokenizer()
    model = h.tiny_model(len(tok))
    args_cls = h.config(tmp_path, **cfg)
    if trainer_cls.__name__ == "SFTTrainer":
        from trl import SFTConfig

        kw = {k: getattr(args_cls, k) for k in cfg} | dict(
            output_dir=args_cls.output_dir, per_device_train_batch_size=2, max_steps=2,
            logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0, data_seed=0,
            disable_tqdm=True, max_length=128, bf16=False)
        args_cls = SFTConfig(**kw)
    trainer = trainer_cls(model=model, args=args_cls, train_dataset=Dataset.from_list(h.message_rows(8)),
                          processing_class=tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    return trainer, model, before


def test_ce_reproduces_trl_sft(h, tmp_path):
    from trl import SFTTrainer

    from ls_llm.trainers import LsSFTTrainer

    # SGD: Adam's update of near-zero gradients amplifies float rounding into visible parameter changes.
    ours, ours_model, before = _train(LsSFTTrainer, h, tmp_path, optim="sgd", learning_rate=0.5)
    ref, ref_model, _ = _train(SFTTrainer, h, tmp_path, optim="sgd", learning_rate=0.5)
    ours_loss = [r["loss"] for r in ours.state.log_history if "loss" in r]
    ref_loss = [r["loss"] for r in ref.state.log_history if "loss" in r]
    assert len(ours_loss) == 2
    torch.testing.assert_close(torch.tensor(ours_loss), torch.tensor(ref_loss), rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(ours_model.named_parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_logged_keys(h, tmp_path):
    from ls_llm.trainers import LsSFTTrainer

    trainer, _, _ = _train(LsSFTTrainer, h, tmp_path, objective="label_smoothing", alpha=0.1)
    logs = [r for r in trainer.state.log_history if "loss" in r]
    for key in ("loss", "objective_loss", "ce_loss", "mean_token_accuracy", "entropy", "mean_p_y", "num_tokens"):
        assert key in logs[0], key
    first = logs[0]
    # Smoothed loss of the same tokens exceeds their plain CE at init (uniform-ish predictions differ little,
    # but the smoothing term adds mass); the per-token means are plain numbers in their ranges.
    assert 0.0 <= first["mean_token_accuracy"] <= 1.0 and 0.0 < first["mean_p_y"] < 1.0
    assert first["entropy"] > 0 and first["ce_loss"] > 0
    metrics = trainer.evaluate(Dataset.from_list(h.message_rows(4)))
    assert {"eval_loss", "eval_objective_loss", "eval_ce_loss", "eval_mean_p_y"} <= set(metrics)


def test_warmup_then_objective_with_unigram_prior(h, tmp_path):
    from ls_llm.trainers import LsSFTTrainer

    trainer, _, _ = _train(LsSFTTrainer, h, tmp_path, objective="label_smoothing", alpha=0.3,
                           smoothing_prior="unigram", objective_warmup_steps=1)
    logs = [r for r in trainer.state.log_history if "objective_loss" in r]
    assert logs[0]["objective_loss"] == pytest.approx(logs[0]["ce_loss"], rel=1e-6)  # step 1: plain ce
    assert abs(logs[1]["objective_loss"] - logs[1]["ce_loss"]) > 1e-3  # step 2: smoothed
    prior = trainer.objective.prior
    assert prior is not None and prior.sum().item() == pytest.approx(1.0) and (prior == 0).any()


def test_loss_truncation_drops_the_highest_loss_sequences(h, tmp_path):
    """loss_truncation 0.5 on a batch of 4 rows trains exactly the 2 rows whose mean token CE is lowest, ranked
    here from a plain float64 forward of an identical model (materialized logits), not by the trainer's engine."""
    import torch.nn.functional as F

    from ls_llm.trainers import LsSFTTrainer

    tok = h.tokenizer()
    reference = h.tiny_model(len(tok)).double().eval()  # same seed: the same weights as the trained model
    args = h.config(tmp_path, per_device_train_batch_size=4, loss_truncation=0.5)
    trainer = LsSFTTrainer(model=h.tiny_model(len(tok)), args=args, train_dataset=Dataset.from_list(h.message_rows(8)),
                           processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=None)

    with torch.no_grad():
        logits = reference(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    token_ce = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
    trained = labels != -100
    row_mean = (token_ce * trained).sum(1) / trained.sum(1)
    assert len(set(row_mean.tolist())) == 4  # distinct losses: "the highest two" is one answer
    kept = torch.sort(row_mean).indices[:2]  # the two lowest-loss rows survive
    expected = (token_ce[kept] * trained[kept]).sum() / trained[kept].sum()
    assert trainer._stat_sums["train"].values()["n_tokens"] == trained[kept].sum().item()
    torch.testing.assert_close(loss.detach().double(), expected, rtol=1e-5, atol=1e-6)
