"""How sure a number is: intervals over seeds, one evaluation's own sampling error, and how a difference reads.

- Over seeds (several pretrainings per arm): the mean with its two-sided Student-t interval, and a difference
  paired by seed (`seed_difference`), whose interval is the t-interval of the per-seed differences.
- Within one evaluation (one seed): top-1 over N validation images has the binomial error sqrt(p(1-p)/N);
  AP and mIoU have the spread of their bootstrap draws over the test images (`tools/test.py --bootstrap`).
  Two runs tested on the same images with the same draws pair draw by draw (`sampling_difference`).
A difference reads "within noise" when its 95% interval holds 0, else "<arm> better by d [lo, hi]".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def t_quantile(degrees: int, level: float = 0.95) -> float:
    """The two-sided Student-t quantile (scipy's)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, degrees))


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval and what the interval comes from ('seeds', 'sampling' or 'none')."""

    value: float
    low: float
    high: float
    basis: str
    n: int = 1

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self, decimals: int = 1) -> str:
        if self.basis == "none":
            return f"{self.value:.{decimals}f}"
        return f"{self.value:.{decimals}f} [{self.low:.{decimals}f}, {self.high:.{decimals}f}]"


def mean_interval(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean over seeds with its Student-t interval (no interval from one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Estimate(mean, mean, mean, "none", len(values))
    half = t_quantile(len(values) - 1, level) * statistics.stdev(values) / math.sqrt(len(values))
    return Estimate(mean, mean - half, mean + half, "seeds", len(values))


def seed_difference(candidate: Sequence[float], reference: Sequence[float], level: float = 0.95) -> Estimate:
    """candidate - reference, paired by seed (same order), with the t-interval of the per-seed differences."""
    if len(candidate) != len(reference):
        raise ValueError(f"{len(candidate)} candidate seeds against {len(reference)} reference seeds")
    return mean_interval([c - r for c, r in zip(candidate, reference)], level)


def binomial_se(percent: float, images: int) -> float:
    """Standard error (percent points) of an accuracy of `percent` measured on `images` images."""
    p = percent / 100
    return 100 * math.sqrt(max(p * (1 - p), 0.0) / images)


def draws_se(draws: Sequence[float]) -> float:
    """Standard error of a metric from its bootstrap draws (the draws' standard deviation)."""
    return statistics.stdev(draws) if len(draws) >= 2 else 0.0


def sampling_difference(
    candidate: float,
    reference: float,
    candidate_se: float,
    reference_se: float,
    paired_se: float | None = None,
) -> Estimate:
    """candidate - reference of one evaluation each, with a normal 95% interval.

    `paired_se` (from draw-by-draw differences on the same test images) replaces the independent
    sqrt(se_a^2 + se_b^2), which overstates the error when both were tested on the same images.
    """
    se = paired_se if paired_se is not None else math.hypot(candidate_se, reference_se)
    value = candidate - reference
    return Estimate(value, value - Z95 * se, value + Z95 * se, "sampling")


def reading(difference: Estimate, candidate: str, reference: str, decimals: int = 1) -> str:
    """'within noise', or '<better arm> better by d [lo, hi]' (the interval of the better arm's lead)."""
    if difference.basis == "none":
        return "no interval (one seed and no sampling error)"
    if not difference.excludes_zero():
        return "within noise"
    if difference.value > 0:
        d, lo, hi = difference.value, difference.low, difference.high
        better = candidate
    else:
        d, lo, hi = -difference.value, -difference.high, -difference.low
        better = reference
    return f"{better} better by {d:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"
