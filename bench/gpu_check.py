"""What bench/gpu_check.sh prints: the training step in every mode, IWAE, generation.

On CUDA (the default when a GPU is visible), at the small (demo) and TIMIT sizes, one
training step (forward, backward, fused Adam; the median of --repeats, each mode timed in
turn and its row printed as soon as it is timed) of:

- ``naive``: ``VRNN.forward_stepwise``, every network inside the per-step loop;
- ``eager``: vrnn_lightning.model.VRNN as vrnn-fit runs it;
- ``compile``: the same with model.compile=true (the decoder and output density compiled);
- ``graph``: the whole eager step (forward, backward, Adam) captured once as a CUDA graph
  (torch.cuda.graphs) and replayed, so no kernel is launched from Python;

each in fp32 and bf16-mixed (autocast), with the achieved TFLOP/s against the device's
measured bf16 matmul peak and each step against its launch-free lower bound ("x bound": the
step's own matrix products, each timed alone back to back and summed; bench/matmul_bound.py,
recorded from the eager step of that precision); and (printed first, as they are quick)
IWAE with K = 40 against K ELBO passes and generation's real-time factor at batch 1 with the
TIMIT-sized model. A measurement that fails prints its error and the rest go on (the exit
status is then 1).
``--quick`` (bench/gpu_check.sh --quick) measures the small size only and 0.5 s of generation.
``--cpu`` is the quick fallback (tiny sizes, no compile, no graph: seconds) that CI runs.

    python bench/gpu_check.py [--repeats 5] [--quick]
    python bench/gpu_check.py --cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.bench_training import SIZES  # noqa: E402
from bench.matmul_bound import matmul_bound, record_matmuls  # noqa: E402
from vrnn_lightning import estimators  # noqa: E402
from vrnn_lightning.model import VRNN  # noqa: E402

TINY = dict(
    model=dict(h_dim=32, z_dim=8, phi_x_dim=16, phi_z_dim=16, enc_dim=16, prior_dim=16,
               dec_dim=16, mlp_layers=1, n_components=3),
    batch=4, steps=10,
)  # fmt: skip
X_DIM = 200
FAILED: list[str] = []  # the modes that raised


class Clock:
    """Wall time of a callable, waiting for the device's queued kernels before reading."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, fn) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def median(self, fn, repeats: int) -> float:
        fn()  # warm up
        return statistics.median(self(fn) for _ in range(repeats))


def bf16_peak(device: torch.device, clock: Clock) -> float:
    """FLOP/s of a large bf16 matmul: the ceiling the steps are measured against."""
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    return 2 * n**3 / clock.median(lambda: a @ b, 5)


def _loss(model: VRNN, x: torch.Tensor, naive: bool) -> torch.Tensor:
    terms = model.forward_stepwise(x) if naive else model(x)
    return -(terms.log_px - terms.kl).sum(1).mean()


def eager_step(model: VRNN, x: torch.Tensor, bf16: bool, naive: bool = False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)  # as VRNNModule
    device = x.device.type

    def step():
        with torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext():
            loss = _loss(model, x, naive)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def graph_step(model: VRNN, x: torch.Tensor, bf16: bool):
    """The whole step captured as one CUDA graph (PyTorch's whole-network capture recipe:
    warm up on a side stream, gradients set to None before capture, a capturable Adam)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True, capturable=True)
    static_x = x.clone()

    def body():
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False)
        with autocast if bf16 else nullcontext():
            loss = _loss(model, static_x, naive=False)
        loss.backward()
        opt.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            body()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        body()
    return graph.replay


def count_flops(model: VRNN, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _loss(model, x, naive=False).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def training_steps(name: str, spec: dict, device, clock: Clock, peak: float, args) -> None:
    torch.manual_seed(0)
    x = torch.randn(spec["batch"], spec["steps"], X_DIM, device=device)

    def model(compile: bool = False) -> VRNN:
        torch.manual_seed(0)
        return VRNN("vrnn_gmm", x_dim=X_DIM, compile=compile, **spec["model"]).to(device)

    flops = count_flops(model(), x)
    kinds = {}
    for precision, bf16 in (("fp32", False), ("bf16", True)):
        kinds[f"naive {precision}"] = lambda bf16=bf16: eager_step(model(), x, bf16, naive=True)
        kinds[f"eager {precision}"] = lambda bf16=bf16: eager_step(model(), x, bf16)
        if args.compile:
            kinds[f"compile {precision}"] = lambda bf16=bf16: eager_step(model(True), x, bf16)
        if device.type == "cuda":
            kinds[f"graph {precision}"] = lambda bf16=bf16: graph_step(model(), x, bf16)
    print(f"\n{name}: batch {spec['batch']} x {spec['steps']}, one step = {flops / 1e9:.1f} GFLOP")
    header = (
        f"  {'mode':14} {'ms/step':>9} {'TFLOP/s':>8} {'% bf16 peak':>11} {'vs naive':>9} "
        f"{'x bound':>8}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2), flush=True)
    # each mode timed on its own and its row printed at once, so a time limit that cuts the
    # table keeps the rows already measured (bench/gpu_check.sh runs this under `timeout`)
    bounds, base = {}, None
    for kind, make in kinds.items():
        mode, precision = kind.split()
        try:
            step = make()
            step()  # warm up (and compile)
        except Exception as err:  # one failing mode must not hide the others
            print(f"  {name} {kind}: failed: {type(err).__name__}: {err}")
            FAILED.append(f"{name} {kind}")
            traceback.print_exc(limit=3, file=sys.stdout)
            continue
        if mode == "eager":  # the precision's lower bound: its products, each timed alone
            bound = matmul_bound(record_matmuls(step), device)
            bounds[precision] = bound.seconds
            if bound.flops != flops:  # a product the recording missed (or counted twice)
                print(f"  {name} matmul bound {precision}: recorded {bound.flops} FLOPs, "
                      f"the step has {flops}")  # fmt: skip
                FAILED.append(f"{name} matmul bound {precision}")
        sec = statistics.median(clock(step) for _ in range(args.repeats))
        if kind == "naive fp32":
            base = sec
        rate = flops / sec
        speedup = f"{base / sec:8.2f}x" if base else f"{'-':>9}"
        bound = bounds.get(precision) if mode != "naive" else None  # naive: other products
        over = f"{sec / bound:7.2f}x" if bound else f"{'-':>8}"
        print(
            f"  {kind:14} {sec * 1e3:9.2f} {rate / 1e12:8.3g} {100 * rate / peak:10.1f}% "
            f"{speedup} {over}",
            flush=True,
        )
    for precision, bound in bounds.items():
        print(f"  matmul bound {precision}: {bound * 1e3:.2f} ms (its products alone, summed)")
    sys.stdout.flush()


@torch.no_grad()
def iwae(spec: dict, k: int, device, clock: Clock, repeats: int) -> None:
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=X_DIM, **spec["model"]).to(device).eval()
    x = torch.randn(spec["batch"], spec["steps"], X_DIM, device=device)
    elbo = clock.median(lambda: estimators.elbo(model, x), repeats)
    bound = clock.median(lambda: estimators.iwae(model, x, k=k), repeats)
    print(f"\nIWAE, K = {k}, batch {spec['batch']} x {spec['steps']}: {bound * 1e3:.1f} ms; "
          f"one ELBO pass {elbo * 1e3:.2f} ms; "
          f"IWAE / (K x ELBO) = {bound / (k * elbo):.3f}")  # fmt: skip


@torch.no_grad()
def generation(spec: dict, seconds: float, device, clock: Clock, repeats: int) -> None:
    torch.manual_seed(0)
    model = VRNN("vrnn_gmm", x_dim=X_DIM, **spec["model"]).to(device).eval()
    steps = int(seconds * 16_000 / X_DIM)
    sec = clock.median(lambda: model.generate(1, steps), repeats)
    print(f"\ngeneration, batch 1, h {spec['model']['h_dim']}: {steps} frames ({seconds:g} s of "
          f"16 kHz audio) in {sec:.3f} s = {sec / steps * 1e3:.2f} ms/frame, "
          f"real-time factor {sec / seconds:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the quick CPU fallback")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="the small size only, and 0.5 s of generation"
    )
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --cpu for the quick fallback")
    device = torch.device("cpu" if args.cpu else "cuda")
    args.compile = not args.cpu  # on a CPU compiling takes longer than the whole fallback
    clock = Clock(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (quick fallback)"
    print(f"torch {torch.__version__} on {name}")
    peak = bf16_peak(device, clock)
    print(f"bf16 matmul peak: {peak / 1e12:.1f} TFLOP/s", flush=True)
    # the quick measurements first: a time limit cuts the slowest (compiling at TIMIT size)
    small = TINY if args.cpu else SIZES["small"]
    iwae(small, 4 if args.cpu else 40, device, clock, args.repeats)
    seconds = 0.1 if args.cpu else 0.5 if args.quick else 2.0
    generation(TINY if args.cpu else SIZES["timit"], seconds, device, clock, args.repeats)
    sizes = {"tiny": TINY} if args.cpu else {"small": SIZES["small"]}
    if not (args.cpu or args.quick):
        sizes["timit"] = SIZES["timit"]
    for size, spec in sizes.items():
        training_steps(size, spec, device, clock, peak, args)
    if FAILED:
        sys.exit(f"failed: {', '.join(FAILED)}")


if __name__ == "__main__":
    main()
