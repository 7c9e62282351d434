"""LsSFTTrainer basics: parameters change, metrics are logged, and objective=ce is trl's SFTTrainer."""

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
