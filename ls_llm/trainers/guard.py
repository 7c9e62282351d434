"""What a training run does when it goes wrong by itself (a non-finite loss or gradient) or is told to stop (a
signal): it never saves non-finite weights and never loses the steps since the last save.

Non-finite training (`nan_policy`). After each optimizer step's gradients are reduced, the Trainer computes their
global norm (`Trainer._get_grad_norm`, the one private name used here): a NaN or inf loss gives a NaN gradient, and
the norm is the same number on every rank (DDP, FSDP and ZeRO reduce the gradients before it), so every rank takes
the same decision without a collective. DeepSpeed reports a non-finite norm as -1, which counts as non-finite.
- `stop` (default): the step is not applied; training stops with one line naming the step and the norm (exit 2);
  the folder keeps its last checkpoint (written before that step, so finite) and no final model is saved.
- `skip_step`: that optimizer step is skipped (its gradients dropped, so the optimizer state does not move) and
  training goes on; the summary counts the skipped steps. Not under DeepSpeed, whose engine steps inside backward.
Before any checkpoint or the final model is written, the weights are checked finite (one pass over the local
parameters per save), so a step whose update overflowed is never saved either.

Signals. SIGTERM (what SLURM and Kubernetes send before a kill), SIGUSR1 (SLURM's `--signal=USR1@SECONDS`) and
SIGINT (Ctrl-C) behave alike: during training the current optimizer step is finished, a complete checkpoint is
written, one line names it and how to resume, and the command exits 128 + the signal number (143, 138, 130). Under
several processes the ranks agree at each step (one tiny all-reduce of the signal number, only when the world has
more than one process), so a signal to one rank stops all of them after the same step, with one checkpoint. A
signal while the run is being prepared stops it at once (nothing to save; the folder it created is removed); a
second Ctrl-C stops at once (a repeated SIGTERM is ignored: launchers pass the one stop on again); a signal
during the final save lets the save finish.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator

import torch
from accelerate.utils import DistributedType
from transformers import TrainerCallback

from ls_llm.trainers.checkpoints import incomplete_reason

NAN_POLICIES = ("stop", "skip_step")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class NonFiniteTraining(ValueError):
    """Training produced a non-finite loss or gradient (exit 2, one line naming the step)."""


class Preempted(KeyboardInterrupt):
    """Training was stopped by a signal; `exit_status` is 128 + its number. The message says where to resume from
    (empty on the ranks other than the main one, so a launch prints it once)."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class SignalStop:
    """The stop signals' handler for one run. `phase`: preparing -> training -> saving (set by the run)."""

    def __init__(self) -> None:
        self.signum = 0  # the first stop signal this process received
        self.phase = "preparing"

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.phase == "preparing":
            self.signum = self.signum or signum
            raise Preempted(f"stopped by {name} before training started; nothing to save", 128 + signum)
        if self.signum:
            # A launcher (torchrun, srun) passes the one stop on as SIGTERM to processes that already got it:
            # only a second Ctrl-C means "stop now".
            if signum == signal.SIGINT == self.signum:
                raise Preempted("stopped by a second SIGINT: the checkpoint of this step was not written",
                                128 + signum)
            return
        self.signum = signum
        if self.phase == "training":
            print(f"ls-llm: {name} received: finishing this optimizer step, then saving a checkpoint",
                  file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def installed(self) -> Iterator[SignalStop]:
        """Handle the stop signals in the `with` body (main thread only: Python delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, self._handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _finite_norm(norm) -> bool:
    if norm is None:
        return True
    if hasattr(norm, "full_tensor"):  # a DTensor (FSDP2)
        norm = norm.full_tensor()
    value = float(norm)  # the one host sync per optimizer step
    return math.isfinite(value) and value >= 0  # DeepSpeed reports a non-finite norm as -1


def _local_shards(model) -> Iterator:
    for p in model.parameters():
        shard = getattr(p, "ds_tensor", None)  # ZeRO-3: this rank's partition
        if shard is None and hasattr(p, "to_local"):
            shard = p.to_local()  # FSDP2 DTensor
        yield (p if shard is None else shard).detach()


def weights_finite(trainer) -> bool:
    """Every rank's share of the weights is finite (agreed over the ranks)."""
    bad = torch.zeros((), dtype=torch.float32, device=trainer.args.device)
    for t in _local_shards(trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model):
        if t.numel() and t.is_floating_point():
            # min and max carry a NaN or an inf through, with no temporary the size of the tensor
            low, high = torch.aminmax(t)
            bad = torch.maximum(bad, (~torch.isfinite(torch.stack([low, high]))).any().to(bad))
    if trainer.accelerator.num_processes > 1:
        import torch.distributed as dist

        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return not bool(bad.item())


class RunGuard(TrainerCallback):
    """`nan_policy` and the agreed stop signal, for one trainer (install with `install_guard`)."""

    def __init__(self, trainer, stop: SignalStop | None) -> None:
        self.trainer, self.stop = trainer, stop
        self.policy = getattr(trainer.args, "nan_policy", "stop")
        self.skip_next = False
        self.skipped: list[int] = []
        self.stopped_by = 0  # the agreed stop signal (0: none)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.policy == "skip_step" and self.trainer.accelerator.distributed_type == DistributedType.DEEPSPEED:
            raise ValueError("nan_policy: skip_step is not supported under DeepSpeed (its engine applies the "
                             "optimizer step inside backward): use nan_policy: stop")
        if self.stop is not None:
            self.stop.phase = "training"

    def after_grad_norm(self, norm) -> None:
        """Called with each optimizer step's gradient norm, before the step is applied."""
        step = self.trainer.state.global_step + 1
        signum = self.stop.signum if self.stop is not None else 0
        if self.trainer.accelerator.num_processes > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([signum], dtype=torch.int64, device=self.trainer.args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            signum = int(flag.item())
        self.stopped_by = signum
        if _finite_norm(norm):
            return
        if self.policy == "skip_step":
            self.skip_next = True
            self.skipped.append(step)
            if self.trainer.is_world_process_zero():
                print(f"ls-llm: step {step}: gradient norm is {float(norm)} (non-finite): optimizer step skipped "
                      "(nan_policy: skip_step)", file=sys.stderr, flush=True)
            return
        raise NonFiniteTraining(
            f"training diverged at step {step}: the gradient norm is {float(norm)} (a non-finite loss or gradient); "
            "the step was not applied and no weights from it are saved. Lower learning_rate, or set nan_policy: "
            "skip_step to skip such steps")

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if self.skip_next:
            self.skip_next = False
            # torch optimizers leave a parameter without a gradient untouched (moments and step count included)
            self.trainer.optimizer.zero_grad(set_to_none=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_by:
            control.should_save = True
            control.should_training_stop = True
        if control.should_save and not weights_finite(self.trainer):
            raise NonFiniteTraining(f"the weights are not finite after step {state.global_step}: not saved. Lower "
                                    "learning_rate")


def install_guard(trainer, stop: SignalStop | None = None) -> RunGuard:
    """Add the guard to `trainer`: its callback, and the look at each step's gradient norm."""
    guard = RunGuard(trainer, stop)
    inner = trainer._get_grad_norm  # transformers' private name, used here only (tests/trainers/test_guard.py)

    def checked(model, grad_norm=None):
        norm = inner(model, grad_norm=grad_norm)
        guard.after_grad_norm(norm)
        return norm

    trainer._get_grad_norm = checked
    trainer.add_callback(guard)
    return guard


def preempted(trainer, guard: RunGuard, output_dir: str) -> Preempted:
    """The exception that ends a run stopped by a signal, after its checkpoint was written."""
    name = signal.Signals(guard.stopped_by).name
    step = trainer.state.global_step
    checkpoint = os.path.abspath(os.path.join(output_dir, f"checkpoint-{step}"))
    message = ""
    if trainer.is_world_process_zero():
        problem = incomplete_reason(checkpoint) if os.path.isdir(checkpoint) else "not written"
        message = (f"stopped by {name} after step {step}: checkpoint {checkpoint} is complete; continue with "
                   "--resume_from_checkpoint true" if problem is None else
                   f"stopped by {name} after step {step}; the checkpoint {checkpoint} is {problem}")
    return Preempted(message, 128 + guard.stopped_by)
