"""``python -m deployments.serve``: register the deployments and automations and run
their flows in subprocesses of this process (what ``ratchet up`` starts)."""

from __future__ import annotations


def main() -> None:
    from prefect import serve

    from deployments import build_deployments
    from ratchet.core.config import load_config

    serve(*build_deployments(load_config()))


if __name__ == "__main__":
    main()
