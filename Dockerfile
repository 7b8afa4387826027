# The image that cluster jobs run: vrnn-fit on a CUDA PyTorch base. Usage: docs/docker.md.
#
# The base is a build argument so the same file also builds on another torch image with
# torch>=2.6 (CI builds it on a CPU stand-in: .ci/image_check). The default is pinned; never
# `latest`. The base's torch (and torchaudio, if it has one) is kept: see the pip step below.
ARG BASE=pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime
FROM ${BASE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# W&B settings come from the environment at run time (docs/docker.md). The mode is not set
# here: vrnn-fit takes logger.wandb.mode, else $WANDB_MODE, else online under a W&B sweep agent,
# else offline (no account needed; `wandb sync runs/<name>/wandb/offline-run-*` uploads later).
# An ENV WANDB_MODE=offline would turn a sweep agent's runs offline too.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Caches, where any uid can write them (docs/docker.md, "Caches"): a cluster runs the image as
# an arbitrary uid with no home (`--user 12345:0`, OpenShift) or read-only with the caller's own
# uid and $HOME (Apptainer, Enroot); torch.compile fails when Triton's cache (~/.triton by
# default) is not writable. /tmp is writable in all of them: a tmpfs under `--read-only`, the
# host's /tmp under Apptainer, an emptyDir in Kubernetes; the folders are made world-writable
# below for runtimes that use the image's own /tmp. W&B's run itself still goes to
# runs/<name>/wandb/ (vrnn-fit gives wandb.init that folder).
ENV XDG_CACHE_HOME=/tmp/vrnn-cache \
    TRITON_HOME=/tmp/vrnn-cache \
    TRITON_CACHE_DIR=/tmp/vrnn-cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/tmp/vrnn-cache/inductor \
    CUDA_CACHE_PATH=/tmp/vrnn-cache/nv \
    MPLCONFIGDIR=/tmp/vrnn-cache/matplotlib \
    WANDB_DIR=/tmp/vrnn-cache/wandb \
    WANDB_CACHE_DIR=/tmp/vrnn-cache/wandb-cache \
    WANDB_CONFIG_DIR=/tmp/vrnn-cache/wandb-config \
    WANDB_DATA_DIR=/tmp/vrnn-cache/wandb-data

# C and C++ compilers: torch.compile (model.compile=true) builds Inductor's CPU kernels with
# g++ and Triton's GPU launcher with gcc at run time, against the base Python's headers; the
# runtime base has no compiler. Versions are the base's distribution's own (not pinned: a pin
# breaks as soon as the base moves to another release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && gcc --version | head -n 1 && g++ --version | head -n 1 \
 && python -c "import os, sysconfig; h = os.path.join(sysconfig.get_paths()['include'], 'Python.h'); assert os.path.isfile(h), f'the base Python has no {h}: torch.compile cannot build kernels'" \
 && mkdir -p "$TRITON_CACHE_DIR" "$TORCHINDUCTOR_CACHE_DIR" "$CUDA_CACHE_PATH" "$MPLCONFIGDIR" \
    "$WANDB_DIR" "$WANDB_CACHE_DIR" "$WANDB_CONFIG_DIR" "$WANDB_DATA_DIR" \
 && chmod -R 1777 "$XDG_CACHE_HOME"

# A non-root user; --build-arg UID=... if the base already has a user with uid 1000.
ARG UID=1000
RUN useradd --no-log-init --create-home --uid "${UID}" --user-group --shell /bin/bash vrnn

WORKDIR /workspace

# Install the package first (this layer changes only when the code or its dependencies do).
COPY pyproject.toml README.md ./
COPY vrnn_lightning/ vrnn_lightning/
# Pin the torch packages the base already has, so that pip keeps them (torch>=2.6 is all the
# project asks for) and fails rather than swap in another torch build.
RUN python -c "import torch; print('base torch', torch.__version__)" \
 && python -m pip list --format=freeze \
    | grep -iE '^(torch|torchaudio|torchvision|triton)==' > /tmp/base-torch.txt \
 && cat /tmp/base-torch.txt \
 && python -m pip install --no-cache-dir --constraint /tmp/base-torch.txt . \
 && python -m pip list --format=freeze \
    | grep -ixF --file=/tmp/base-torch.txt | diff /tmp/base-torch.txt - \
 && python -c "import torch, torchaudio, lightning, vrnn_lightning; print('torch', torch.__version__)" \
 && rm -rf /tmp/base-torch.txt build ./*.egg-info

# Configs and sweeps (whatever .dockerignore lets in: it is an allowlist), then the folders a
# run writes: runs/ (checkpoints, metrics, W&B) and data_cache/ (prepared HDF5 stores), owned
# by group 0 and group-writable too, so that an arbitrary uid in group 0 (`--user 12345:0`, as
# OpenShift runs images) can write them without mounts.
COPY . .
RUN mkdir -p runs data_cache \
 && chown vrnn:0 /workspace runs data_cache \
 && chmod g+rwx /workspace runs data_cache

USER ${UID}
ENTRYPOINT ["vrnn-fit"]
CMD ["--config", "conf/demo.yaml"]
