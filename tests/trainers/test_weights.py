"""Per-trace weights through LsSFTTrainer (trainers/weights.py): Σ w·ℓ / Σ w·n over the global batch.

Against a float64 materialized reference, and the invariances of the unweighted trainer: every weight 1 is the
unweighted run bit for bit, weight 0 is the row dropped, accumulation 1x4 equals 4x1, and weights compose with
trace and segment routing."""

import pytest
import torch

LENGTHS = [5, 61, 17, 38]
WEIGHTS = [0.5, 2.0, 0.0, 1.25]
LS_ANSWER = {"answer": {"objective": "label_smoothing", "alpha": 0.3, "smoothing_prior": "answer"}}
VERDICTS = ["agrees", "disagrees", "no_majority", "agrees", "disagrees", "agrees", "no_majority", "agrees"]



def _step(h, tmp_path, data, **kw):
    """h.sgd_step on the 128-token vocabulary the float64 references below are built with."""
    return h.sgd_step(tmp_path, data, **{"vocab": 128, **kw})

def _tokens(h, weights=None, lengths=LENGTHS):
    data = h.token_dataset(lengths, 128)
    return data if weights is None else data.add_column("w", weights)


def _messages(h, n=8):
    from datasets import Dataset

    from ls_llm.data.loading import split_completion

    rows = []
    for i, r in enumerate(h.message_rows(n)):
        prompt, completion = split_completion(r["messages"])
        rows.append({"prompt": prompt, "completion": completion, "status": VERDICTS[i], "share": (i % 4) / 3})
    return Dataset.from_list(rows)



def test_unit_weights_are_unweighted_training_bitwise(h, tmp_path):
    _, plain, plain_log = _step(h, tmp_path, _tokens(h), objective="label_smoothing", alpha=0.2)
    _, ones, ones_log = _step(h, tmp_path, _tokens(h, [1.0] * 4), objective="label_smoothing", alpha=0.2,
                               trace_weight_column="w")
    for name in plain:
        assert torch.equal(plain[name], ones[name]), name
    assert ones_log["objective_loss"] == plain_log["objective_loss"]
    assert ones_log["trace_weight_token_share"] == 1.0 and ones_log["zero_weight_traces"] == 0


def test_weights_match_a_float64_reference(h, tmp_path):
    """One SGD step at lr 1 moves the parameters by -∇L with L = Σ_r w_r Σ_t ce_rt / Σ_r w_r n_r."""
    trainer, delta, log = _step(h, tmp_path, _tokens(h, WEIGHTS), trace_weight_column="w")
    model = h.tiny_model(128, seed=1).double()
    total, count = 0.0, 0.0
    for row, w in zip(_tokens(h), WEIGHTS, strict=True):
        ids = torch.tensor(row["input_ids"])[None]
        logits = model(input_ids=ids).logits[0, :-1]
        total = total + w * torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
        count += w * (ids.shape[1] - 1)
    loss = total / count
    loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(delta[name].double(), -p.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert log["objective_loss"] == pytest.approx(float(loss), rel=1e-5)
    assert log["zero_weight_traces"] == 1
    n = sum(LENGTHS) - len(LENGTHS)
    assert log["trace_weight_token_share"] == pytest.approx(count / n, rel=1e-6)


def test_weight_two_equals_the_row_twice(h, tmp_path):
    lengths = [9, 30, 14]
    _, doubled, _ = _step(h, tmp_path, _tokens(h, [1.0, 2.0, 1.0], lengths), trace_weight_column="w")
    _, twice, _ = _step(h, tmp_path, _tokens(h, None, [*lengths, 30]).select([0, 1, 2, 1]))
    for name in twice:
        torch.testing.assert_close(doubled[name], twice[name], rtol=1e-4, atol=1e-6, msg=name)


def test_weight_zero_equals_dropping_the_row(h, tmp_path):
    _, zero, _ = _step(h, tmp_path, _tokens(h, [1.0, 1.0, 0.0, 1.0]), trace_weight_column="w")
    kept = _tokens(h).select([0, 1, 3])
    _, dropped, _ = _step(h, tmp_path, kept, per_device_train_batch_size=3)
    for name in zero:
        torch.testing.assert_close(zero[name], dropped[name], rtol=1e-4, atol=1e-6, msg=name)


def test_accumulation_invariance_with_mixed_weights(h, tmp_path):
    _, big, big_log = _step(h, tmp_path, _tokens(h, WEIGHTS), trace_weight_column="w",
                             objective="label_smoothing", alpha=0.1)
    _, small, small_log = _step(h, tmp_path, _tokens(h, WEIGHTS), trace_weight_column="w",
                                 objective="label_smoothing", alpha=0.1, per_device_train_batch_size=1,
                                 gradient_accumulation_steps=4)
    for name in big:
        assert big[name].abs().max() > 0 or "bias" in name, f"{name} did not move"
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
    for key in ("objective_loss", "ce_loss", "trace_weight_token_share", "zero_weight_traces"):
        assert small_log[key] == pytest.approx(big_log[key], rel=1e-5, abs=1e-7), key


ROUTING = dict(segment_objectives=LS_ANSWER, trace_objective_column="status",
               trace_objectives={"disagrees": {"objective": "focal", "gamma": 1.5}})


def test_weights_compose_with_trace_and_segment_routing(h, tmp_path):
    """A map weight of 0 on a trace group equals that group routed to `drop`; accumulation stays exact."""
    data = _messages(h)
    table = {"trace_weight_from": {"column": "status", "map": {"agrees": 1.0, "disagrees": 1.0, "no_majority": 0.0}}}
    _, zero, _ = h.sgd_step(tmp_path, data, vocab=None, per_device_train_batch_size=8, **ROUTING, **table)
    drop = {**ROUTING, "trace_objectives": {**ROUTING["trace_objectives"], "no_majority": "drop"}}
    _, dropped, _ = h.sgd_step(tmp_path, data, vocab=None, per_device_train_batch_size=6, **drop)
    for name in zero:
        torch.testing.assert_close(zero[name], dropped[name], rtol=1e-4, atol=1e-6, msg=name)
    share = {"trace_weight_from": {"column": "share"}}
    _, big, big_log = h.sgd_step(tmp_path, data, vocab=None, per_device_train_batch_size=8, **ROUTING, **share)
    _, small, small_log = h.sgd_step(tmp_path, data, vocab=None, per_device_train_batch_size=2,
                                 gradient_accumulation_steps=4, **ROUTING, **share)
    for name in big:
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
    for key in ("objective_loss", "ce_loss/answer", "trace_weight_token_share", "zero_weight_traces"):
        assert small_log[key] == pytest.approx(big_log[key], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("kw,match", [
    ({"trace_weight_column": "w", "trace_weight_from": {"column": "w"}}, "not both"),
    ({"trace_weight_from": {"colum": "w"}}, "unknown key 'colum'"),
    ({"trace_weight_from": {"column": "w", "map": {"a": -1}}}, r"trace_weight_from.map.a must be a finite"),
    ({"trace_weight_from": {"column": "w", "map": {"a": 1}, "threshold": 0.5}}, "map or threshold"),
    ({"trace_weight_from": {"column": "w", "default": 1.0}}, "default needs a map"),
    ({"trace_weight_from": {"column": "w", "threshold": "high"}}, "threshold must be a finite number"),
    ({"trace_weight_from": "{not json"}, "trace_weight_from must be a mapping"),
    ({"trace_weight_column": "w", "packing": True}, "packing"),
])
def test_recipe_errors_name_the_field(h, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        h.config(tmp_path, **kw)


@pytest.mark.parametrize("values,match", [
    ([1.0, -0.5, 1.0, 1.0], r"train dataset row 2: w=-0.5 is not a finite number >= 0"),
    ([1.0, 1.0, float("nan"), 1.0], r"row 3: w=nan"),
    ([0.0, 0.0, 0.0, 0.0], "every trace weight of the train dataset is 0"),
])
def test_bad_weights_in_a_dataset_built_in_code(h, tmp_path, values, match):
    with pytest.raises(ValueError, match=match):
        _step(h, tmp_path, _tokens(h, values), trace_weight_column="w")


def test_missing_column_in_a_dataset_built_in_code(h, tmp_path):
    with pytest.raises(ValueError, match="names column 'weight', which the train dataset does not have"):
        _step(h, tmp_path, _tokens(h, WEIGHTS), trace_weight_column="weight")


def test_threshold_weights(h, tmp_path):
    _, thresh, log = _step(h, tmp_path, _tokens(h, [0.2, 0.7, 0.5, 0.9]), trace_weight_from={"column": "w",
                                                                                              "threshold": 0.5})
    _, plain, _ = _step(h, tmp_path, _tokens(h, [0.0, 1.0, 1.0, 1.0]), trace_weight_column="w")
    for name in plain:
        assert torch.equal(thresh[name], plain[name]), name
    assert log["zero_weight_traces"] == 1


def test_distillation_refuses_trace_weights(tmp_path):
    from ls_llm.trainers.distill_config import LsDistillConfig

    with pytest.raises(ValueError, match="not supported by distillation"):  # at recipe time, before any loading
        LsDistillConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", bf16=False,
                        teacher_model_name_or_path="teacher", trace_weight_column="consensus_share")


def test_padding_free_batches_weight_each_row(h, tmp_path):
    """Rows concatenated into one padding-free row keep their own weights: the same update as padded rows."""
    data, share = _messages(h), {"trace_weight_from": {"column": "share"}}
    trainer, free, free_log = h.sgd_step(tmp_path, data, vocab=None, padding_free=True, max_length=None, **share)
    assert next(iter(trainer.get_train_dataloader()))["input_ids"].shape[0] == 1
    _, padded, padded_log = h.sgd_step(tmp_path, data, vocab=None, **share)
    for name in padded:
        torch.testing.assert_close(free[name], padded[name], rtol=1e-4, atol=1e-6, msg=name)
    assert free_log["trace_weight_token_share"] == pytest.approx(padded_log["trace_weight_token_share"], rel=1e-6)
