# syntax=docker/dockerfile:1
# The MLflow tracking server with the drivers the cluster needs: Postgres for
# tracking and the registry, boto3 for S3-compatible artifact storage.
# Build context: infra/ (docker compose builds it); run with `mlflow server ...`.
FROM python:3.11-slim-bookworm
ARG MLFLOW_VERSION=3.17.2
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
RUN pip install "mlflow==${MLFLOW_VERSION}" "psycopg[binary]==3.3.9" "boto3==1.44.5"
RUN groupadd --system --gid 10002 mlflow \
    && useradd --system --uid 10002 --gid mlflow --home-dir /home/mlflow --create-home --shell /usr/sbin/nologin mlflow
WORKDIR /home/mlflow
USER 10002:10002
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
