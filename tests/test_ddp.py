"""Two real DDP ranks (gloo, on the CPU) train on exactly what the samplers' documented layout
says, every epoch and after a resume in mid-epoch; stop together on a signal that one rank
received, and resume to the weights of an uninterrupted run; skip a non-finite step together.

Every run goes through one ``torchrun --nproc-per-node=2 tests/ddp_runs.py`` (one start of
the two processes for them all); each rank records what it trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_config

from vrnn_lightning.data import FramesDataModule
from vrnn_lightning.data.buckets import LengthBucketSampler
from vrnn_lightning.data.datamodule import FramesDataset, PadCollate, WindowSampler
from vrnn_lightning.data.streams import StreamDataset, StreamSampler

pytestmark = pytest.mark.slow

WORLD = 2
COMMON = ["trainer.max_epochs=3", "trainer.limit_val_batches=1"]
COMMON += ["trainer.early_stopping_patience=null", "logger.log_every_n_steps=50"]
WAYS = {
    "windows": [],
    "buckets": ["data.train_full_sequences=true", "data.batch_size=4"],
    "streams": ["data.streams=true", "data.batch_size=4", "optim.tbptt_reset_every=4"],
}


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.contiguous().numpy().tobytes()).hexdigest()[:16]


def _datamodule(cache, way) -> FramesDataModule:
    cfg = tiny_config(f"data.cache_dir={cache}", *WAYS[way])
    dm = FramesDataModule(cfg.data, seed=cfg.seed)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _layout(dm: FramesDataModule, way: str, epoch: int, rank: int) -> list[list]:
    """Rank ``rank``'s batches of ``epoch`` as the samplers' docstrings describe them: global
    batch j of the plan is keys [j W B, (j + 1) W B); a rank takes keys rank, rank + W, ...;
    the training plan's last W - 1 keys at most are left out so that every rank has as many."""
    store, cfg = dm.store("train"), dm.cfg
    b = cfg.batch_size
    if way == "streams":
        sampler, dataset, pad = StreamSampler(store.n_frames, cfg.seq_len, b, WORLD), None, None
        dataset = StreamDataset(store)
    elif way == "buckets":
        sampler = LengthBucketSampler(store.lengths, b, world_size=WORLD, seed=dm.seed)
        dataset, pad = FramesDataset(store), None
    else:
        sampler = WindowSampler(store.lengths, cfg.seq_len, shuffle=True, seed=dm.seed)
        dataset, pad = FramesDataset(store), cfg.seq_len
    plan = sampler.plan(epoch)
    keys = plan[rank : len(plan) - len(plan) % WORLD : WORLD]
    batches = []
    for start in range(0, len(keys), b):
        items = [dataset[tuple(int(v) for v in key)] for key in keys[start : start + b]]
        batch = PadCollate(pad)(items)
        batches.append([batch["index"].tolist(), _digest(batch["x"])])
    if way == "streams":  # and, independently: row i of batch j is window j of stream r B + i
        stream_len = sampler.stream_len
        for j, batch_keys in enumerate(keys.reshape(-1, b, 2)):
            starts = [(rank * b + i) * stream_len + j * cfg.seq_len for i in range(b)]
            assert batch_keys[:, 0].tolist() == starts
    return batches


def _ranks(folder, name) -> list[dict]:
    return [json.loads((folder / "ranks" / f"{name}.{r}.json").read_text()) for r in range(WORLD)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run, in one torchrun; {name: (out_dir, [rank 0's record, rank 1's])}."""
    tmp = tmp_path_factory.mktemp("ddp")
    cache = tmp / "cache"
    per_epoch = {}
    for way in WAYS:
        dm = _datamodule(cache, way)
        per_epoch[way] = len(_layout(dm, way, 0, 0))  # one rank's batches of an epoch
        dm.teardown()
    plan = []
    for way, extra in WAYS.items():
        # a SIGTERM to rank 0 in the middle of the second epoch (no validation there)
        stop = per_epoch[way] + per_epoch[way] // 2
        run = {"overrides": [*COMMON, *extra], "nan": None, "signal": None}
        plan += [
            {**run, "name": f"{way}-straight", "out_dir": str(tmp / f"{way}-straight")},
            {
                **run,
                "name": f"{way}-stopped",
                "out_dir": str(tmp / f"{way}-stopped"),
                "signal": [0, stop, int(signal.SIGTERM)],
            },
            # the same command again: ckpt_path=auto resumes it
            {**run, "name": f"{way}-resumed", "out_dir": str(tmp / f"{way}-stopped")},
        ]
    # SIGUSR1 (SLURM's warning) to rank 1 only; both ranks stop; the same command resumes
    usr1 = [0 + 1, per_epoch["windows"] + 3, int(signal.SIGUSR1)]
    usr1_run = {"overrides": COMMON, "nan": None, "out_dir": str(tmp / "usr1")}
    plan += [
        {**usr1_run, "name": "usr1-stopped", "signal": usr1},
        {**usr1_run, "name": "usr1-resumed", "signal": None},
        # a NaN in rank 1's batch at step 2
        {
            "name": "nan",
            "out_dir": str(tmp / "nan"),
            "overrides": [*COMMON, "trainer.max_steps=6"],
            "nan": [1, 2],
            "signal": None,
        },
    ]
    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps({"cache": str(cache), "runs": plan}))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [*torchrun, f"--nproc-per-node={WORLD}", str(REPO / "tests" / "ddp_runs.py"), plan_file],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return {"tmp": tmp, "per_epoch": per_epoch, "cache": cache, "usr1": usr1}


@pytest.mark.parametrize("way", WAYS)
def test_each_rank_trains_on_the_documented_layout_every_epoch(runs, way):
    dm = _datamodule(runs["cache"], way)
    records = _ranks(runs["tmp"] / f"{way}-straight", f"{way}-straight")
    for rank, record in enumerate(records):
        assert record["ended"] == "finished"
        for epoch in range(3):
            expected = _layout(dm, way, epoch, rank)
            got = [record["batches"][f"{epoch},{j}"] for j in range(len(expected))]
            assert got == expected, f"rank {rank}, epoch {epoch}"
        assert len(record["batches"]) == 3 * runs["per_epoch"][way]
    # the two ranks trained on different data, to the same weights
    assert records[0]["batches"]["0,0"] != records[1]["batches"]["0,0"]
    assert records[0]["weights"] == records[1]["weights"]


@pytest.mark.parametrize("way", WAYS)
def test_a_run_stopped_by_sigterm_in_its_second_epoch_resumes_to_the_same_batches_and_weights(
    runs, way
):
    straight = _ranks(runs["tmp"] / f"{way}-straight", f"{way}-straight")
    folder = runs["tmp"] / f"{way}-stopped"
    stopped, resumed = _ranks(folder, f"{way}-stopped"), _ranks(folder, f"{way}-resumed")
    stop = runs["per_epoch"][way] + runs["per_epoch"][way] // 2
    for rank in range(WORLD):
        assert stopped[rank]["ended"] == "interrupted 143"
        assert stopped[rank]["step"] == stop, "both ranks stopped at the signalled batch"
        assert min(resumed[rank]["batches"], key=lambda k: tuple(map(int, k.split(",")))) == (
            f"1,{stop - runs['per_epoch'][way]}"
        )
        assert stopped[rank]["batches"] | resumed[rank]["batches"] == straight[rank]["batches"]
        assert resumed[rank]["ended"] == "finished"
        assert resumed[rank]["weights"] == straight[rank]["weights"]
        assert resumed[rank]["checkpoint_weights"] == straight[rank]["checkpoint_weights"]


def test_sigusr1_to_one_rank_stops_both_at_the_same_batch_and_the_rerun_resumes(runs):
    folder = runs["tmp"] / "usr1"
    stopped, resumed = _ranks(folder, "usr1-stopped"), _ranks(folder, "usr1-resumed")
    straight = _ranks(runs["tmp"] / "windows-straight", "windows-straight")
    for rank in range(WORLD):
        assert stopped[rank]["ended"] == f"interrupted {128 + signal.SIGUSR1}"
        assert stopped[rank]["step"] == runs["usr1"][1]
        assert resumed[rank]["weights"] == straight[rank]["weights"]
    assert (folder / "finished.json").is_file()


def test_a_nan_on_one_rank_is_skipped_by_both_and_their_weights_stay_equal(runs):
    records = _ranks(runs["tmp"] / "nan", "nan")
    for record in records:
        assert record["ended"] == "finished" and record["step"] == 6
        assert record["nonfinite"] == 1  # counted alike on every rank
    assert records[0]["weights"] == records[1]["weights"]
