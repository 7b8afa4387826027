"""The run configuration: a typed schema, merged with a YAML file and ``key=value`` overrides.

The dataclasses below are the single source of truth for every key. A config key,
a constructor keyword, a CLI override and a W&B key are the same string
(``model.z_dim``, ``data.batch_size``, ...). Unknown keys and wrong types are
errors that name the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

VARIANTS = ("rnn_gauss", "rnn_gmm", "vrnn_gauss", "vrnn_gmm", "vrnn_i_gauss", "vrnn_i_gmm")
# what one step x_t is: a frame of data.frame_size samples, or a pen step (pen, dx, dy);
# it follows from the corpus kind ("audio" or "strokes")
OBSERVATIONS = ("audio", "pen")


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


@dataclass
class DataConfig:
    dataset: str = "synthetic_speech"  # a corpus name in vrnn_lightning.data.corpora
    root: str | None = None  # the raw corpus on disk (not needed by the synthetic corpora)
    cache_dir: str = "data_cache"  # where the prepared HDF5 stores go
    sample_rate: int = 16000
    frame_size: int = 200  # samples per frame (audio)
    seq_len: int = 40  # frames per training window
    eval_full_sequences: bool = False  # evaluate whole variable-length sequences with a mask
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
    # (spec 5.5), "pooled" is the plain scalar mean/std over both coordinates
    stroke_stats: str = "paper"
    synthetic_sequences: int = 600  # size of the generated demo corpora
    synthetic_seconds: float = 2.0


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 5.0  # global L2 norm
    # the original code divides gradients by the batch size before clipping at 5:
    # with a per-sequence mean loss that is a threshold of grad_clip * batch_size
    grad_clip_per_sequence: bool = True
    max_norm: float | None = 1.9365  # per-column max-norm of non-recurrent weights; None: off
    kl_anneal_steps: int = 0  # linear KL weight warm-up from 0 to 1; 0: off (the paper)
    free_bits: float = 0.0  # nats per z dim per step below which KL is not penalised
    max_nonfinite_steps: int = 20  # consecutive non-finite losses before training stops


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
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 100
    max_steps: int = -1
    max_time: str | None = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int = 0
    early_stopping_patience: int | None = 10  # validations without a better val/elbo
    enable_progress_bar: bool = True
    deterministic: bool = False


@dataclass
class EvalConfig:
    split: str = "test"
    iw_samples: int = 40
    batch_size: int = 16


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
    ckpt_path: str | None = None  # "last" resumes a killed run from its last checkpoint
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
    if cfg.model.variant not in VARIANTS:
        raise ConfigError(
            f"model.variant: '{cfg.model.variant}' is not a variant; valid: {', '.join(VARIANTS)}"
        )


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
    """``cfg`` updated by a YAML file or a saved config (e.g. a checkpoint's), checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return merge_checked(cfg, OmegaConf.load(path), str(path))


# lightning.Trainer arguments that vrnn-fit sets itself: the config key to use instead
TRAINER_KEYS_SET_BY_FIT = {
    "logger": "logger.* (CSV always; logger.wandb.*, logger.tensorboard)",
    "callbacks": "the callbacks vrnn-fit adds (checkpoints, samples, early stopping)",
    "default_root_dir": "out_dir",
    "log_every_n_steps": "logger.log_every_n_steps",
    "gradient_clip_val": "optim.grad_clip (the module clips gradients itself)",
    "gradient_clip_algorithm": "optim.grad_clip (global L2 norm)",
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
