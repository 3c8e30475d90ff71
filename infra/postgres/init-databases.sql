-- One Postgres server, one database per service (run once, on an empty data volume).
-- POSTGRES_DB creates `ratchet` itself: Optuna's studies and the promotion ledger.
CREATE DATABASE prefect;   -- Prefect server (PREFECT_SERVER_DATABASE_CONNECTION_URL)
CREATE DATABASE mlflow;    -- MLflow tracking and model registry (--backend-store-uri)
CREATE DATABASE lakefs;    -- lakeFS metadata (LAKEFS_DATABASE_POSTGRES_CONNECTION_STRING)
