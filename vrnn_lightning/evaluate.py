"""vrnn-eval: the log-likelihood of a split under a trained model, three ways, in nats.

    vrnn-eval --ckpt runs/timit/checkpoints/last.ckpt [--out FILE] [key=value ...]
    vrnn-eval --ckpt ... eval.split=valid eval.iw_samples=40 eval.batch_size=8

- ELBO: the variational lower bound, one z sample per step (the paper's ">=" column).
- IWAE: the sequence-level importance-weighted bound with K = eval.iw_samples samples.
- paper: the paper's per-step estimator with the same K (its "~" column; not a bound).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames). For the
rnn_* variants there is no latent variable and all three are the exact log-likelihood.
The K samples of a batch run as K * eval.batch_size rows at once: lower eval.batch_size when
long sequences (data.eval_full_sequences=true) do not fit in memory.
The overrides apply to the checkpoint's own config (``data.cache_dir=...`` when the data
moved); ``model.*`` comes from the checkpoint and cannot change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import Config, ConfigError, apply_overrides, merge_checked
from .data.corpora import CorpusError
from .data.datamodule import FramesDataModule
from .data.store import SPLITS
from .estimators import elbo, importance_estimates
from .module import VRNNModule

ESTIMATES = ("elbo", "iwae", "paper_estimate")


def load_checkpoint(ckpt: str | Path, overrides: list[str]) -> tuple[VRNNModule, DictConfig]:
    """The module of a vrnn-fit checkpoint (on the CPU) and its run config with ``overrides``
    applied; ConfigError naming the file or the key when either is unusable."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise ConfigError(f"--ckpt: checkpoint {ckpt} does not exist")
    try:
        module = VRNNModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    except Exception as err:  # any unreadable or foreign file: say which and why
        raise ConfigError(f"--ckpt: cannot load {ckpt} as a vrnn-fit checkpoint: {err}") from err
    saved = merge_checked(OmegaConf.structured(Config), module.cfg, f"the config saved in {ckpt}")
    cfg = apply_overrides(saved, overrides)
    # model.compile changes how, not what, the model computes
    changed = [k for k in cfg.model if saved.model[k] != cfg.model[k] and k != "compile"]
    if changed:
        raise ConfigError(
            f"model.{changed[0]}: the model comes from the checkpoint and cannot be overridden"
        )
    return module, cfg


def run_dir(ckpt: Path, cfg: DictConfig) -> Path:
    """The run folder: the one holding checkpoints/<ckpt>, else the config's out_dir."""
    ckpt = Path(ckpt).resolve()
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else Path(cfg.out_dir)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def datamodule_for(
    module: VRNNModule, cfg: DictConfig, batch_size: int | None = None
) -> FramesDataModule:
    """The data of ``cfg.data``, prepared if need be; it must fit the checkpoint's model."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if batch_size is not None:
        data["eval_batch_size"] = batch_size
    dm = FramesDataModule(data, seed=cfg.seed)
    if dm.kind != module.data_kind:
        raise ConfigError(
            f"data.dataset: {cfg.data.dataset} is {dm.kind} data; the model was trained on "
            f"{module.data_kind}"
        )
    if dm.x_dim != module.model.x_dim:
        raise ConfigError(
            f"data.frame_size: {cfg.data.frame_size}; the model reads frames of "
            f"{module.model.x_dim} samples"
        )
    dm.setup()
    return dm


@torch.no_grad()
def evaluate(module: VRNNModule, cfg: DictConfig, console: Console | None = None) -> dict:
    """ELBO, IWAE(K) and the paper's estimate over ``cfg.eval.split``: a dict as in the JSON."""
    split, k = cfg.eval.split, cfg.eval.iw_samples
    if split not in SPLITS:
        raise ConfigError(f"eval.split: '{split}' is not a split; valid: {', '.join(SPLITS)}")
    if k < 1:
        raise ConfigError(f"eval.iw_samples: {k}; it must be >= 1")
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size: {cfg.eval.batch_size}; it must be >= 1")
    dm = datamodule_for(module, cfg, cfg.eval.batch_size)
    try:
        loader = dm.eval_dataloader(split)
    except KeyError as err:
        raise ConfigError(f"eval.split: {err.args[0]}") from None
    dev = device()
    model = module.model.to(dev).eval()
    model.compile = cfg.model.compile  # e.g. model.compile=true: a faster IWAE at large K
    torch.manual_seed(cfg.seed)  # the same z draws on every run

    totals = dict.fromkeys(ESTIMATES, 0.0)
    n_sequences = n_frames = 0
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
            estimates = {"elbo": elbo(model, x, mask)}
            if model.latent:
                # K samples of each sequence run as one batch of K * B rows
                estimates["iwae"], estimates["paper_estimate"] = importance_estimates(
                    model, x, mask, k
                )
            else:
                # no latent variable: the ELBO is the exact log-likelihood, and so are the rest
                estimates["iwae"] = estimates["paper_estimate"] = estimates["elbo"]
            for name, est in estimates.items():
                totals[name] += est.per_sequence.double().sum().item()
            n_sequences += x.shape[0]
            n_frames += int(mask.sum())
            progress.advance(task)
    if n_sequences == 0:
        raise ConfigError(f"eval.split: the {split} split of {cfg.data.dataset} is empty")

    result = {
        name: {"per_sequence": totals[name] / n_sequences, "per_frame": totals[name] / n_frames}
        for name in ESTIMATES
    }
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


def table(result: dict) -> Table:
    exact = result["variant"].startswith("rnn")
    k = result["iw_samples"]
    unit = "sequence" if result["eval_full_sequences"] else f"{result['seq_len']}-frame window"
    t = Table(
        title=f"{result['variant']} on {result['dataset']} ({result['split']}): "
        f"log-likelihood in nats",
        caption=(
            "rnn_* variant: all three are the exact log-likelihood"
            if exact
            else f"ELBO and IWAE are lower bounds; the paper's estimate is not a bound. "
            f"{result['n_sequences']} sequences, {result['n_frames']} frames"
        ),
    )
    t.add_column("estimate")
    t.add_column(f"per {unit}", justify="right")
    t.add_column("per frame", justify="right")
    names = {
        "elbo": "ELBO (>=)",
        "iwae": f"IWAE, K={k} (>=)",
        "paper_estimate": f"paper per-step, K={k} (~)",
    }
    for key, label in names.items():
        r = result[key]
        t.add_row(label, f"{r['per_sequence']:.2f}", f"{r['per_frame']:.4f}")
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vrnn-eval",
        description="ELBO, IWAE and the paper's estimate of a split, from a vrnn-fit checkpoint.",
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by vrnn-fit")
    parser.add_argument("--out", help="JSON file (default <run folder>/eval_<split>.json)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.split=valid")
    args = parser.parse_args(argv)
    console = Console()
    try:
        module, cfg = load_checkpoint(args.ckpt, args.overrides)
        result = evaluate(module, cfg, console)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-eval: {err}", file=sys.stderr)
        return 2
    result["checkpoint"] = str(args.ckpt)
    out = Path(args.out) if args.out else run_dir(args.ckpt, cfg) / f"eval_{cfg.eval.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(table(result))
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
