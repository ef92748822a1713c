"""Side-by-side timing: interleaved rounds of several cases in one process, and robust summaries of them.

Absolute times on a shared machine drift with other processes' load, so every benchmark here times
all the cases it compares in the same *round*, rotating their order from round to round, and reports
per-round ratios summarised by their median and range. Drift that is slower than a round cancels in
the ratio; the range shows what did not cancel.

Each measurement is `number` calls between two `time.perf_counter()` readings, with the accelerator
synchronised before both. (`torch.utils.benchmark.Timer.timeit` would add at least two untimed calls of
its own to every measurement, tripling the cost of second-long training steps, and it knows nothing of
interleaving; the warm-up here is explicit and done once.)
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

Case = Callable[[], object]


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_calls(fn: Case, number: int = 1) -> float:
    """Mean seconds per call over `number` consecutive calls of `fn`, queued GPU work included."""
    _sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _sync()
    return (time.perf_counter() - start) / number


def interleaved_rounds(
    cases: Mapping[str, Case], rounds: int, warmup: int = 1, number: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of every case, one value per round; warm-up calls are excluded.

    Each case is first called `warmup` times (in turn, so every case sees a warm machine). Then for
    every round the cases run in an order rotated by one from the previous round, each timed over
    `number` consecutive calls (the value is the mean of those calls).
    """
    if rounds < 1 or number < 1 or warmup < 0:
        raise ValueError(f"rounds and number must be >= 1 and warmup >= 0, got {rounds}, {number}, {warmup}")
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(time_calls(cases[name], number))
    return times


@dataclass(frozen=True)
class Spread:
    """Median, interquartile range and full range of per-round values (times or ratios).

    `fmt()` shows the median and the interquartile range (the middle half of the rounds); min and max
    are kept in the JSON: on a shared machine one round hit by another process's burst sets them.
    """

    median: float
    low: float
    high: float
    n: int
    q1: float | None = None
    q3: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if not values:
            raise ValueError("no values to summarise")
        values = list(values)
        if len(values) > 1:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        return cls(statistics.median(values), min(values), max(values), len(values), q1, q3)

    @classmethod
    def from_dict(cls, data: dict) -> "Spread":
        return cls(data["median"], data["min"], data["max"], data.get("n", 0), data.get("q1"), data.get("q3"))

    def scaled(self, factor: float) -> "Spread":
        """Every statistic multiplied by `factor` (e.g. seconds -> ms, speedup -> speedup/theoretical)."""

        def scale(value: float | None) -> float | None:
            return None if value is None else value * factor

        return Spread(
            self.median * factor, self.low * factor, self.high * factor, self.n, scale(self.q1), scale(self.q3)
        )

    @property
    def relative_range(self) -> float:
        """(high - low) / median: how much the rounds disagreed."""
        return (self.high - self.low) / self.median if self.median else math.inf

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.low, "max": self.high, "n": self.n}

    def fmt(self, digits: int = 3) -> str:
        """'median [q1-q3]' (the interquartile range of the rounds)."""
        q1 = self.low if self.q1 is None else self.q1
        q3 = self.high if self.q3 is None else self.q3
        return f"{self.median:.{digits}f} [{q1:.{digits}f}-{q3:.{digits}f}]"


def per_round_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """numerator[r] / denominator[r] for every round r (both measured in the same rounds)."""
    if len(numerator) != len(denominator):
        raise ValueError(f"{len(numerator)} vs {len(denominator)} rounds")
    return [n / d for n, d in zip(numerator, denominator)]
