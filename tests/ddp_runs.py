"""Runs of the tiny config under real DDP ranks, recording what every rank trains on.

    torchrun --standalone --nproc-per-node=2 tests/ddp_runs.py PLAN.json

PLAN.json: {"cache": DIR, "runs": [{"name", "out_dir", "overrides": [...], "nan": [rank,
step] | null, "signal": [rank, step, signum] | null}, ...]}; the runs go in order, in these
two processes (torchrun starts them; each run is a vrnn-fit train() with trainer.devices=2
and trainer.strategy=ddp). Each rank writes <out_dir>/ranks/<name>.<rank>.json: the batches it
trained on, by (epoch, batch index), as the sequence indices and a hash of the frames; its
final weights' hash; its count of skipped steps; how the run ended. tests/test_ddp.py reads
them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import DEBUG_CONFIG  # noqa: E402

from vrnn_lightning.config import load_config  # noqa: E402
from vrnn_lightning.training import RunInterrupted, train  # noqa: E402


def digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class Record(L.Callback):
    """What this rank trains on; a NaN put into one batch, or a signal sent after one."""

    def __init__(self, nan=None, send=None):
        self.nan, self.send = nan, send
        self.batches: dict[str, list] = {}
        self.weights, self.nonfinite, self.step = {}, 0, 0  # after the last training batch

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        key = f"{trainer.current_epoch},{batch_idx}"
        self.batches[key] = [batch["index"].tolist(), digest(batch["x"])]
        if self.nan and self.nan == [trainer.global_rank, trainer.global_step]:
            batch["x"][0, 0, 0] = float("nan")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.weights = {k: digest(v) for k, v in module.state_dict().items()}
        self.nonfinite, self.step = module.nonfinite_total, trainer.global_step
        if self.send and self.send[:2] == [trainer.global_rank, trainer.global_step]:
            os.kill(os.getpid(), self.send[2])  # acted on at the next batch boundary


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    rank = int(os.environ["RANK"])
    for run in plan["runs"]:
        overrides = [
            f"data.cache_dir={plan['cache']}",
            f"out_dir={run['out_dir']}",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            *run["overrides"],
        ]
        cfg = load_config(DEBUG_CONFIG, overrides)
        record = Record(run.get("nan"), run.get("signal"))
        ended = "finished"
        try:
            train(cfg, extra_callbacks=[record])
        except RunInterrupted as stop:
            ended = f"interrupted {stop.exit_code}"
        module_weights = torch.load(
            Path(run["out_dir"]) / "checkpoints" / "last.ckpt", weights_only=True
        )["state_dict"]
        out = Path(run["out_dir"]) / "ranks" / f"{run['name']}.{rank}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "batches": record.batches,
                    "ended": ended,
                    "checkpoint_weights": {k: digest(v) for k, v in module_weights.items()},
                    "weights": record.weights,
                    "nonfinite": record.nonfinite,
                    "step": record.step,
                }
            )
        )
        torch.distributed.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
