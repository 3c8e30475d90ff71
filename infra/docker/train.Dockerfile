# syntax=docker/dockerfile:1
# ratchet for training on NVIDIA GPUs: the Prefect worker of the GPU work pool
# and the pods of multi-node training (infra/k8s/, docs/scale.md). Those pods
# start with `ratchet-node --num-nodes=N -- <flow run command>` (installed with
# ratchet below): node 0 runs the flow run, every other node the node agent.
# Build from the repository root:
#   docker build -f infra/docker/train.Dockerfile -t ratchet-train:latest .
# The host needs the NVIDIA driver and container toolkit; torch brings its own CUDA libraries.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
# Python 3.11 (the project's version) in its own venv, whatever the base image ships
RUN uv python install 3.11 && uv venv --python 3.11 /opt/venv
# the CUDA build of the pinned torch (PyPI's default wheel on Linux x86_64)
ARG TORCH_VERSION=2.13.0
RUN uv pip install --python /opt/venv/bin/python "torch==${TORCH_VERSION}"
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ratchet ./ratchet
COPY tasks ./tasks
COPY flows ./flows
RUN uv pip install --python /opt/venv/bin/python . "psycopg[binary]==3.3.9" "boto3==1.44.5"
RUN groupadd --system --gid 10001 ratchet \
    && useradd --system --uid 10001 --gid ratchet --home-dir /var/lib/ratchet --create-home --shell /usr/sbin/nologin ratchet
ENV RATCHET_PROFILE=cluster \
    RATCHET_HOME=/var/lib/ratchet \
    RATCHET_HEALTH_URL=http://127.0.0.1:8080/health
USER 10001:10001
# the worker's health server (prefect worker start --with-healthcheck)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['RATCHET_HEALTH_URL'], timeout=4)"]
CMD ["prefect", "worker", "start", "--pool", "ratchet-gpu", "--type", "process", "--limit", "1", "--with-healthcheck"]
