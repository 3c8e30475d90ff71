"""ratchet's Prefect client code, shared by the tasks and the command line.

``ratchet/`` never imports Prefect, and ``tasks/`` holds only tasks (adapters of a few lines).
What talks to Prefect beyond a task's decorator lives here: the task defaults and retry
policies (``options``), emitting events (``events``), pausing and resuming a release for
approval (``approval``), superseding queued runs (``runs``) and reading Secret blocks
(``secrets``). It imports the core, never the tasks, flows, deployments or the CLI.
"""
