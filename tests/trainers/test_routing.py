"""Objectives routed by segment and trace through LsSFTTrainer: recipe errors, exactness and invariances."""

import pytest
import torch

LS_ANSWER = {"answer": {"objective": "label_smoothing", "alpha": 0.3, "smoothing_prior": "answer"}}
VERDICTS = ["correct", "wrong", "unparsable", "correct", "wrong", "correct", "unparsable", "correct"]


def _rows(h, n=8, verdicts=True):
    from datasets import Dataset

    from ls_llm.data.loading import split_completion

    rows = []
    for i, r in enumerate(h.message_rows(n)):
        prompt, completion = split_completion(r["messages"])
        rows.append({"prompt": prompt, "completion": completion, **({"audit_verdict": VERDICTS[i]} if verdicts else {})})
    return Dataset.from_list(rows)



@pytest.mark.parametrize("kw,match", [
    ({"segment_objectives": {"anwser": {"alpha": 0.1}}}, "unknown segment 'anwser'"),
    ({"segment_objectives": {"answer": {"objective": "label_smoothing", "q": 0.3}}},
     r"segment_objectives.answer: objective 'label_smoothing' takes no parameter 'q'"),
    ({"segment_objectives": {"answer": {"objective": "lable_smoothing"}}}, "segment_objectives.answer.objective"),
    ({"segment_objectives": {"answer": {"objective": "label_smoothing", "alpha": 2.0}}}, "alpha must be in"),
    ({"segment_objectives": {"answer": {"objective": "focal", "smoothing_prior": "answer"}}}, "needs an objective"),
    ({"segment_objectives": {"answer": {"objective": "ce", "chunk_size": 8}}}, "chunk_size: set once"),
    ({"segment_objectives": "{not json"}, "segment_objectives must be a mapping"),
    ({"trace_objectives": {"wrong": "drop"}}, "trace_objective_column is not"),
    ({"trace_objective_column": "v", "trace_objectives": {"wrong": "skip"}}, "trace_objectives.wrong must be"),
    ({"trace_objective_column": "v", "trace_objectives": {"wrong": {"segment_objectives": {"x": {}}}}},
     "trace_objectives.wrong.segment_objectives: unknown segment 'x'"),
    ({"segment_objectives": LS_ANSWER, "packing": True}, "packing"),
])
def test_recipe_errors_name_the_field(h, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        h.config(tmp_path, **kw)


def test_plan_from_json_text_and_nesting(h, tmp_path):
    cfg = h.config(tmp_path, objective="label_smoothing", alpha=0.1,
                   segment_objectives='{"answer": {"alpha": 0.4}}', trace_objective_column="audit_verdict",
                   trace_objectives={"wrong": {"objective": "gce", "q": 0.5,
                                               "segment_objectives": {"answer": {"objective": "ce"}}},
                                     "unparsable": "drop"})
    plan = cfg.routing_plan()
    (reason, answer), (w_reason, w_answer) = plan.groups
    assert (reason.objective, reason.params) == ("label_smoothing", {"alpha": 0.1})
    assert (answer.objective, answer.params) == ("label_smoothing", {"alpha": 0.4})  # inherits, overrides alpha
    assert (w_reason.objective, w_reason.params, w_answer.objective) == ("gce", {"q": 0.5}, "ce")
    assert plan.trace_groups == {"wrong": 1, "unparsable": None}
    assert h.config(tmp_path).routing_plan() is None


def test_same_objective_on_every_segment_is_unrouted_training_exactly(h, tmp_path):
    data = _rows(h, verdicts=False)
    _, plain, plain_log = h.sgd_step(tmp_path, data, objective="label_smoothing", alpha=0.2)
    _, routed, routed_log = h.sgd_step(tmp_path, data, objective="label_smoothing", alpha=0.2,
                                   segment_objectives={"answer": {"alpha": 0.2}, "reasoning": {}})
    for name in plain:
        assert torch.equal(plain[name], routed[name]), name
    assert routed_log["objective_loss"] == plain_log["objective_loss"]
    n = routed_log["n_tokens/answer"] + routed_log["n_tokens/reasoning"]
    mixed = (routed_log["ce_loss/answer"] * routed_log["n_tokens/answer"]
             + routed_log["ce_loss/reasoning"] * routed_log["n_tokens/reasoning"]) / n
    assert mixed == pytest.approx(plain_log["ce_loss"], rel=1e-6)


def test_trace_drop_is_training_on_the_filtered_dataset(h, tmp_path):
    data = _rows(h)
    kept = data.filter(lambda r: r["audit_verdict"] != "unparsable")
    trainer, dropped, _ = h.sgd_step(tmp_path, data, steps=2, per_device_train_batch_size=2,
                                 trace_objective_column="audit_verdict", trace_objectives={"unparsable": "drop"})
    assert len(trainer.train_dataset) == len(kept) < len(data)
    _, filtered, _ = h.sgd_step(tmp_path, kept, steps=2, per_device_train_batch_size=2)
    for name in filtered:
        assert torch.equal(dropped[name], filtered[name]), name


def test_accumulation_with_mixed_routes(h, tmp_path):
    data = _rows(h, n=4)
    routing = dict(segment_objectives=LS_ANSWER, trace_objective_column="audit_verdict",
                   trace_objectives={"wrong": {"objective": "focal", "gamma": 1.5},
                                     "unparsable": {"objective": "gce", "q": 0.5}})
    _, big, big_log = h.sgd_step(tmp_path, data, per_device_train_batch_size=4, gradient_accumulation_steps=1, **routing)
    _, small, small_log = h.sgd_step(tmp_path, data, per_device_train_batch_size=1, gradient_accumulation_steps=4,
                                 **routing)
    for name in big:
        assert big[name].abs().max() > 0 or "bias" in name, f"{name} did not move"
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
    for key in ("objective_loss", "ce_loss", "ce_loss/answer", "mean_token_accuracy/reasoning", "n_tokens/answer"):
        assert small_log[key] == pytest.approx(big_log[key], rel=1e-5, abs=1e-7), key


def test_answer_prior_covers_only_answer_tokens(h, tmp_path):
    from ls_llm.data.segments import ANSWER

    trainer, _, log = h.sgd_step(tmp_path, _rows(h, verdicts=False), segment_objectives=LS_ANSWER)
    prior = trainer.route_objectives[1].prior
    assert float(prior.sum()) == pytest.approx(1.0, abs=1e-12)
    answer_ids = {i for row in trainer.train_dataset for i, s in zip(row["input_ids"], row["ls_segments"]) if s == ANSWER}
    assert set(prior.nonzero().flatten().tolist()) == answer_ids
    assert trainer.route_objectives[0].name == "ce" and log["n_tokens/answer"] > 0


def test_pretokenized_rows_with_their_own_segments(h, tmp_path):
    """A pre-tokenized dataset may carry ls_segments itself (0 reasoning, 1 answer per token), e.g. the benchmark."""
    from datasets import Dataset

    rows = [dict(r, ls_segments=[int(i >= len(r["input_ids"]) - 3) for i in range(len(r["input_ids"]))])
            for r in h.token_dataset([9, 14, 6, 11], 128)]
    trainer, _, log = h.sgd_step(tmp_path, Dataset.from_list(rows), segment_objectives=LS_ANSWER)
    assert log["n_tokens/answer"] == 4 * 3  # the first token of a row is never a target; the last three are
    assert log["n_tokens/reasoning"] == sum(n - 1 - 3 for n in (9, 14, 6, 11))


def test_an_audit_value_no_row_has_routes_nothing_and_is_not_a_typo(h, tmp_path):
    """`{wrong: drop, missing: drop, unparsable: drop}` on data where no trace is unparsable: the audit's own value
    is not a typo (a sweep's cells see different data), it drops nothing; the others route as listed."""
    from ls_llm.trainers import LsSFTTrainer

    tok = h.tokenizer()
    data = _rows(h)  # verdicts: correct, wrong, unparsable; none "missing"
    trainer = LsSFTTrainer(model=h.tiny_model(len(tok)), processing_class=tok, train_dataset=data,
                           args=h.config(tmp_path, trace_objective_column="audit_verdict",
                                         trace_objectives={"wrong": "drop", "missing": "drop"}))
    assert len(trainer.train_dataset) == sum(v != "wrong" for v in VERDICTS)


def test_trace_value_no_row_has_is_refused_and_eval_set_without_the_column_uses_the_top_level(h, tmp_path):
    """`Wrong` for `wrong` would route nothing, silently: refused, naming the values the column holds. An eval set
    without the column (the loader's noise columns exist in the train split only) gets the top-level objectives."""
    from ls_llm.trainers import LsSFTTrainer

    tok = h.tokenizer()
    with pytest.raises(ValueError, match=r"lists \['Wrong'\] but no training row has audit_verdict equal"):
        LsSFTTrainer(model=h.tiny_model(len(tok)), processing_class=tok, train_dataset=_rows(h),
                     args=h.config(tmp_path, trace_objective_column="audit_verdict",
                                   trace_objectives={"Wrong": "drop"}))
    trainer = LsSFTTrainer(model=h.tiny_model(len(tok)), processing_class=tok, train_dataset=_rows(h),
                           eval_dataset=_rows(h, verdicts=False),
                           args=h.config(tmp_path, trace_objective_column="audit_verdict", eval_strategy="steps",
                                         eval_steps=1, trace_objectives={"wrong": {"objective": "label_smoothing"}}))
    assert set(trainer.eval_dataset["ls_trace"]) == {0} and set(trainer.train_dataset["ls_trace"]) == {0, 1}


def test_a_trace_column_of_any_name_routes_from_a_data_file(h, tmp_path):
    """`trace_objective_column` may name any column of the data (e.g. a teacher loop's `consensus` or `oracle`),
    not only the audit's own: the loader carries it (as text, as trl's dataset holds it), and the trainer drops the
    rows it routes to `drop`. Before, only a fixed list of audit columns survived loading ("not a column")."""
    import json

    from ls_llm.trainers.run import prepare_run

    rows = [json.loads(line) for line in (h.FIXTURES / "arith_train.jsonl").read_text().splitlines()][:12]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps({**r, "id": f"t{i}", "oracle": "wrong" if i % 3 == 0 else "right",
                                        "bad": i % 3 == 0}) + "\n" for i, r in enumerate(rows)))
    for column, drop in (("oracle", "wrong"), ("bad", "True")):
        argv = h.cli_argv(tmp_path / f"out-{column}", f"--trace_objective_column={column}",
                          f"--trace_objectives={json.dumps({drop: 'drop'})}", dataset_name=str(path))
        trainer = prepare_run("train", argv).trainer
        assert sorted(trainer.train_dataset["id"]) == sorted(f"t{i}" for i in range(12) if i % 3), column


def test_routing_by_a_noise_files_corrupted_column_keeps_its_truth_and_a_built_column_is_not_overwritten(h, tmp_path):
    """`ls-llm noise` output carries a boolean `corrupted`: routed by it, the clean rows stay clean (read as text,
    "False" would become True as the dataset's bool); a source's own `source` field does not replace the loader's."""
    import json

    from ls_llm.trainers.run import prepare_run

    rows = [json.loads(line) for line in (h.FIXTURES / "arith_train.jsonl").read_text().splitlines()][:12]
    path = tmp_path / "noisy.jsonl"
    path.write_text("".join(json.dumps({**r, "id": f"t{i}", "corrupted": i % 4 == 0, "source": "mine"}) + "\n"
                            for i, r in enumerate(rows)))
    argv = h.cli_argv(tmp_path / "out", "--trace_objective_column=corrupted",
                      f"--trace_objectives={json.dumps({'True': 'drop'})}", dataset_name=str(path))
    trainer = prepare_run("train", argv).trainer
    assert sorted(trainer.train_dataset["id"]) == sorted(f"t{i}" for i in range(12) if i % 4)
    from ls_llm.data.loading import source_name

    built = source_name(str(path))
    argv = h.cli_argv(tmp_path / "out2", "--trace_objective_column=source",
                      f"--trace_objectives={json.dumps({built: {'objective': 'label_smoothing', 'alpha': 0.1}})}",
                      dataset_name=str(path))
    assert set(prepare_run("train", argv).trainer.train_dataset["source"]) == {built} != {"mine"}


def test_an_absent_value_is_accepted_only_from_the_columns_own_audit_vocabulary():
    """`unparsable` for an audit-status column that happens to hold none: an empty route (warned). `disagrees` for
    that column, `wrong` for a consensus column, `True` for flagged/kept, or `wrong` for a user's own
    correct/incorrect column: the wrong vocabulary, refused naming the values the column holds."""
    from ls_llm.trainers.routing import _check_trace_keys

    class Plan:
        def __init__(self, *values):
            self.trace_groups = dict.fromkeys(values)

    _check_trace_keys(Plan("wrong", "unparsable"), ["correct", "wrong", "missing"], "reference")
    _check_trace_keys(Plan("disagrees"), ["agrees", "no_majority"], "consensus")
    for plan, values in ((Plan("disagrees"), ["correct", "wrong"]), (Plan("wrong"), ["agrees", "disagrees"]),
                         (Plan("True"), ["flagged", "kept"]), (Plan("correct"), ["right", "wrong"]),
                         (Plan("wrong"), ["correct", "incorrect"])):
        with pytest.raises(ValueError, match="no training row has"):
            _check_trace_keys(plan, values, "col")
