"""Prefect tasks: thin wrappers over ``ratchet``, grouped by stage.

Retries, timeouts and caching are decided here, never in the core library.
Tasks take the run's ``Context`` (stores and config) as their first argument;
its clients are not hashable inputs, so these tasks do not cache on inputs.
"""
