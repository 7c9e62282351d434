"""Plain functions of the trainer layer against brute-force references, and config validation."""

import pytest
import torch
from datasets import Dataset

from ls_llm.trainers.prior import unigram_prior
from ls_llm.trainers.selection import sequence_ids, truncation_keep_mask


def test_sequence_ids_rows_and_packed():
    ids = torch.zeros(2, 6, dtype=torch.long)
    assert sequence_ids(ids).tolist() == [[0] * 6, [6] * 6]
    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]])
    seq = sequence_ids(ids, pos)
    assert seq.tolist() == [[0, 0, 0, 1, 1, 2], [6, 6, 6, 6, 7, 7]]


def _reference_keep(losses, labels, seq, fraction):
    means = {}
    for s in seq.unique().tolist():
        member = (seq == s) & (labels != -100)
        if member.any():
            means[s] = losses[member].double().mean().item()
    n_drop = int(fraction * len(means))
    dropped = sorted(means, key=lambda s: (-means[s], s))[:n_drop]
    return ~torch.isin(seq, torch.tensor(dropped, dtype=seq.dtype))


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.75])
def test_truncation_drops_highest_mean_loss_sequences(fraction):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (4, 10), generator=g)
    labels[0, 7:] = -100
    labels[2, :] = -100  # a row without trained tokens never counts as a sequence
    pos = torch.tensor([list(range(10)), [0, 1, 2, 3, 0, 1, 2, 3, 4, 5], list(range(10)), [0, 1, 2, 0, 1, 2, 0, 1, 2, 3]])
    seq = sequence_ids(labels, pos)
    losses = torch.rand(4, 10, generator=g) * (labels != -100)
    keep = truncation_keep_mask(losses, labels, seq, fraction)
    assert torch.equal(keep, _reference_keep(losses, labels, seq, fraction))
    if fraction == 0.5:  # 6 sequences with tokens -> 3 dropped
        assert seq[~keep].unique().numel() == 3


def test_unigram_prior_counts_trained_tokens():
    ds = Dataset.from_list([{"input_ids": [1, 2, 2, 3], "labels": [-100, 2, 2, 3]},
                            {"input_ids": [4, 4, 1], "labels": [-100, 4, 1]}])
    prior = unigram_prior(ds, vocab_size=6)
    assert prior.tolist() == pytest.approx([0, 1 / 5, 2 / 5, 1 / 5, 1 / 5, 0])


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"label_smoothing_factor": 0.1}, "objective: label_smoothing"),
        ({"loss_type": "dft"}, "objective: dft"),
        ({"objective": "nope"}, "objective"),
        ({"objective": "ce", "smoothing_prior": "unigram"}, "smoothing_prior"),
        ({"objective": "ce", "alpha": 0.1}, "alpha"),
        ({"objective": "gce", "q": 0.0}, "q"),
        ({"loss_truncation": 1.0}, "loss_truncation"),
        ({"objective_warmup_steps": -1}, "objective_warmup_steps"),
    ],
)
def test_config_rejects_bad_values(h, tmp_path, kw, needle):
    with pytest.raises(ValueError, match=needle):
        h.config(tmp_path, **kw)


def test_trainer_accepts_no_args_or_a_plain_sft_config(h, tmp_path, monkeypatch):
    """Like trl: args=None gives the defaults, and an SFTConfig keeps its settings (this trainer's fields at their
    defaults); the loss is then plain ce through the fused head."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer

    monkeypatch.chdir(tmp_path)
    tok = h.tokenizer()
    data = Dataset.from_list(h.message_rows(4))
    outcomes = []
    for cls in (SFTTrainer, LsSFTTrainer):  # trl's defaults want bf16, which a CPU-only machine refuses: same error
        try:
            outcomes.append(type(cls(model=h.tiny_model(len(tok)), args=None, train_dataset=data,
                                     processing_class=tok).args).__name__)
        except ValueError as err:
            outcomes.append(str(err))
    assert outcomes in (["SFTConfig", "LsSFTConfig"], [outcomes[0], outcomes[0]]), outcomes
    plain = SFTConfig(output_dir=str(tmp_path / "o"), max_length=77, learning_rate=3e-3, use_cpu=True, bf16=False,
                      report_to="none")
    trainer = LsSFTTrainer(model=h.tiny_model(len(tok)), args=plain, train_dataset=data, processing_class=tok)
    assert type(trainer.args) is LsSFTConfig
    assert (trainer.args.max_length, trainer.args.learning_rate, trainer.args.output_dir) == (77, 3e-3, str(tmp_path / "o"))
    with pytest.raises(ValueError, match="args must be an LsSFTConfig or an SFTConfig"):
        LsSFTTrainer(model=h.tiny_model(len(tok)), args={"learning_rate": 1.0}, train_dataset=data, processing_class=tok)
