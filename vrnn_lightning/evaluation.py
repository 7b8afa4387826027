"""Scoring a trained model: the log-likelihood of a split by every registered estimator, in
nats (vrnn_lightning/estimators.py: ELBO, IWAE(K), SMC(K), the paper's per-step estimate, with
K = eval.iw_samples; SMC resamples by eval.resampling below eval.ess_threshold * K).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames); SMC also
with how often it resampled. For the rnn_* variants there is no latent variable and all are
the exact log-likelihood. The K samples of a batch run as K * eval.batch_size rows at once.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .checkpoint import datamodule_for, device, load_checkpoint, run_dir
from .config import ConfigError
from .data.store import SPLITS
from .estimators import ESTIMATORS, Scoring, estimate_all
from .module import VRNNModule
from .smc import RESAMPLING


@torch.no_grad()
def evaluate(module: VRNNModule, cfg: DictConfig, console: Console | None = None) -> dict:
    """Every registered estimate over ``cfg.eval.split``: a dict as in the JSON."""
    split, k = cfg.eval.split, cfg.eval.iw_samples
    if split not in SPLITS:
        raise ConfigError(f"eval.split: '{split}' is not a split; valid: {', '.join(SPLITS)}")
    if k < 1:
        raise ConfigError(f"eval.iw_samples: {k}; it must be >= 1")
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size: {cfg.eval.batch_size}; it must be >= 1")
    if cfg.eval.resampling not in RESAMPLING:
        raise ConfigError(
            f"eval.resampling: '{cfg.eval.resampling}' is not one of {', '.join(RESAMPLING)}"
        )
    if not 0 <= cfg.eval.ess_threshold <= 1:
        raise ConfigError(
            f"eval.ess_threshold: {cfg.eval.ess_threshold}; a fraction of K in [0, 1]"
        )
    dm = datamodule_for(module, cfg, cfg.eval.batch_size)
    try:
        loader = dm.eval_dataloader(split)
    except KeyError as err:
        raise ConfigError(f"eval.split: {err.args[0]}") from None
    dev = device()
    model = module.model.to(dev).eval()
    model.compile = cfg.model.compile  # e.g. model.compile=true: a faster IWAE at large K
    torch.manual_seed(cfg.seed)  # the same z draws on every run

    totals = dict.fromkeys(ESTIMATORS, 0.0)
    # sequences whose estimate is not finite are counted and left out of the mean (one NaN
    # would make the whole figure NaN, and JSON has no NaN)
    nonfinite = dict.fromkeys(ESTIMATORS, 0)
    finite_frames = dict.fromkeys(ESTIMATORS, 0)
    n_sequences = n_frames = n_resampled = 0
    progress = Progress(
        TextColumn(f"{split} [progress.description]{{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("batches", total=len(loader))
        for batch in loader:
            x, mask = batch["x"].to(dev), batch["mask"].to(dev)
            # K samples (particles) of each sequence run as one batch of K * B rows
            scoring = Scoring(model, x, mask, k, cfg.eval.resampling, cfg.eval.ess_threshold)
            estimates = estimate_all(scoring)
            frames = mask.sum(1)
            for name, est in estimates.items():
                values = est.per_sequence.double()
                ok = torch.isfinite(values)
                totals[name] += values[ok].sum().item()
                nonfinite[name] += int((~ok).sum())
                finite_frames[name] += int(frames[ok].sum())
            if estimates["smc"].n_resampled is not None:  # None: rnn_*, nothing to resample
                n_resampled += int(estimates["smc"].n_resampled.sum())
            n_sequences += x.shape[0]
            n_frames += int(mask.sum())
            progress.advance(task)
    if n_sequences == 0:
        raise ConfigError(f"eval.split: the {split} split of {cfg.data.dataset} is empty")

    result = {
        name: {
            "per_sequence": _mean(totals[name], n_sequences - nonfinite[name]),
            "per_frame": _mean(totals[name], finite_frames[name]),
            "nonfinite_sequences": nonfinite[name],
        }
        for name in ESTIMATORS
    }
    # how often SMC resampled: per sequence, and as a fraction of the frames
    result["smc"].update(
        resampled_per_sequence=n_resampled / n_sequences,
        resampling_rate=n_resampled / n_frames,
        resampling=cfg.eval.resampling,
        ess_threshold=cfg.eval.ess_threshold,
    )
    result.update(
        n_sequences=n_sequences,
        n_frames=n_frames,
        variant=cfg.model.variant,
        dataset=cfg.data.dataset,
        split=split,
        iw_samples=k,
        # what a "sequence" is: a whole one, or a window of data.seq_len frames
        eval_full_sequences=bool(cfg.data.eval_full_sequences),
        seq_len=cfg.data.seq_len,
    )
    return result


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None  # None (JSON null): every sequence was non-finite


def evaluate_checkpoint(
    ckpt: str | Path,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    console: Console | None = None,
    show: Callable[[dict], None] | None = None,
) -> tuple[dict, Path]:
    """Evaluate a vrnn-fit checkpoint with ``overrides`` applied to its run config and write the
    result as JSON to ``out`` (default <run folder>/eval_<split>.json); returns (result, out).
    ``out`` is checked before the evaluation, and ``show`` is given the result before it is
    written, so a failed write never loses a finished evaluation.
    ConfigError or CorpusError when the checkpoint, the settings or the data are unusable."""
    module, cfg = load_checkpoint(ckpt, list(overrides or []))
    out = Path(out) if out else run_dir(ckpt, cfg) / f"eval_{cfg.eval.split}.json"
    check_writable(out)
    result = evaluate(module, cfg, console)
    result["checkpoint"] = str(ckpt)
    if show is not None:
        show(result)
    try:
        out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    except OSError as err:
        raise ConfigError(f"--out: cannot write {out} ({err.strerror})") from None
    return result, out


def check_writable(out: Path) -> None:
    """ConfigError unless a file can be written at ``out`` (its folder is made if need be)."""
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a folder; give a file name, e.g. {out}/eval.json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=True):
            pass
    except OSError as err:
        raise ConfigError(f"--out: cannot write {out} ({err.strerror or err})") from None
