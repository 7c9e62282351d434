"""The lm_head adapter: the one place that knows HF/TRL conventions (where the backbone and the head are,
the causal label shift, `ignore_index` -100, logit scaling and softcapping) and how the head's weight is really
formed (a `modules_to_save` copy, ZeRO-3, FSDP2).

A trainer never builds logits. It passes a *head function* to the model's forward:

    out = model(**inputs, ls_head_fn=fn, ls_extra={"seq_ids": ...})
    # fn(hidden, labels, spec, **shifted_extra) -> whatever fn returns (tensors); spec: objectives.LogitsSpec

`install_hidden_forward` patches the model so that such a call runs only the backbone, shifts the labels
(and every tensor in `ls_extra`) so that `labels[i]` is the target of `hidden[i]`, and then calls `fn` from
*inside the lm_head module's forward* with the `LogitsSpec` (weight, bias, scale, softcap, ignore_index) built
there. Going through the head module's `__call__` is how the head cooperates with the distributed engines
instead of bypassing them: FSDP2 and ZeRO-3 gather a sharded weight in the module's pre-forward hook, re-gather
it before the module's backward and reduce its gradient from hooks armed there. A head whose weight lives in a
submodule (PEFT's `modules_to_save` copy) has that weight registered with ZeRO-3 as an external parameter of
the head, so the same hooks gather it. The model itself is still called through its wrappers (DDP, FSDP, PEFT),
which is what DDP needs to synchronise gradients.

The distillation trainer and the teacher cache reuse this with their own `fn`.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import torch
from torch import nn

from ls_llm.objectives.engine import LogitsSpec

# Heavy imports stay inside functions (transformers, deepspeed): `ls-llm` imports this module before it knows
# a command needs them.

HeadFn = Callable[..., object]
_PATCH_FLAG = "_ls_hidden_forward"


def install_hidden_forward(model: nn.Module) -> None:
    """Patch `model.forward` (a transformers causal LM, not a PEFT wrapper) to accept `ls_head_fn`.

    Without `ls_head_fn` the forward is the previous one (so generation and trl's own fused head still work).
    Idempotent.
    """
    if getattr(model, _PATCH_FLAG, False):
        return
    previous_forward = model.forward
    transform = logits_transform(model)
    text_config = model.config.get_text_config()

    @functools.wraps(type(model).forward)
    def _forward(self, *args, ls_head_fn=None, ls_extra=None, labels=None, shift_labels=None, **kwargs):
        if ls_head_fn is None:
            if labels is not None:
                kwargs["labels"] = labels
            if shift_labels is not None:
                kwargs["shift_labels"] = shift_labels
            return previous_forward(*args, **kwargs)
        kwargs.pop("num_items_in_batch", None)  # the head function carries the normaliser
        kwargs["use_cache"] = False
        # MoE: like the model's own forward (and trl's), ask for the router logits when the config does.
        if getattr(text_config, "output_router_logits", False):
            kwargs.setdefault("output_router_logits", True)
        # Looked up on every call: PEFT and FSDP replace modules after the patch.
        backbone = self.base_model(*args, **kwargs)
        if kwargs.get("output_router_logits"):
            setattr(self, _AUX_ATTR, router_aux_loss(backbone.router_logits, text_config, kwargs.get("attention_mask")))
        hidden = backbone.last_hidden_state
        extra = dict(ls_extra or {})
        if shift_labels is None:
            # Causal shift: position i predicts token i+1.
            hidden, labels = hidden[:, :-1], labels[:, 1:]
            extra = {k: v[:, 1:] for k, v in extra.items()}
        else:
            labels = shift_labels
        lm_head = self.get_output_embeddings()
        labels = labels.to(hidden.device)
        return call_through_head(lm_head, ls_head_fn, hidden, labels, transform=transform, **extra)

    model.forward = types.MethodType(_forward, model)
    setattr(model, _PATCH_FLAG, True)


_AUX_ATTR = "_ls_router_aux_loss"


def router_aux_loss(router_logits, text_config, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The MoE load-balancing loss of one forward, unweighted: transformers' `load_balancing_loss_func` (Mixtral's,
    which every MoE family shares), with the arguments the model's own forward and trl's fused head give it. A
    padding-free batch has no attention mask: every token counts."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    return load_balancing_loss_func(router_logits, text_config.num_experts, text_config.num_experts_per_tok,
                                    attention_mask)


def pop_router_aux_loss(model: nn.Module) -> torch.Tensor | None:
    """The load-balancing loss of `model`'s last head-function forward (None if it gave no router logits). The
    head function's result is the caller's, so the hidden forward leaves this one on the model; popped once."""
    return model.__dict__.pop(_AUX_ATTR, None)


def logits_transform(model: nn.Module) -> dict:
    """The model's logit scale and final-logit softcap, as `LogitsSpec` fields (read once per model)."""
    config = model.config.get_text_config()
    # Cohere-style `logit_scale`, Granite-style division by `logits_scaling`, Gemma-2-style softcapping.
    scale = getattr(config, "logit_scale", None)
    if scale is None and getattr(config, "logits_scaling", None):
        scale = 1.0 / config.logits_scaling
    softcap = getattr(config, "final_logit_softcapping", None)
    return {"scale": 1.0 if scale is None else float(scale), "softcap": float(softcap) if softcap else None}


def call_through_head(lm_head: nn.Module, fn: HeadFn, hidden: torch.Tensor, labels: torch.Tensor, *,
                      transform: dict | None = None, **extra):
    """Call `fn(hidden, labels, spec, **extra)` from inside `lm_head`'s forward."""
    _register_with_zero3(lm_head)

    def _routed(h, y, **kw):
        weight, bias = head_weight(lm_head)
        spec = LogitsSpec(_full(weight), _full(bias), ignore_index=IGNORE_INDEX, **(transform or {}))
        _check_gathered(lm_head, spec.weight)
        return fn(h, y, spec, **kw)

    had_own = "forward" in lm_head.__dict__
    saved = lm_head.__dict__.get("forward")
    lm_head.forward = _routed
    try:
        return lm_head(hidden, labels, **extra)
    finally:
        if had_own:
            lm_head.forward = saved
        else:
            del lm_head.forward


IGNORE_INDEX = -100  # transformers' and trl's label padding


def _full(t: torch.Tensor | None) -> torch.Tensor | None:
    # FSDP2 keeps parameters as DTensors outside a unit's forward (e.g. lm_head not wrapped on its own and the
    # root unit already resharded); all-gather them. The all-gather's backward reduce-scatters the gradient.
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _register_with_zero3(head: nn.Module) -> None:
    """ZeRO-3 gathers only a module's *direct* parameters in its hooks. Register the effective weight's
    parameters that live in a submodule (a `modules_to_save` copy) as external parameters of the head, so the
    head's own hooks gather them for the forward, re-gather them for the backward and reduce their gradients."""
    if getattr(head, "_ls_zero3_registered", False):
        return
    own = {id(p) for p in head.parameters(recurse=False)}
    external = [p for p in head_weight(head) if p is not None and hasattr(p, "ds_id") and id(p) not in own]
    if external:
        from deepspeed.runtime.zero.partition_parameters import register_external_parameter

        for p in external:
            register_external_parameter(head, p)
    head._ls_zero3_registered = True


def _check_gathered(head: nn.Module, weight: torch.Tensor) -> None:
    if weight.ndim != 2 or weight.numel() == 0:
        raise ValueError(f"the lm head {type(head).__name__} gave a weight of shape {tuple(weight.shape)} inside its "
                         "forward: it is sharded in a way this adapter cannot gather (only the engines' own hooks, "
                         "ZeRO-3 and FSDP2, are supported)")


# --- how a head module's effective (weight, bias) is formed -------------------------------------------------


def _active(head: nn.Module) -> list[str]:
    active = head.active_adapters if hasattr(head, "active_adapters") else head.active_adapter
    return [active] if isinstance(active, str) else list(active)


def head_weight(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (weight (V, H), bias) parameters the head applies to a hidden state: its own, or for PEFT's
    `modules_to_save` wrapper those of the active copy (the original when adapters are disabled)."""
    if hasattr(head, "modules_to_save") and hasattr(head, "original_module"):
        active = [a for a in _active(head) if a in head.modules_to_save]
        inner = head.original_module if (head.disable_adapters or not active) else head.modules_to_save[active[0]]
        return head_weight(inner)
    return head.weight, getattr(head, "bias", None)


def check_head_supported(model: nn.Module) -> None:
    """Refuse a head this adapter cannot express as one (weight, bias) pair (before any training)."""
    head = model.get_output_embeddings()
    if hasattr(head, "base_layer") and hasattr(head, "lora_A"):
        raise ValueError(
            f"a LoRA adapter on lm_head ({type(head).__name__}) is not supported: trl refuses it, and the fused loss "
            "reads the head's weight. Train a full copy of the head instead: lora_modules_to_save: [lm_head]")


def head_rows(head: nn.Module) -> int:
    """Rows (vocabulary) of a head's weight, also when it is partitioned: ZeRO-3 keeps the full shape in
    `ds_shape` (the local tensor has 0 elements), a DTensor reports its global shape."""
    weight, _ = head_weight(head)
    shape = getattr(weight, "ds_shape", None) or weight.shape
    if len(shape) != 2 or shape[0] == 0:
        raise ValueError(f"the lm head {type(head).__name__} has a weight of shape {tuple(shape)}: 0 rows")
    return int(shape[0])


def vocab_size_of(model: nn.Module) -> int:
    """Rows of the output head (may exceed the tokenizer's vocab when the embedding is padded)."""
    return head_rows(model.get_output_embeddings())
