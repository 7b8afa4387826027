"""A whole vrnn-fit run's training speed against its bare model step.

Runs ``vrnn-fit`` in this process (training.train, as the command does) for --warmup then
--steps training steps with a probe callback, and prints, over the steps after the warm-up:

- the run's training steps per second: the wall time of the training epochs with the data
  loading, the Lightning loop, training_step, logging, backward, clipping, the optimiser,
  max-norm and the progress bar in it; validation and what follows it (checkpoints,
  generated samples) excluded and timed separately;
- where each step's time went (the probe's hooks: data fetch and loop between steps;
  training_step with its logging; backward; clipping + Adam + max-norm);
- the bare step of the same model on one batch of the same shape (forward, backward, fused
  Adam; bench_training's), timed in the same process right before the run's first step and
  right after its last (the mean of the two medians);
- clipping and max-norm alone.

    python bench/bench_whole_run.py                                  # conf/demo.yaml
    python bench/bench_whole_run.py --config conf/fsdd.yaml data.root=PATH/fsdd/recordings
    python bench/bench_whole_run.py --steps 300 trainer.enable_progress_bar=false

Target (issue 15): the run's rate >= 90% of the bare step's.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_training import make_step  # noqa: E402
from vrnn_lightning.allocator import reuse_freed_memory  # noqa: E402
from vrnn_lightning.config import load_config  # noqa: E402
from vrnn_lightning.networks import PAPER_MAX_NORM  # noqa: E402
from vrnn_lightning.training import train  # noqa: E402

PARTS = (
    "data + loop",
    "training_step + logging",
    "  of which the model's forward",
    "backward",
    "clip + Adam + max-norm",
)


class StepProbe(L.Callback):
    """Clock readings at the training loop's hooks; validation blocks timed apart. Added last,
    so its on_validation_end comes after the checkpoints' and the samples'."""

    def __init__(self, warmup: int, bare_step=None):
        self.warmup = warmup  # steps left out of the rate (first-step allocations, kernels)
        self.bare_step = bare_step  # model -> seconds, timed before the run's first step
        self.bare_before = None
        self.parts = {p: [] for p in PARTS}
        self.validation, self.after_validation = [], []
        self.train_wall = 0.0
        self.steps = 0  # timed steps, after the warm-up
        self._seen = 0
        self._start = None
        self._last_end = None
        self._t = {}

    def on_train_start(self, trainer, pl_module):
        self.model = pl_module.model
        if self.bare_step is not None:
            self.bare_before = self.bare_step(self.model)
        self.model.register_forward_pre_hook(self._forward_start)
        self.model.register_forward_hook(self._forward_end)

    def _forward_start(self, module, args):
        self._t["forward"] = time.perf_counter()

    def _forward_end(self, module, args, output):
        if "forward" in self._t and "start" in self._t:  # a training step's, not validation's
            self._t["forward_s"] = time.perf_counter() - self._t.pop("forward")

    def on_train_end(self, trainer, pl_module):
        if self._start is None:
            raise SystemExit(f"the run ended within its {self.warmup} warm-up steps")
        wall = time.perf_counter() - self._start
        self.train_wall = wall - sum(self.validation) - sum(self.after_validation)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = self._t["start"] = time.perf_counter()
        if self._last_end is not None:
            self.parts["data + loop"].append(now - self._last_end)

    def on_before_backward(self, trainer, pl_module, loss):
        self._t["backward"] = time.perf_counter()

    def on_after_backward(self, trainer, pl_module):
        self._t["after_backward"] = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = self._last_end = time.perf_counter()
        t = self._t
        self._seen += 1
        if self._seen <= self.warmup:
            if self._seen == self.warmup:  # the clock starts: validations after this count
                self._start = now
                self.validation.clear()
                self.after_validation.clear()
            self._t = {}
            return
        if "backward" in t:  # a skipped (non-finite) step has none
            self.parts["training_step + logging"].append(t["backward"] - t["start"])
            self.parts["  of which the model's forward"].append(t.get("forward_s", 0.0))
            self.parts["backward"].append(t["after_backward"] - t["backward"])
            self.parts["clip + Adam + max-norm"].append(now - t["after_backward"])
        self._t = {}
        self.steps += 1

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._t["val"] = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._t["val_end"] = time.perf_counter()
            self.validation.append(self._t["val_end"] - self._t.pop("val"))

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.after_validation.append(time.perf_counter() - self._t.pop("val_end"))
            self._last_end = None  # the next gap is not a data fetch


def _median_time(fn, repeats: int, device: torch.device) -> float:
    def timed():
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()  # kernels run asynchronously: wait before reading
        return time.perf_counter() - start

    timed()  # warm up
    return statistics.median(timed() for _ in range(repeats))


def bare_step_seconds(model, cfg, repeats: int) -> float:
    """bench_training's step (forward, backward, fused Adam) of a copy of the run's model, on
    the device the run trained on."""
    device = next(model.parameters()).device
    torch.manual_seed(0)
    x = torch.randn(cfg.data.batch_size, cfg.data.seq_len, model.x_dim, device=device)
    return _median_time(make_step("ours32", copy.deepcopy(model), x), repeats, device)


def constraint_seconds(model, cfg, repeats: int) -> tuple[float, float]:
    """Clipping (clip_grad_norm_ over all gradients) and max-norm, each alone, per step."""
    model = copy.deepcopy(model)
    device = next(model.parameters()).device
    x = torch.randn(cfg.data.batch_size, cfg.data.seq_len, model.x_dim, device=device)
    terms = model(x)
    (terms.log_px - terms.kl).sum().backward()
    params = list(model.parameters())
    clip = _median_time(lambda: torch.nn.utils.clip_grad_norm_(params, 1e9), repeats, device)
    max_norm = _median_time(lambda: model.apply_max_norm(PAPER_MAX_NORM), repeats, device)
    return clip, max_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="conf/demo.yaml")
    parser.add_argument("--steps", type=int, default=200, help="training steps in the run")
    parser.add_argument("--repeats", type=int, default=10, help="bare steps timed")
    parser.add_argument("--warmup", type=int, default=3, help="run steps left out of the rate")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the run config")
    args = parser.parse_args()
    reuse_freed_memory()  # as vrnn-fit sets its allocator; the bare step then runs under it too
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"out_dir={tmp}/run",
            f"trainer.max_steps={args.steps + args.warmup}",
            "trainer.max_epochs=-1",
            "trainer.early_stopping_patience=null",
            "logger.wandb.mode=disabled",
            *args.overrides,
        ]
        cfg = load_config(args.config, overrides)
        probe = StepProbe(args.warmup, lambda m: bare_step_seconds(m, cfg, args.repeats))
        train(cfg, extra_callbacks=[probe])
    # the bare step before and after the run: a machine whose speed drifts during the run
    # (a shared host) moves the two apart, and the ratio uses their mean
    bare_after = bare_step_seconds(probe.model, cfg, args.repeats)
    bare = (probe.bare_before + bare_after) / 2
    clip, max_norm = constraint_seconds(probe.model, cfg, args.repeats)
    run_rate = probe.steps / probe.train_wall
    print(f"\n{args.config} ({cfg.model.variant}, h {cfg.model.h_dim}, batch "
          f"{cfg.data.batch_size} x {cfg.data.seq_len}), {probe.steps} steps, "
          f"torch on {torch.get_num_threads()} threads")  # fmt: skip
    before, after = probe.bare_before * 1e3, bare_after * 1e3
    print(f"  bare step (fwd, bwd, fused Adam)   {bare * 1e3:8.1f} ms/step  {1 / bare:.2f} steps/s"
          f"   (before the run {before:.1f}, after {after:.1f})")  # fmt: skip
    print(f"  whole run, training only           {1e3 / run_rate:8.1f} ms/step  "
          f"{run_rate:.2f} steps/s")  # fmt: skip
    print(f"  run rate / bare rate               {run_rate * bare:8.2f}   (target >= 0.90)")
    print("  per step, medians:")
    for part in PARTS:
        values = probe.parts[part]
        if values:
            print(f"    {part:30} {statistics.median(values) * 1e3:8.2f} ms")
    print(f"    (alone: clipping {clip * 1e3:.2f} ms, max-norm {max_norm * 1e3:.2f} ms)")
    n_val = len(probe.validation)
    if n_val:
        print(f"  validations: {n_val}, {statistics.median(probe.validation):.2f} s each; then "
              f"checkpoints + samples {statistics.median(probe.after_validation):.2f} s each "
              "(excluded above)")  # fmt: skip


if __name__ == "__main__":
    main()
