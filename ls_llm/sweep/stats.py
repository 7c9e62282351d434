"""Statistics of a sweep's rows over seeds: groupings, mean ± std, and paired comparisons (the mean difference
and its 95% confidence interval, paired t).

Cells of one seed share the initialisation, the data order and the corrupted traces, so a method is compared with
the reference variant seed by seed: d_s = metric(method, s) - metric(reference, s), and the interval is
mean(d) ± t_{0.975, n-1} · sd(d) / sqrt(n). The primary endpoint of the second study (docs/results.md) averages
d_s over the noisy rates of a noise type before the interval is taken.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ls_llm.sweep.config import REFERENCE_NOISE

# Two-sided 95% quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard tables; checked against scipy in
# tests/sweep/test_second_study.py). Beyond 30 degrees of freedom the normal quantile's error is below 4%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """t_{0.975, df}: the 95% two-sided quantile of Student's t with `df` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    return _T975[df - 1] if df <= len(_T975) else 1.960


def paired_ci(diffs: list[float]) -> tuple[float, float | None]:
    """(mean, half-width of the 95% paired-t interval); the half-width is None for fewer than 2 pairs."""
    if not diffs:
        raise ValueError("paired_ci needs at least one difference")
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    return mean, t975(n - 1) * sd / math.sqrt(n)


def verdict(mean: float, half: float | None) -> str:
    """"helps" / "hurts" when the interval excludes 0, "not detected" when it covers 0, "—" without one."""
    if half is None:
        return "—"
    if mean - half > 0:
        return "helps"
    if mean + half < 0:
        return "hurts"
    return "not detected"


def endpoint_diffs(rows: list[dict], references: dict[str, str], expected: dict[tuple[str, str], tuple[float, ...]],
                   *, metric: str = "test_acc") -> dict[tuple[str, str], dict[int, float]]:
    """(variant, noise type) -> seed -> the variant's gain over its reference (`references[variant]`), averaged over
    the noisy rates the sweep runs it at (`expected[(variant, noise type)]`, rates > 0). A seed counts only where
    every one of those rates is paired: a seed (or a whole entry) with a rate missing is left out, never averaged
    over fewer rates."""
    value = {(r["variant"], r["noise_type"], r["noise_rho"], r["seed"]): r[metric] for r in rows}
    seeds = sorted({s for *_, s in value})
    out: dict[tuple[str, str], dict[int, float]] = {}
    for (variant, noise_type), all_rates in expected.items():
        # rate 0 is clean data, except on a traces sweep's reference axis (the traces carry the teacher's errors)
        reference, rates = references.get(variant), [r for r in all_rates if r > 0 or noise_type == REFERENCE_NOISE]
        if reference is None or reference == variant or not rates:
            continue
        per_seed = {}
        for seed in seeds:
            pairs = [(value.get((variant, noise_type, r, seed)), value.get((reference, noise_type, r, seed)))
                     for r in rates]
            if all(a is not None and b is not None for a, b in pairs):
                per_seed[seed] = sum(a - b for a, b in pairs) / len(pairs)
        if per_seed:
            out[(variant, noise_type)] = per_seed
    return out


def format_ci(mean: float, half: float | None, *, scale: float = 100.0) -> str:
    """`+2.3 [−0.4, +5.0]` (points), or `+2.3 (n=1)` without an interval."""
    if half is None:
        return f"{mean * scale:+.1f} (n=1)"
    return f"{mean * scale:+.1f} [{(mean - half) * scale:+.1f}, {(mean + half) * scale:+.1f}]"


def mean_ci_cell(values: list[float] | None, scale: float, expected: int) -> str:
    """`mean [95% t interval]` over seeds (`mean (n=1)` for one seed; `(n=k)` when fewer than expected)."""
    if not values:
        return "—"
    mean, half = paired_ci(values)  # a one-sample t interval of the mean: the same formula
    if half is None:
        return f"{mean * scale:.1f} (n=1)"
    text = f"{mean * scale:.1f} [{(mean - half) * scale:.1f}, {(mean + half) * scale:.1f}]"
    return text if len(values) == expected else f"{text} (n={len(values)})"


def gain_ci_cell(diffs: list[float], n_seeds: int) -> str:
    """`+2.3 [−0.4, +5.0]` over seeds, in points (`(n=k)` when fewer than n_seeds); `—` without any."""
    if not diffs:
        return "—"
    text = format_ci(*paired_ci(diffs))
    return text if len(diffs) == n_seeds or len(diffs) == 1 else f"{text} (n={len(diffs)})"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def grid(rows: list[dict], metric: str) -> dict[str, dict[float, list[float]]]:
    """variant -> noise rate -> the metric over seeds."""
    out: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        out[row["variant"]][row["noise_rho"]].append(row[metric])
    return out


STUDENT_ALONE_LABEL = "none (student trained alone)"


def student_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Teacher variant (or STUDENT_ALONE_LABEL) -> the student cells over seeds, teachers first."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["kind"] == "student"):
        if row["kind"] in ("distill", "student"):
            groups[row["variant"] if row["kind"] == "distill" else STUDENT_ALONE_LABEL].append(row)
    return groups


def paired_t_pvalue(diffs: list[float]) -> float:
    """Two-sided p of the paired t-test of mean(diffs) = 0 (1.0 when every difference is equal). Needs scipy (the
    `dev` extra): the studies' reading scripts use it, the package does not."""
    if len(diffs) < 2:
        raise ValueError(f"a paired t-test needs at least 2 differences, got {len(diffs)}")
    try:
        from scipy import stats as scipy_stats
    except ImportError as exc:  # pragma: no cover - dev extra
        raise RuntimeError("p-values need scipy: pip install -e '.[dev]'") from exc
    n, (mean, _) = len(diffs), paired_ci(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * scipy_stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))


def holm(pvalues: dict[str, float], alpha: float = 0.05) -> dict[str, bool]:
    """Holm's step-down rule: sorted by p, the k-th smallest (k = 0, 1, ...) is rejected when p <= alpha / (m - k)
    and every smaller one was; testing stops at the first that is not."""
    rejected: dict[str, bool] = {}
    m, going = len(pvalues), True
    for k, name in enumerate(sorted(pvalues, key=lambda n: (pvalues[n], n))):
        going = going and pvalues[name] <= alpha / (m - k)
        rejected[name] = going
    return rejected


def holm_family(diffs: dict[str, list[float]], alpha: float = 0.05) -> dict[str, tuple[float | None, str]]:
    """A pre-registered family of paired comparisons (name -> differences over seeds): per name (p, verdict). Holm
    over the family's paired t-tests: "helps" / "hurts" (rejected, by the mean's sign) or "not detected"; a member
    with fewer than 2 differences has no test ("too few seeds", p None), and then no verdict is read for any
    ("not read (family incomplete)"): Holm's levels assume the whole family."""
    pvalues = {name: paired_t_pvalue(d) for name, d in diffs.items() if len(d) >= 2}
    complete = len(pvalues) == len(diffs)
    rejected = holm(pvalues, alpha) if complete else {}
    out = {}
    for name, d in diffs.items():
        if name not in pvalues:
            out[name] = (None, "too few seeds")
        elif not complete:
            out[name] = (pvalues[name], "not read (family incomplete)")
        elif rejected[name]:
            out[name] = (pvalues[name], "helps" if sum(d) > 0 else "hurts")
        else:
            out[name] = (pvalues[name], "not detected")
    return out
