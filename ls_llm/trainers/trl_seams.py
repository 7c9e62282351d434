"""The one place that touches trl's (and transformers `Trainer`'s) private names.

`LsSFTTrainer` is trl's `SFTTrainer` with another loss. It cannot reach its loss through `super().compute_loss`:
trl 1.16 computes the loss there as Σ −log p / N from the per-token log-probabilities of its own fused head, so
a token objective (label smoothing, GCE, routed objectives, trace weights) has no public way in. The subclass
therefore replaces `compute_loss` and must do the rest of what trl's does by the same private state: count the
tokens seen (`num_tokens`), log the MoE auxiliary loss, keep its own columns through trl's column pruning and
count weighted tokens for the normaliser. Every such name is here and in `PRIVATE_NAMES`; `check_trl` runs when
a trainer is built (and tests/trainers/test_trl_seams.py runs it on the installed trl), so a trl release that
renames one stops with one line naming it instead of training on with a metric or a column silently gone.
"""

from __future__ import annotations

import warnings

import torch

# Heavy imports stay inside functions (trl, packaging): `ls-llm` imports this module before it knows a command
# needs them.

# The trl versions the tests cover; pyproject.toml pins the same range.
TRL_RANGE = ("1.16", "1.17")

# Methods this module overrides: each must exist on trl's SFTTrainer, or the override is never called.
PRIVATE_METHODS = ("_set_signature_columns_if_needed", "_get_num_items_in_batch", "_issue_warnings_after_load")
# State written or read here, set by SFTTrainer.__init__ (trl) or Trainer.__init__ (transformers).
PRIVATE_ATTRIBUTES = ("_metrics", "_total_train_tokens", "_signature_columns", "_loss_shifts_labels")
# Public attributes of trl's SFTTrainer that describe the MoE auxiliary loss it adds.
TRL_ATTRIBUTES = ("aux_loss_enabled", "router_aux_loss_coef")
PRIVATE_NAMES = PRIVATE_METHODS + PRIVATE_ATTRIBUTES
# Class attributes trl's subclasses set for the model card (each trainer class sets its own values).
CARD_ATTRIBUTES = ("_name", "_tag_names")


def trl_version() -> str:
    import trl

    return trl.__version__


def in_trl_range(version: str) -> bool:
    from packaging.version import Version

    return Version(TRL_RANGE[0]) <= Version(version) < Version(TRL_RANGE[1])


def check_trl(trainer) -> None:
    """Raise one line naming the first private name (or MoE attribute) the installed trl no longer has."""
    from trl import SFTTrainer

    if not in_trl_range(trl_version()):
        warnings.warn(f"trl {trl_version()} is outside the range LsSFTTrainer is tested with "
                      f"(trl>={TRL_RANGE[0]},<{TRL_RANGE[1]})", stacklevel=3)
    missing = [n for n in PRIVATE_METHODS if not callable(getattr(SFTTrainer, n, None))]
    missing += [n for n in CARD_ATTRIBUTES if n not in vars(SFTTrainer)]
    missing += [n for n in PRIVATE_ATTRIBUTES + TRL_ATTRIBUTES if not hasattr(trainer, n)]
    if missing:
        raise RuntimeError(f"trl {trl_version()} changed {missing[0]} (LsSFTTrainer uses it, see "
                           f"ls_llm/trainers/trl_seams.py; tested with trl>={TRL_RANGE[0]},<{TRL_RANGE[1]})")


class TrlSeams:
    """Mixin before `SFTTrainer` in the bases: trl's private hooks, each forwarded to a public one the trainers
    override (`extra_signature_columns`, `weighted_num_items`, `hidden_missing_keys`)."""

    def extra_signature_columns(self) -> list[str]:
        """Dataset columns the collator needs besides the model's forward arguments."""
        return []

    def weighted_num_items(self, batch_samples: list, *, shifts_labels: bool):
        """The step's normaliser when it is not trl's token count (None: trl's)."""
        return None

    def hidden_missing_keys(self) -> set[str]:
        """Keys a resumed checkpoint may lack without a warning."""
        return set()

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        extra = [c for c in self.extra_signature_columns() if c not in self._signature_columns]
        if extra:
            self._signature_columns = [*self._signature_columns, *extra]

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        count = self.weighted_num_items(batch_samples, shifts_labels=self._loss_shifts_labels)
        if count is None:
            return super()._get_num_items_in_batch(batch_samples, device)
        count = count.to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count.reshape(1)).sum()
        return count

    def _issue_warnings_after_load(self, load_result):
        # transformers' one seam for the keys a resumed checkpoint lacks.
        hidden = self.hidden_missing_keys()
        if hidden and hasattr(load_result, "_replace"):
            load_result = load_result._replace(missing_keys=[k for k in load_result.missing_keys if k not in hidden])
        return super()._issue_warnings_after_load(load_result)

    def count_train_tokens(self, inputs: dict, mode: str) -> None:
        """trl's `num_tokens`: real tokens seen in training (padding-free batches carry position_ids, no mask)."""
        if mode == "train":
            if "attention_mask" in inputs:
                local = inputs["attention_mask"].sum()
            else:
                local = torch.tensor(inputs["position_ids"].size(1), device=inputs["position_ids"].device)
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(local.reshape(1)).sum().item())
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

    def add_router_aux_loss(self, loss: torch.Tensor, aux: torch.Tensor | None, *, mode: str,
                            num_items_in_batch) -> torch.Tensor:
        """trl's MoE load-balancing term: `router_aux_loss_coef` x the micro-batch's aux loss, divided by the
        accumulation steps when the loss is normalised by the step's token count (Trainer then leaves the
        accumulation average to the loss), logged as `aux_loss`."""
        if not self.aux_loss_enabled:
            return loss
        if aux is None:
            raise RuntimeError("the model's config asks for the MoE load-balancing loss, but its forward gave no "
                               "router logits")
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(aux.detach()).mean().item())
        return loss + self.router_aux_loss_coef * aux / steps
