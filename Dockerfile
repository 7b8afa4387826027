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
# run writes: runs/ (checkpoints, metrics, W&B) and data_cache/ (prepared HDF5 stores).
COPY . .
RUN mkdir -p runs data_cache && chown vrnn:vrnn /workspace runs data_cache

USER ${UID}
ENTRYPOINT ["vrnn-fit"]
CMD ["--config", "conf/demo.yaml"]
