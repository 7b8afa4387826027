"""Peak memory of scoring one batch as vrnn-eval does, and what every conf/*.yaml's default
evaluation needs.

vrnn-eval scores a batch of B sequences with every estimator under torch.no_grad: the ELBO
(one pass of B rows), IWAE(K) and the paper's per-step estimate (one shared pass of K * B
rows: ``VRNN.forward`` with n_samples=K) and SMC(K) (the particle filter over K * B rows).
A pass holds tensors of every (row, step) at once, so its peak grows as rows x T; the
figure that says what a model costs is its bytes per (row, step).

For each model size (the widths of a conf/*.yaml, and the tiny ones of bench/bench_lgssm.py)
one fresh process builds the model and scores random batches of ``--rows`` rows at two
lengths T, and of twice the rows at the first; before each pass the process returns its free
heap (malloc_trim) and resets its peak resident memory (/proc/self/clear_refs), so each
figure is the pass's own peak above what the process held before it (vrnn_lightning/memory.py,
``peak_resident_mb``; glibc's mmap threshold is fixed, see ``run_child``). Bytes per (row,
step) is the slope between the two lengths (per-row and fixed costs cancel); rows x T must
exceed 2048 at both, where the decoder's slices stop growing (model_parts.py, SCORING_ROWS).
"budget" is what ``eval.memory_gb`` assumes at the measured K (vrnn_lightning/estimators.py,
``step_bytes``), which must not be below the measurement (ratio >= 1).

Then, for every conf/*.yaml: the predicted peak of its default evaluation, one batch of
eval.batch_size sequences x eval.iw_samples rows of its longest sequence, unsplit (as before
eval.memory_gb) and with eval.memory_gb's sub-batches; and of its validation when trained with
optim.objective=iwae or fivo (data.eval_batch_size x optim.particles rows, always unsplit).
The longest sequence is measured where the corpus is here (FSDD, GW online under
../shared/data) and assumed otherwise (the table says which).

    python bench/bench_eval_memory.py                          # every size, rows 32, T 64 160
    python bench/bench_eval_memory.py --sizes lgssm timit --rows 32 --lengths 8 24   # a look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from vrnn_lightning.config import load_config  # noqa: E402

CONFIGS = sorted(p.stem for p in (ROOT / "conf").glob("*.yaml"))
SIZES = ["lgssm", *CONFIGS]  # lgssm: the tiny widths of bench/bench_lgssm.py
ESTIMATORS = ("elbo", "importance", "smc")  # importance: IWAE(K) and the paper's, one pass
SHARED_DATA = ROOT.parent / "shared" / "data"

# The longest sequence each corpus evaluates, where the corpus is not here. Windows
# (data.eval_full_sequences false) are data.seq_len frames and need no assumption.
ASSUMED_LONGEST = {
    # TIMIT's longest test utterances last about 7.8 s: 624 frames of 200 samples at 16 kHz
    "timit": (624, "longest TIMIT utterance ~7.8 s"),
    # clips are truncated to data.max_samples (50000 samples = 250 frames)
    "onomatopoeia": (250, "data.max_samples 50000 / 200"),
    # IAM-OnDB text lines reach about 2000 pen points (Graves 2013 reports ~700 on average)
    "iamondb": (2000, "longest IAM-OnDB line ~2000 points"),
    # generated lines are a few hundred steps
    "demo_handwriting": (600, "generated lines, a few hundred steps"),
}


# ---- the child: one model size, every estimator, two lengths ---------------------------


def model_of(size: str):
    import torch

    from vrnn_lightning.lgssm import MODEL
    from vrnn_lightning.model import VRNN

    torch.manual_seed(0)
    if size == "lgssm":
        return VRNN("vrnn_gauss", x_dim=6, observation="audio", init="torch", **MODEL)
    cfg = load_config(ROOT / "conf" / f"{size}.yaml")
    spec = {k: v for k, v in cfg.model.items() if k not in ("init", "compile")}
    observation, x_dim = observation_of(cfg)
    return VRNN(observation=observation, x_dim=x_dim, init="torch", **spec)


def observation_of(cfg) -> tuple[str, int]:
    """(observation, x_dim) of a config's corpus, without reading it: strokes are (pen, dx,
    dy) steps, audio frames of data.frame_size samples."""
    strokes = cfg.data.dataset in ("iamondb", "gw_online", "synthetic_handwriting")
    return ("strokes", 3) if strokes else ("audio", cfg.data.frame_size)


def batch(model, rows: int, steps: int):
    import torch

    x = torch.randn(rows, steps, model.x_dim)
    if model.observation == "strokes":
        x[..., 0] = (x[..., 0] > 1).float()  # the pen bit
    return x, torch.ones(rows, steps, dtype=torch.bool)


def measure(size: str, rows: int, lengths: list[int], k: int) -> dict:
    """{estimator: [peak MiB of each (rows, T) case]} for one model size; runs in the child.
    The cases: ``rows`` rows at both lengths, and twice the rows at the first."""
    import torch

    from vrnn_lightning import estimators
    from vrnn_lightning.memory import peak_resident_mb

    torch.set_num_threads(1)
    model = model_of(size).eval()
    passes = {
        "elbo": lambda x, m: estimators.elbo(model, x, m),
        "importance": lambda x, m: estimators.importance_estimates(model, x, m, k),
        "smc": lambda x, m: estimators.smc(model, x, m, k),
    }
    cases = [(rows, lengths[0]), (rows, lengths[1]), (2 * rows, lengths[0])]
    peaks = {name: [] for name in ESTIMATORS}
    with torch.no_grad():
        passes["importance"](*batch(model, 1, 2))  # warm up: lazy one-off allocations
        passes["smc"](*batch(model, 1, 2))
        for n_rows, steps in cases:
            # the ELBO scores n_rows sequences once; the others n_rows / K sequences K times
            x, mask = batch(model, n_rows, steps)
            b = n_rows // k
            inputs = {"elbo": (x, mask), "importance": (x[:b], mask[:b])}
            inputs["smc"] = inputs["importance"]
            for name in ESTIMATORS:
                run = passes[name]
                peaks[name].append(peak_resident_mb(lambda r=run, i=inputs[name]: r(*i)))
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "peaks": peaks,
        "cases": cases,
        "params": n_params,
        "h_dim": model.h_dim,
        "step_bytes": dataclasses.astuple(estimators.step_bytes(model)),  # eval.memory_gb's
    }


# ---- the parent: tables ----------------------------------------------------------------


def run_child(size: str, rows: int, lengths: list[int], k: int) -> dict:
    # glibc's default moves its mmap threshold up as large blocks are freed, after which they
    # come from a heap whose holes make the same pass measure 70 or 125 kB per (row, step)
    # from one run to the next; a fixed threshold maps every tensor of 64 kB or more on its
    # own and unmaps it when freed, so resident memory follows the tensors (within 5%)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", size, "--rows", str(rows), "--k", str(k),
         "--lengths", *map(str, lengths)],
        capture_output=True, text=True, check=True, timeout=3600, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


Fit = dict[str, tuple[float, float, float]]  # estimator -> (B per row-step, B per row, fixed B)


def fit(result: dict) -> Fit:
    """{estimator: (bytes per (row, step), bytes per row, fixed bytes)} from the three cases:
    the two lengths give the first, twice the rows the second, and what is left the third
    (clamped at 0: a pass with no per-row cost measures a little either way)."""
    (r, t1), (_, t2), (r2, _) = result["cases"]
    out = {}
    for name, mb in result["peaks"].items():
        p1, p2, p3 = (m * 2**20 for m in mb)
        per_row_step = max(0.0, (p2 - p1) / (r * (t2 - t1)))
        per_row = max(0.0, (p3 - p1 - per_row_step * (r2 - r) * t1) / (r2 - r))
        out[name] = (per_row_step, per_row, max(0.0, p1 - per_row * r - per_row_step * r * t1))
    return out


def peak(f: Fit, name: str, rows: int, steps: int) -> float:
    """Predicted peak bytes of one pass of ``rows`` rows over ``steps`` steps."""
    per_row_step, per_row, fixed = f[name]
    return fixed + per_row * rows + per_row_step * rows * steps


def longest(name: str, cfg) -> tuple[int, str]:
    """(the longest sequence a config evaluates, where that figure comes from)."""
    if not cfg.data.eval_full_sequences:
        return cfg.data.seq_len, "data.seq_len windows"
    root = data_root(cfg)
    if cfg.data.dataset == "audio_folder" and root is not None:
        import soundfile

        frames = max(soundfile.info(f).frames for f in root.glob("*.wav"))
        return frames // cfg.data.frame_size, f"measured, {root.name}"
    if cfg.data.dataset == "gw_online" and root is not None:
        # a word file: its text, then one pen point a line
        points = max(len(f.read_text().splitlines()) - 1 for f in root.glob("*/*_*[0-9].txt"))
        return points, f"measured, {root.name}"
    if name in ASSUMED_LONGEST:
        steps, why = ASSUMED_LONGEST[name]
        return steps, f"assumed: {why}"
    return cfg.data.seq_len, "assumed: data.seq_len"


def data_root(cfg) -> Path | None:
    """The config's data.root where it is on this machine (for conf/fsdd.yaml and
    conf/gw_online.yaml, which download theirs: ../shared/data, the repository's neighbour
    in the main checkout)."""
    if cfg.data.root is None:  # data.download: the copy beside the repository, if here
        shared = {"fsdd": "fsdd/recordings", "gw_online": "gw-online"}.get(cfg.data.download)
        return SHARED_DATA / shared if shared and (SHARED_DATA / shared).is_dir() else None
    for base in (ROOT, *ROOT.parents[:2]):
        path = (base / cfg.data.root).resolve()
        if path.is_dir():
            return path
    return None


def plan(f: Fit, k: int, n_seq: int, steps: int, max_rows: int | None) -> tuple[int, float]:
    """(IWAE's rows per pass, the predicted peak) of scoring n_seq sequences with K = k as
    ``estimate_all`` splits them under ``max_rows`` (estimators.Scoring.parts: sequences at
    a time; importance_estimates: groups of samples when K alone is too many)."""
    seqs = n_seq if max_rows is None else max(1, min(n_seq, max_rows // k))
    importance_rows = seqs * k if max_rows is None or k <= max_rows else max_rows
    bytes_ = max(
        peak(f, "elbo", seqs, steps),
        peak(f, "importance", importance_rows, steps),
        peak(f, "smc", seqs * k, steps),
    )
    return importance_rows, bytes_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=SIZES, choices=SIZES)
    parser.add_argument("--rows", type=int, default=32, help="rows (B x K) of each pass")
    parser.add_argument("--k", type=int, default=8, help="K of the measured passes")
    parser.add_argument("--lengths", type=int, nargs=2, default=[64, 160])
    parser.add_argument("--child", choices=SIZES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.rows, args.lengths, args.k)))
        return

    from vrnn_lightning.estimators import StepBytes, rows_within

    (t1, t2), rows = args.lengths, args.rows
    print(f"peak resident memory of one scoring pass under torch.no_grad, {rows} rows at T = "
          f"{t1} and {t2}, and {2 * rows} rows at T = {t1}: bytes per (row, step) (the slope "
          "in T), per row, fixed")  # fmt: skip
    header = (f"{'size':<17} {'h_dim':>5} {'params':>7} {'ELBO':>8} {'IWAE':>8} {'budget':>8} "
              f"{'ratio':>5} {'SMC':>6} {'SMC/row':>8} {'fixed MB':>8}")  # fmt: skip
    print(header)
    fits = {}
    for size in args.sizes:
        result = run_child(size, args.rows, args.lengths, args.k)
        f = fits[size] = fit(result)
        imp, size_bytes = f["importance"][0], StepBytes(*result["step_bytes"])
        budget = size_bytes.per_sequence / args.k + size_bytes.per_row  # at the measured K
        print(f"{size:<17} {result['h_dim']:>5} {result['params'] / 1e6:>6.1f}M "
              f"{f['elbo'][0]:>8.0f} {imp:>8.0f} {budget:>8.0f} {budget / max(imp, 1):>5.2f} "
              f"{f['smc'][0]:>6.0f} {f['smc'][1]:>8.0f} {f['importance'][2] / 2**20:>8.0f}",
              flush=True)  # fmt: skip
        fits[size] = (f, size_bytes)
    print(
        f"(bytes; IWAE: IWAE(K)'s and the paper's shared pass, K = {args.k}; budget: what "
        "eval.memory_gb assumes per (row, step) at that K, ratio: budget / IWAE measured, >= 1 "
        "is safe)"
    )

    print(
        "\npredicted peak of each config's default vrnn-eval batch (eval.batch_size sequences "
        "x eval.iw_samples rows of its longest sequence), unsplit and with eval.memory_gb;\n"
        "and of its validation when trained with optim.objective=iwae|fivo "
        "(data.eval_batch_size x optim.particles rows), unsplit and with eval.memory_gb"
    )
    print(f"{'config':<17} {'rows':>6} {'T':>5} {'longest from':<44} {'unsplit GB':>10} "
          f"{'memory_gb':>9} {'rows/pass':>9} {'split GB':>8} {'val rows':>8} {'val GB':>6} "
          f"{'split GB':>8}")  # fmt: skip
    for name in CONFIGS:
        if name not in fits:
            continue
        f, size_bytes = fits[name]
        cfg = load_config(ROOT / "conf" / f"{name}.yaml")
        steps, source = longest(name, cfg)
        b, k = cfg.eval.batch_size, cfg.eval.iw_samples
        gb = cfg.eval.memory_gb
        max_rows = rows_within(size_bytes, steps, gb, k)
        unsplit = plan(f, k, b, steps, None)[1]
        per_pass, split = plan(f, k, b, steps, max_rows)
        val_k, val_b = cfg.optim.particles, cfg.data.eval_batch_size
        val = plan(f, val_k, val_b, steps, None)[1]
        val_split = plan(f, val_k, val_b, steps, rows_within(size_bytes, steps, gb, val_k))[1]
        print(f"{name:<17} {f'{b}x{k}':>6} {steps:>5} {source:<44} {unsplit / 2**30:>10.1f} "
              f"{gb if gb is not None else 'null':>9} {per_pass:>9} {split / 2**30:>8.2f} "
              f"{f'{val_b}x{val_k}':>8} {val / 2**30:>6.1f} {val_split / 2**30:>8.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
