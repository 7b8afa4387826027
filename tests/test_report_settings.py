"""The sweep report of a sweep whose cells hold several settings: the "Every setting" section,
settings.csv, and the unchanged report of a sweep with one setting per cell."""

import csv
import json

import pytest
from rich.console import Console
from rich.table import Table

from vrnn_lightning.report import RunResult, markdown, rich_table, settings, write_report

SEEDS = (1, 2, 3)


def run(variant, seed, group, best_val, ll, dataset="fsdd"):
    """A finished run whose estimates are ll (ELBO), ll + 1 (IWAE) and ll + 2 (SMC)."""
    estimates = {"elbo": ll, "iwae": ll + 1, "smc": ll + 2, "paper_estimate": ll + 3}
    result = {e: {"per_sequence": v} for e, v in estimates.items()}
    result |= {"iw_samples": 40, "split": "test", "eval_full_sequences": True, "seq_len": 40}
    return RunResult(f"{variant}-{group}-{seed}", variant, dataset, seed, group, best_val, result)


def local_group(variant, objective):
    """A local sweep's group: its varied parameters apart from the seed."""
    return json.dumps({"model.variant": variant, "optim.objective": objective}, sort_keys=True)


def objectives_sweep():
    """vrnn_gauss trained with elbo (the better val/elbo: selected) and with fivo (10.1 to
    10.9 nats higher SMC per seed: resolved); rnn_gmm with both, exact LLs 1.0, -1.0, 2.0 apart."""
    results = []
    for s in SEEDS:
        results.append(run("vrnn_gauss", s, local_group("vrnn_gauss", "elbo"), -100.0, 1000.0 + s))
        fivo = 1010.0 + s + 0.1 * s * s
        results.append(run("vrnn_gauss", s, local_group("vrnn_gauss", "fivo"), -120.0 - s, fivo))
    for s, difference in zip(SEEDS, (1.0, -1.0, 2.0), strict=True):
        results.append(run("rnn_gmm", s, local_group("rnn_gmm", "elbo"), -200.0, 500.0 + s))
        results.append(
            run("rnn_gmm", s, local_group("rnn_gmm", "fivo"), -300.0, 500.0 + s + difference)
        )
    return results


def section(md: str) -> list[str]:
    lines = md.splitlines()
    return lines[lines.index("## Every setting") :]


def test_every_setting_is_listed_by_the_keys_that_differ_with_the_selected_one_marked():
    lines = section(markdown("objectives", objectives_sweep()))
    rows = [line for line in lines if line.startswith("| fsdd |")]
    assert rows[:4] == [
        "| fsdd | rnn_gmm | optim.objective=elbo | 1, 2, 3 | -200.0 | 502.0 ± 1.0 | selected |",
        "| fsdd | rnn_gmm | optim.objective=fivo | 1, 2, 3 | -300.0 | 502.7 ± 2.1 |  |",
        "| fsdd | vrnn_gauss | optim.objective=elbo | 1, 2, 3 | -100.0 | "
        "ELBO >= 1002.0 ± 1.0 / IWAE(40) >= 1003.0 ± 1.0 / SMC(40) >= 1004.0 ± 1.0 | selected |",
        "| fsdd | vrnn_gauss | optim.objective=fivo | 1, 2, 3 | -122.0 | "
        "ELBO >= 1012.5 ± 1.4 / IWAE(40) >= 1013.5 ± 1.4 / SMC(40) >= 1014.5 ± 1.4 |  |",
    ]
    # fivo - elbo per seed on SMC(40): 10.1, 10.4, 10.9; on rnn_gmm's exact LL: 1, -1, 2
    assert rows[4:] == [
        "| fsdd | rnn_gmm | optim.objective=fivo - optim.objective=elbo | exact log-likelihood "
        "| 3 | 0.7 | [-3.1, 4.5] | not resolved |",
        "| fsdd | vrnn_gauss | optim.objective=fivo - optim.objective=elbo | SMC(40) "
        "| 3 | 10.5 | [9.5, 11.5] | resolved, higher than the selected |",
    ]
    assert "SMC(K) for vrnn_*, the exact log-likelihood for rnn_*" in "\n".join(lines)
    # the main table still reports the selected setting
    table = markdown("t", objectives_sweep()).split("## Every setting")[0]
    assert "| vrnn_gauss | ELBO >= 1002.0 ± 1.0 / IWAE(40) >= 1003.0 ± 1.0" in table


def test_a_run_folders_nested_config_is_named_by_its_dotted_keys_that_differ():
    def group(lr, h_dim=8):
        config = {"model": {"variant": "vrnn_gmm", "h_dim": h_dim}, "optim": {"lr": lr}}
        return json.dumps(config, sort_keys=True)

    results = [run("vrnn_gmm", s, group(0.001), -10.0, 50.0 + s) for s in SEEDS]
    results += [run("vrnn_gmm", s, group(0.0003), -5.0, 40.0 + s) for s in SEEDS]
    rows = settings(results)
    assert [(r.name, r.selected) for r in rows] == [
        ("optim.lr=0.0003", True),
        ("optim.lr=0.001", False),
    ]
    assert rows[1].paired.differences == [10.0, 10.0, 10.0]
    # a group that is not a config (made by hand) is named as it is
    plain = [run("vrnn_gmm", s, g, v, 1.0) for s in SEEDS for g, v in (("a", 0.0), ("b", 1.0))]
    assert [r.name for r in settings(plain)] == ["setting=b", "setting=a"]
    # a setting run with other seeds than the selected one has nothing to pair
    plain += [run("vrnn_gmm", s, "c", -1.0, 1.0) for s in (7, 8)]
    assert (
        "| fsdd | vrnn_gmm | setting=c - setting=b | SMC(40) | 0 | – | – | not enough seeds |"
        in (markdown("t", plain).splitlines())
    )


def test_settings_csv_holds_the_same_rows_for_a_script(tmp_path):
    paths = write_report(tmp_path, "objectives", objectives_sweep())
    assert [p.name for p in paths] == ["table1.md", "table1.csv", "runs.csv", "settings.csv"]
    with open(tmp_path / "settings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["optim.objective"], r["selected"]) for r in rows] == [
        ("rnn_gmm", "elbo", "True"),
        ("rnn_gmm", "fivo", "False"),
        ("vrnn_gauss", "elbo", "True"),
        ("vrnn_gauss", "fivo", "False"),
    ]
    fivo = rows[3]
    assert float(fivo["smc_mean"]) == pytest.approx(1014.4667, abs=1e-4)
    assert fivo["seeds"] == "1 2 3" and fivo["paired_on"] == "smc"
    assert float(fivo["difference_mean"]) == pytest.approx(10.4667, abs=1e-4)
    assert float(fivo["difference_low"]) > 0 and fivo["verdict"].startswith("resolved, higher")
    assert rows[2]["verdict"] == "" and rows[0]["paired_on"] == ""
    assert rows[1]["paired_on"] == "elbo"


def test_the_console_shows_the_section_too():
    console = Console(width=250, record=True)
    console.print(rich_table("objectives", objectives_sweep()))
    out = console.export_text()
    assert "Every setting" in out and "resolved, higher than the selected" in out


# the report of a variants sweep (one setting per cell) before the settings section existed
ONE_SETTING_REPORT = """\
# variants

| model | fsdd |
| --- | ---: |
| rnn_gauss | – |
| rnn_gmm | 502.0 ± 1.0 |
| vrnn_gauss | ELBO >= 1002.0 ± 1.0 / IWAE(40) >= 1003.0 ± 1.0 / SMC(40) >= 1004.0 ± 1.0 |
| vrnn_gmm | – |
| vrnn_i_gauss | – |
| vrnn_i_gmm | – |

Average log-likelihood per sequence in nats (higher is better), mean ± std over seeds of each \
run's best val/elbo checkpoint. rnn_*: the exact log-likelihood. vrnn_*: ELBO >= / IWAE(K) >= / \
SMC(K) >= (SMC's a bound in expectation; the paper's '≈' used its per-step estimator, not a \
bound: paper_estimate in table1.csv).

- fsdd: test split, per whole sequence, K=40, 3 seed(s) per cell

## The paper's orderings, paired over seeds

ELBO per sequence (rnn_*: the exact log-likelihood), higher minus lower per seed: the mean over \
the seeds both ran, its 95% interval (Student's t), and whether the interval excludes 0.

| dataset | pair | seeds | mean difference | 95% interval | verdict |
| --- | --- | ---: | ---: | --- | --- |
| fsdd | vrnn_gauss - rnn_gmm | 3 | 500.0 | [500.0, 500.0] | resolved, as the paper |
"""


def test_a_sweep_with_one_setting_per_cell_reports_as_before(tmp_path):
    results = [
        run("vrnn_gauss", s, local_group("vrnn_gauss", "elbo"), -1.0, 1000.0 + s) for s in SEEDS
    ]
    results += [run("rnn_gmm", s, local_group("rnn_gmm", "elbo"), -2.0, 500.0 + s) for s in SEEDS]
    assert settings(results) == []
    assert markdown("variants", results) == ONE_SETTING_REPORT
    assert isinstance(rich_table("variants", results), Table)
    (tmp_path / "settings.csv").write_text("stale\n")  # of other runs reported here before
    paths = write_report(tmp_path, "variants", results)
    assert [p.name for p in paths] == ["table1.md", "table1.csv", "runs.csv"]
    assert not (tmp_path / "settings.csv").exists()
