"""The run configuration: a typed schema, merged with a YAML file and ``key=value`` overrides.

The dataclasses below are the single source of truth for every key. A config key,
a constructor keyword, a CLI override and a W&B key are the same string
(``model.z_dim``, ``data.batch_size``, ...). Unknown keys and wrong types are
errors that name the key.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from .variant import ALL_VARIANTS

GRAD_CLIP_SCALES = ("batch", "batch_frames", "none")
OBJECTIVES = ("elbo", "iwae", "fivo")  # optim.objective: the bound training maximises


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what is valid."""


@dataclass
class ModelConfig:
    variant: str = "vrnn_gmm"
    h_dim: int = 2000  # LSTM units
    z_dim: int = 200
    phi_x_dim: int = 400
    phi_z_dim: int = 300
    enc_dim: int = 300
    prior_dim: int = 300
    dec_dim: int = 400
    mlp_layers: int = 4  # hidden ReLU layers per MLP (the paper: 4; IAM-OnDB: 1)
    n_components: int = 20  # mixture components for the *_gmm variants
    min_std: float = 1e-4  # every scale is softplus(a) + min_std
    init: str = "paper"  # "paper" (U(-0.08, 0.08), orthogonal recurrent blocks) or "torch"
    std_bias_init: float = 0.6  # bias of every scale head under init=paper
    # torch.compile the decoder and output density (the per-frame work after the loop): about
    # 10% faster training steps at the paper's sizes, after a one-off compile of 10-20 s;
    # on a CPU it needs a C++ compiler
    compile: bool = False
    # the output head: "independent" (the paper's: a frame factorised given its context) or
    # "autoregressive" (a chain of conditionals within the frame, Dai et al. 2019:
    # vrnn_lightning/autoregressive.py); any variant takes either
    output: str = "independent"
    ar_hidden: int | None = None  # the autoregressive head's masked hidden units; null: dec_dim
    # srnn_*: the posterior mean as the prior's plus a learned residual ("Res_q", Fraccaro et
    # al. 2016); ignored by the other variants
    res_q: bool = True


@dataclass
class DataConfig:
    dataset: str = "synthetic_speech"  # a corpus name in vrnn_lightning.data.corpora
    root: str | None = None  # the raw corpus on disk (not needed by the synthetic corpora)
    # with data.root unset: download this public corpus on first use (fsdd, gw_online) into
    # <cache_dir>/downloads/ and read it from there (vrnn_lightning/data/download.py)
    download: str | None = None
    cache_dir: str = "data_cache"  # where the prepared HDF5 stores go
    sample_rate: int = 16000
    frame_size: int = 200  # samples per frame (audio)
    seq_len: int = 40  # frames per training window
    eval_full_sequences: bool = False  # evaluate whole variable-length sequences with a mask
    # train on whole sequences in length-bucketed batches (IAM-OnDB, Onomatopoeia) instead of
    # seq_len windows from a random offset
    train_full_sequences: bool = False
    # train on batch_size contiguous streams (per rank) of consecutive seq_len windows, in
    # order, for truncated BPTT with carried state (Blizzard, Accent; optim.tbptt_reset_every)
    streams: bool = False
    # a .npz (X_mean, X_std) or .json (mean, std) of given normalisation statistics, used
    # instead of the train split's (e.g. the original release's; see data/norm_stats.py)
    norm_stats: str | None = None
    batch_size: int = 64
    eval_batch_size: int = 64
    num_workers: int = 0
    prepare_workers: int = 1
    split_seed: int = 1234
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    max_samples: int | None = None  # truncate each audio file to this many samples
    speaker_pattern: str | None = None  # regex whose group 1 is the speaker in a file name
    compression: str | None = "lzf"  # HDF5 filter for the frames dataset (None, lzf, gzip)
    # (dx, dy) statistics of stroke corpora: "paper" reproduces the original code's quirk
    # (docs/paper.md, Normalisation), "pooled" is the plain scalar mean/std over both coordinates
    stroke_stats: str = "paper"
    synthetic_sequences: int = 600  # size of the generated demo corpora
    synthetic_seconds: float = 2.0


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 5.0  # global L2 norm, on the original's gradient scale (see below)
    # The original divides its gradients by the batch size and clips at 5 (section 4), on a
    # per-sequence sum for TIMIT, Onomatopoeia and IAM-OnDB and a per-frame mean for Blizzard
    # and Accent. Here the loss is a per-sequence sum averaged over sequences, so the same
    # clipping is a threshold of grad_clip x batch_size ("batch") or grad_clip x batch_size x
    # seq_len ("batch_frames"); "none": grad_clip itself (module.clip_threshold)
    grad_clip_scale: str = "batch"
    # truncated BPTT with data.streams: carry each stream's LSTM (h, c) from one update to the
    # next (no gradient across updates), from zero at every n-th batch of an epoch; 0: off
    tbptt_reset_every: int = 0
    max_norm: float | None = 1.9365  # per-column max-norm of non-recurrent weights; None: off
    kl_anneal_steps: int = 0  # linear KL weight warm-up from 0 to 1; 0: off (the paper)
    kl_anneal_start: float = 0.0  # the KL weight annealing starts from (Dai et al.: 0.2)
    # the learning rate over the run (schedule.py): none (the paper), cosine (to lr_floor over
    # schedule_length intervals; null: the run's length) or exponential (x decay_rate per
    # interval after decay_after); either after a linear warm-up over `warmup` intervals; an
    # interval is a step or an epoch (schedule_interval)
    schedule: str = "none"
    schedule_interval: str = "step"
    warmup: int = 0
    lr_floor: float = 0.0
    schedule_length: int | None = None
    decay_after: int = 0
    decay_rate: float = 0.5
    free_bits: float = 0.0  # nats per z dim per step below which KL is not penalised
    max_nonfinite_steps: int = 20  # consecutive non-finite losses before training stops
    # the bound training maximises: elbo (the paper), iwae (IWAE(K)) or fivo (SMC(K)'s bound,
    # Maddison et al. 2017), with K = particles samples or particles (ignored by elbo)
    objective: str = "elbo"
    particles: int = 4


@dataclass
class WandbConfig:
    enabled: bool = True
    # offline | online | disabled; unset: $WANDB_MODE if set, online under a W&B sweep agent
    # (it sets $WANDB_SWEEP_ID), else offline (no account needed; `wandb sync` uploads later)
    mode: str | None = None
    project: str | None = None  # unset: $WANDB_PROJECT, else vrnn-lightning
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: bool = False  # also write TensorBoard event files to <out_dir>/tensorboard
    log_every_n_steps: int = 50


@dataclass
class TrainerConfig:
    """Passed through to lightning.Trainer (plus what fit.py adds). Any other Trainer keyword
    is accepted too, as ``trainer.NAME=value`` (checked against the Trainer's signature)."""

    accelerator: str = "auto"
    # one device unless told: "auto" made every vrnn-fit on an 8-GPU node an 8-rank run (an 8x
    # global batch and clip threshold) and every vrnn-sweep job take all the GPUs
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 100
    max_steps: int = -1
    max_time: str | None = None
    val_check_interval: Any = None
    # null: val_check_interval counts training batches over the whole run, across epochs
    check_val_every_n_epoch: int | None = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    early_stopping_patience: int | None = 10  # validations without a better val/elbo
    enable_progress_bar: bool = True
    deterministic: bool = False
    # torch.set_float32_matmul_precision for 32-true: highest (IEEE float32), high (TF32 matrix
    # products on an Ampere or newer GPU: several times faster), medium; unset: high on a CUDA
    # GPU, a CPU's products untouched
    float32_matmul_precision: str | None = None


# TrainerConfig keys that vrnn-fit interprets itself instead of passing to lightning.Trainer
NOT_TRAINER_ARGS = ("early_stopping_patience", "float32_matmul_precision")


@dataclass
class EvalConfig:
    split: str = "test"
    iw_samples: int = 40  # K of IWAE(K), SMC(K) and the paper's per-step estimate
    batch_size: int = 16
    resampling: str = "systematic"  # SMC's resampling: systematic | multinomial
    ess_threshold: float = 0.5  # SMC resamples when the ESS < this * K; 0: never (IWAE)
    # GB of memory (RAM, or GPU memory on a GPU) that scoring one batch (vrnn-eval, the sweep
    # report, validation's optim.objective=iwae|fivo bound) may hold beyond the model: a
    # batch whose K * batch_size rows x T steps would need more is scored a few
    # sequences at a time (IWAE's samples of one sequence in groups if need be), which
    # changes no estimate beyond Monte Carlo noise. Unsplit, TIMIT's default evaluation
    # (16 x 40 rows of utterances up to ~620 frames at h 2000) needs ~14 GB and IAM-OnDB's
    # ~25 GB (bench/bench_eval_memory.py); 4 fits a 16 GB machine or GPU beside the model
    # and the data. Raise it on a larger GPU for speed (more rows per step); null: never
    # split. Resident memory may exceed it by what the allocator keeps besides the tensors.
    # auto: 4 on a CPU; on a CUDA GPU, 60% of the device memory free when scoring starts
    memory_gb: Any = "auto"


@dataclass
class SampleConfig:
    n: int = 4
    steps: int = 160  # frames (audio) or pen steps
    primer_steps: int = 0  # >0: continue this many steps of a dataset sequence
    primer_index: int = 0  # which validation sequence primes the continuation
    every_n_validations: int = 1  # samples written at the end of validation; 0: never
    # decoder means (*_mean.wav) scaled to a -1 dBFS peak (the gain is in samples.json): a
    # mean is far quieter than speech; false keeps their raw level
    peak_normalise: bool = True


@dataclass
class Config:
    name: str = "run"
    seed: int = 1234
    out_dir: str | None = None  # default runs/<name>
    # auto: resume <out_dir>/checkpoints/last.ckpt if the run folder has one and the run has
    # not finished, else start afresh (a requeued job's unchanged command resumes); last: resume
    # last.ckpt whenever there is one; null: only start afresh; a path: that checkpoint
    ckpt_path: str | None = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


def wandb_mode(cfg: DictConfig) -> str:
    """The W&B mode in force: logger.wandb.mode, else $WANDB_MODE, else online under a sweep
    agent, else offline."""
    if cfg.logger.wandb.mode:
        return cfg.logger.wandb.mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_SWEEP_ID") else "offline"


def _check_choices(cfg: DictConfig) -> None:
    if cfg.trainer.precision in UNSUPPORTED_PRECISIONS:
        raise ConfigError(
            f"trainer.precision: {cfg.trainer.precision!r} is not supported: the model computes "
            "its latent samples, log-densities and KL in float32; use bf16-mixed or 16-mixed "
            "(GPU) for 16-bit speed, or 32-true"
        )
    if cfg.model.variant not in ALL_VARIANTS:
        raise ConfigError(
            f"model.variant: '{cfg.model.variant}' is not a variant; valid: "
            + ", ".join(ALL_VARIANTS)
        )
    check_values(cfg)
    optim = cfg.optim
    if optim.objective != "elbo" and (optim.kl_anneal_steps > 0 or optim.free_bits > 0):
        raise ConfigError(
            f"optim.objective: {optim.objective} has no KL term to anneal or floor; "
            "optim.kl_anneal_steps and optim.free_bits apply to elbo only"
        )
    if optim.kl_anneal_start > 0 and optim.kl_anneal_steps == 0:
        raise ConfigError(
            "optim.kl_anneal_start: annealing needs optim.kl_anneal_steps > 0 (the steps "
            "over which the KL weight rises to 1)"
        )
    if optim.schedule == "cosine" and optim.lr_floor > optim.lr:
        raise ConfigError(
            f"optim.lr_floor: {optim.lr_floor} is above optim.lr {optim.lr}; cosine decays to it"
        )
    if optim.tbptt_reset_every and not cfg.data.streams:
        raise ConfigError(
            "optim.tbptt_reset_every: carrying state needs data.streams=true (consecutive "
            "windows of the same streams in consecutive batches)"
        )
    if optim.tbptt_reset_every and cfg.model.variant.startswith("srnn"):
        raise ConfigError(
            f"optim.tbptt_reset_every: {cfg.model.variant}'s smoothing posterior reads whole "
            "windows; it carries no state across updates"
        )
    if optim.tbptt_reset_every and optim.objective != "elbo":
        raise ConfigError(
            f"optim.tbptt_reset_every: the state is carried for optim.objective=elbo only, "
            f"not {optim.objective}"
        )
    if cfg.data.streams and cfg.data.train_full_sequences:
        raise ConfigError("data.streams and data.train_full_sequences: choose one")


# Values each key must have, checked before any work (no run folder is made for a config that
# fails them): key -> (test, what is expected). A value outside them used to crash at the
# first step (n_components=0), or worse, to train (z_dim=0, min_std=-1).
def _at_least(n):
    return lambda v: v >= n, f"an integer >= {n}"


_POSITIVE = (lambda v: v > 0, "a number > 0")
_NON_NEGATIVE = (lambda v: v >= 0, "a number >= 0")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "16", "bf16-mixed", "bf16")
# not these: "16-true" and "bf16-true" cast the weights, but the fused loop keeps z and the
# log-densities in float32 (it failed at the first step), and transformer-engine has no use here
UNSUPPORTED_PRECISIONS = ("16-true", "bf16-true")
UNSUPPORTED_PRECISIONS += ("transformer-engine", "transformer-engine-float16")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
COMPRESSIONS = (None, "lzf", "gzip")
DOWNLOADS = (None, "fsdd", "gw_online")  # data.download: the corpora data/download.py pins
WANDB_MODES = (None, "offline", "online", "disabled")
SPLITS = ("train", "valid", "test")


def _one_of(choices):
    return lambda v: v in choices, "one of " + ", ".join(
        "null" if c is None else str(c) for c in choices
    )


def _devices_ok(v) -> bool:
    """Lightning's forms: "auto" (or unset), a count (-1: all), a list of indices, "0,1"."""
    if v is None or v == "auto":
        return True
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 1 or v == -1
    if isinstance(v, str):
        parts = [p.strip() for p in v.split(",") if p.strip()]
        return bool(parts) and all(p.isdigit() or p == "-1" for p in parts)
    if OmegaConf.is_list(v) or isinstance(v, list):
        return len(v) > 0 and all(isinstance(i, int) and i >= 0 for i in v)
    return False


VALUE_CHECKS = {
    **{f"model.{k}": _at_least(1) for k in ("h_dim", "z_dim", "phi_x_dim", "phi_z_dim")},
    **{f"model.{k}": _at_least(1) for k in ("enc_dim", "prior_dim", "dec_dim", "mlp_layers")},
    "model.n_components": _at_least(1),
    "model.min_std": _POSITIVE,
    "model.init": _one_of(("paper", "torch")),
    "model.output": _one_of(("independent", "autoregressive")),  # autoregressive.OUTPUT_KINDS
    "model.ar_hidden": (lambda v: v is None or v >= 1, "null or an integer >= 1"),
    "data.sample_rate": _at_least(1),
    "data.frame_size": _at_least(1),
    "data.seq_len": _at_least(1),
    "data.batch_size": _at_least(1),
    "data.eval_batch_size": _at_least(1),
    "data.num_workers": _at_least(0),
    "data.prepare_workers": _at_least(1),
    "data.valid_fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "data.test_fraction": (lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    "data.max_samples": (lambda v: v is None or v >= 1, "null or an integer >= 1"),
    "data.compression": _one_of(COMPRESSIONS),
    "data.download": _one_of(DOWNLOADS),
    "data.synthetic_sequences": _at_least(1),
    "data.synthetic_seconds": _POSITIVE,
    "optim.lr": _NON_NEGATIVE,  # 0: frozen weights (a test uses it)
    "optim.eps": _NON_NEGATIVE,
    "optim.betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "optim.grad_clip": _NON_NEGATIVE,
    "optim.grad_clip_scale": _one_of(GRAD_CLIP_SCALES),
    "optim.tbptt_reset_every": _at_least(0),
    "optim.max_norm": (lambda v: v is None or v > 0, "null or a number > 0"),
    "optim.kl_anneal_steps": _at_least(0),
    "optim.kl_anneal_start": (lambda v: 0 <= v <= 1, "a weight in [0, 1]"),
    "optim.schedule": _one_of(("none", "cosine", "exponential")),  # schedule.SCHEDULES
    "optim.schedule_interval": _one_of(("step", "epoch")),
    "optim.warmup": _at_least(0),
    "optim.lr_floor": _NON_NEGATIVE,
    "optim.schedule_length": (lambda v: v is None or v >= 1, "null or an integer >= 1"),
    "optim.decay_after": _at_least(0),
    "optim.decay_rate": (lambda v: 0 < v <= 1, "a factor in (0, 1]"),
    "optim.free_bits": _NON_NEGATIVE,
    "optim.max_nonfinite_steps": _at_least(1),
    "optim.objective": _one_of(OBJECTIVES),
    "optim.particles": _at_least(1),
    "trainer.accelerator": _one_of(ACCELERATORS),
    "trainer.devices": (_devices_ok, 'auto, a count >= 1 (-1: all), a list of indices or "0,1"'),
    "trainer.num_nodes": _at_least(1),
    "trainer.precision": _one_of(PRECISIONS + UNSUPPORTED_PRECISIONS),
    "trainer.float32_matmul_precision": _one_of((None, "highest", "high", "medium")),
    "trainer.max_epochs": _at_least(-1),
    "trainer.max_steps": _at_least(-1),
    "trainer.check_val_every_n_epoch": (
        lambda v: v is None or v >= 1,
        "null or an integer >= 1",
    ),
    "trainer.num_sanity_val_steps": _at_least(-1),
    "trainer.early_stopping_patience": (lambda v: v is None or v >= 0, "null or an integer >= 0"),
    "logger.wandb.mode": _one_of(WANDB_MODES),
    "logger.log_every_n_steps": _at_least(1),
    "eval.split": _one_of(SPLITS),
    "eval.iw_samples": _at_least(1),
    "eval.batch_size": _at_least(1),
    "eval.resampling": _one_of(("systematic", "multinomial")),  # smc.RESAMPLING (torch-free here)
    "eval.ess_threshold": (lambda v: 0 <= v <= 1, "a fraction of K in [0, 1]"),
    "eval.memory_gb": (
        lambda v: v is None or v == "auto" or (not isinstance(v, (str, bool)) and v > 0),
        "auto, null or a number of GB > 0",
    ),
    "sample.n": _at_least(1),
    "sample.steps": _at_least(1),
    "sample.primer_steps": _at_least(0),
    "sample.primer_index": _at_least(0),
    "sample.every_n_validations": _at_least(0),
}


_ABSENT = object()


def check_values(cfg: DictConfig) -> None:
    """ConfigError naming the first key whose value is out of range, and what is expected."""
    for key, (ok, expected) in VALUE_CHECKS.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            raise ConfigError(f"{key}: {shown!r} is not valid; expected {expected}")


def check_hardware(cfg: DictConfig) -> None:
    """ConfigError when trainer.accelerator asks for a device this machine does not have
    (checked before a run folder is made; a login node may still write such a config)."""
    import torch

    accel = cfg.trainer.accelerator
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        has_mps = torch.backends.mps.is_available()
        if not (accel == "gpu" and has_mps):
            raise ConfigError(
                f"trainer.accelerator: '{accel}' but this machine has no CUDA GPU; "
                "use trainer.accelerator=cpu or auto"
            )
    if accel == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator: 'mps' but this machine has no Apple GPU")


def _describe(err: OmegaConfBaseException, source: str) -> str:
    key = getattr(err, "full_key", None) or "?"
    msg = (getattr(err, "msg", None) or str(err)).splitlines()[0]
    return f"{source}: key '{key}': {msg}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Schema defaults, then the YAML file at ``path``, then ``key=value`` overrides.

    Returns a structured (typed, closed) DictConfig. Raises ConfigError naming the
    offending key on an unknown key, a wrong type or an invalid choice.
    """
    cfg = OmegaConf.structured(Config)
    if path is not None:
        cfg = merge_file(cfg, path)
    cfg = apply_overrides(cfg, overrides or [])
    if cfg.out_dir is None:
        cfg.out_dir = str(Path("runs") / cfg.name)
    return cfg


def merge_file(cfg: DictConfig, path: str | Path) -> DictConfig:
    """``cfg`` updated by a YAML file or a saved config (e.g. a checkpoint's), checked.

    Errors name the file, the line and the key: a YAML syntax error, a file that is not UTF-8
    text or not a mapping of sections, a section given a plain value (``model: 5``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        update = OmegaConf.load(io.StringIO(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {_describe(err, 'not a config')}") from None
    if update is None or (OmegaConf.is_dict(update) and len(update) == 0):
        return cfg
    if not OmegaConf.is_dict(update):
        raise ConfigError(
            f"{path}: expected a mapping of sections (model:, data:, optim:, ...), "
            f"got a {'list' if OmegaConf.is_list(update) else type(update).__name__}"
        )
    cfg = _admit_trainer_keys(cfg, update, str(path))
    try:
        return OmegaConf.merge(cfg, update)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or _failing_section(cfg, update)
        msg = (getattr(err, "msg", None) or str(err)).splitlines()[0]
        if key in cfg and OmegaConf.is_dict(cfg[key]) and not OmegaConf.is_dict(update[key]):
            msg = f"expected a section of {key}.* keys, got {update[key]!r}"
        line = _line_of(text, key)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: key '{key}': {msg}") from None


def _failing_section(cfg: DictConfig, update: DictConfig) -> str:
    """The top-level key whose merge fails (OmegaConf names none for ``model: 5``)."""
    for key in update:
        try:
            OmegaConf.merge(cfg, {key: update[key]})
        except OmegaConfBaseException:
            return str(key)
    return "?"


def _line_of(text: str, key: str) -> int | None:
    """The 1-based line of dotted ``key`` in a YAML text, or None."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in key.split("."):
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == part:
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line


# lightning.Trainer arguments that vrnn-fit sets itself: the config key to use instead
TRAINER_KEYS_SET_BY_FIT = {
    "logger": "logger.* (CSV always; logger.wandb.*, logger.tensorboard)",
    "callbacks": "the callbacks vrnn-fit adds (checkpoints, samples, early stopping)",
    "default_root_dir": "out_dir",
    "log_every_n_steps": "logger.log_every_n_steps",
    "gradient_clip_val": "optim.grad_clip (the module clips gradients itself)",
    "gradient_clip_algorithm": "optim.grad_clip (global L2 norm)",
    "use_distributed_sampler": "nothing: every loader shards itself (data/resumable.py)",
    "plugins": "nothing: vrnn-fit sets its checkpoint IO and SLURM environment",
    "enable_checkpointing": "nothing: vrnn-fit always writes best and last checkpoints",
}


def trainer_keywords() -> set[str]:
    """The keyword arguments of lightning.Trainer (imported only when asked)."""
    import inspect

    import lightning

    return set(inspect.signature(lightning.Trainer.__init__).parameters) - {"self"}


def _admit_trainer_keys(cfg: DictConfig, update, source: str) -> DictConfig:
    """Any lightning.Trainer keyword is a ``trainer.*`` key: the schema lists the common ones,
    and a keyword it does not list is added here after checking it against the Trainer's
    signature (ConfigError naming the key otherwise)."""
    trainer = update.get("trainer") if isinstance(update, (dict, DictConfig)) else None
    if not isinstance(trainer, (dict, DictConfig)):
        return cfg
    new = [str(k) for k in trainer if k not in cfg.trainer]
    if not new:
        return cfg
    allowed = trainer_keywords()
    for key in new:
        if key in TRAINER_KEYS_SET_BY_FIT:
            raise ConfigError(
                f"{source}: key 'trainer.{key}': vrnn-fit sets it; use "
                f"{TRAINER_KEYS_SET_BY_FIT[key]}"
            )
        if key not in allowed:
            raise ConfigError(
                f"{source}: key 'trainer.{key}': not a lightning.Trainer argument nor a "
                f"trainer key of the schema (e.g. trainer.fast_dev_run, "
                f"trainer.accumulate_grad_batches)"
            )
    cfg = cfg.copy()
    with open_dict(cfg.trainer):
        for key in new:
            cfg.trainer[key] = None
    return cfg


def merge_checked(cfg: DictConfig, update, source: str) -> DictConfig:
    """``cfg`` updated by a dict-like ``update``; errors name ``source`` and the key."""
    try:
        cfg = _admit_trainer_keys(cfg, update, source)
        return OmegaConf.merge(cfg, update)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, source)) from None


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``key=value`` overrides (the form W&B sweeps pass) applied to ``cfg``, checked."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, value = item.split("=", 1)
        # W&B's agent writes a null parameter with Python's str(): None
        parsed = OmegaConf.from_dotlist([f"{key}=null" if value == "None" else item])
        cfg = merge_checked(cfg, parsed, f"override '{item}'")
    _check_choices(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
