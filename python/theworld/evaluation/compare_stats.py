"""The statistics of `theworld.evaluation.compare`: accuracies and paired deltas with their 95% intervals.

All 95%, z = 1.959964:
- one accuracy: the Wilson score interval (Wilson 1927; Newcombe 1998a method 3), good at small n and near 0 / 1;
- a model minus the baseline: on the items BOTH runs scored (matched by item id), Newcombe's hybrid-score interval
  for paired proportions (Newcombe 1998b, "Improved confidence intervals for the difference between binomial
  proportions based on paired data", Stat Med 17:2635, method 10), with the correlation estimate of Fagerland,
  Lydersen & Laake (2017, "Statistical Analysis of Contingency Tables", ch. 8), who recommend it for small and
  moderate samples. It is closed-form and deterministic (no resampling seed), stays in [-1, 1], and unlike a Wald
  interval does not collapse to zero width when all discordant items go one way. It agrees with a paired bootstrap
  over item ids at a few hundred items (tested). A delta whose interval excludes 0 is marked with `*`.

`accuracy`, `paired_delta` and `coverage` apply them to runs (`theworld.evaluation.compare.Run`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from theworld.evaluation.compare import Run

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion `correct / n` (NaNs for n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(
    both: int, only_new: int, only_base: int, neither: int, z: float = Z95
) -> tuple[float, float, float]:
    """(estimate, low, high) of p_new - p_base on paired binary outcomes (see the module docstring).

    `both` items right in both runs, `only_new` right only in the new run, `only_base` right only in the baseline,
    `neither` wrong in both. NaNs when there are no items."""
    n = both + only_new + only_base + neither
    if n == 0:
        return math.nan, math.nan, math.nan
    p_new, p_base = (both + only_new) / n, (both + only_base) / n
    estimate = p_new - p_base
    low_new, high_new = wilson_interval(both + only_new, n, z)
    low_base, high_base = wilson_interval(both + only_base, n, z)
    margins = (both + only_new) * (only_base + neither) * (both + only_base) * (only_new + neither)
    cross = both * neither - only_new * only_base
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:  # Fagerland et al.'s continuity-corrected phi for positive association, plain phi for negative
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    d_low, d_high = p_new - low_new, high_base - p_base
    u_low, u_high = p_base - low_base, high_new - p_new
    low = estimate - math.sqrt(max(0.0, d_low**2 - 2 * phi * d_low * d_high + d_high**2))
    high = estimate + math.sqrt(max(0.0, u_low**2 - 2 * phi * u_low * u_high + u_high**2))
    return estimate, max(-1.0, low), min(1.0, high)


@dataclass
class Estimate:
    """A value with its 95% interval over `n` items (NaNs when n = 0); `excludes_zero` only matters for deltas."""

    value: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 0 and (self.low > 0 or self.high < 0)


@dataclass
class Coverage:
    """Items of the baseline missing from a run and vice versa, and items scored by only one of the two."""

    only_baseline: list[str] = field(default_factory=list)
    only_run: list[str] = field(default_factory=list)
    scored_by_one: list[str] = field(default_factory=list)


def accuracy(run: Run, group: str | None = None) -> Estimate:
    """Accuracy of `run` over its scored items (of `group`), with the Wilson interval."""
    outcomes = [ok for i, ok in run.scored().items() if group is None or run.group_of(i) == group]
    low, high = wilson_interval(sum(outcomes), len(outcomes))
    return Estimate(sum(outcomes) / len(outcomes) if outcomes else math.nan, low, high, len(outcomes))


def paired_delta(run: Run, baseline: Run, group: str | None = None) -> Estimate:
    """run - baseline accuracy on the items both scored (of `group`, by the baseline's grouping)."""
    mine, theirs = run.scored(), baseline.scored()
    common = [i for i in theirs if i in mine and (group is None or baseline.group_of(i) == group)]
    pairs = [(mine[i], theirs[i]) for i in common]
    # (run, baseline) right/wrong → both right, only the run right, only the baseline right, neither
    table = [pairs.count(outcome) for outcome in ((True, True), (True, False), (False, True), (False, False))]
    value, low, high = paired_difference_interval(*table)
    return Estimate(value, low, high, len(common))


def coverage(run: Run, baseline: Run) -> Coverage:
    mine, theirs = run.scored(), baseline.scored()
    return Coverage(
        only_baseline=[i for i in baseline.records if i not in run.records],
        only_run=[i for i in run.records if i not in baseline.records],
        scored_by_one=[i for i in baseline.records if i in run.records and (i in mine) != (i in theirs)],
    )
