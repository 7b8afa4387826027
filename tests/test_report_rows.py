"""Table 1 beyond the paper's six rows: one row per model and output head (SRNN, the
autoregressive head), and the later work's questions among the paired comparisons."""

import csv

from vrnn_lightning.paired import paper_pairs
from vrnn_lightning.report import (
    RunResult,
    markdown,
    model_row,
    model_rows,
    row_variant,
    write_csv,
)
from vrnn_lightning.variant import VARIANTS

SEEDS = (1, 2, 3)


def run(row, seed, ll):
    estimates = {"elbo": ll, "iwae": ll + 1, "smc": ll + 2, "paper_estimate": ll + 3}
    result = {e: {"per_sequence": v} for e, v in estimates.items()}
    result |= {"iw_samples": 40, "split": "test", "eval_full_sequences": True, "seq_len": 40}
    return RunResult(f"{row}-{seed}", row, "fsdd", seed, "g", ll, result)


def test_a_row_names_the_variant_and_a_head_other_than_the_papers():
    assert model_row("rnn_gmm") == model_row("rnn_gmm", None) == "rnn_gmm"
    ar = model_row("rnn_gmm", "autoregressive")
    assert ar == "rnn_gmm (autoregressive)" and row_variant(ar) == "rnn_gmm"


def test_later_models_get_rows_after_the_papers_six_and_their_pairs():
    rows = ["vrnn_gmm", "rnn_gmm (autoregressive)", "srnn_gmm", "vrnn_gmm (autoregressive)"]
    results = [run(r, s, 100.0 * i + s + 0.1 * s * s) for i, r in enumerate(rows) for s in SEEDS]
    order = model_rows(results)
    # the paper's six, then by variant (the paper's order, then SRNN), the paper's head first
    later = ["rnn_gmm (autoregressive)", "vrnn_gmm (autoregressive)", "srnn_gmm"]
    assert order == [*VARIANTS, *later]
    md = markdown("t", results)
    table = [line for line in md.splitlines() if line.startswith("| ")][1:]  # the header aside
    assert [line.split("|")[1].strip() for line in table[1 : len(order) + 1]] == order
    rnn_ar = next(line for line in table if line.startswith("| rnn_gmm (autoregressive) "))
    assert ">=" not in rnn_ar  # an rnn_* row with any head: the exact log-likelihood
    srnn = next(line for line in table if line.startswith("| srnn_gmm "))
    assert "ELBO >=" in srnn and "SMC(40) >=" in srnn
    scores = {r: {1: 0.0} for r in rows}
    assert [(p.higher, p.lower) for p in paper_pairs(scores)] == [
        ("rnn_gmm (autoregressive)", "vrnn_gmm"),
        ("vrnn_gmm (autoregressive)", "vrnn_gmm"),
        ("srnn_gmm", "vrnn_gmm"),
    ]
    assert "| fsdd | srnn_gmm - vrnn_gmm | 3 |" in md


def test_the_csv_has_a_row_per_model_and_head(tmp_path):
    results = [run(r, 1, 10.0) for r in ("vrnn_gmm", "vrnn_gmm (autoregressive)", "srnn_gauss")]
    write_csv(tmp_path / "t.csv", results)
    with open(tmp_path / "t.csv", newline="") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == [
            "vrnn_gmm", "vrnn_gmm (autoregressive)", "srnn_gauss",
        ]  # fmt: skip
