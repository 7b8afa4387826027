"""Paired comparisons over seeds: is the difference between two variants resolved?

Two variants run with the same seed share the data order and the split, so the difference of
their scores per seed is the unit of evidence. For each pair the paper orders (each VRNN
above RNN-GMM; VRNN-Gauss above VRNN-I-Gauss), a comparison gives the mean difference over
the seeds both have, its 95% confidence interval by Student's t, and whether that interval
excludes 0 ("resolved"). With 3 seeds a difference must be 4.3 standard errors from 0 to be
resolved, with 5 seeds 2.8.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

# the orderings Table 1 shows: (expected higher, expected lower)
PAPER_PAIRS = (
    ("vrnn_gmm", "rnn_gmm"),
    ("vrnn_gauss", "rnn_gmm"),
    ("vrnn_i_gauss", "rnn_gmm"),
    ("vrnn_i_gmm", "rnn_gmm"),
    ("vrnn_gauss", "vrnn_i_gauss"),
)
# the questions of the work since (issue 25): Dai et al.'s claim that a within-frame head on a
# plain RNN beats the VRNN; what that head adds to the VRNN; SRNN against the VRNN
LATER_PAIRS = (
    ("rnn_gmm (autoregressive)", "vrnn_gmm"),
    ("vrnn_gmm (autoregressive)", "vrnn_gmm"),
    ("srnn_gmm", "vrnn_gmm"),
    ("srnn_gauss", "vrnn_gauss"),
)
# two-sided 95% quantiles of Student's t by degrees of freedom (beyond 30: 30's, conservative)
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


@dataclass
class Paired:
    higher: str  # what the paper expects to score higher
    lower: str
    seeds: list[int]  # the seeds both have
    differences: list[float]  # higher - lower, per seed

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences) if self.differences else math.nan

    @property
    def half_width(self) -> float:
        """Half the 95% confidence interval of the mean difference; nan under 2 seeds."""
        if self.n < 2:
            return math.nan
        se = statistics.stdev(self.differences) / math.sqrt(self.n)
        return T_975[min(self.n - 1, len(T_975)) - 1] * se

    @property
    def direction(self) -> int | None:
        """+1 or -1: the interval excludes 0 with the mean above or below it; 0: it does not;
        None under 2 seeds."""
        if self.n < 2:
            return None
        if abs(self.mean) <= self.half_width:
            return 0
        return 1 if self.mean > 0 else -1

    @property
    def verdict(self) -> str:
        return {
            None: "not enough seeds",
            0: "not resolved",
            1: "resolved, as the paper",
            -1: "resolved, against the paper",
        }[self.direction]


def compare(higher: Mapping[int, float], lower: Mapping[int, float], names=("a", "b")) -> Paired:
    """The paired comparison of two {seed: score} maps over the seeds both have."""
    seeds = sorted(set(higher) & set(lower))
    return Paired(*names, seeds, [higher[s] - lower[s] for s in seeds])


def paper_pairs(scores: Mapping[str, Mapping[int, float]]) -> list[Paired]:
    """Every pair of PAPER_PAIRS and LATER_PAIRS whose two models have scores ({model row:
    {seed: score}})."""
    pairs = PAPER_PAIRS + LATER_PAIRS
    return [compare(scores[a], scores[b], (a, b)) for a, b in pairs if a in scores and b in scores]


def interval(p: Paired) -> str:
    """The 95% interval of the mean difference as text; "–" under 2 seeds."""
    if math.isnan(p.half_width):
        return "–"
    return f"[{p.mean - p.half_width:.1f}, {p.mean + p.half_width:.1f}]"


def row(p: Paired) -> list[str]:
    """higher - lower | seeds | mean difference | 95% interval | verdict, as table cells."""
    return [f"{p.higher} - {p.lower}", str(p.n), f"{p.mean:.1f}", interval(p), p.verdict]
