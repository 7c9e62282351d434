"""What a recipe trains, in words: the objective of every route (segment and trace group), the traces dropped, the
warm-up, loss truncation, trace weights and the distillation term. One home for the run summary that `ls-llm
train|distill` prints and for `ls-llm inspect`, so both say the same thing the trainer does.
"""

from __future__ import annotations

from ls_llm.data.segments import SEGMENTS
from ls_llm.trainers.routing import ObjectiveSpec, RoutingPlan

# Heavy imports stay inside functions (): optional dependencies, needed only on that path.


def describe_spec(spec: ObjectiveSpec) -> str:
    """`label_smoothing(alpha=0.3, prior=answer)`: the objective with every parameter it trains with (the
    objective's defaults filled in), the smoothing prior by its recipe name."""
    from ls_llm.objectives import OBJECTIVES

    defaults = {k: v for k, v in OBJECTIVES[spec.objective].PARAMS.items() if k != "prior"}
    params = {**defaults, **{k: v for k, v in spec.params.items() if k != "chunk_size"}}
    if "prior" in OBJECTIVES[spec.objective].PARAMS:
        params["prior"] = spec.smoothing_prior
    inner = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    return f"{spec.objective}({inner})" if inner else spec.objective


def top_spec(args) -> ObjectiveSpec:
    """The recipe's top-level objective (`objective` and its parameters, `smoothing_prior`) as a route spec."""
    params = {k: v for k, v in args.objective_kwargs().items() if k != "chunk_size"}
    return ObjectiveSpec(args.objective, params, args.smoothing_prior)


def objective_label(args) -> str:
    """The header's `objective=...`: the objective, or `routed (N routes)` when segments or traces are routed."""
    plan = args.routing_plan()
    if plan is None:
        return describe_spec(top_spec(args))
    routes = len({describe_spec(spec) for spec in plan.specs})
    return f"routed ({routes} distinct objective{'s' if routes != 1 else ''}; see routes)"


def trace_group_names(plan: RoutingPlan) -> list[str]:
    """Per trace group, who it is: group 0 is every trace no listed value picks."""
    names = ["traces not listed" if plan.trace_column else "every trace"]
    for value, group in plan.trace_groups.items():
        if group is not None:
            names.append(f"{plan.trace_column}={value}")
    return names


def route_lines(args) -> list[str]:
    """One line per (trace group, segment) route, the dropped traces, and the settings that change what a trained
    token's loss is (warm-up, loss truncation, trace weights, distillation)."""
    plan = args.routing_plan()
    if plan is None:
        lines = [f"every trained token: {describe_spec(top_spec(args))}"]
    else:
        lines = []
        for name, group in zip(trace_group_names(plan), plan.groups, strict=True):
            lines += [f"{name} / {segment}: {describe_spec(spec)}" for segment, spec in zip(SEGMENTS, group,
                                                                                            strict=True)]
        lines += [f"{plan.trace_column}={value}: dropped (not trained)"
                  for value, group in plan.trace_groups.items() if group is None]
    if args.objective_warmup_steps:
        lines.append(f"objective_warmup_steps={args.objective_warmup_steps}: plain ce for every token until then")
    if args.loss_truncation:
        lines.append(f"loss_truncation={args.loss_truncation:g}: the highest-loss sequences of each micro-batch are "
                     f"not trained (after {args.loss_truncation_warmup_steps} steps)")
    weights = args.trace_weights()
    if weights is not None:
        lines.append(f"trace weights from column {weights.column!r}: each token's loss times its trace's weight")
    if hasattr(args, "distill_alpha"):
        lines.append(distill_line(args))
    return lines


def distill_line(args) -> str:
    """The distillation term with every setting that shapes it, and where the teacher comes from."""
    a, tau = args.distill_alpha, args.distill_temperature
    divergence = args.distill_divergence + (f"(beta={args.jsd_beta:g})" if args.distill_divergence == "jsd" else "")
    teacher = (f"cached top-{args.distill_top_k} in {args.teacher_cache_dir}" if args.cached
               else str(args.teacher_model_name_or_path))
    return (f"distillation: loss = (1 - {a:g})·objective + {a:g}·τ²·{divergence}(teacher ‖ student), τ = {tau:g}, "
            f"teacher_smoothing = {args.teacher_smoothing:g}; teacher: {teacher}")
