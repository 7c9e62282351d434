"""trl's private names, used only in ls_llm/trainers/trl_seams.py: each exists on the installed trl (a trl release
that renames one fails here, and at trainer start, naming it), and the seams do what trl's own code does."""

import pytest

from ls_llm.trainers import trl_seams


@pytest.fixture
def trainers(h, tmp_path):
    from trl import SFTTrainer

    from ls_llm.trainers import LsSFTTrainer

    def build(cls):
        return cls(model=h.tiny_model(128), args=h.config(tmp_path / cls.__name__),
                   train_dataset=h.token_dataset([5, 9, 7, 12], 128), processing_class=h.tokenizer())

    return build(SFTTrainer), build(LsSFTTrainer)


def test_every_private_name_exists_on_the_installed_trl(trainers):
    from trl import SFTTrainer

    trl_trainer, _ = trainers
    version = trl_seams.trl_version()
    for name in trl_seams.PRIVATE_METHODS:
        assert callable(getattr(SFTTrainer, name, None)), f"trl {version} changed {name}"
    for name in trl_seams.CARD_ATTRIBUTES:
        assert name in vars(SFTTrainer), f"trl {version} changed {name}"
    for name in trl_seams.PRIVATE_ATTRIBUTES + trl_seams.TRL_ATTRIBUTES:
        assert hasattr(trl_trainer, name), f"trl {version} changed {name}"
    assert trl_seams.in_trl_range(version), f"trl {version} is outside the tested range {trl_seams.TRL_RANGE}"


def test_a_missing_private_name_stops_the_trainer_with_one_line(trainers):
    _, ours = trainers
    del ours._total_train_tokens
    with pytest.raises(RuntimeError, match=r"^trl \S+ changed _total_train_tokens \("):
        trl_seams.check_trl(ours)


def test_no_other_module_names_a_trl_private(h):
    """The seams stay in one place: no other trainer module reads or overrides these names."""
    import re
    from pathlib import Path

    import ls_llm

    root = Path(ls_llm.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "trl_seams.py":
            continue
        text = path.read_text()
        for name in trl_seams.PRIVATE_NAMES:
            assert not re.search(rf"\b{name}\b", text), f"{path.relative_to(root)} uses trl's private {name}"


def test_token_count_and_metrics_match_trl(h, tmp_path):
    """`num_tokens` counted as trl counts it, on padded and on padding-free batches."""
    from trl import SFTTrainer

    from ls_llm.trainers import LsSFTTrainer

    for padding_free in (False, True):
        logs = []
        for cls in (SFTTrainer, LsSFTTrainer):
            args = h.config(tmp_path / f"{cls.__name__}{padding_free}", max_steps=2, padding_free=padding_free,
                            max_length=None if padding_free else 128)
            trainer = cls(model=h.tiny_model(128), args=args, train_dataset=h.token_dataset([5, 61, 17, 38], 128),
                          processing_class=h.tokenizer())
            trainer.train()
            logs.append([r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r])
        assert logs[0] == logs[1] and logs[0][-1] > 0, (padding_free, logs)


def test_a_trl_outside_the_tested_range_gets_one_warning(trainers, monkeypatch):
    _, ours = trainers
    monkeypatch.setattr(trl_seams, "trl_version", lambda: "1.17.0")
    with pytest.warns(UserWarning, match=r"trl 1\.17\.0 is outside the range LsSFTTrainer is tested with"):
        trl_seams.check_trl(ours)
    assert not trl_seams.in_trl_range("1.15.9") and trl_seams.in_trl_range("1.16.3")
