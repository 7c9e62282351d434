"""Masks and batch layouts: with objective=ce the loss is trl's own fused NLL on the same batches, for
completion-only, assistant-only, packed and padding-free batches."""

import pytest
from datasets import Dataset

MODES = {
    "completion_only": ({"completion_only_loss": True}, "prompt_completion"),
    "assistant_only": ({"assistant_only_loss": True}, "messages"),
    "packing": ({"packing": True, "max_length": 64}, "messages"),
    "padding_free": ({"padding_free": True, "max_length": None}, "messages"),
}


def _rows(h, kind):
    rows = h.message_rows(8)
    if kind == "prompt_completion":
        return [{"prompt": r["messages"][:1], "completion": r["messages"][1:]} for r in rows]
    return rows


def _first_loss(h, tmp_path, trainer_cls, args, kind):
    tok = h.tokenizer()
    trainer = trainer_cls(model=h.tiny_model(len(tok)), args=args, train_dataset=Dataset.from_list(_rows(h, kind)),
                          processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.train()
    return next(r for r in trainer.state.log_history if "loss" in r), batch


@pytest.mark.parametrize("mode", sorted(MODES))
def test_layouts_match_trl(h, tmp_path, mode):
    from trl import SFTConfig, SFTTrainer

    from ls_llm.trainers import LsSFTTrainer

    extra, kind = MODES[mode]
    common = dict(output_dir=str(tmp_path / "o"), per_device_train_batch_size=4, max_steps=1, logging_steps=1,
                  save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=0, data_seed=0,
                  disable_tqdm=True, max_length=128, gradient_checkpointing=False)
    common.update(extra)
    ours, batch = _first_loss(h, tmp_path, LsSFTTrainer, h.config(tmp_path, **common), kind)
    ref, _ = _first_loss(h, tmp_path, SFTTrainer, SFTConfig(**common), kind)
    assert ours["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert ours["mean_token_accuracy"] == pytest.approx(ref["mean_token_accuracy"], abs=1e-6)
    trained = (batch["labels"] != -100).float().mean().item()
    if mode in ("completion_only", "assistant_only"):
        assert 0.0 < trained < 0.9  # prompt tokens are masked
    if mode == "padding_free":
        assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch
    if mode == "packing":
        assert (batch["position_ids"] == 0).sum() > batch["input_ids"].shape[0]  # several sequences per row
