"""Sweep machinery on small sweep files of its own: paired-t intervals and the gain averaged over the noisy rates,
per-noise-type rates, variant scope and `${noise_rho}`, box noise, tracking of accuracy and memorisation (against
hand-computed answers), baselines and teachers. The shipped study sweeps are only parsed (test_config_report)."""

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from ls_llm.data.noise import inject_noise
from ls_llm.sweep import SweepError, load_sweep
from ls_llm.sweep.report import curve_table, curves_csv, endpoint_table
from ls_llm.sweep.runner import cell_argv
from ls_llm.sweep.stats import endpoint_diffs, holm, holm_family, paired_ci, paired_t_pvalue, t975, verdict
from ls_llm.sweep.tracking import corrupted_rows, matches, measure

REPO = Path(__file__).resolve().parents[2]
BASE = {
    "name": "t", "recipe": str(REPO / "recipes/demo/sweep_base.yaml"), "output_dir": "out",
    "noise_type": ["answer", "token"], "noise_rho": {"answer": [0.0, 0.2, 0.4], "token": [0.05]}, "seeds": [0, 1],
    "variants": [
        {"name": "ce", "objective": "ce"},
        {"name": "fc", "objective": "ce", "noise_types": ["answer"], "noise_rho": [0.2, 0.4],
         "segment_objectives": {"answer": {"objective": "forward_correction", "noise_rate": "${noise_rho}",
                                           "smoothing_prior": "answer"}}},
        {"name": "bc", "objective": "backward_correction", "noise_rate": "${noise_rho}", "noise_types": ["token"]},
    ],
}


def _write(tmp_path, **changes) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


# --- statistics -------------------------------------------------------------------------------------------------

def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t975(0)


def test_paired_ci_matches_a_paired_t_test():
    stats = pytest.importorskip("scipy.stats")
    a, b = [0.61, 0.55, 0.70, 0.64, 0.58], [0.52, 0.57, 0.60, 0.59, 0.50]
    mean, half = paired_ci([x - y for x, y in zip(a, b, strict=True)])
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert mean - half == pytest.approx(ci.low, abs=1e-4) and mean + half == pytest.approx(ci.high, abs=1e-4)
    assert paired_ci([0.3]) == (0.3, None)
    assert verdict(0.1, 0.05) == "helps" and verdict(-0.1, 0.05) == "hurts" and verdict(0.1, 0.2) == "not detected"


def test_paired_t_pvalue_matches_scipy_and_holm_steps_down():
    stats = pytest.importorskip("scipy.stats")
    a, b = [0.61, 0.55, 0.70, 0.64, 0.58, 0.49], [0.52, 0.57, 0.60, 0.59, 0.50, 0.51]
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    assert paired_t_pvalue(diffs) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert paired_t_pvalue([0.1, 0.1]) == 0.0 and paired_t_pvalue([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_pvalue([0.1])
    # m = 4: 0.01 <= 0.05/4 and 0.015 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops, so 0.04 is not either
    # (unadjusted, 0.04 < 0.05 would be; Bonferroni would reject only the first).
    assert holm({"a": 0.03, "b": 0.01, "c": 0.04, "d": 0.015}) == {"b": True, "d": True, "a": False, "c": False}
    assert holm({"a": 0.02, "b": 0.06}) == {"a": True, "b": False}
    assert holm({"a": 0.03, "b": 0.04}) == {"a": False, "b": False}  # 0.03 > 0.05/2: nothing is rejected


def test_holm_family_reads_verdicts_only_for_a_whole_family():
    pytest.importorskip("scipy")
    big, null = [0.30, 0.31, 0.29, 0.32, 0.30, 0.31], [0.02, -0.02, 0.01, -0.01, 0.03, -0.03]
    got = holm_family({"up": big, "down": [-d for d in big], "null": null})
    assert [got[k][1] for k in ("up", "down", "null")] == ["helps", "hurts", "not detected"]
    partial = holm_family({"up": big, "short": [0.1]})
    assert partial == {"up": (pytest.approx(paired_t_pvalue(big)), "not read (family incomplete)"),
                       "short": (None, "too few seeds")}


def _cell(variant, noise_type, rate, seed, test):
    return {"cell_id": f"train-{variant}-{noise_type}{rate:g}-s{seed}", "kind": "train", "variant": variant,
            "noise_type": noise_type, "noise_rho": rate, "seed": seed, "test_acc": test, "val_acc": test}


def test_endpoint_averages_noisy_rates_per_seed_then_over_seeds():
    rows = [_cell("ce", "answer", r, s, 0.5) for r in (0.0, 0.2, 0.4) for s in (0, 1, 2)]
    gains = {(0.0, 0): 0.9, (0.2, 0): 0.10, (0.4, 0): 0.30, (0.2, 1): 0.0, (0.4, 1): 0.10, (0.2, 2): 0.2}
    rows += [_cell("ls", "answer", r, s, 0.5 + g) for (r, s), g in gains.items()]  # seed 2 lacks rate 0.4
    refs = {"ce": "ce", "ls": "ce"}
    expected = {("ls", "answer"): (0.0, 0.2, 0.4), ("ce", "answer"): (0.0, 0.2, 0.4), ("ls", "token"): (0.05,)}
    diffs = endpoint_diffs(rows, refs, expected)
    # rate 0 is not a noisy rate; seed 2 is left out (one of its noisy rates did not run)
    assert diffs == {("ls", "answer"): pytest.approx({0: 0.20, 1: 0.05})}
    table = endpoint_table(rows, refs, expected, ("answer", "token"), n_seeds=3).splitlines()
    mean, half = 0.125, t975(1) * statistics.stdev([0.20, 0.05]) / math.sqrt(2)
    assert table[0] == "| variant (− reference) | `answer` noise | `token` noise |"
    assert table[2] == (f"| ls (− ce) | {100 * mean:+.1f} [{100 * (mean - half):+.1f}, {100 * (mean + half):+.1f}] "
                        "(n=2) not detected | — |")
    # a rate the sweep runs but no seed finished: no entry, not the gain at the other rate alone
    late = [r for r in rows if not (r["variant"] == "ls" and r["noise_rho"] == 0.4)]
    assert endpoint_diffs(late, refs, expected) == {}
    # a variant compared with its own control (compare_with)
    rows += [_cell("more", "answer", r, s, 0.6) for r in (0.2, 0.4) for s in (0, 1)]
    rows += [_cell("nls", "answer", r, s, 0.7) for r in (0.2, 0.4) for s in (0, 1)]
    got = endpoint_diffs(rows, {**refs, "more": "ce", "nls": "more"},
                         {**expected, ("more", "answer"): (0.2, 0.4), ("nls", "answer"): (0.2, 0.4)})
    assert got[("nls", "answer")] == pytest.approx({0: 0.1, 1: 0.1})


def test_curve_table_and_csv():
    rows = [{**_cell("ce", "answer", 0.4, s, 0.5),
             "curve": [{"step": 500, "val_acc": 0.2 + s / 10, "mem_injected": 0.1, "mem_true": 0.3 + s / 10,
                        "mem_other": 0.6 - s / 10}, {"step": 1000, "val_acc": 0.6}]} for s in (0, 1)]
    lines = curve_table(rows, 0.4, "val_acc", n_seeds=2).splitlines()
    assert lines[0] == "| variant | step 500 | step 1000 |"
    # 0.2 and 0.3: mean 25, sd 7.07, half-width 12.706 * 7.07 / sqrt(2) = 63.5
    assert lines[2] == "| ce | 25.0 [-38.5, 88.5] | 60.0 [60.0, 60.0] |"
    assert curve_table(rows, 0.4, "mem_injected", n_seeds=2).splitlines()[2] == "| ce | 10.0 [10.0, 10.0] |"
    assert curve_table(rows, 0.4, "mem_true", n_seeds=3).splitlines()[2] == "| ce | 35.0 [-28.5, 98.5] (n=2) |"
    assert curve_table(rows, 0.2, "val_acc", n_seeds=2) == ""
    csv_lines = curves_csv(rows).splitlines()
    assert len(csv_lines) == 1 + 4 and csv_lines[1].startswith("train-ce-answer0.4-s0,ce,answer,0.4,0,500,0.2,0.1,")


# --- sweep files ----------------------------------------------------------------------------------------------

def test_rates_per_noise_type_variant_scope_and_noise_rate_placeholder(tmp_path):
    sweep = load_sweep(_write(tmp_path, track={"every": 100}))
    ids = {c.cell_id for c in sweep.train_cells()}
    # ce on every rate of every type; fc only at answer 0.2 / 0.4; bc only on token
    assert len(ids) == (3 + 1 + 2 + 1) * 2
    assert "train-fc-answer0-s0" not in ids and "train-bc-answer0.2-s0" not in ids and "train-bc-token0.05-s1" in ids
    assert sweep.noise_rho == (0.0, 0.05, 0.2, 0.4) and sweep.rates_of("token") == (0.05,)
    fc = next(c for c in sweep.train_cells() if c.cell_id == "train-fc-answer0.4-s1")
    argv = cell_argv(sweep, fc, {"train": Path("d.jsonl")}, model_dir=Path("cells/x/model"))
    routed = json.loads(next(a for a in argv if a.startswith("--segment_objectives="))[len("--segment_objectives="):])
    assert routed == {"answer": {"objective": "forward_correction", "noise_rate": 0.4, "smoothing_prior": "answer"}}
    assert "--noise_manifest=cells/x/noise_manifest.jsonl" in argv  # tracking needs the corrupted rows
    bc = next(c for c in sweep.train_cells() if c.variant == "bc")
    assert "--noise_rate=0.05" in cell_argv(sweep, bc, {"train": Path("d.jsonl")}, model_dir=Path("m"))
    assert not any(a.startswith("--noise_manifest") for a in cell_argv(load_sweep(_write(tmp_path)), bc,
                                                                        {"train": Path("d.jsonl")}, model_dir=Path("m")))


@pytest.mark.parametrize(("changes", "message"), [
    ({"noise_rho": {"answer": [0.2]}}, "one entry per noise_type"),
    ({"noise_rho": {"answer": [0.2], "token": [1.5]}}, r"noise_rho.token: every rate must be a number in \[0, 1\]"),
    ({"variants": [{"name": "ce", "objective": "ce", "noise_types": ["nope"]}]}, r"variants\[0\].noise_types must be one"),
    ({"variants": [{"name": "ce", "objective": "ce", "noise_types": ["box"]}]}, r"variants\[0\].noise_types: 'box' is not"),
    ({"variants": [{"name": "ce", "objective": "ce", "noise_rho": [0.3]}]}, r"variants\[0\] \('ce'\) runs nowhere"),
    ({"variants": [{"name": "ce", "objective": "ce", "noise_rho": [0.2]},
                   {"name": "m", "objective": "ce", "init_from": "ce"}]}, r"variants\[1\].init_from: 'ce' does not run at"),
    ({"variants": [{"name": "ce", "objective": "ce", "compare_with": "x"}]}, r"variants\[0\].compare_with must name"),
    ({"variants": [{"name": "ce", "objective": "ce", "noise_rho": []}]}, r"variants\[0\].noise_rho must be"),
    ({"track": {"every": 0}}, "track: every must be >= 1"),
    ({"track": {"evry": 5}}, "track: unknown key 'evry'"),
])
def test_bad_sweep_keys_are_named(tmp_path, changes, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(_write(tmp_path, **changes))


# --- box noise ------------------------------------------------------------------------------------------------

def test_box_noise_changes_the_label_only():
    solutions = ["<think>\n3 + 4 = 7\n7 - 2 = 5\n</think>\nThe answer is \\boxed{5}.",
                 "<think>\n8 - 1 = 7\n</think>\nThe answer is \\boxed{7}.",
                 "<think>\n2 + 2 = 4\n</think>\nno box here"]
    rows = [{"id": str(i), "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": s}]}
            for i, s in enumerate(solutions)]
    noisy, manifest, summary = inject_noise(rows, noise_type="box", rate=1.0, seed=0)
    assert noisy[0]["messages"][1]["content"] == solutions[0].replace("\\boxed{5}", "\\boxed{7}")
    assert noisy[1]["messages"][1]["content"] == solutions[1].replace("\\boxed{7}", "\\boxed{5}")
    assert (manifest[0]["old_answer"], manifest[0]["new_answer"]) == ("5", "7")
    assert not noisy[2]["corrupted"] and summary["selected_but_not_applicable"] == 1
    answer_noise, _, _ = inject_noise(rows, noise_type="answer", rate=1.0, seed=0)
    assert "7 - 2 = 7" in answer_noise[0]["messages"][1]["content"]  # the other kind rewrites the reasoning too


# --- tracking -------------------------------------------------------------------------------------------------

def test_answers_match_as_the_evaluation_scores_them():
    # The project's one equivalence (ls_llm.answers, math-verify), not integers only.
    preds = ["5", " 5", "5.0", "\\frac{1}{2}", "1/2", "x+1", "1,000", None, "6", "x+1"]
    golds = ["5", "5", "5", "0.5", "0.5", "1+x", "1000", "5", "5", "x+2"]
    assert matches(preds, golds) == [True] * 7 + [False] * 3


class _ScriptedModel(torch.nn.Module):
    """generate() appends, to each prompt, the tokens of the completion scripted for its problem."""

    def __init__(self, tokenizer, completions: dict[str, str]):
        super().__init__()
        self.tokenizer, self.completions = tokenizer, completions
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.calls = []

    @property
    def device(self):
        return torch.device("cpu")

    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id):
        assert not do_sample and not self.training
        assert bool(attention_mask[:, -1].all())  # padded on the left: every prompt ends where generation starts
        prompts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=True)
        outs = []
        for prompt in prompts:
            problem = next(p for p in self.completions if p in prompt)
            ids = self.tokenizer(self.completions[problem], add_special_tokens=False)["input_ids"][:max_new_tokens]
            outs.append(ids)
        width = max(len(o) for o in outs)
        tail = torch.full((len(outs), width), pad_token_id, dtype=torch.long)
        for i, o in enumerate(outs):
            tail[i, : len(o)] = torch.tensor(o)
        self.calls.append(len(prompts))
        return torch.cat([input_ids, tail], dim=1)


def test_measure_counts_injected_and_true_answers():
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    box = "<think>\n1 + 1 = 2\n</think>\nThe answer is \\boxed{{{}}}."
    train = [{"id": f"t{i}", "problem": f"Tom has {i} pens. How many pens does Tom have now?"} for i in range(5)]
    manifest = [{"id": "t0", "corrupted": True, "old_answer": "3", "new_answer": "7"},
                {"id": "t1", "corrupted": False, "old_answer": None, "new_answer": None},
                {"id": "t2", "corrupted": True, "old_answer": "4", "new_answer": "9"},
                {"id": "t3", "corrupted": True, "old_answer": "12", "new_answer": "1"},
                {"id": "t4", "corrupted": True, "old_answer": "2", "new_answer": "8"}]
    corrupted = corrupted_rows(train, manifest)
    assert [r["true"] for r in corrupted] == ["3", "4", "12", "2"]
    validation = [{"problem": "Ana has 2 coins. How many coins does Ana have now?", "answer": "2"},
                  {"problem": "Ben has 6 coins. How many coins does Ben have now?", "answer": "6"}]
    script = {train[0]["problem"]: box.format(7), train[2]["problem"]: box.format(4),
              train[3]["problem"]: box.format(1), train[4]["problem"]: "<think>\n no answer",
              validation[0]["problem"]: box.format(2), validation[1]["problem"]: box.format(5)}
    model = _ScriptedModel(tokenizer, script).train()
    side = tokenizer.padding_side
    point = measure(model, tokenizer, validation, corrupted, max_new_tokens=40, batch_size=3)
    assert point == {"val_acc": 0.5, "n_val": 2, "mem_injected": 0.5, "mem_true": 0.25, "mem_other": 0.25,
                     "n_corrupted": 4}
    assert model.training and model.calls == [2, 3, 1]  # train mode restored; batches of at most 3
    assert tokenizer.padding_side == side  # generation pads on the left, and the tokenizer is given back as it was


# --- baselines and teachers: init_from, audit, students, matching -----------------------------------------------

def test_init_from_and_audit_variants(tmp_path):
    variants = [{"name": "ce", "objective": "ce"},
                {"name": "more", "objective": "ce", "init_from": "ce", "max_steps": 5},
                {"name": "drop", "objective": "ce", "audit": True, "trace_objective_column": "audit_status",
                 "trace_objectives": {"wrong": "drop"}}]
    sweep = load_sweep(_write(tmp_path, noise_type="answer", noise_rho=[0.4], variants=variants, track={"every": 5}))
    more = next(c for c in sweep.train_cells() if c.variant == "more" and c.seed == 1)
    assert more.source == "train-ce-answer0.4-s1" and more.needs == ("train-ce-answer0.4-s1",)
    argv = cell_argv(sweep, more, {"train": Path("d.jsonl")}, model_dir=Path("out/cells") / more.cell_id / "model")
    assert "--model_name_or_path=out/cells/train-ce-answer0.4-s1/model" in argv
    assert "--model_init_from_config=false" in argv and "--max_steps=5" in argv
    drop = next(c for c in sweep.train_cells() if c.variant == "drop")
    argv = cell_argv(sweep, drop, {"train": Path("d.jsonl")}, model_dir=Path("c") / "model")
    # trained on the audited rows (noise already in them), not injected a second time
    assert "--dataset_name=c/train_audited.jsonl" in argv and "--noise_rho=0.0" in argv
    assert "--dataset_format=messages" in argv and not any(a.startswith("--noise_manifest") for a in argv)
    assert "--trace_objectives={\"wrong\": \"drop\"}" in argv and not any("audit=" in a for a in argv)


@pytest.mark.parametrize(("variants", "message"), [
    ([{"name": "a", "objective": "ce", "init_from": "b"}, {"name": "b", "objective": "ce"}],
     r"variants\[0\].init_from must name an earlier variant"),
    ([{"name": "a", "objective": "ce"}, {"name": "b", "objective": "ce", "init_from": "a"},
      {"name": "c", "objective": "ce", "init_from": "b"}], r"variants\[2\].init_from must name an earlier variant"),
    ([{"name": "a", "objective": "ce", "audit": "yes"}], r"variants\[0\].audit must be true or false"),
])
def test_bad_init_from_and_audit_are_named(tmp_path, variants, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(_write(tmp_path, noise_type="answer", noise_rho=[0.4], variants=variants))


def _distill_sweep(tmp_path, **distill):
    recipe = tmp_path / "d.yaml"
    recipe.write_text("objective: ce\n")
    variants = [{"name": "ce", "objective": "ce"}, {"name": "ls", "objective": "label_smoothing", "alpha": 0.3}]
    spec = {"recipe": str(recipe), "teachers": ["ce", "ls"], "noise_rho": 0.4, **distill}
    return _write(tmp_path, noise_type="answer", noise_rho=[0.4], variants=variants, distill=spec,
                  track={"every": 5, "keep_models": True})


def test_students_and_matched_teachers_share_a_shard(tmp_path):
    from ls_llm.sweep.shards import shard_cells

    students = [{"name": "a", "teacher": "ce"}, {"name": "b", "teacher": "ls", "teacher_smoothing": 0.2},
                {"name": "c", "teacher": "ls", "cache_top_k": 4}]
    sweep = load_sweep(_distill_sweep(tmp_path, students=students, match_teachers=True))
    cells = {c.cell_id: c for c in sweep.distill_cells()}
    b = cells["distill-b-answer0.4-s0"]
    assert b.teacher == "train-ls-answer0.4-s0" and b.also_needs == ("train-ce-answer0.4-s0",)
    argv = cell_argv(sweep, b, {"train": Path("d.jsonl")}, model_dir=Path("c/model"), teacher_dir=Path("T"))
    assert "--teacher_smoothing=0.2" in argv and "--teacher_model_name_or_path=T" in argv
    c = cells["distill-c-answer0.4-s0"]
    argv = cell_argv(sweep, c, {"train": Path("d.jsonl")}, model_dir=Path("c/model"), teacher_dir=Path("T"))
    assert "--teacher_cache_dir=c/teacher_cache" in argv and "--distill_top_k=4" in argv
    assert not any(a.startswith(("--name=", "--teacher=", "--cache_top_k")) for a in argv)
    for shards in (2, 3):
        for i in range(shards):
            ids = [x.cell_id for x in shard_cells(sweep, i, shards)]
            for cell_id in ids:  # everything a cell needs is on its shard, earlier
                for needed in {**cells, **{x.cell_id: x for x in sweep.train_cells()}}[cell_id].needs:
                    assert needed in ids and ids.index(needed) < ids.index(cell_id)


@pytest.mark.parametrize(("distill", "track", "message"), [
    ({"match_teachers": True}, {"every": 5}, "match_teachers needs two or more teachers and `track: {keep_models"),
    ({"students": [{"name": "a", "teacher": "nope"}]}, None, r"distill.students\[0\] must be a mapping"),
    ({"students": [{"name": "a", "teacher": "ce"}, {"name": "a", "teacher": "ls"}]}, None, "distinct names"),
    ({"students": [{"name": "a", "teacher": "ce", "cache_top_k": 0}]}, None, r"students\[0\].cache_top_k must be"),
])
def test_bad_distill_students_are_named(tmp_path, distill, track, message):
    path = _distill_sweep(tmp_path, **distill)
    raw = yaml.safe_load(path.read_text())
    raw["track"] = track
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SweepError, match=message):
        load_sweep(path)


def test_matching_rule():
    from ls_llm.sweep.matching import match_teachers

    ce = [{"step": 250, "val_acc": 0.2}, {"step": 500, "val_acc": 0.5}, {"step": 750, "val_acc": 0.6}]
    ls = [{"step": 250, "val_acc": 0.3}, {"step": 500, "val_acc": 0.55}, {"step": 750, "val_acc": 0.65},
          {"step": 1000, "val_acc": 0.8}]
    # ce ends lower (0.6): used as trained; ls is replaced by its point closest to 0.6: 0.55 and 0.65 tie, the
    # later step wins
    assert match_teachers({"ce": ce, "ls": ls}) == {"ce": {"step": 750, "val_acc": 0.6, "final": True},
                                                    "ls": {"step": 750, "val_acc": 0.65, "final": False}}
    # equal finals: the first listed is the one used as trained; the other is matched to it
    a = [{"step": 1, "val_acc": 0.5}, {"step": 2, "val_acc": 0.4}]
    b = [{"step": 1, "val_acc": 0.45}, {"step": 2, "val_acc": 0.35}, {"step": 3, "val_acc": 0.4}]
    assert match_teachers({"a": a, "b": b}) == {"a": {"step": 2, "val_acc": 0.4, "final": True},
                                                "b": {"step": 3, "val_acc": 0.4, "final": True}}
    assert match_teachers({"b": b, "a": a}) == {"b": {"step": 3, "val_acc": 0.4, "final": True},
                                                "a": {"step": 2, "val_acc": 0.4, "final": True}}
    c = [{"step": 1, "val_acc": 0.4}, {"step": 2, "val_acc": 0.9}, {"step": 3, "val_acc": 0.4}]
    d = [{"step": 1, "val_acc": 0.9}, {"step": 2, "val_acc": 0.4}, {"step": 3, "val_acc": 0.4}]
    # c is low (0.4 final, listed first on the tie with d's 0.4): d's points at 0.4 tie, the later step wins
    assert match_teachers({"c": c, "d": d})["d"] == {"step": 3, "val_acc": 0.4, "final": True}
    d2 = [{"step": 1, "val_acc": 0.4}, {"step": 2, "val_acc": 0.4}, {"step": 3, "val_acc": 0.95}]
    assert match_teachers({"c": c, "d": d2})["d"] == {"step": 2, "val_acc": 0.4, "final": False}
    with pytest.raises(ValueError, match="tracked validation accuracy"):
        match_teachers({"a": a, "b": []})
