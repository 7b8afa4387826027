"""vrnn-eval: the log-likelihood of a split under a trained model, three ways, in nats.

    vrnn-eval --ckpt runs/timit/checkpoints/last.ckpt [--out FILE] [key=value ...]
    vrnn-eval --ckpt ... eval.split=valid eval.iw_samples=40 eval.batch_size=8
    vrnn-eval --ckpt ... --inputs my_recording.wav more_recordings/   # score your own files

- ELBO: the variational lower bound, one z sample per step (the paper's ">=" column).
- IWAE: the sequence-level importance-weighted bound with K = eval.iw_samples samples.
- paper: the paper's per-step estimator with the same K (its "~" column; not a bound).

Each is reported per sequence (the mean over sequences of the sum over their frames, as the
paper's Table 1) and per frame (the total over all frames / the number of frames). For the
rnn_* variants there is no latent variable and all three are the exact log-likelihood.
The K samples of a batch run as K * eval.batch_size rows at once: lower eval.batch_size when
long sequences (data.eval_full_sequences=true) do not fit in memory.
The overrides apply to the checkpoint's own config (``data.cache_dir=...`` when the data
moved); ``model.*`` comes from the checkpoint and cannot change. The data is always normalised
with the statistics the model was trained with (recorded in the checkpoint); a note says when
the store on disk is not the one it was trained on.

``--inputs`` scores files instead of a split, each file one whole sequence, read as the
training corpus's files were; files that cannot be read are listed and skipped.
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

from .checkpoint import Trained, device, load_for_run, run_dir
from .cli import SECTIONS, add_print_config, print_config_and_exit
from .config import ConfigError
from .data.corpora import CorpusError
from .data.datamodule import FramesDataModule
from .data.store import SPLITS, is_finished
from .estimators import elbo, importance_estimates

ESTIMATES = ("elbo", "iwae", "paper_estimate")


# a vrnn-fit checkpoint or a vrnn-export folder, with the run's overrides applied
load_checkpoint = load_for_run


def datamodule_for(
    trained: Trained, cfg: DictConfig, batch_size: int | None = None
) -> FramesDataModule:
    """The data of ``cfg.data``, prepared if need be and normalised with the model's own
    statistics; it must fit the model."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if batch_size is not None:
        data["eval_batch_size"] = batch_size
    dm = FramesDataModule(data, seed=cfg.seed)
    if dm.kind != trained.data.kind:
        raise ConfigError(
            f"data.dataset: {cfg.data.dataset} is {dm.kind} data; the model was trained on "
            f"{trained.data.kind}"
        )
    if dm.x_dim != trained.model.x_dim:
        raise ConfigError(
            f"data.frame_size: {cfg.data.frame_size}; the model reads frames of "
            f"{trained.model.x_dim} samples"
        )
    dm.setup()
    if trained.data.normalisation is not None:
        dm.use_normalisation(trained.data.normalisation)
    return dm


def prepared_datamodule(trained: Trained, cfg: DictConfig) -> FramesDataModule | None:
    """The DataModule of ``cfg.data`` if its stores are already prepared, else None: never
    prepares (a model samples without its training data)."""
    from .prepare import locate

    try:
        _, sources, fp, folder = locate(FramesDataModule(cfg.data).cfg)
    except (ConfigError, CorpusError, OSError):
        return None
    if not all(is_finished(folder / f"{s}.h5", fp) for s in SPLITS if s in sources):
        return None
    return datamodule_for(trained, cfg)


def data_difference(trained: Trained, dm: FramesDataModule) -> str | None:
    """A sentence when the store on disk is not the one the model was trained on, else None."""
    store = dm.store("train")
    norm = trained.data.normalisation
    if norm is None:
        return (
            f"{trained.path} does not record its training normalisation (it predates that "
            f"record): scoring with the statistics of {dm.folder} (mean {store.mean:.6g}, "
            f"std {store.std:.6g})"
        )
    fp = store.attrs.get("fingerprint")
    if trained.data.fingerprint in (None, fp):
        return None
    own = store.attrs
    return (
        f"the data in {dm.folder} differs from the store the model was trained on (fingerprint "
        f"{str(fp)[:12]}, trained on {trained.data.fingerprint[:12]}; its own statistics: mean "
        f"{own['mean']:.6g}, std {own['std']:.6g}): scored with the model's normalisation "
        f"(mean {norm.mean:.6g}, std {norm.std:.6g})"
    )


def estimate_batch(model, x: torch.Tensor, mask: torch.Tensor | None, k: int) -> dict:
    """{estimate name: Estimate} of one batch, as vrnn-eval reports them (ESTIMATES)."""
    estimates = {"elbo": elbo(model, x, mask)}
    if model.latent:
        # K samples of each sequence run as one batch of K * B rows
        estimates["iwae"], estimates["paper_estimate"] = importance_estimates(model, x, mask, k)
    else:
        # no latent variable: the ELBO is the exact log-likelihood, and so are the rest
        estimates["iwae"] = estimates["paper_estimate"] = estimates["elbo"]
    return estimates


def _check_estimator_settings(cfg: DictConfig) -> None:
    if cfg.eval.iw_samples < 1:
        raise ConfigError(f"eval.iw_samples: {cfg.eval.iw_samples}; it must be >= 1")
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size: {cfg.eval.batch_size}; it must be >= 1")


@torch.no_grad()
def evaluate(trained: Trained, cfg: DictConfig, console: Console | None = None) -> dict:
    """ELBO, IWAE(K) and the paper's estimate over ``cfg.eval.split``: a dict as in the JSON."""
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
        batches = iter(loader)  # starting a DataLoader draws from torch's RNG: before the seed
        torch.manual_seed(cfg.seed)  # the same z draws on every run, and as --inputs draws
        for batch in batches:
            x, mask = batch["x"].to(dev), batch["mask"].to(dev)
            estimates = estimate_batch(model, x, mask, k)
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
        normalisation=dm.store("train").normalisation.as_dict(),
        data_differs=note,
    )
    return result


def input_files(paths: list[str], kind: str) -> tuple[list[Path], list[dict]]:
    """The files named on --inputs, folders expanded (audio: the audio extensions; strokes:
    every file), and a {"file", "reason"} entry for each name that is neither."""
    from .data.corpora.splits import AUDIO_EXTENSIONS, list_files

    files, missing = [], []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            if kind == "audio":
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
    from .data.corpora import Source, get_corpus
    from .data.store import as_data_config
    from .prepare import to_frames

    # generated corpora read no files: take the plain reader of their kind
    dataset = cfg.data.dataset
    if dataset.startswith("synthetic_"):
        dataset = "audio_folder" if trained.data.kind == "audio" else "gw_online"
    corpus = get_corpus(dataset)
    data = as_data_config(cfg.data)

    def read(path: Path):
        array = corpus.read(Source(name=str(path), path=path), data)
        return to_frames(array, trained.data.kind, data)

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
    from .data.corpora import BadInput

    _check_estimator_settings(cfg)
    if trained.data.normalisation is None:
        raise ConfigError(
            f"{trained.path} does not record its training normalisation (it predates that "
            "record): score files with a checkpoint from this version, or score a split"
        )
    k = cfg.eval.iw_samples
    files, skipped = input_files(paths, trained.data.kind)
    read = input_reader(trained, cfg)
    dev = device()
    model = trained.model.to(dev).eval()
    model.compile = cfg.model.compile
    rows = []
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
        torch.manual_seed(cfg.seed)  # the same draws for a file wherever it is in the list
        estimates = estimate_batch(model, x, None, k)
        row = {"file": str(path), "n_frames": len(frames)}
        for name in ESTIMATES:
            total = estimates[name].per_sequence.double().sum().item()
            row[name] = {"per_sequence": total, "per_frame": total / len(frames)}
        rows.append(row)
        if console is not None:
            console.print(f"[dim]{path}: ELBO {row['elbo']['per_sequence']:.2f}[/dim]")
    if not rows:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise ConfigError(f"--inputs: no file could be scored ({reasons})")
    n_frames = sum(r["n_frames"] for r in rows)
    total = {
        name: {
            "per_sequence": sum(r[name]["per_sequence"] for r in rows) / len(rows),
            "per_frame": sum(r[name]["per_sequence"] for r in rows) / n_frames,
        }
        for name in ESTIMATES
    }
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


def files_table(result: dict) -> Table:
    k = result["iw_samples"]
    t = Table(title="per file: log-likelihood in nats (per sequence, per frame)")
    t.add_column("file")
    t.add_column("frames", justify="right")
    for label in ("ELBO", f"IWAE K={k}", f"paper K={k}"):
        t.add_column(label, justify="right")
    for r in result["files"]:
        t.add_row(
            r["file"],
            str(r["n_frames"]),
            *(
                f"{r[n]['per_sequence']:.2f} ({r[n]['per_frame']:.3f})"
                for n in ("elbo", "iwae", "paper_estimate")
            ),
        )
    return t


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
        description="ELBO, IWAE and the paper's estimate of a split, or of your own files "
        "(--inputs), from a vrnn-fit checkpoint or a vrnn-export folder. Overrides apply to the "
        "checkpoint's config; the eval section: split, iw_samples, batch_size.",
        epilog=SECTIONS,
    )
    parser.add_argument("--ckpt", required=True, help="a vrnn-fit checkpoint or export folder")
    parser.add_argument(
        "--inputs",
        nargs="+",
        metavar="FILE_OR_FOLDER",
        help="score these files instead of a split: audio (WAV, FLAC, MP3, SPHERE, ...; "
        "resampled, downmixed and framed as in training) or stroke files of the corpus's format",
    )
    parser.add_argument(
        "--out", help="JSON file (default <run folder>/eval_<split>.json, eval_inputs.json)"
    )
    add_print_config(parser)
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.split=valid")
    args = parser.parse_args(argv)
    console = Console()
    try:
        trained, cfg = load_checkpoint(args.ckpt, args.overrides)
        if args.print_config:
            return print_config_and_exit(cfg)
        if args.inputs:
            result = evaluate_inputs(trained, cfg, args.inputs, console)
        else:
            result = evaluate(trained, cfg, console)
    except (ConfigError, CorpusError) as err:
        print(f"vrnn-eval: {err}", file=sys.stderr)
        return 2
    result["checkpoint"] = str(args.ckpt)
    split = result["split"]
    out = Path(args.out) if args.out else run_dir(args.ckpt, cfg) / f"eval_{split}.json"
    if args.inputs:
        console.print(files_table(result))
        for s in result["skipped"]:
            console.print(f"[yellow]skipped[/yellow] {s['file']}: {s['reason']}")
    console.print(table(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
