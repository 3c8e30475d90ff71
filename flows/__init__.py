"""Prefect flows: each one only composes tasks and reads like a table of contents.

Every flow takes ``config_files``, ``overrides`` and ``home`` so a deployment,
a test or the CLI can point it at any configuration and home folder.
"""
