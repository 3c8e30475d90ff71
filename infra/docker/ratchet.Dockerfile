# syntax=docker/dockerfile:1
# ratchet on the CPU: the Prefect process worker, `ratchet serve` and `ratchet relay`.
# Build from the repository root:
#   docker build -f infra/docker/ratchet.Dockerfile -t ratchet:latest .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, from the CPU index: the default wheel on PyPI is the CUDA build
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ratchet ./ratchet
COPY tasks ./tasks
COPY flows ./flows
# the cluster profile's drivers: psycopg for Optuna and the ledger on Postgres, boto3 for S3 artifacts
RUN pip install . "psycopg[binary]==3.3.9" "boto3==1.44.5"

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RATCHET_PROFILE=cluster \
    RATCHET_HOME=/var/lib/ratchet \
    RATCHET_HEALTH_URL=http://127.0.0.1:8765/health
RUN groupadd --system --gid 10001 ratchet \
    && useradd --system --uid 10001 --gid ratchet --home-dir /var/lib/ratchet --create-home --shell /usr/sbin/nologin ratchet
COPY --from=build /opt/venv /opt/venv
# flows and tasks as files too: deployments name entrypoints like flows/train.py:train_flow
WORKDIR /app
COPY --chown=root:root flows ./flows
COPY --chown=root:root tasks ./tasks
COPY --chown=root:root ratchet ./ratchet
USER 10001:10001
EXPOSE 8765
# the service's liveness; a worker or relay container sets RATCHET_HEALTH_URL to its own
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['RATCHET_HEALTH_URL'], timeout=4)"]
CMD ["ratchet", "serve", "--host", "0.0.0.0", "--port", "8765"]
