"""Paired comparisons over seeds, and the report's section of them."""

import math

import pytest

from vrnn_lightning.paired import compare, paper_pairs, row
from vrnn_lightning.report import Cell, RunResult, paired_section


def test_a_consistent_difference_is_resolved_and_noise_is_not():
    higher = {1: 105.0, 2: 98.0, 3: 111.0, 4: 100.0}
    lower = {1: 100.0, 2: 94.0, 3: 106.0, 4: 96.0, 9: 0.0}  # seed 9 has no partner
    p = compare(higher, lower, ("vrnn_gmm", "rnn_gmm"))
    assert p.seeds == [1, 2, 3, 4] and p.differences == [5.0, 4.0, 5.0, 4.0]
    # t(3) = 3.182, sd 0.577, se 0.289: 4.5 +- 0.92
    assert p.half_width == pytest.approx(3.182 * 0.57735 / 2, rel=1e-4)
    assert p.verdict == "resolved, as the paper"
    assert row(p) == ["vrnn_gmm - rnn_gmm", "4", "4.5", "[3.6, 5.4]", "resolved, as the paper"]
    # the same mean difference with a large spread over seeds: not resolved
    noisy = compare({1: 20.0, 2: -8.0, 3: 9.0, 4: -3.0}, {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0})
    assert noisy.mean == 4.5 and noisy.verdict == "not resolved"
    against = compare({1: 1.0, 2: 2.0, 3: 3.0}, {1: 5.0, 2: 7.0, 3: 7.0})
    assert against.verdict == "resolved, against the paper"
    one = compare({1: 1.0}, {1: 0.0})
    assert math.isnan(one.half_width) and one.verdict == "not enough seeds"


def test_the_pairs_the_paper_orders():
    scores = {v: {1: 0.0} for v in ("rnn_gmm", "vrnn_gmm", "vrnn_gauss", "vrnn_i_gauss")}
    pairs = [(p.higher, p.lower) for p in paper_pairs(scores)]
    assert pairs == [
        ("vrnn_gmm", "rnn_gmm"),
        ("vrnn_gauss", "rnn_gmm"),
        ("vrnn_i_gauss", "rnn_gmm"),
        ("vrnn_gauss", "vrnn_i_gauss"),
    ]


def test_the_report_lists_them_per_dataset():
    def run(variant, seed, elbo):
        return RunResult(f"{variant}{seed}", variant, "fsdd", seed, "g", 0.0,
                         {"elbo": {"per_sequence": elbo}})  # fmt: skip

    seeds = (1, 2, 3)
    table = {
        ("rnn_gmm", "fsdd"): Cell([run("rnn_gmm", s, 100.0 + s) for s in seeds]),
        ("vrnn_gmm", "fsdd"): Cell([run("vrnn_gmm", s, 110.0 + s + 0.1 * s * s) for s in seeds]),
    }
    lines = paired_section(table, ["fsdd"])
    assert lines[-1].startswith("| fsdd | vrnn_gmm - rnn_gmm | 3 | 10.5 | [")
    assert lines[-1].endswith("| resolved, as the paper |")
    assert paired_section({}, ["fsdd"]) == []
