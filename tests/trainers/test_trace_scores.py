"""Model-loss scores of traces (`ls-llm audit --score-model`) against a materialized float64 reference: full
logits of a tiny Qwen2 in float64, log-softmax, per-token loss / p(y) / entropy over the completion and its
boxed answer. Batched (padded) scoring equals per-row scoring; a scoring model with another tokenizer is refused."""

import json
import math

import pytest
import torch

from ls_llm.trainers.trace_scores import load_scorer, score_traces


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    path = tmp_path_factory.mktemp("scorer")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_c", Path(__file__).with_name("conftest.py"))
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    model = conf.tiny_model(len(tok), seed=3).to(torch.float64)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path), conf


def _reference(model, tok, row):
    """Per-row float64 means from full logits; the answer span found by plain string search for \\boxed{...}."""
    prompt, completion = row["messages"][:-1], row["messages"][-1:]
    text = tok.apply_chat_template(prompt + completion, tokenize=False)
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    box = text.rfind("\\boxed{") + len("\\boxed{")
    span = (box, text.index("}", box))
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    losses, answer = [], []
    for pos in range(1, len(ids)):
        a, b = offsets[pos]
        if a < len(head):
            continue
        lp = logp[pos - 1]
        nll, p, ent = -lp[ids[pos]].item(), lp[ids[pos]].exp().item(), -(lp.exp() * lp).sum().item()
        losses.append(nll)
        if a < span[1] and b > span[0]:
            answer.append((nll, p, ent))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {"loss_mean": mean(losses), "answer_loss_mean": mean([a[0] for a in answer]),
            "answer_p_mean": mean([a[1] for a in answer]), "answer_entropy_mean": mean([a[2] for a in answer])}


def test_scores_equal_float64_reference_batched(checkpoint):
    path, conf = checkpoint
    rows = conf.message_rows(10)
    rows[3] = {**rows[3], "messages": rows[3]["messages"][:-1] + [{"role": "assistant", "content": "no answer here"}]}
    model, tok = load_scorer(path, device="cpu", dtype="float64")
    assert model.dtype == torch.float64
    batched = score_traces(rows, model, tok, batch_tokens=100_000)  # one padded batch of mixed lengths
    single = score_traces(rows, model, tok, batch_tokens=1)  # one row per batch, no padding
    for i, row in enumerate(rows):
        if i == 3:
            assert batched["answer_loss_mean"][i] is None and batched["loss_mean"][i] > 0
            continue
        ref = _reference(model, tok, row)
        for name, value in ref.items():
            assert batched[name][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (i, name)
            assert single[name][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (i, name)
    assert all(0 < p < 1 for p in batched["answer_p_mean"] if p is not None)
    assert all(0 < e <= math.log(len(tok)) for e in batched["answer_entropy_mean"] if e is not None)


def _write_rows(tmp_path, rows):
    path = tmp_path / "data" / "traces.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("column", ["loss_mean", "answer_loss_mean"])
def test_cli_score_model_and_top_loss_flag(checkpoint, tmp_path, capsys, column):
    from ls_llm.cli.audit import main

    path, conf = checkpoint
    data = _write_rows(tmp_path, conf.message_rows(8))
    code = main([str(data), "--out", str(tmp_path / "out"), "--score-model", path, "--flag-top-loss", "0.25",
                 "--flag-loss-column", column, "--workers", "1", "--no-plot", "--score-dtype", "float64"])
    assert code == 0, capsys.readouterr().err
    traced = [json.loads(x) for x in (tmp_path / "out" / "traces.jsonl").read_text().splitlines()]
    losses = [r[column] for r in traced]
    flagged = [r["loss_flag"] for r in traced]
    assert sum(flagged) == 2 and min(x for x, f in zip(losses, flagged) if f) >= max(
        x for x, f in zip(losses, flagged) if not f)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["detectors"]["ran"] == ["loss"]  # the arithmetic rows carry no reference, one trace each


@pytest.mark.parametrize("via", ["flag", "manifest"])
def test_cli_tokenizer_mismatch_refused(checkpoint, tmp_path, capsys, via):
    from ls_llm.cli.audit import main

    path, conf = checkpoint
    other = tmp_path / "other_tok"
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(["some other text 123"], trainers.BpeTrainer(vocab_size=300))
    PreTrainedTokenizerFast(tokenizer_object=raw).save_pretrained(other)
    data = _write_rows(tmp_path, conf.message_rows(4))
    argv = [str(data), "--out", str(tmp_path / "out"), "--score-model", path]
    if via == "flag":
        argv += ["--data-tokenizer", str(other)]
    else:  # the manifest `ls-llm generate` writes beside its traces names the teacher
        (data.parent / "manifest.json").write_text(json.dumps({"model": str(other)}))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "another tokenizer" in err and path in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_scores_on_cuda_equal_cpu(checkpoint):
    path, conf = checkpoint
    rows = conf.message_rows(6)
    cpu = score_traces(rows, *load_scorer(path, device="cpu", dtype="float64"))
    gpu = score_traces(rows, *load_scorer(path, device="cuda", dtype="float64"))
    low = score_traces(rows, *load_scorer(path, device="cuda", dtype="auto"))  # bfloat16, stats in float32
    for name, values in cpu.items():
        assert gpu[name] == pytest.approx(values, rel=1e-9), name
        assert low[name] == pytest.approx(values, rel=5e-2), name
