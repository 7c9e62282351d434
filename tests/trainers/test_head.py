"""The lm_head adapter against a materialized reference: PEFT's own full-logits forward, then the objective
on those logits: a fully trained copy of lm_head (modules_to_save), a plain tied head, and a model with a logit
scale and softcap (the `LogitsSpec` the adapter builds)."""

import functools

import pytest
import torch

from ls_llm.objectives import build_objective
from ls_llm.trainers.head import check_head_supported, install_hidden_forward
from ls_llm.trainers.sft import objective_head

PEFT_CASES = {
    "modules_to_save": dict(target_modules=["q_proj"], modules_to_save=["lm_head"]),
}


def _peft_model(h, case):
    from peft import LoraConfig, get_peft_model

    base = h.tiny_model(97, seed=2)
    install_hidden_forward(base)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                                            **PEFT_CASES[case]))
    torch.manual_seed(3)
    with torch.no_grad():  # LoRA B starts at zero, which would hide an ignored adapter: make it non-zero
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(torch.randn_like(p) * 0.05)
    return model


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("case", sorted(PEFT_CASES))
def test_peft_head_matches_full_logits(h, case):
    model = _peft_model(h, case)
    objective = build_objective("label_smoothing", alpha=0.2)
    ids = torch.randint(0, 97, (3, 11), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[1, 6:] = -100
    num_items = int((labels[:, 1:] != -100).sum()) + 5  # a global count larger than this micro-batch's

    fn = functools.partial(objective_head, objective=objective, num_items_in_batch=num_items)
    ours, _ = model(input_ids=ids, labels=labels, ls_head_fn=fn)
    ours_grads = _grads(model, ours)

    logits = model(input_ids=ids).logits
    ref = objective.from_logits(logits[:, :-1], labels[:, 1:], num_items_in_batch=num_items)
    ref_grads = _grads(model, ref)

    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    head_grads = [n for n in ref_grads if "lm_head" in n]
    assert head_grads, "the case trains something in lm_head"
    for name, g in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
        assert g.abs().sum() > 0 or "lora_A" in name, name


def test_lora_on_head_is_refused_with_the_alternative(h):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(h.tiny_model(97), LoraConfig(r=4, target_modules=["lm_head"]))
    with pytest.raises(ValueError, match="lora_modules_to_save"):
        check_head_supported(model.get_base_model())


def test_scaled_and_softcapped_head_matches_full_logits(h):
    """Cohere-style logit_scale and Gemma-2-style softcap reach the engine through one LogitsSpec."""
    model = h.tiny_model(97, seed=5)
    model.config.logit_scale, model.config.final_logit_softcapping = 0.7, 2.5
    install_hidden_forward(model)
    objective = build_objective("label_smoothing", alpha=0.1)
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(2))
    ours, _ = model(input_ids=ids, labels=ids, ls_head_fn=functools.partial(objective_head, objective=objective))
    ours_grads = _grads(model, ours)
    z = 0.7 * model(input_ids=ids).logits[:, :-1]
    ref = objective.from_logits(2.5 * torch.tanh(z / 2.5), ids[:, 1:])
    ref_grads = _grads(model, ref)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for name, g in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_plain_head_matches_full_logits(h):
    model = h.tiny_model(97, seed=4, tie_word_embeddings=True)
    install_hidden_forward(model)
    objective = build_objective("gce", q=0.5)
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    fn = functools.partial(objective_head, objective=objective)
    ours, stats = model(input_ids=ids, labels=ids, ls_head_fn=fn)
    ours_grads = _grads(model, ours)
    ref = objective.from_logits(model(input_ids=ids).logits[:, :-1], ids[:, 1:])
    ref_grads = _grads(model, ref)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert stats["n_tokens"].item() == ids[:, 1:].numel()
    for name, g in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_empty_or_unresolvable_head_is_a_value_error_naming_module_and_shape(h):
    from ls_llm.trainers.head import head_rows

    model = h.tiny_model(97)
    install_hidden_forward(model)
    model.lm_head.weight = torch.nn.Parameter(torch.empty(0, 32))
    with pytest.raises(ValueError, match=r"Linear has a weight of shape \(0, 32\)"):
        head_rows(model.lm_head)
    ids = torch.randint(0, 97, (1, 5))
    fn = functools.partial(objective_head, objective=build_objective("ce"))
    with pytest.raises(ValueError, match=r"Linear gave a weight of shape \(0, 32\)"):
        model(input_ids=ids, labels=ids, ls_head_fn=fn)


def test_zero3_partitioned_shape_is_read_from_ds_shape(h):
    """Under ZeRO-3 a partitioned weight is a 0-element tensor whose full shape is `ds_shape`."""
    from ls_llm.trainers.head import head_rows, vocab_size_of

    model = h.tiny_model(97)
    full = model.lm_head.weight.shape
    model.lm_head.weight.data = torch.empty(0)
    model.lm_head.weight.ds_shape = full
    assert head_rows(model.lm_head) == vocab_size_of(model) == 97
