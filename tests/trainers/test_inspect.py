"""`ls-llm inspect`: the tokens it shows as trained are the labels != -100 of the batch `ls-llm train` collates for the
same row, the objective it names for each token is the one the trainer builds for that token's route, the rows
it says are dropped are the ones the trainer drops, and the answer span it marks is the boxed answer of the row's
text (read here with a plain regex). The reference is a trainer built by `prepare_run("train", ...)`, the
training command's own path with the recipe's real (tiny) model. Also: the run summary of routed and distillation
recipes, and the loss table saying how many logged steps it shows."""

import json
import re
import types

import pytest
import yaml

BOX = re.compile(r"\\boxed\{([^{}]*)\}")
ROUTED = {
    "objective": "ce", "alpha": None,
    "noise_type": "answer", "noise_rho": 0.5, "noise_seed": 0,
    "trace_objective_column": "corrupted",
    "trace_objectives": {"False": "drop", "True": {"objective": "label_smoothing", "alpha": 0.5,
                                                   "segment_objectives": {"answer": {"objective": "gce", "q": 0.5}}}},
}


def _recipe(h, tmp_path, name="r.yaml", **keys) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"include": str(h.FIXTURES / "tiny.yaml"), **keys}))
    return str(path)


def _argv(h, tmp_path, recipe, out="out", **paths):
    return [recipe, *h.cli_argv(tmp_path / out, **paths)[1:]]


def _reference(h, tmp_path, recipe, **paths):
    from ls_llm.trainers.run import prepare_run

    return prepare_run("train", _argv(h, tmp_path, recipe, out="reference", **paths)).trainer


def _reference_batch(trainer, row_id):
    index = [str(v) for v in trainer.train_dataset["id"]].index(row_id)
    return trainer.train_dataset[index], trainer.data_collator([trainer.train_dataset[index]])


def _printed_trained_counts(text: str) -> dict[str, int]:
    """Row id -> the number of tokens the printed table marks reasoning or answer."""
    counts, row = {}, None
    for line in text.splitlines():
        head = re.match(r"row (\S+): \d+ tokens", line)
        if head:
            row = head.group(1)
            counts[row] = 0
        part = re.match(r"  (reasoning|answer)\s+(\d+) tok", line)
        if part and row is not None:
            counts[row] += int(part.group(2))
    return counts


def test_routed_rows_are_the_trainers(h, tmp_path):
    from ls_llm.cli.inspect import render
    from ls_llm.data.segments import ANSWER, NOT_TRAINED, REASONING
    from ls_llm.trainers.inspection import inspect_recipe
    from ls_llm.trainers.routing import SEGMENT_COLUMN, TRACE_COLUMN, route_ids

    recipe = _recipe(h, tmp_path, **ROUTED)
    inspection = inspect_recipe(_argv(h, tmp_path, recipe), rows=24)
    reference = _reference(h, tmp_path, recipe)
    assert not (tmp_path / "out").exists()  # inspecting writes nothing

    corrupted = [str(v) for v in inspection.trainer.train_dataset["corrupted"]]
    assert set(corrupted) == {"True"} and inspection.trained == len(reference.train_dataset)
    assert inspection.dropped_by_verdict == inspection.given - inspection.trained > 0
    shown = [v for v in inspection.rows if not v.dropped]
    assert len(shown) == inspection.trained and len(inspection.rows) - len(shown) == inspection.dropped_by_verdict
    assert all("corrupted=False" in v.dropped for v in inspection.rows if v.dropped)

    printed = _printed_trained_counts(render(inspection, reference.processing_class))
    whole = 0
    for view in shown:
        row, batch = _reference_batch(reference, view.row_id)
        labels = batch["labels"][0].tolist()
        assert view.labels == labels and view.ids == batch["input_ids"][0].tolist()
        trained = [label != -100 for label in labels]
        assert printed[view.row_id] == sum(trained)
        routes = route_ids(batch[SEGMENT_COLUMN], batch[TRACE_COLUMN])[0].tolist()
        assert view.routes == [r if t else None for r, t in zip(routes, trained, strict=True)]
        for route, segment, t in zip(view.routes, view.segments, trained, strict=True):
            if not t:
                assert segment == NOT_TRAINED
                continue
            objective = reference.route_objectives[route]  # what the trainer trains this token with
            want = ("gce", {"q": 0.5}) if segment == ANSWER else ("label_smoothing", {"alpha": 0.5})
            assert segment in (ANSWER, REASONING) and objective.name == want[0]
            assert all(objective.params[k] == v for k, v in want[1].items())
            assert inspection.route_names[route].startswith(want[0] + "(")
        answer = [i for i, s in zip(view.ids, view.segments, strict=True) if s == ANSWER]
        text = row["completion"][-1]["content"] if isinstance(row["completion"], list) else row["completion"]
        got, box = reference.processing_class.decode(answer).strip(), BOX.findall(text)[-1]
        cut = len(view.ids) >= reference.args.max_length  # max_length may cut the box: its start is marked
        assert got == box if not cut else box.startswith(got)
        whole += not cut and got == box
    assert whole >= 5


def test_plain_weighted_recipe_mask_objective_and_weights(h, tmp_path):
    from ls_llm.data.weights import WEIGHT_COLUMN
    from ls_llm.trainers.inspection import inspect_recipe

    # tiny.yaml: label_smoothing, alpha 0.1, every trained token; every third trace weighted 0.25
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({**row, "score": 0.25 if i % 3 == 0 else 1.0}) + "\n"
                            for i, row in enumerate(h.message_rows(24))))
    recipe = _recipe(h, tmp_path, trace_weight_column="score")
    inspection = inspect_recipe(_argv(h, tmp_path, recipe, dataset_name=str(data)), rows=8)
    reference = _reference(h, tmp_path, recipe, dataset_name=str(data))
    assert inspection.route_names == ["label_smoothing(alpha=0.1, prior=uniform)"]
    assert inspection.given == inspection.trained == len(reference.train_dataset) and len(inspection.rows) == 8
    for view in inspection.rows:
        row, batch = _reference_batch(reference, view.row_id)
        labels = batch["labels"][0].tolist()
        assert view.labels == labels
        assert view.routes == [0 if label != -100 else None for label in labels]
        assert view.weight == row[WEIGHT_COLUMN]
    assert [view.weight for view in inspection.rows] == [0.25 if i % 3 == 0 else 1.0 for i in range(8)]


def test_rows_max_length_drops_and_cuts_are_the_trainers(h, tmp_path):
    from ls_llm.trainers.inspection import inspect_recipe

    recipe = _recipe(h, tmp_path, max_length=44)
    inspection = inspect_recipe(_argv(h, tmp_path, recipe), rows=24)
    reference = _reference(h, tmp_path, recipe)
    kept = {str(v) for v in reference.train_dataset["id"]}
    lengths = {str(i): len(ids) for i, ids in zip(reference.train_dataset["id"], reference.train_dataset["input_ids"],
                                                  strict=True)}
    assert 0 < len(kept) < 24 and inspection.trained == len(kept) and inspection.dropped_by_verdict == 0
    assert {v.row_id for v in inspection.rows if not v.dropped} == kept
    assert all("max_length=44" in v.dropped for v in inspection.rows if v.dropped)
    assert inspection.cut_by_length == sum(n >= 44 for n in lengths.values()) > 0
    assert f"{24 - len(kept)} of 24 train rows dropped" in inspection.length_report


def test_bad_recipe_is_one_line_exit_2(h, tmp_path, capsys):
    from ls_llm.cli import inspect

    recipe = _recipe(h, tmp_path, alhpa=0.3)
    assert inspect.main(_argv(h, tmp_path, recipe)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ls-llm inspect: error:") and "alhpa" in err and "\n" not in err
    assert inspect.main([_recipe(h, tmp_path, "ok.yaml"), "--rows", "0"]) == 2
    assert "--rows" in capsys.readouterr().err


def _parsed(h, tmp_path, recipe, types_):
    from ls_llm.trainers.recipe import parse_recipe

    return parse_recipe(_argv(h, tmp_path, recipe), types_)[2]


def test_summary_names_routes_and_distillation(h, tmp_path):
    from ls_llm.cli.train import _summary
    from ls_llm.trainers.run import distill_arg_types, sft_arg_types

    logs = [{"step": s, "loss": 2.0 - s / 20, "ce_loss": 2.0, "mean_token_accuracy": 0.5} for s in range(1, 16)]
    args = _parsed(h, tmp_path, _recipe(h, tmp_path, **ROUTED), sft_arg_types())
    run = types.SimpleNamespace(trainer=types.SimpleNamespace(args=args, state=types.SimpleNamespace(
        global_step=15, log_history=logs)), output_dir=str(tmp_path / "none"), guard=None)
    text = _summary(run, "train")
    assert text.startswith("\n== ls-llm train: ") and "objective=ce " not in text and "objective=routed" in text
    assert "corrupted=True / answer: gce(q=0.5)" in text and "corrupted=True / reasoning: label_smoothing(alpha=0.5" in text
    assert "corrupted=False: dropped" in text
    assert "(12 of 15 logged steps shown" in text

    distill = _recipe(h, tmp_path, "d.yaml", teacher_model_name_or_path="some/teacher", teacher_smoothing=0.1,
                      distill_divergence="jsd", jsd_beta=0.3, distill_alpha=0.7, distill_temperature=2.0)
    run.trainer.args = _parsed(h, tmp_path, distill, distill_arg_types())
    text = _summary(run, "distill")
    assert text.startswith("\n== ls-llm distill: ")
    assert "teacher_smoothing = 0.1" in text and "jsd(beta=0.3)" in text and "0.7·τ²" in text and "τ = 2" in text
    assert "some/teacher" in text


@pytest.mark.parametrize("logged", [3, 12])
def test_loss_table_shows_every_step_when_it_can(logged):
    from ls_llm.trainers.metrics import loss_curve

    text = loss_curve([{"step": s, "loss": 1.0} for s in range(1, logged + 1)])
    assert "logged steps shown" not in text and len(text.splitlines()) == logged + 1
