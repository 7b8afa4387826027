"""The preparation pipeline: a corpus read once into HDF5 frame stores (one per split).

The train split is written first: its statistics normalise every split. A finished store
whose fingerprint matches is reused; bad files are skipped and listed in report.json /
report.txt beside the store; an interrupted run leaves no store that looks finished.
Sources are read by a pool of data.prepare_workers processes, in order, and streamed into
the store, so a corpus larger than memory prepares in bounded memory.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import Pool
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vrnn_lightning.config import DataConfig
from vrnn_lightning.data.corpora import get_corpus
from vrnn_lightning.data.corpora.splits import listing_problems, printable
from vrnn_lightning.data.download import resolve_root
from vrnn_lightning.data.layout import warn_incomplete
from vrnn_lightning.data.source import BadInput, CorpusError, Source
from vrnn_lightning.data.store import (
    SPLITS,
    RunningStats,
    StoreWriter,
    as_data_config,
    cleanup_temporaries,
    fingerprint,
    is_finished,
    read_header,
    store_dir,
    what_x_is,
)

# ---------------------------------------------------------------- reading one source


def to_frames(array: np.ndarray, observation: str, cfg: DataConfig) -> np.ndarray:
    """A corpus array -> (T, D) frames; raises BadInput for unusable content."""
    if observation == "audio":
        if array.ndim != 1:
            raise BadInput(f"expected a 1-D waveform, got shape {array.shape}")
        if cfg.max_samples is not None:
            array = array[: cfg.max_samples]
        n = len(array) // cfg.frame_size
        if n < 1:
            raise BadInput(
                f"shorter than one frame ({len(array)} samples < frame_size {cfg.frame_size})"
            )
        # the tail shorter than a frame is dropped, as the original's segment_axis
        frames = array[: n * cfg.frame_size].reshape(n, cfg.frame_size)
    else:
        if array.ndim != 2 or array.shape[1] != 3:
            raise BadInput(f"expected (T, 3) steps (pen, dx, dy), got shape {array.shape}")
        if len(array) < 1:
            raise BadInput("no pen steps")
        frames = array.astype(np.float32, copy=False)
    if frames.dtype.kind == "f" and not np.isfinite(frames).all():
        raise BadInput(f"{int((~np.isfinite(frames)).sum())} non-finite values")
    if frames.dtype.kind not in "fi":
        raise BadInput(f"unsupported sample type {frames.dtype}")
    if frames.dtype.kind == "i" and frames.dtype != np.int16:
        frames = frames.astype(np.float32) / np.float32(np.iinfo(frames.dtype).max + 1)
    return np.ascontiguousarray(frames)


_READER: tuple[Callable, str, DataConfig] | None = None  # set in each pool worker


@contextmanager
def single_threaded():
    """torch on one thread while preparing, restored after. Sources are decoded and resampled
    one at a time: on such small convolutions torch's intra-op threads only wait for each
    other, and on a busy machine they made preparation ~50x slower. Parallelism comes from
    data.prepare_workers processes instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _init_worker(read: Callable, observation: str, cfg: DataConfig) -> None:
    global _READER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    torch.set_num_threads(1)
    _READER = (read, observation, cfg)


def _load(source: Source, reader: tuple[Callable, str, DataConfig] | None = None):
    """("ok", frames) or ("bad", reason) for one source. Never raises for one bad file."""
    read, observation, cfg = reader or _READER
    try:
        return "ok", to_frames(read(source, cfg), observation, cfg)
    except BadInput as err:
        return "bad", str(err)
    except Exception as err:  # a corrupt file the corpus reader did not anticipate
        return "bad", f"{type(err).__name__}: {err}"


def _load_batch(batch: list[Source]) -> list[tuple[str, object]]:
    out = []
    for s in batch:
        try:
            out.append(_load(s))
        except BaseException as err:  # a Pool worker dying of it would leave the parent waiting
            out.append(("raise", err))  # re-raised in the parent at this source's turn
            break
    return out


# A pool task is a run of consecutive sources: one per task costs more in inter-process
# overhead than decoding a short file. A run ends at this many sources or source bytes.
BATCH_SOURCES = 32
BATCH_BYTES = 8 << 20


def _batches(sources: list[Source]) -> Iterator[list[Source]]:
    """Consecutive runs of sources, sized by their bytes (a range: 4 per sample; a whole file:
    its size on disk), so the sources in flight stay few megabytes whatever the files."""
    batch, size = [], 0
    for s in sources:
        if s.stop is not None:
            n = 4 * (s.stop - s.start)
        else:
            try:
                n = os.stat(s.path).st_size if s.path is not None else 0
            except OSError:
                n = 0  # the reader says what is wrong with it
        if batch and (len(batch) >= BATCH_SOURCES or size + n > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(s)
        size += n
    if batch:
        yield batch


def _load_all(sources: list[Source], reader, workers: int) -> Iterator[tuple[str, object]]:
    """Loads in source order. With workers > 1, a pool keeps a bounded number of runs of
    sources in flight (2 per worker: an ordered read-ahead that cannot outrun the writer and
    fill memory)."""
    if workers <= 1:
        for s in sources:
            yield _load(s, reader)
        return
    with Pool(workers, initializer=_init_worker, initargs=reader) as pool:
        pending: deque = deque()
        batches = _batches(sources)
        for batch in batches:
            pending.append(pool.apply_async(_load_batch, (batch,)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            results = pending.popleft().get()
            nxt = next(batches, None)
            if nxt is not None:
                pending.append(pool.apply_async(_load_batch, (nxt,)))
            for status, payload in results:
                if status == "raise":
                    raise payload
                yield status, payload


# ---------------------------------------------------------------- writing one split


def _progress(console: Console) -> Progress:
    amount = "{task.fields[amount]}"
    return Progress(
        TextColumn("[bold]{task.description:>5}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn(amount),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _amount(observation: str, seconds: float, frames: int) -> str:
    return f"{seconds / 3600:.2f} h" if observation == "audio" else f"{frames:,} steps"


def _write_split(
    split: str,
    sources: list[Source],
    path: Path,
    *,
    reader,
    observation: str,
    cfg: DataConfig,
    dtype,
    attrs: dict,
    console: Console,
    progress: bool,
    left_out: list[dict] = (),
) -> dict:
    """Streams one split into its store; returns the finished file's header. ``left_out``:
    entries the listing left out, reported with this split's skipped files."""
    stats = RunningStats(observation)
    skipped: list[dict] = list(left_out)
    writer: StoreWriter | None = None
    seconds = 0.0
    sr = cfg.sample_rate if observation == "audio" else 0
    t0 = time.perf_counter()
    bar = _progress(console) if progress else None
    try:
        if bar:
            bar.start()
            task = bar.add_task(split, total=len(sources), amount="", rate="")
        for source, (status, payload) in zip(
            sources, _load_all(sources, reader, cfg.prepare_workers), strict=True
        ):
            if status == "ok" and printable(source.name) != source.name:
                status, payload = "bad", "file name is not valid UTF-8; rename the file"
            if status == "bad":
                skipped.append({"file": printable(source.name), "reason": payload})
            else:
                frames = payload
                if writer is None:
                    dtype = dtype if dtype is not None else frames.dtype
                    writer = StoreWriter(
                        path,
                        dim=frames.shape[1],
                        dtype=dtype,
                        compression=cfg.compression,
                        attrs=attrs,
                    )
                # statistics of the stored values: a float file in an int16 store (or the
                # reverse) is converted first, and the reader normalises what is stored
                stats.update(writer.append(source.name, frames))
                if observation == "audio":
                    seconds += frames.size / sr
            if bar:
                elapsed = time.perf_counter() - t0
                rate = f"{seconds / elapsed:,.0f}x real time" if observation == "audio" else ""
                n = writer.n_frames if writer else 0
                bar.update(task, advance=1, amount=_amount(observation, seconds, n), rate=rate)
        if writer is None:  # nothing usable in this split
            if split == "train" or dtype is None:
                reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
                raise CorpusError(
                    f"{cfg.dataset}: no usable {split} sequence in {len(sources)} sources"
                    + (f" (e.g. {reasons})" if reasons else "")
                )
            dim = what_x_is(attrs)[1]
            writer = StoreWriter(
                path, dim=dim, dtype=dtype, compression=cfg.compression, attrs=attrs
            )
        if split == "train":  # the stats of every split are the train split's
            mean, std = stats.result(cfg.stroke_stats)
            attrs.update(mean=mean, std=std)
        writer.finish(
            **attrs,
            split=split,
            seconds=seconds,
            skipped=skipped,
            prepare_seconds=time.perf_counter() - t0,
        )
        writer = None
    finally:
        if bar:
            bar.stop()
        if writer is not None:
            writer.abort()
    return read_header(path)


# ---------------------------------------------------------------- the whole corpus


def locate(
    cfg: DataConfig, *, fetch: bool = True
) -> tuple[ModuleType, dict[str, list[Source]], str, Path]:
    """The corpus module, its sources per split, their fingerprint and the store folder.

    With data.download and no data.root, the corpus is downloaded first if ``fetch`` (else
    only a finished download is used: data.root stays unset without one)."""
    cfg = resolve_root(cfg, fetch=fetch)
    corpus = get_corpus(cfg.dataset)
    with _gc_paused():  # Blizzard's listing is millions of Sources: no collections while built
        sources = corpus.find_sources(cfg)
    unknown = set(sources) - set(SPLITS)
    if unknown:
        raise CorpusError(f"{cfg.dataset}: unknown split(s) {sorted(unknown)}; valid: {SPLITS}")
    if not sources.get("train"):
        raise CorpusError(f"{cfg.dataset}: the corpus has no train sources")
    with _gc_paused():
        fp = fingerprint(cfg, sources, getattr(corpus, "VERSION", None))
    return corpus, sources, fp, store_dir(cfg, fp)


@contextmanager
def _gc_paused():
    """Python's cyclic garbage collector off for a while (reference counting still frees
    everything): building a list of 200,000 Sources spent 2/3 of its time in collections
    that find nothing to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def prepare(
    cfg: DataConfig | object,
    *,
    console: Console | None = None,
    progress: bool = True,
) -> Path:
    """Prepare (or reuse) the frame stores of ``cfg.dataset``; returns the store folder.

    Raises CorpusError when the corpus cannot be used at all, ConfigError on bad settings.
    """
    cfg = as_data_config(cfg)
    console = console or Console()
    cfg = resolve_root(cfg, fetch=True, console=console)  # data.download: fetched on first use
    with listing_problems() as left_out:  # broken links, loops, unreadable folders, ...
        corpus, sources, fp, folder = locate(cfg)
    observation = corpus.OBSERVATION
    splits = [s for s in SPLITS if s in sources]
    paths = {s: folder / f"{s}.h5" for s in splits}
    if all(is_finished(p, fp) for p in paths.values()):
        console.print(f"[green]reusing[/] {folder} (fingerprint {fp[:12]})")
        if not _report_written(folder):  # a run that died writing it
            write_report(folder, {s: read_header(paths[s]) for s in splits})
        return folder

    warn_incomplete(cfg, console)  # a partial copy of a licensed corpus: said up front
    folder.mkdir(parents=True, exist_ok=True)
    cleanup_temporaries(folder)
    n_files = sum(len(v) for v in sources.values())
    console.print(
        f"preparing [bold]{cfg.dataset}[/] ({observation}, {n_files} sources, "
        f"{cfg.prepare_workers} worker(s)) -> {folder}"
    )
    attrs = {
        "kind": observation,  # the attribute's name in the store format (existing stores)
        "dataset": cfg.dataset,
        "sample_rate": cfg.sample_rate if observation == "audio" else 0,
        "frame_size": cfg.frame_size if observation == "audio" else 1,
        "fingerprint": fp,
        "stroke_stats": cfg.stroke_stats if observation == "strokes" else "",
    }
    reader = (corpus.read, observation, cfg)
    dtype = None
    for split in splits:
        path = paths[split]
        if is_finished(path, fp):
            head = read_header(path)
            console.print(f"{split:>5}: reusing {path.name}")
        else:
            with single_threaded():
                head = _write_split(
                    split,
                    sources[split],
                    path,
                    reader=reader,
                    observation=observation,
                    cfg=cfg,
                    dtype=dtype,
                    attrs=attrs,
                    console=console,
                    progress=progress,
                    left_out=left_out if split == "train" else (),
                )
        if split == "train":  # its dtype and stats apply to every split
            dtype = np.dtype(head["dtype"])
            attrs.update(mean=head["mean"], std=head["std"])
    report = write_report(folder, {s: read_header(paths[s]) for s in splits})
    print_summary(console, folder, report)
    return folder


def write_report(folder: Path, headers: dict[str, dict]) -> dict:
    """report.json (machine) and report.txt (people): counts and every skipped file."""
    first = next(iter(headers.values()))
    report = {
        "dataset": first["dataset"],
        "kind": first["kind"],  # the observation, under the name report.json has always had
        "fingerprint": first["fingerprint"],
        "mean": first["mean"],
        "std": first["std"],
        "splits": {
            s: {
                "sequences": h["sequences"],
                "frames": h["n_frames"],
                "seconds": h["seconds"],
                "skipped": h["skipped"],
            }
            for s, h in headers.items()
        },
    }
    _write_atomically(folder / "report.json", json.dumps(report, indent=2))
    lines = [
        f"dataset {report['dataset']} ({report['kind']}), fingerprint {report['fingerprint']}",
        f"normalisation (train): mean {report['mean']:.6g}, std {report['std']:.6g}",
        "",
    ]
    for s, r in report["splits"].items():
        lines.append(
            f"{s}: {r['sequences']} sequences, {r['frames']} frames, "
            f"{r['seconds'] / 3600:.3f} h, {len(r['skipped'])} skipped"
        )
        lines += [f"  skipped {x['file']}: {x['reason']}" for x in r["skipped"]]
    _write_atomically(folder / "report.txt", "\n".join(lines) + "\n")
    return report


def _write_atomically(path: Path, text: str) -> None:
    """``text`` at ``path`` complete or not at all (a rerun rewrites a missing report)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _report_written(folder: Path) -> bool:
    try:
        json.loads((folder / "report.json").read_text())
        return (folder / "report.txt").stat().st_size > 0
    except (OSError, ValueError):
        return False


def print_summary(console: Console, folder: Path, report: dict) -> None:
    table = Table(title=f"{report['dataset']} -> {folder}")
    for col in ("split", "sequences", "frames", "hours", "skipped"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for s, r in report["splits"].items():
        table.add_row(
            s,
            f"{r['sequences']:,}",
            f"{r['frames']:,}",
            f"{r['seconds'] / 3600:.2f}",
            str(len(r["skipped"])),
        )
    console.print(table)
    console.print(f"normalisation (train): mean {report['mean']:.6g}, std {report['std']:.6g}")
    skipped = [(s, x) for s, r in report["splits"].items() for x in r["skipped"]]
    for s, x in skipped[:10]:
        console.print(f"[yellow]skipped[/] {s}/{x['file']}: {x['reason']}")
    if skipped:
        more = f" ({len(skipped) - 10} more)" if len(skipped) > 10 else ""
        console.print(f"{len(skipped)} file(s) skipped{more}; see {folder / 'report.txt'}")
