"""Scoring a trained model: the log-likelihood of a split by every registered estimator, in
nats (vrnn_lightning/estimators.py: ELBO, IWAE(K), SMC(K), the paper's per-step estimate, with
K = eval.iw_samples; SMC resamples by eval.resampling below eval.ess_threshold * K).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames); SMC also
with how often it resampled. For the rnn_* variants there is no latent variable and all are
the exact log-likelihood. The K samples of a batch run as K * eval.batch_size rows at once,
or a few sequences at a time where that would hold more than eval.memory_gb.

The data is always normalised with the statistics the model was trained with (recorded in its
checkpoint); a note says when the store on disk is not the one it was trained on.
``evaluate_inputs`` scores a user's files instead of a split, each file one whole sequence read
as the training corpus's files were.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .checkpoint import Trained, data_difference, datamodule_for, device, load_checkpoint, run_dir
from .config import ConfigError
from .data.store import SPLITS
from .estimators import (
    ESTIMATORS,
    Scoring,
    estimate_all,
    memory_budget_gb,
    rows_within,
    step_bytes,
)
from .paths import check_creatable
from .smc import RESAMPLING


def _check_estimator_settings(cfg: DictConfig) -> None:
    k = cfg.eval.iw_samples
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


def _scoring(
    model, x: torch.Tensor, mask: torch.Tensor, cfg: DictConfig, parts: list[int] | None = None
) -> dict:
    """Every estimate of a batch. K samples (particles) of each sequence run as one batch of
    K * B rows, or in parts of as many rows as eval.memory_gb holds at this batch's length;
    the rows of such a part are appended to ``parts``."""
    k = cfg.eval.iw_samples
    budget = memory_budget_gb(cfg.eval.memory_gb, x.device)
    max_rows = rows_within(step_bytes(model), x.shape[1], budget, k)
    rows = (k if model.latent else 1) * len(x)  # rnn_*: one exact pass of B rows
    if parts is not None and max_rows is not None and max_rows < rows:
        parts.append(max_rows)
    return estimate_all(
        Scoring(
            model,
            x,
            mask,
            k,
            cfg.eval.resampling,
            cfg.eval.ess_threshold,
            max_rows=max_rows,
        )
    )


def _note_parts(parts: list[int], scored: str, cfg: DictConfig) -> None:
    """Say when batches were scored in parts: slower, and a larger budget would be faster."""
    if parts:
        print(
            f"vrnn-eval: note: {len(parts)} of {scored} were scored in parts of at "
            f"most {min(parts)} rows (a row: one sample of one sequence) to stay "
            f"within eval.memory_gb={cfg.eval.memory_gb}; where the memory is there, a larger "
            "eval.memory_gb is faster",
            file=sys.stderr,
        )


@torch.no_grad()
def evaluate(trained: Trained, cfg: DictConfig, console: Console | None = None) -> dict:
    """Every registered estimate over ``cfg.eval.split``: a dict as in the JSON."""
    split, k = cfg.eval.split, cfg.eval.iw_samples
    if split not in SPLITS:
        raise ConfigError(f"eval.split: '{split}' is not a split; valid: {', '.join(SPLITS)}")
    _check_estimator_settings(cfg)
    dm = datamodule_for(trained, cfg, cfg.eval.batch_size)
    note = data_difference(trained, dm)
    if note:
        print(f"vrnn-eval: note: {note}", file=sys.stderr)
    try:
        loader = dm.eval_dataloader(split)
    except KeyError as err:
        raise ConfigError(f"eval.split: {err.args[0]}") from None
    dev = device()
    model = trained.model.to(dev).eval()
    model.compile = cfg.model.compile  # e.g. model.compile=true: a faster IWAE at large K

    totals = dict.fromkeys(ESTIMATORS, 0.0)
    # sequences whose estimate is not finite are counted and left out of the mean (one NaN
    # would make the whole figure NaN, and JSON has no NaN)
    nonfinite = dict.fromkeys(ESTIMATORS, 0)
    finite_frames = dict.fromkeys(ESTIMATORS, 0)
    n_sequences = n_frames = n_resampled = 0
    parts: list[int] = []  # the rows of the parts of batches scored in parts
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
        batches = iter(loader)  # starting a DataLoader draws from torch's RNG: before the seed
        torch.manual_seed(cfg.seed)  # the same z draws on every run, and as --inputs draws
        for batch in batches:
            x, mask = batch["x"].to(dev), batch["mask"].to(dev)
            estimates = _scoring(model, x, mask, cfg, parts)
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
    _note_parts(parts, f"{len(loader)} batches", cfg)

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
        normalisation=dm.store("train").normalisation.as_dict(),
        data_differs=note,
    )
    return result


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None  # None (JSON null): every sequence was non-finite


def input_files(paths: list[str], observation: str) -> tuple[list[Path], list[dict]]:
    """The files named on --inputs, folders expanded (audio: the audio extensions; strokes:
    every file), and a {"file", "reason"} entry for each name that is neither."""
    from .data.corpora.splits import AUDIO_EXTENSIONS, list_files

    files, missing = [], []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            if observation == "audio":
                found = list_files(path, AUDIO_EXTENSIONS)
            else:  # every visible file: the reader says which it cannot read
                found = sorted(p for p in path.rglob("*") if p.is_file() and p.name[0] != ".")
            if not found:
                missing.append({"file": name, "reason": "a folder with no input files"})
            files += found
        elif path.is_file():
            files.append(path)
        else:
            missing.append({"file": name, "reason": "no such file or folder"})
    return files, missing


def input_reader(trained: Trained, cfg: DictConfig):
    """read(path) -> (T, D) frames of one user file, read as the training corpus's files were
    (audio: resampled to the model's rate, downmixed, framed; strokes: the corpus's format)."""
    from .data.corpora import get_corpus
    from .data.pipeline import to_frames
    from .data.source import Source
    from .data.store import as_data_config

    # generated corpora read no files: take the plain reader of their kind
    dataset = cfg.data.dataset
    if dataset.startswith("synthetic_"):
        dataset = "audio_folder" if trained.data.observation == "audio" else "gw_online"
    corpus = get_corpus(dataset)
    data = as_data_config(cfg.data)

    def read(path: Path):
        array = corpus.read(Source(name=str(path), path=path), data)
        return to_frames(array, trained.data.observation, data)

    return read


@torch.no_grad()
def evaluate_inputs(
    trained: Trained, cfg: DictConfig, paths: list[str], console: Console | None = None
) -> dict:
    """ELBO, IWAE(K) and the paper's estimate of each user file (one whole sequence each),
    normalised with the model's statistics; unreadable files are reported and skipped.

    Every file is scored with the z draws of ``seed``, so a file's figures do not depend on
    the other files, and equal vrnn-eval's for the same sequence (eval.batch_size=1,
    data.eval_full_sequences=true)."""
    from .data.source import BadInput

    _check_estimator_settings(cfg)
    if trained.data.normalisation is None:
        raise ConfigError(
            f"{trained.path} does not record its training normalisation (it predates that "
            "record): score files with a checkpoint from this version, or score a split"
        )
    k = cfg.eval.iw_samples
    files, skipped = input_files(paths, trained.data.observation)
    read = input_reader(trained, cfg)
    dev = device()
    model = trained.model.to(dev).eval()
    model.compile = cfg.model.compile
    rows, parts = [], []
    for path in files:
        try:
            frames = read(path)
        except BadInput as err:
            skipped.append({"file": str(path), "reason": str(err)})
            continue
        except Exception as err:  # a corrupt file the reader did not anticipate
            skipped.append({"file": str(path), "reason": f"{type(err).__name__}: {err}"})
            continue
        x = torch.from_numpy(trained.normalise(frames)).unsqueeze(0).to(dev)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=dev)
        torch.manual_seed(cfg.seed)  # the same draws for a file wherever it is in the list
        estimates = _scoring(model, x, mask, cfg, parts)
        row = {"file": str(path), "n_frames": len(frames)}
        for name in ESTIMATORS:
            total = estimates[name].per_sequence.double().sum().item()
            row[name] = {"per_sequence": total, "per_frame": total / len(frames)}
        resampled = estimates["smc"].n_resampled
        row["smc"]["resampled"] = int(resampled.sum()) if resampled is not None else 0
        rows.append(row)
        if console is not None:
            console.print(f"[dim]{path}: ELBO {row['elbo']['per_sequence']:.2f}[/dim]")
    if not rows:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise ConfigError(f"--inputs: no file could be scored ({reasons})")
    _note_parts(parts, f"{len(rows)} files", cfg)
    n_frames = sum(r["n_frames"] for r in rows)
    total = {
        name: {
            "per_sequence": sum(r[name]["per_sequence"] for r in rows) / len(rows),
            "per_frame": sum(r[name]["per_sequence"] for r in rows) / n_frames,
        }
        for name in ESTIMATORS
    }
    n_resampled = sum(r["smc"]["resampled"] for r in rows)
    total["smc"].update(
        resampled_per_sequence=n_resampled / len(rows),
        resampling_rate=n_resampled / n_frames,
        resampling=cfg.eval.resampling,
        ess_threshold=cfg.eval.ess_threshold,
    )
    return {
        **total,
        "n_sequences": len(rows),
        "n_frames": n_frames,
        "variant": cfg.model.variant,
        "dataset": cfg.data.dataset,
        "split": "inputs",
        "iw_samples": k,
        "eval_full_sequences": True,  # each file is one whole sequence
        "seq_len": cfg.data.seq_len,
        "normalisation": trained.data.normalisation.as_dict(),
        "files": rows,
        "skipped": skipped,
    }


def evaluate_checkpoint(
    ckpt: str | Path,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    console: Console | None = None,
    inputs: list[str] | None = None,
    show: Callable[[dict], None] | None = None,
) -> tuple[dict, Path]:
    """Evaluate a vrnn-fit checkpoint (or a vrnn-export folder) with ``overrides`` applied to
    its run config, on its split or on the files ``inputs``, and write the result as JSON to
    ``out`` (default <run folder>/eval_<split>.json, eval_inputs.json); returns (result, out).
    ``out`` is checked before the evaluation, and ``show`` is given the result before it is
    written, so a failed write never loses a finished evaluation. Non-finite figures are
    written as null (JSON has no NaN).
    ConfigError or CorpusError when the checkpoint, the settings or the data are unusable."""
    trained, cfg = load_checkpoint(ckpt, list(overrides or []))
    split = "inputs" if inputs else cfg.eval.split
    out = Path(out) if out else run_dir(ckpt, cfg) / f"eval_{split}.json"
    check_writable(out)
    if inputs:
        result = evaluate_inputs(trained, cfg, inputs, console)
    else:
        result = evaluate(trained, cfg, console)
    result["checkpoint"] = str(ckpt)
    if show is not None:
        show(result)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_finite_or_null(result), indent=2, allow_nan=False) + "\n")
    except OSError as err:
        raise ConfigError(f"--out: cannot write {out} ({err.strerror})") from None
    return result, out


def _finite_or_null(value):
    """``value`` with every non-finite float replaced by None (JSON null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def check_writable(out: Path) -> None:
    """ConfigError unless a file can be written at ``out``; nothing is made yet."""
    check_creatable(out, "--out")
