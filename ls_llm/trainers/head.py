"""The lm_head adapter: the one place that knows HF/TRL conventions (where the backbone and the head are,
the causal label shift, logit scaling) and how the head's weight is really formed (LoRA, ZeRO-3, FSDP2).

A trainer never builds logits. It passes a *head function* to the model's forward:

    out = model(**inputs, ls_head_fn=fn, ls_extra={"seq_ids": ...})
    # fn(hidden, labels, weight, bias, **shifted_extra) -> whatever fn returns (tensors)

`install_hidden_forward` patches the model so that such a call runs only the backbone, shifts the labels
(and every tensor in `ls_extra`) so that `labels[i]` is the target of `hidden[i]`, and then calls `fn` from
*inside the lm_head module's forward*. Going through the head module's `__call__` matters: FSDP2 and ZeRO-3
gather a sharded weight in the module's pre-forward hook and reduce its gradient from hooks armed there, so
reading `lm_head.weight` from outside the module would see a shard. The model itself is still called
through its wrappers (DDP, FSDP, PEFT), which is what DDP needs to synchronise gradients.

The distillation trainer reuses this with a different `fn`.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import nn

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
    text_config = model.config.get_text_config()
    logit_scale = _logit_scale(text_config)

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
        # Looked up on every call: PEFT and FSDP replace modules after the patch.
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        extra = dict(ls_extra or {})
        if shift_labels is None:
            # Causal shift: position i predicts token i+1.
            hidden, labels = hidden[:, :-1], labels[:, 1:]
            extra = {k: v[:, 1:] for k, v in extra.items()}
        else:
            labels = shift_labels
        if logit_scale != 1.0:
            # logits = scale * h W^T = (scale * h) W^T: scale the (small) hidden, never the (V, H) weight.
            hidden = hidden * logit_scale
        lm_head = self.get_output_embeddings()
        labels = labels.to(hidden.device)
        return call_through_head(lm_head, ls_head_fn, hidden, labels, **extra)

    model.forward = types.MethodType(_forward, model)
    setattr(model, _PATCH_FLAG, True)


def _logit_scale(text_config) -> float:
    # Cohere-style `logit_scale`, Granite-style division by `logits_scaling`. Softcapping is an objective
    # parameter (see `final_logit_softcap`).
    scale = getattr(text_config, "logit_scale", None)
    if scale is None and getattr(text_config, "logits_scaling", None):
        scale = 1.0 / text_config.logits_scaling
    return 1.0 if scale is None else float(scale)


def final_logit_softcap(model: nn.Module) -> float | None:
    """The model's final-logit softcapping (Gemma 2 style), for the objective's `softcap`."""
    return getattr(model.config.get_text_config(), "final_logit_softcapping", None)


def call_through_head(lm_head: nn.Module, fn: HeadFn, hidden: torch.Tensor, labels: torch.Tensor, **extra):
    """Call `fn(hidden, labels, weight, bias, **extra)` from inside `lm_head`'s forward."""

    def _routed(h, y, **kw):
        with _gathered(lm_head):
            weight, bias = head_weight(lm_head)
            return fn(h, y, _full(weight), _full(bias), **kw)

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


def _full(t: torch.Tensor | None) -> torch.Tensor | None:
    # FSDP2 keeps parameters as DTensors outside a unit's forward (e.g. lm_head not wrapped on its own and the
    # root unit already resharded); all-gather them. The all-gather's backward reduce-scatters the gradient.
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _gathered(head: nn.Module):
    # ZeRO-3 only gathers a module's *direct* parameters in its hook; a LoRA head's weight lives in
    # `base_layer`, so gather the whole head explicitly (trl's helper is a no-op for parameters already
    # available, e.g. a tied embedding).
    params = [p for p in head.parameters() if hasattr(p, "ds_id")]
    if not params:
        return nullcontext()
    from trl.trainer.utils import maybe_gather_lm_head_ctx

    return maybe_gather_lm_head_ctx(*params)


# --- how a head module's effective (weight, bias) is formed -------------------------------------------------
# Each resolver takes the head and returns (weight, bias), or None when it does not apply. Tried in order.


def _peft_modules_to_save(head: nn.Module):
    if not (hasattr(head, "modules_to_save") and hasattr(head, "original_module")):
        return None
    active = [a for a in _active(head) if a in head.modules_to_save]
    inner = head.original_module if (head.disable_adapters or not active) else head.modules_to_save[active[0]]
    return head_weight(inner)


def _peft_lora(head: nn.Module):
    if not (hasattr(head, "base_layer") and hasattr(head, "lora_A")):
        return None
    weight, bias = head_weight(head.base_layer)
    if head.disable_adapters or head.merged:
        return weight, bias
    for name in _active(head):
        if name not in head.lora_A:
            continue
        # W_eff = W + scale * B A (peft's own `get_delta_weight`, so fan_in_fan_out and casts match peft).
        # Merging on the fly is exact for plain LoRA without dropout; see `check_head_supported`.
        weight = weight + head.get_delta_weight(name).to(weight.dtype)
    return weight, bias


def _plain(head: nn.Module):
    return head.weight, getattr(head, "bias", None)


_RESOLVERS = (_peft_modules_to_save, _peft_lora, _plain)


def _active(head: nn.Module) -> list[str]:
    active = head.active_adapters if hasattr(head, "active_adapters") else head.active_adapter
    return [active] if isinstance(active, str) else list(active)


def head_weight(head: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (weight (V, H), bias) the head applies to a hidden state, differentiable w.r.t. its parameters."""
    for resolve in _RESOLVERS:
        found = resolve(head)
        if found is not None:
            return found
    raise AssertionError("unreachable: _plain always resolves")


def check_head_supported(model: nn.Module) -> None:
    """Refuse head adapters that cannot be written as one effective weight (before any training)."""
    head = model.get_output_embeddings()
    if not (hasattr(head, "base_layer") and hasattr(head, "lora_A")):
        return
    for name in _active(head):
        if name in getattr(head, "lora_variant", {}):
            raise ValueError(
                f"LoRA variant {type(head.lora_variant[name]).__name__} (e.g. DoRA) on lm_head is not supported: "
                "its output is not W_eff @ h; leave lm_head out of lora_target_modules or set use_dora: false"
            )
        dropout = head.lora_dropout[name]
        if isinstance(dropout, nn.Dropout) and dropout.p > 0:
            raise ValueError(
                f"lora_dropout={dropout.p} on lm_head is not supported: dropout on the LoRA input cannot be "
                "merged into an effective weight; set lora_dropout: 0.0 or leave lm_head out of the targets"
            )


def vocab_size_of(model: nn.Module) -> int:
    """Rows of the output head (may exceed the tokenizer's vocab when the embedding is padded)."""
    weight, _ = head_weight(model.get_output_embeddings())
    return int(weight.shape[0])
