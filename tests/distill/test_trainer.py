"""LsDistillTrainer on tiny models: exact under gradient accumulation, distill_alpha = 0 is SFT, a cache with
k = V trains exactly as the online teacher, and mismatched teachers / caches / settings fail before training."""

import pytest
import torch

LENGTHS = [5, 41, 17, 28]
VOCAB = 418  # the shipped arithmetic tokenizer


def _step(d, tmp_path, *, batch=4, accumulation=1, teacher=True, sft=False, **kw):
    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer
    from ls_llm.trainers.distill import LsDistillTrainer

    student = d.tiny(420, seed=1)  # head padded past the tokenizer, as real checkpoints are
    common = dict(per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, max_steps=1,
                  optim="sgd", learning_rate=1.0, max_grad_norm=0.0)
    data, tok = d.token_dataset(LENGTHS, VOCAB), d.tokenizer()
    if sft:
        args = d.config(tmp_path, cls=LsSFTConfig, **common, **kw)
        trainer = LsSFTTrainer(model=student, args=args, train_dataset=data, processing_class=tok)
    else:
        args = d.config(tmp_path, **common, **kw)
        trainer = LsDistillTrainer(model=student, args=args, train_dataset=data, processing_class=tok,
                                   teacher_model=d.tiny(430, hidden=48, seed=7) if teacher else None)
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    trainer.train()
    logged = next(r for r in trainer.state.log_history if "ce_loss" in r)
    return {n: p.detach() - before[n] for n, p in student.named_parameters()}, logged


def _assert_same(a, b, **tol):
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name, **tol)


def test_accumulation_invariance(d, tmp_path):
    kw = dict(distill_divergence="jsd", jsd_beta=0.3, distill_temperature=2.0, teacher_smoothing=0.1,
              objective="label_smoothing", alpha=0.1)
    big, big_log = _step(d, tmp_path, batch=4, accumulation=1, **kw)
    small, small_log = _step(d, tmp_path, batch=1, accumulation=4, **kw)
    assert big["lm_head.weight"].abs().max() > 0
    _assert_same(small, big, rtol=1e-4, atol=1e-6)
    assert small_log["distill_divergence"] == pytest.approx(big_log["distill_divergence"], rel=1e-5)
    assert big_log["distill_divergence"] > 0


def test_alpha_zero_is_sft(d, tmp_path):
    distilled, _ = _step(d, tmp_path, distill_alpha=0.0, objective="gce", q=0.5)
    sft, _ = _step(d, tmp_path, sft=True, objective="gce", q=0.5)
    _assert_same(distilled, sft, rtol=1e-5, atol=1e-7)


def test_cache_with_k_equal_v_trains_as_online(d, tmp_path):
    from ls_llm.trainers.distill_cache import build_teacher_cache

    kw = dict(distill_divergence="reverse_kl", distill_temperature=1.5, teacher_smoothing=0.2, distill_alpha=0.7)
    online, online_log = _step(d, tmp_path, **kw)
    cache_dir = str(tmp_path / "cache")
    args = d.config(tmp_path, teacher_cache_dir=cache_dir, distill_top_k=VOCAB, cache_logprob_dtype="float32",
                    cache_shard_rows=3, per_device_eval_batch_size=3, **kw)
    logs = []
    assert build_teacher_cache(args, d.tiny(430, hidden=48, seed=7), d.tokenizer(), d.token_dataset(LENGTHS, VOCAB),
                               log=logs.append) == 2
    cached, cached_log = _step(d, tmp_path, teacher=False, teacher_cache_dir=cache_dir, **kw)
    _assert_same(cached, online, rtol=1e-4, atol=1e-6)
    assert cached_log["distill_divergence"] == pytest.approx(online_log["distill_divergence"], rel=1e-5)


def test_sparse_cache_trains_and_is_checked(d, tmp_path):
    from ls_llm.trainers.distill_cache import build_teacher_cache

    cache_dir = str(tmp_path / "cache")
    args = d.config(tmp_path, teacher_cache_dir=cache_dir, distill_top_k=8)
    build_teacher_cache(args, d.tiny(430, hidden=48, seed=7), d.tokenizer(), d.token_dataset(LENGTHS, VOCAB),
                        log=lambda m: None)
    delta, logged = _step(d, tmp_path, teacher=False, teacher_cache_dir=cache_dir)
    assert torch.isfinite(torch.tensor(logged["loss"])) and logged["distill_divergence"] > 0
    with pytest.raises(ValueError, match="distill_temperature"):
        _step(d, tmp_path, teacher=False, teacher_cache_dir=cache_dir, distill_temperature=2.0)


def test_mismatched_teachers_fail_before_training(d, tmp_path):
    from ls_llm.trainers.distill import LsDistillTrainer
    from ls_llm.trainers.loading import check_same_tokenizer

    args = d.config(tmp_path)
    with pytest.raises(ValueError, match=r"teacher's lm_head \(Linear\) has 300 rows"):
        LsDistillTrainer(model=d.tiny(420), args=args, train_dataset=d.token_dataset(LENGTHS, VOCAB),
                         processing_class=d.tokenizer(), teacher_model=d.tiny(300))
    student_tok, teacher_tok = d.tokenizer(), d.tokenizer()
    teacher_tok.add_tokens(["<extra>"])
    with pytest.raises(ValueError, match="differs from the student's"):
        check_same_tokenizer(student_tok, teacher_tok, teacher_name="t")
    check_same_tokenizer(student_tok, d.tokenizer(), teacher_name="t")


@pytest.mark.parametrize("kw,field", [({"jsd_beta": 2.0}, "jsd_beta"), ({"distill_alpha": -0.1}, "distill_alpha"),
                                      ({"distill_divergence": "tv"}, "distill_divergence"),
                                      ({"teacher_model_name_or_path": None}, "teacher_model_name_or_path"),
                                      ({"teacher_cache_dir": "x", "packing": True}, "packing"),
                                      ({"teacher_smoothing": 1.0}, "teacher_smoothing"),
                                      ({"distill_top_k": 0}, "distill_top_k")])
def test_config_names_the_bad_field(d, tmp_path, kw, field):
    with pytest.raises(ValueError, match=field):
        d.config(tmp_path, **kw)


def test_loss_equals_full_logits_reference_with_lora_student(d, tmp_path):
    """The trainer's loss (label shift, teacher alignment, padded heads, a LoRA student) equals
    the materialized reference on both models' full logits."""
    from peft import LoraConfig, get_peft_model

    from ls_llm.objectives.distill_reference import reference_distill_loss
    from ls_llm.trainers.distill import LsDistillTrainer

    kw = dict(distill_divergence="jsd", jsd_beta=0.4, distill_temperature=1.3, teacher_smoothing=0.05,
              distill_alpha=0.6, objective="label_smoothing", alpha=0.1)
    teacher = d.tiny(430, hidden=48, seed=7)
    student = get_peft_model(d.tiny(420, seed=1), LoraConfig(r=4, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                             target_modules=["q_proj", "v_proj"]))
    trainer = LsDistillTrainer(model=student, args=d.config(tmp_path, per_device_train_batch_size=4, **kw),
                               train_dataset=d.token_dataset(LENGTHS, VOCAB), processing_class=d.tokenizer(),
                               teacher_model=teacher)
    torch.manual_seed(0)
    for name, p in trainer.model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.1)  # LoRA starts at B = 0; make the adapter matter
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        student_logits = trainer.model(**inputs).logits.double()
        teacher_logits = teacher(**inputs).logits.double()[..., :VOCAB]
    ref = reference_distill_loss(student_logits[:, :-1], teacher_logits[:, :-1], batch["labels"][:, 1:],
                                 objective="label_smoothing", objective_params={"alpha": 0.1},
                                 divergence_name="jsd", beta=0.4, alpha=0.6, temperature=1.3, teacher_smoothing=0.05)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
