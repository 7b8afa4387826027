"""Data pipeline benchmark: preparation speed and loader throughput against training demand.

    /work/venv/bin/python bench/bench_data.py [--runs 3] [--no-resample]

(a) vrnn-prepare on the FSDD WAVs (../shared/data/fsdd/recordings, 2,500 files, 8 kHz 16-bit),
    prepare_workers=1 (one core), in x real time = seconds of audio stored / wall seconds;
    at 8 kHz (no resampling) and at 16 kHz (torchaudio's sinc kernel in the corpus reader,
    rounded back to int16 as the paper's ffmpeg pcm_s16le did).
(r) reusing a finished store of a Blizzard-sized listing: 200,000 0.5 s sources over 50 files
    (placeholders; only the listing, fingerprint and store headers are touched): the
    fingerprint alone, and prepare() from building the Source list to "reusing".
(b) FramesDataModule training batches (batch 64, seq_len 40, frame 200, num_workers=0, so one
    core) in frames/s, on the FSDD store and on a 256 MB store larger than the chunk cache,
    against the frames/s a paper-sized VRNN-GMM consumes (vrnn_lightning.model.VRNN,
    variant vrnn_gmm, x_dim 200, h_dim 2000, 4-layer MLPs, forward + backward, fp32, CPU).
Every figure is the median of --runs runs. Targets: (a) >= 500x, (r) < 1 s,
(b) loader >= 10x demand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from vrnn_lightning.data import pipeline
from vrnn_lightning.data import store as store_mod
from vrnn_lightning.data.datamodule import FramesDataModule
from vrnn_lightning.data.pipeline import prepare
from vrnn_lightning.data.source import Source
from vrnn_lightning.data.store import FrameStore, StoreWriter, as_data_config

FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd" / "recordings"
BATCH, SEQ_LEN, FRAME = 64, 40, 200


def bench_prepare(tmp: Path, sample_rate: int, runs: int) -> tuple[float, float, Path]:
    """Median x real time and median wall seconds of a fresh preparation of FSDD."""
    speeds, walls, folder = [], [], None
    for r in range(runs):
        cfg = as_data_config(
            dataset="audio_folder",
            root=str(FSDD),
            cache_dir=str(tmp / f"prep-{sample_rate}-{r}"),
            sample_rate=sample_rate,
            frame_size=FRAME,
            prepare_workers=1,
        )
        t0 = time.perf_counter()
        folder = prepare(cfg, console=Console(quiet=True), progress=False)
        wall = time.perf_counter() - t0
        seconds = sum(
            FrameStore(folder / f"{s}.h5").attrs["seconds"] for s in ("train", "valid", "test")
        )
        speeds.append(seconds / wall)
        walls.append(wall)
    return statistics.median(speeds), statistics.median(walls), folder


def bench_reuse(tmp: Path, runs: int, n_files: int = 50, per_file: int = 4000):
    """Median seconds of (building the Source list, fingerprint, whole reuse) for a finished
    Blizzard-sized store, the number of stat calls the fingerprint made, and of sources."""
    root = tmp / "blizzard"
    root.mkdir()
    files = [root / f"book{i:02d}/chapter{i:02d}.mp3" for i in range(n_files)]
    for p in files:
        p.parent.mkdir()
        p.write_bytes(b"placeholder")
    names = [p.relative_to(root).as_posix() for p in files]
    size = 8000  # 40 frames of 200: 0.5 s at 16 kHz

    def find_sources(cfg):  # as blizzard.find_sources builds them (cut_sequences)
        seqs = [
            Source(
                name=f"{name}[{a}:{a + size}]",
                path=p,
                start=a,
                stop=a + size,
            )
            for p, name in zip(files, names, strict=True)
            for a in range(0, per_file * size, size)
        ]
        n = len(seqs)
        return {
            "train": seqs[: n * 9 // 10],
            "valid": seqs[n * 9 // 10 : n * 19 // 20],
            "test": seqs[n * 19 // 20 :],
        }

    corpus = SimpleNamespace(OBSERVATION="audio", VERSION=2, find_sources=find_sources, read=None)
    cfg = as_data_config(dataset="blizzard", root=str(root), cache_dir=str(tmp / "reuse"))
    real_get, real_stat = pipeline.get_corpus, os.stat
    pipeline.get_corpus = lambda name: corpus
    try:
        _, sources, fp, folder = pipeline.locate(cfg)
        folder.mkdir(parents=True)
        for split in sources:  # a finished store (one frame per split is enough to reuse it)
            attrs = {"kind": "audio", "fingerprint": fp, "mean": 0.0, "std": 1.0}
            with StoreWriter(
                folder / f"{split}.h5", dim=200, dtype=np.int16, compression="lzf", attrs=attrs
            ) as w:
                w.append("x", np.zeros((1, 200), np.int16))
                w.finish(split=split, seconds=0.0, skipped=[])
        stats = []
        store_mod.os.stat = lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k)
        store_mod.fingerprint(cfg, sources, 2)
        store_mod.os.stat = real_stat
        listings, fps, reuses = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            with pipeline._gc_paused():  # as locate() lists
                find_sources(cfg)
            listings.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store_mod.fingerprint(cfg, sources, 2)
            fps.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            again = prepare(cfg, console=Console(quiet=True), progress=False)
            reuses.append(time.perf_counter() - t0)
            assert again == folder
    finally:
        pipeline.get_corpus, store_mod.os.stat = real_get, real_stat
    n = sum(map(len, sources.values()))
    median = statistics.median
    return median(listings), median(fps), median(reuses), len(stats), n


def big_store(tmp: Path, megabytes: int = 256) -> Path:
    """A train store of int16 noise in 3-second sequences, bigger than the 32 MB chunk cache."""
    folder = tmp / "big"
    folder.mkdir()
    rng = np.random.default_rng(0)
    n_seq = megabytes * 2**20 // (2 * 48000)
    attrs = {"kind": "audio", "sample_rate": 16000, "frame_size": FRAME, "mean": 0.0}
    with StoreWriter(
        folder / "train.h5", dim=FRAME, dtype=np.int16, compression="lzf", attrs=attrs
    ) as w:
        for i in range(n_seq):
            w.append(str(i), rng.integers(-3000, 3000, (240, FRAME), dtype=np.int16))
        w.finish(std=1000.0, split="train", seconds=n_seq * 3.0, skipped=[])
    return folder / "train.h5"


def bench_loader(dm: FramesDataModule, runs: int, max_batches: int = 200) -> float:
    """Median frames/s (real frames, mask.sum()) over up to max_batches batches per run."""
    rates = []
    loader = dm.train_dataloader()
    for epoch in range(runs):
        loader.batch_sampler.set_epoch(epoch)
        frames, t0 = 0, time.perf_counter()
        for k, batch in enumerate(loader):
            frames += int(batch["mask"].sum())
            if k + 1 == max_batches:
                break
        rates.append(frames / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_step(runs: int) -> tuple[float, str]:
    """Median frames/s consumed by forward + backward of a paper-sized VRNN-GMM step."""
    from vrnn_lightning.model import VRNN

    model = VRNN(variant="vrnn_gmm", x_dim=FRAME)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, SEQ_LEN, FRAME)
    mask = torch.ones(BATCH, SEQ_LEN, dtype=torch.bool)

    def step():
        terms = model(x, mask)
        loss = -(terms.log_px - terms.kl).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    n_params = sum(p.numel() for p in model.parameters())
    return BATCH * SEQ_LEN / t, f"{t:.2f} s/step, {n_params / 1e6:.1f} M parameters"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-resample", action="store_true", help="skip the 16 kHz run")
    args = parser.parse_args()
    if not FSDD.is_dir():
        raise SystemExit(f"bench_data: {FSDD} not found (the FSDD recordings)")
    console = Console(width=170)  # one row per measure, also when piped
    torch.set_num_threads(1)  # one core for every figure
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = Table(title=f"data pipeline, median of {args.runs} runs, 1 core (torch threads 1)")
        for col in ("measure", "settings", "result", "target"):
            table.add_column(col)

        speed, wall, folder8 = bench_prepare(tmp, 8000, args.runs)
        table.add_row(
            "prepare FSDD WAV",
            "2,500 files, 8 kHz, no resampling, frame 200, lzf, int16, prepare_workers=1",
            f"{speed:,.0f}x real time ({wall:.2f} s)",
            ">= 500x",
        )
        if not args.no_resample:
            speed, wall, folder16 = bench_prepare(tmp, 16000, args.runs)
            dtype = FrameStore(folder16 / "train.h5").dtype
            table.add_row(
                "prepare FSDD WAV",
                f"2,500 files, 8 -> 16 kHz resampled, frame 200, lzf, {dtype}, prepare_workers=1",
                f"{speed:,.0f}x real time ({wall:.2f} s)",
                ">= 500x",
            )

        list_s, fp_s, reuse_s, n_stats, n_sources = bench_reuse(tmp, args.runs)
        table.add_row(
            "reuse a finished store",
            f"Blizzard-sized listing: {n_sources:,} sources of 0.5 s over 50 files; "
            f"fingerprint: {n_stats} stat calls",
            f"whole reuse {reuse_s:.2f} s (Source list {list_s:.2f} s, fingerprint {fp_s:.2f} s)",
            "< 1 s",
        )

        demand, step_desc = bench_step(args.runs)
        table.add_row(
            "training step demand",
            f"VRNN vrnn_gmm x_dim 200 h_dim 2000, batch {BATCH} x {SEQ_LEN}, fwd+bwd+Adam, fp32",
            f"{demand:,.0f} frames/s ({step_desc})",
            "",
        )

        dm = FramesDataModule(
            dataset="audio_folder",
            root=str(FSDD),
            cache_dir=str(folder8.parent),
            sample_rate=8000,
            frame_size=FRAME,
            seq_len=SEQ_LEN,
            batch_size=BATCH,
            seed=0,
        )
        dm.setup()  # reuses the store of (a)
        rate = bench_loader(dm, args.runs)
        n = dm.store("train").n_frames
        table.add_row(
            "loader, FSDD store",
            f"{n:,} train frames int16 lzf, batch {BATCH}, seq_len {SEQ_LEN}, num_workers=0",
            f"{rate:,.0f} frames/s = {rate / demand:,.0f}x demand",
            ">= 10x",
        )

        big = FrameStore(big_store(tmp))
        dm.stores = {"train": big}
        rate = bench_loader(dm, args.runs)
        table.add_row(
            "loader, 256 MB store",
            f"{big.n_frames:,} frames int16 lzf > 32 MB chunk cache, same loader settings",
            f"{rate:,.0f} frames/s = {rate / demand:,.0f}x demand",
            ">= 10x",
        )
        console.print(table)


if __name__ == "__main__":
    main()
