"""Statistics across seeds: means, 95% confidence intervals, tests against a baseline.

Seeds are few (3 to 5), so intervals use Student's t, not a normal
approximation, and comparisons use Welch's t-test (no equal-variance
assumption). A single seed has a mean but no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from scipy.special import stdtr, stdtrit  # Student's t CDF and its inverse (scipy.stats is slow to import)


@dataclass(frozen=True)
class Summary:
    mean: float
    half_width: float  # of the 95% interval; nan with fewer than two values
    n: int
    std: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def format(self, scale: float = 100.0, digits: int = 2) -> str:
        """'98.91 ± 0.12 (n=3)' in percent by default; no interval for one seed."""
        if self.n == 0:
            return "–"
        if math.isnan(self.half_width):
            return f"{self.mean * scale:.{digits}f} (n={self.n})"
        return f"{self.mean * scale:.{digits}f} ± {self.half_width * scale:.{digits}f} (n={self.n})"


def summarize(values: Iterable[float], confidence: float = 0.95) -> Summary:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan)
    if n == 1:
        return Summary(float(x[0]), math.nan, 1, math.nan)
    std = float(x.std(ddof=1))
    half = float(stdtrit(n - 1, 0.5 + confidence / 2) * std / math.sqrt(n))
    return Summary(float(x.mean()), half, n, std)


def prediction_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Where one more run would fall with probability `confidence`, from these runs (Student's t:
    mean ± t·s·sqrt(1 + 1/n)); (nan, nan) with fewer than two values."""
    s = summarize(values)
    if s.n < 2:
        return math.nan, math.nan
    half = float(stdtrit(s.n - 1, 0.5 + confidence / 2) * s.std * math.sqrt(1 + 1 / s.n))
    return s.mean - half, s.mean + half


def reproduced(values: Iterable[float], published: float) -> str:
    """Whether a published single run is what one more run of ours could give: inside the 95%
    prediction interval of our seeds ("yes"), outside it ("**no**"), or "–" below two seeds."""
    low, high = prediction_interval(values)
    if math.isnan(low):
        return "–"
    where = f"95% prediction interval {100 * low:.2f} to {100 * high:.2f}"
    return f"yes ({where})" if low <= published <= high else f"**no** ({where})"


def welch_p(a: Iterable[float], b: Iterable[float]) -> float:
    """Two-sided p-value of Welch's t-test; nan when either side has fewer than two values.
    When both sides are constant the test is undefined: 1 if they are equal, 0 if not."""
    a = np.asarray([v for v in a if v is not None], dtype=float)
    b = np.asarray([v for v in b if v is not None], dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.std() == 0 and b.std() == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(2 * stdtr(df, -abs(t)))


def welch_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> Summary:
    """mean(a) - mean(b) with the half-width of its `confidence` interval from Welch's t (the
    Welch-Satterthwaite degrees of freedom, as `welch_p` uses); n is the smaller sample's size.
    The half-width is nan when either side has fewer than two values."""
    return contrast([a, b], [1, -1], confidence)[0]


def interaction(a: Iterable[float], b: Iterable[float], c: Iterable[float], d: Iterable[float],
                confidence: float = 0.95) -> tuple[Summary, float]:
    """(mean(a) - mean(b)) - (mean(c) - mean(d)), four independent samples: how much one
    difference exceeds another (a change's worth in one setting against its worth in another),
    with its `confidence` interval and two-sided p (`contrast`)."""
    return contrast([a, b, c, d], [1, -1, -1, 1], confidence)


def contrast(samples: Sequence[Iterable[float]], signs: Sequence[float],
             confidence: float = 0.95) -> tuple[Summary, float]:
    """sum(sign * mean) over independent samples, with the half-width of its `confidence` interval
    and the two-sided p of "it is zero", from Student's t on the Welch-Satterthwaite degrees of
    freedom (Welch's test for two samples); n is the smallest sample's size. Half-width and p are
    nan when a sample has fewer than two values; with no spread at all the half-width is 0 and p is
    1 for a zero contrast, else 0."""
    xs = [np.asarray([v for v in x if v is not None], dtype=float) for x in samples]
    n = min(len(x) for x in xs)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan), math.nan
    value = float(sum(s * x.mean() for s, x in zip(signs, xs)))
    if n < 2:
        return Summary(value, math.nan, n, math.nan), math.nan
    var = [s * s * x.var(ddof=1) / len(x) for s, x in zip(signs, xs)]
    se = math.sqrt(sum(var))
    if se == 0:
        return Summary(value, 0.0, n, 0.0), 1.0 if value == 0 else 0.0
    df = sum(var) ** 2 / sum(v * v / (len(x) - 1) for v, x in zip(var, xs))
    return (Summary(value, float(stdtrit(df, 0.5 + confidence / 2) * se), n, se),
            float(2 * stdtr(df, -abs(value) / se)))
