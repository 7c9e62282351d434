"""Accuracy and memorisation of the injected answers, measured during training.

Every `every` optimizer steps (and at the end) the model answers, greedily, two sets of problems:

- `validation`: clean validation problems; `val_acc` is the share whose final boxed answer equals the gold one.
- `corrupted`: the training rows whose answer the noise injector replaced (its manifest names them, with the true
  answer `old_answer` and the injected one `new_answer`). `mem_injected` is the share of them the model answers
  with the injected answer (it has memorised the wrong label), `mem_true` the share it answers correctly despite
  the label it was trained on, `mem_other` the rest (no box, or another answer).
- teacher-forced, on the same rows when the trace each was trained on is known: `tf_gap`, the mean over rows of
  log p(trained, corrupted completion) - log p(clean completion) given the prompt (nats, summed over the
  completion's tokens), and `tf_injected`, the share of rows where the corrupted completion is the likelier. Under
  `box` noise the two completions differ only from the boxed answer on, so this is the answer span's log-probability
  gap; under `perturb` the corrupted trace's reasoning leads to its answer, and the whole completion is compared
  (the answer span alone, given its own reasoning, is likely whatever the model believes).

Answers are compared with the project's one equivalence, as the evaluation scores them (`ls_llm.answers`:
math-verify, so `0.5`, `1/2` and `\\frac{1}{2}` are one answer). The prompt is the chat-rendered problem, as in
training and in `ls_llm.evaluation`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainerCallback

from ls_llm.answers import extract_final_answer, verify_batch
from ls_llm.files import read_jsonl
from ls_llm.sweep.memorisation import best_point


def matches(preds: list[str | None], golds: list[str]) -> list[bool]:
    """Whether each prediction is the gold answer under the project's one equivalence (a missing one never is)."""
    return [status == "correct" for status in verify_batch(preds, golds, workers=1)]


@torch.no_grad()
def greedy_answers(model, tokenizer, problems: list[str], *, max_new_tokens: int = 48, batch_size: int = 100) -> list[str | None]:
    """The final boxed answer of a greedy completion of each chat-rendered problem (None: no box)."""
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str | None] = []
    try:
        for start in range(0, len(problems), batch_size):
            prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                     add_generation_prompt=True)
                       for p in problems[start : start + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            answers += [extract_final_answer(t) for t in texts]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


@torch.no_grad()
def completion_logprobs(model, tokenizer, problems: list[str], completions: list[str], *,
                        batch_size: int = 100) -> list[float]:
    """log p(completion | problem), teacher-forced and summed over the completion's tokens, each pair rendered as
    training renders it: the chat template of [user, assistant], the completion being what follows the template's
    generation prompt (its end-of-turn tokens included, as training scores them)."""
    pairs = []
    for problem, completion in zip(problems, completions, strict=True):
        user = [{"role": "user", "content": problem}]
        prompt = tokenizer(tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]
        full = tokenizer(tokenizer.apply_chat_template(user + [{"role": "assistant", "content": completion}],
                                                       tokenize=False), add_special_tokens=False)["input_ids"]
        if full[: len(prompt)] != prompt:
            raise ValueError("the chat template renders the prompt differently inside a conversation: the teacher-"
                             "forced measure cannot tell the completion's tokens")
        pairs.append((full, len(prompt)))
    was_training = model.training
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[float] = []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([seq + [pad] * (width - len(seq)) for seq, _ in chunk], device=model.device)
            mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq, _ in chunk], device=model.device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            token = logits.gather(-1, ids[:, 1:, None])[..., 0] - torch.logsumexp(logits, dim=-1)
            position = torch.arange(1, width, device=model.device)[None, :]
            scored = (position >= torch.tensor([n for _, n in chunk], device=model.device)[:, None]) & mask[:, 1:].bool()
            out += (token * scored).sum(-1).tolist()
    finally:
        model.train(was_training)
    return out


def corrupted_rows(train_rows: list[dict], manifest: list[dict], limit: int | None = None, *,
                   noisy_completions: dict[str, str] | None = None) -> list[dict]:
    """{problem, true, injected} of the manifest's corrupted rows that have both answers (first `limit`); with
    `noisy_completions` (row id -> the completion trained on), also `clean` (the row's solution) and `noisy`."""
    by_id = {row["id"]: row for row in train_rows}
    out = [{"problem": by_id[m["id"]]["problem"], "true": m["old_answer"], "injected": m["new_answer"]}
           | ({"clean": by_id[m["id"]]["solution"], "noisy": noisy_completions[m["id"]]}
              if noisy_completions and m["id"] in noisy_completions else {})
           for m in manifest if m["corrupted"] and m.get("old_answer") is not None and m.get("new_answer") is not None
           and m["id"] in by_id]
    return out[:limit] if limit is not None else out


def measure(model, tokenizer, validation: list[dict], corrupted: list[dict], *, max_new_tokens: int,
            batch_size: int) -> dict:
    """val_acc over `validation` ({problem, answer}) and the mem_* shares over `corrupted` (see the module)."""
    point: dict = {}
    if validation:
        preds = greedy_answers(model, tokenizer, [r["problem"] for r in validation], max_new_tokens=max_new_tokens,
                               batch_size=batch_size)
        point.update(val_acc=sum(matches(preds, [r["answer"] for r in validation])) / len(validation),
                     n_val=len(validation))
    if corrupted:
        preds = greedy_answers(model, tokenizer, [r["problem"] for r in corrupted], max_new_tokens=max_new_tokens,
                               batch_size=batch_size)
        injected = sum(matches(preds, [r["injected"] for r in corrupted]))
        true = sum(matches(preds, [r["true"] for r in corrupted]))
        n = len(corrupted)
        point.update(mem_injected=injected / n, mem_true=true / n, mem_other=(n - injected - true) / n, n_corrupted=n)
        forced = [r for r in corrupted if "noisy" in r]
        if forced:
            problems = [r["problem"] for r in forced]
            noisy = completion_logprobs(model, tokenizer, problems, [r["noisy"] for r in forced], batch_size=batch_size)
            clean = completion_logprobs(model, tokenizer, problems, [r["clean"] for r in forced], batch_size=batch_size)
            gaps = [a - b for a, b in zip(noisy, clean, strict=True)]
            point.update(tf_gap=sum(gaps) / len(gaps), tf_injected=sum(g > 0 for g in gaps) / len(gaps))
    return point


class TrackingCallback(TrainerCallback):
    """Writes one `measure` point per `every` steps (and one at the end) to `out` (jsonl), on the main process.

    `manifest` is the noise manifest the run writes when its data are loaded (recipe key `noise_manifest`); it
    is read when training begins. `corrupted_limit` caps the corrupted rows probed (the first ones).
    `keep_models`: a folder where the model (and tokenizer) of every tracked step is saved, as `step-N`.
    `keep_best`: a folder holding the model of the tracked step with the best validation accuracy so far
    (`ls_llm.sweep.memorisation.best_point`: the earliest of equals). `noisy_completions`: row id -> the
    completion trained on, for the teacher-forced measure."""

    def __init__(self, *, every: int, out: Path, validation: list[dict], train_rows: list[dict], manifest: Path,
                 corrupted_limit: int | None = None, max_new_tokens: int = 48, batch_size: int = 100,
                 keep_models: Path | None = None, keep_best: Path | None = None,
                 noisy_completions: dict[str, str] | None = None):
        if every < 1:
            raise ValueError(f"track.every must be >= 1, got {every!r}")
        self.every, self.out, self.validation, self.train_rows = every, Path(out), validation, train_rows
        self.manifest, self.limit = Path(manifest), corrupted_limit
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.keep_models = Path(keep_models) if keep_models is not None else None
        self.keep_best = Path(keep_best) if keep_best is not None else None
        if self.keep_best is not None and not validation:
            raise ValueError("keep_best needs validation rows (track.validation_rows > 0)")
        self.noisy_completions = noisy_completions
        self.corrupted: list[dict] = []
        self.points: list[dict] = []
        self.last_step = -1

    def on_train_begin(self, args, state, control, **kwargs):
        manifest = read_jsonl(self.manifest) if self.manifest.is_file() else []
        self.corrupted = corrupted_rows(self.train_rows, manifest, self.limit, noisy_completions=self.noisy_completions)

    def _record(self, state, model, tokenizer) -> None:
        if state.global_step == self.last_step or not state.is_world_process_zero:
            return
        self.last_step = state.global_step
        point = {"step": state.global_step, **measure(model, tokenizer, self.validation, self.corrupted,
                                                      max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.points.append(point)
        targets = [self.keep_models / f"step-{state.global_step}"] if self.keep_models is not None else []
        if self.keep_best is not None and best_point(self.points) is point:
            targets.append(self.keep_best)
        for target in targets:
            model.save_pretrained(target)
            tokenizer.save_pretrained(target)
        with self.out.open("a") as f:  # after the model: a point in the file has its model on disk
            f.write(json.dumps(point) + "\n")

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every == 0:
            self._record(state, model, processing_class)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._record(state, model, processing_class)
