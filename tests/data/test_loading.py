"""Loading: each format to trl's conversational prompt/completion, field maps, mixtures, validation split, missing
fields."""

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from ls_llm.data.args import LsDataArguments
from ls_llm.data.formats import FORMATS, RenderOptions
from ls_llm.data.loading import load_traces

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
NO_INSTRUCTION = {"dataset_answer_instruction": ""}


def _conv(row):
    """The whole conversation of a loaded row (trl's prompt/completion form)."""
    return row["prompt"] + row["completion"]


def _load(name: str, **kwargs):
    args = LsDataArguments(dataset_name=str(FIXTURES / name), **{**NO_INSTRUCTION, **kwargs})
    return load_traces(args)


def _raw(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def test_math_problem_solution_gold_is_last_boxed():
    train = _load("math.jsonl")["train"]
    raw = _raw("math.jsonl")
    assert train["answer"] == [
        "0",
        "8+4i",
        "990",
        "5",
        "\\left( \\frac{4}{13}, \\frac{1}{13}, \\frac{8}{13} \\right)",
        "6",
    ]
    row = train[0]
    assert _conv(row) == [
        {"role": "user", "content": raw[0]["problem"]},
        {"role": "assistant", "content": raw[0]["solution"]},
    ]
    assert (row["id"], row["subject"], row["level"], row["source"]) == (
        "train/algebra/0.json",
        "Algebra",
        "Level 5",
        "data/math",
    )


def test_gsm8k_question_answer_strips_annotations():
    train = _load("gsm8k.jsonl")["train"]
    assert train["answer"] == ["72", "10", "5", "42", "624", "35"]
    completion = _conv(train[0])[1]["content"]
    assert completion == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The final answer is $\\boxed{72}$."
    )
    assert "<<" not in "".join(m[1]["content"] for m in [_conv(r) for r in train])


def test_r1_rendering_of_solutions_and_instruction_and_system_prompt():
    args = {"dataset_rendering": "r1", "dataset_system_prompt": "You are careful."}
    row = _load("gsm8k.jsonl", **args, dataset_answer_instruction="Box it.")["train"][1]
    system, user, assistant = _conv(row)
    assert system == {"role": "system", "content": "You are careful."}
    assert user["content"].endswith("How much did she earn?\n\nBox it.")
    assert assistant["content"] == (
        "<think>\nWeng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n</think>\n\n"
        "The final answer is $\\boxed{10}$."
    )


def test_r1_traces_kept_verbatim_with_gold_from_answer():
    train = _load("r1.jsonl")["train"]
    raw = _raw("r1.jsonl")
    assert [_conv(r) for r in train][1][1]["content"] == raw[1]["generation"]
    assert train["answer"] == [r["answer"] for r in raw]
    assert train["id"] == [r["id"] for r in raw]


def test_messages_and_prompt_completion():
    messages = _load("messages.jsonl", dataset_system_prompt="Added.")["train"]
    assert _conv(messages[0])[0] == {"role": "system", "content": "Be terse."}  # own system kept
    assert _conv(messages[1])[0] == {"role": "system", "content": "Added."}
    pc = _load("prompt_completion.jsonl")["train"]
    assert _conv(pc[0]) == [
        {"role": "user", "content": "What is 4-1?"},
        {"role": "assistant", "content": "4-1=3. \\boxed{3}"},
    ]
    listed = FORMATS["prompt_completion"](
        {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]},
        RenderOptions(),
    )
    assert listed.messages == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_field_map_and_missing_rows_skip_with_warning(caplog):
    field_map = {"uid": "id", "task": "problem", "worked": "solution"}
    with caplog.at_level(logging.WARNING):
        train = _load("renamed_with_gaps.jsonl", dataset_field_map=json.dumps(field_map))["train"]
    assert train["id"] == ["q-0", "q-3"] and train["answer"] == ["10", "3"]
    assert (
        "2 rows" in caplog.text and "q-1 (no problem)" in caplog.text and "q-2 (no solution)" in caplog.text
    )
    with pytest.raises(ValueError, match="2 rows.*q-1"):
        _load("renamed_with_gaps.jsonl", dataset_field_map=field_map, dataset_on_missing="error")


def test_every_row_missing_fields_is_a_clear_error_even_when_skipping():
    # Without the field map no row has `problem`: skipping them all must not hand datasets an empty table.
    with pytest.raises(ValueError, match="every row.*misses a required field.*dataset_field_map"):
        _load("renamed_with_gaps.jsonl", dataset_format="problem_solution", dataset_on_missing="skip")


def test_mixture_weights_and_seeded_validation_split():
    mixture = [
        {"source": str(FIXTURES / "math.jsonl"), "weight": 2},
        {"source": str(FIXTURES / "gsm8k.jsonl"), "weight": 1},
    ]
    out = load_traces(LsDataArguments(dataset_mixture=mixture, dataset_validation_size=3, dataset_seed=1))
    rows = list(out["train"]) + list(out["validation"])
    assert len(out["validation"]) == 3 and len(rows) == 9  # 6 MATH + 3 GSM8K: 2:1 without oversampling
    assert sorted(r["source"] for r in rows).count("data/gsm8k") == 3
    again = load_traces(LsDataArguments(dataset_mixture=mixture, dataset_validation_size=3, dataset_seed=1))
    assert again["validation"]["id"] == out["validation"]["id"]
    assert not set(again["train"]["id"]) & set(again["validation"]["id"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dataset_format": "csv"}, "dataset_format"),
        ({"dataset_on_missing": "ignore"}, "dataset_on_missing"),
        ({"noise_rho": 1.5}, "noise_rho"),
        ({"noise_type": "gaussian"}, "noise_type"),
        ({"dataset_validation_size": 2.5}, "dataset_validation_size"),
        ({"dataset_mixture": [{"source": "a", "weight": 1}, {"source": "b"}]}, "dataset_mixture"),
        ({"dataset_mixture": [{"path": "a"}]}, "dataset_mixture"),
        ({"dataset_field_map": "{not json"}, "dataset_field_map"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LsDataArguments(dataset_name="x", **kwargs)


def test_auto_format_failure_names_columns(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text('{"foo": 1, "bar": 2}\n')
    with pytest.raises(ValueError, match="dataset_format='auto'.*bar"):
        load_traces(LsDataArguments(dataset_name=str(path)))


def test_no_field_clashes_with_trl_configs_and_recipe_parses(tmp_path):
    from trl import ModelConfig, SFTConfig, TrlParser

    ours = {f.name for f in dataclasses.fields(LsDataArguments)}
    theirs = {f.name for cls in (SFTConfig, ModelConfig) for f in dataclasses.fields(cls)}
    assert not ours & theirs
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model_name_or_path: tiny\noutput_dir: out\nlearning_rate: 1.0e-4\nbf16: false\nuse_cpu: true\n"
        f"dataset_name: {FIXTURES / 'gsm8k.jsonl'}\ndataset_rendering: r1\nnoise_type: answer\nnoise_rho: 0.2\n"
        "dataset_field_map: {question: question}\n"
        "dataset_mixture:\n  - {source: a.jsonl, weight: 1}\n  - {source: b.jsonl, weight: 3}\n"
    )
    data, sft, model = TrlParser((LsDataArguments, SFTConfig, ModelConfig)).parse_args_and_config(
        ["--config", str(recipe)]
    )
    assert data.noise_rho == 0.2 and data.dataset_rendering == "r1" and sft.learning_rate == 1e-4
    assert [e.weight for e in data.entries()] == [1.0, 3.0] and data.field_map == {"question": "question"}


def test_missing_local_file_is_reported_not_sent_to_the_hub(tmp_path):
    with pytest.raises(ValueError, match="matches no files"):
        load_traces(LsDataArguments(dataset_name=str(tmp_path / "nope.jsonl")))


def test_audit_status_is_carried_through(tmp_path):
    """`ls-llm audit` writes audit_status; loading its output keeps the column, so recipes can route by it."""
    rows = [dict(r, audit_status=s) for r, s in zip(_raw("messages.jsonl"), ["correct", "wrong", "unparsable"])]
    path = tmp_path / "audited.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_traces(LsDataArguments(dataset_name=str(path), **NO_INSTRUCTION))["train"]
    assert loaded["audit_status"] == ["correct", "wrong", "unparsable"][: len(loaded)]
    assert "audit_status" not in _load("messages.jsonl")["train"].column_names


def test_carried_column_on_some_rows_only_is_kept_for_all(tmp_path):
    """A mixture of an audited and an unaudited source: audit_status exists whichever row comes first."""
    row = {"problem": "What is 1+1?", "solution": "It is $\\boxed{2}$."}
    for rows in ([row, {**row, "audit_status": "wrong"}], [{**row, "audit_status": "wrong"}, row]):
        path = tmp_path / "mixed.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        train = _load(str(path), dataset_format="problem_solution")["train"]
        assert sorted(train["audit_status"], key=str) == sorted([None, "wrong"], key=str)
