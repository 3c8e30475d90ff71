"""What every command shares: the global options, output, errors and running a flow."""

from __future__ import annotations

import contextlib
import errno
import gc
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ratchet.core.settings import Settings, apply_prefect_env

EXIT_REJECTED = 2


class _Opts:
    config: list[str] | None = None
    home: str | None = None
    overrides: dict[str, Any] | None = None
    debug: bool = False
    verbose: bool = False  # Prefect's logs on stderr too (else only in <home>/logs/commands.log and the UI)
    argv: list[str] | None = None  # the command line ``main`` was given (None: invoked in-process)


OPTS = _Opts()
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def home_settings() -> Settings:
    return Settings(home=Path(OPTS.home)) if OPTS.home else Settings()


def ctx_from_options():
    from ratchet.runtime.context import load_context

    return load_context(OPTS.config, OPTS.overrides, OPTS.home)


def emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        typer.echo(human)


def fail(message: str, as_json: bool, code: int = 1, **extra: Any) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": message, **extra}, default=str) + "\n")
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def run_flow(flow_fn, as_json: bool, *, needs_schema: bool = False, **params: Any) -> tuple[bool, Any]:
    """Run a flow in this process; return (ok, result or exception).

    The config, the home and (``needs_schema``) the schema are loaded first, so a user's
    mistake there stops the command with one line before any flow run starts. With
    ``--json`` anything the flow prints to stdout goes to stderr, so stdout carries
    exactly one JSON object.
    """
    from ratchet.runtime.options import RunOptions

    options = RunOptions(config_files=OPTS.config, overrides=OPTS.overrides, home=OPTS.home)
    ctx = options.context()
    if needs_schema:
        ctx.schema  # noqa: B018 - FileNotFoundError naming `ratchet init` when there is none
    log_file = ctx.settings.root / "logs" / "commands.log"
    _route_prefect_logs(log_file)
    # the imports are done: their objects (Prefect, pandas, whylogs: millions) are kept out of
    # every later collection, which otherwise walks them all, tenths of a second each time
    gc.freeze()
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    from ratchet_cli.progress import terminal_bars

    with redirect, terminal_bars(), _libraries_to(log_file):
        state = flow_fn(**params, options=options, return_state=True)
    _ship_run_logs()
    if state.is_completed():
        result = state.result()
        return True, result.to_dict() if hasattr(result, "to_dict") else result
    return False, state.result(raise_on_failure=False)


def flow_result(flow_fn, as_json: bool, failed: str, *, needs_schema: bool = False, **params: Any) -> Any:
    """``run_flow``, and the command stops with ``<failed>: <why>`` (one line, exit 1) when the
    flow run did not complete."""
    ok, result = run_flow(flow_fn, as_json, needs_schema=needs_schema, **params)
    if not ok:
        fail(f"{failed}: {result}", as_json)
    return result


def forward_or_run() -> Settings:
    """Run this command in a fork of the home's warm process when one takes it: this process
    then exits with the child's exit code and never returns (``ratchet_cli.warm``). Returns the
    home's settings when this process is to run the command itself. Either way the home's
    background processes are held while the command runs (``ratchet_cli.idle``). Call first, in
    every command that runs a flow."""
    settings = run_here()
    from ratchet_cli import warm

    code = warm.forward(settings, OPTS.argv)  # the whole command, in a fork of the warm process
    if code is not None:
        raise SystemExit(code)
    return settings


def run_here() -> Settings:
    """:func:`forward_or_run` for a command that must run in this process: one that started the
    home's processes itself (the event demo, its stack), where handing the command to the warm
    process it just started would run it a second time from the start. The home's background
    processes are held while it runs, as there."""
    settings = home_settings().ensure()
    from ratchet_cli import idle

    idle.hold(settings.root)
    return settings


def ensure_server(settings: Settings) -> None:
    """Point Prefect's environment at the home and at a server; call before the first import
    of a flow. Without a ``PREFECT_API_URL`` (the user's, or a test harness's in this process)
    the home's persistent server is used, started now when none answers (``ratchet_cli.server``),
    and the home's warm process is started for the commands after this one."""
    from ratchet_cli import warm

    apply_prefect_env(settings)
    # In a warm child Prefect was imported by the warm process: its settings are that process's
    # (started with the API URL of the command that started it). Asked before being made anew
    # from this command's environment, they answered "an API is named", the fresh ones named
    # none, and the flow run started Prefect's temporary server beside the home's (issue 25).
    refresh_prefect_settings()
    if prefect_api_configured():
        return
    from ratchet_cli.server import connect, mode

    if not settings.is_cluster and mode() == "persistent":
        # started before the server, so it imports while the server boots (10-15 s on two
        # cores): ready for the next command, not the one after it
        warm.ensure_started(settings)
    url = connect(settings)
    if url:
        os.environ["PREFECT_API_URL"] = url
        warm.ensure_started(settings)  # for the commands after this one (when not started above)
    refresh_prefect_settings()


def refresh_prefect_settings() -> None:
    """Prefect reads its settings from the environment when first imported; in a warm child
    (``ratchet_cli.warm``) it was imported before this command's environment was set, so
    make the settings anew from the environment now. Nothing to do anywhere else."""
    if "prefect.context" not in sys.modules or os.environ.get("RATCHET_WARM") != "child":
        return  # elsewhere a settings context may be a test harness's: left as it is
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import Settings as PrefectSettings

    current = get_settings_context()
    if current.settings == (fresh := PrefectSettings()):
        return
    SettingsContext(profile=current.profile, settings=fresh).__enter__()  # for the rest of this process


def prefect_api_configured() -> bool:
    """A Prefect API is named already: in the environment, or in the settings of a Prefect
    this process imported earlier (Prefect's test harness sets it there, not in os.environ)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" not in sys.modules:
        return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def use_running_prefect() -> bool:
    """For a change made without a flow (``rollback``) or a relay: True when a Prefect API is
    named, or the home's server runs and answers (then exported); never starts one."""
    if prefect_api_configured():
        return True
    from ratchet_cli.server import running_api_url

    url = running_api_url(home_settings())
    if url:
        from ratchet_cli.idle import hold

        hold(home_settings().root)  # a relay uses it for as long as it runs
        os.environ["PREFECT_API_URL"] = url
    return url is not None


# ------------------------------------------------------------------ user errors
def debug_enabled() -> bool:
    """``ratchet --debug`` or ``RATCHET_DEBUG=1``: tracebacks instead of one-line errors."""
    return OPTS.debug or os.environ.get("RATCHET_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def user_error_types() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises: a missing or bad file, config or schema, an unknown
    column, a bad home, a store the profile lacks. Anything else is a bug and keeps its
    traceback. ``ValueError`` covers ``ConfigError`` and pydantic's ``ValidationError``."""
    from ratchet.core.settings import HomeError, ProfileError
    from ratchet.data.repository.base import DataRepoError

    return (
        ValueError, LookupError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
        PermissionError, HomeError, ProfileError, DataRepoError,
    )


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT})


def is_disk_error(e: BaseException) -> bool:
    """A full disk, a read-only one, a quota: the machine's state, not a bug; told in one line
    naming the path (``describe_error``), with no traceback."""
    return isinstance(e, OSError) and e.errno in DISK_ERRNOS


def _where(title: str, loc: tuple) -> str:
    """A ValidationError's location as the user wrote it: ``RATCHET_PROFILE`` for a setting
    from the environment, ``train.max_epochs`` for a key of a file."""
    key = ".".join(map(str, loc)) or "(top level)"
    return f"RATCHET_{key.upper()}" if title == "Settings" else key


def describe_error(e: BaseException) -> str:
    """One line naming the problem."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        what = {"RatchetConfig": "config", "Settings": "environment", "Schema": "schema"}.get(e.title, e.title)
        problems = "; ".join(f"{_where(e.title, err['loc'])}: {err['msg']}" for err in e.errors())
        message = f"bad {what}: {problems}"
    elif isinstance(e, KeyError) and e.args:
        message = str(e.args[0])
    elif isinstance(e, OSError) and e.filename and e.strerror:
        message = f"{e.filename}: {e.strerror}"
    else:
        message = str(e) or type(e).__name__
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def report_user_error(e: BaseException, as_json: bool) -> None:
    message = describe_error(e)
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "type": type(e).__name__}) + "\n")
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)


class _WithoutTraceback(logging.Formatter):
    """Prefect's console format, less the traceback of a failed task or flow run."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        return self.inner.format(record)


def _route_prefect_logs(log_file: Path) -> None:
    """Prefect's console handler writes each flow and task run's lines on stderr (a dozen for
    an ingest), as do the libraries' own console handlers (Lightning's tips, Optuna, MLflow)
    and Python's warnings. A command says what it did in a line of its own, so unless
    ``--verbose`` those lines go to ``<home>/logs/commands.log`` instead; the Prefect UI keeps
    the runs' logs either way (its API handler is left alone). On stderr a failed run's
    traceback is cut to its message unless ``--debug`` (the file and the UI keep it). Done by
    moving handlers, not through ``PREFECT_LOGGING_SETTINGS_PATH``: in a warm child Prefect
    configured its logging long before this command's options were known."""
    from prefect.logging.formatters import PrefectFormatter
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    to_file = _CommandLog(log_file)
    to_file.setFormatter(PrefectFormatter(
        "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s",
        flow_run_fmt="%(asctime)s | %(levelname)-7s | Flow run %(flow_run_name)r - %(message)s",
        task_run_fmt="%(asctime)s | %(levelname)-7s | Task run %(task_run_name)r - %(message)s",
    ))
    for logger in loggers:
        handlers = list(logger.handlers)
        consoles = [h for h in handlers if _on_console(h)] + _QUIETED.pop(logger, [])
        if not consoles:
            continue
        for handler in handlers:
            if isinstance(handler, _CommandLog) or _on_console(handler):  # (a log file: an earlier command here)
                logger.removeHandler(handler)
                if isinstance(handler, _CommandLog):
                    handler.close()
        logger.addHandler(to_file)
        if not OPTS.verbose:
            _QUIETED[logger] = consoles  # given back by a later --verbose command of this process (tests)
            continue
        for handler in consoles:
            if (isinstance(handler, PrefectConsoleHandler) and not debug_enabled()
                    and not isinstance(handler.formatter, _WithoutTraceback)):
                handler.setFormatter(_WithoutTraceback(handler.formatter))
            logger.addHandler(handler)
    logging.captureWarnings(True)  # a library's warning: to the root logger's handlers, as above


@contextlib.contextmanager
def _libraries_to(log_file: Path):
    """What libraries write on stderr themselves during the run, outside logging (MLflow's
    "Successfully registered model" and its download bars, tqdm's), goes to the log file too,
    unless ``--verbose``. The command's own line and errors come after, on the real stderr."""
    try:
        out = None if OPTS.verbose else open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
    except OSError:  # a full or read-only home: the libraries keep the real stderr, and the command
        out = None  # names the disk's problem itself where it writes what matters
    if out is None:
        yield
        return
    lossy = _Lossy(out)
    try:
        with contextlib.redirect_stderr(lossy):
            yield
    finally:
        lossy.close()


class _Lossy(io.TextIOBase):
    """A log file that loses what a full disk cannot take instead of failing the writer (a
    library printing a progress line); the command names the disk's problem where it matters."""

    def __init__(self, out: Any) -> None:
        self._out = out

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):
            self._out.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.flush()

    def close(self) -> None:
        super().close()  # flushes first
        with contextlib.suppress(OSError):
            self._out.close()


def _on_console(handler: logging.Handler) -> bool:
    """A handler writing on this process's stderr or stdout (Prefect's console handler,
    Lightning's, Optuna's), not a file nor a test harness's capture."""
    return (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and handler.stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__))


class _CommandLog(logging.FileHandler):
    """``<home>/logs/commands.log``: the Prefect log lines of the commands run in this home."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def emit(self, record: logging.LogRecord) -> None:
        # FileHandler opens a delayed file outside its own error handling: on a full or read-only
        # home the line is lost rather than the command, which names the disk's problem itself
        with contextlib.suppress(OSError):
            super().emit(record)


_QUIETED: dict[logging.Logger, list[logging.Handler]] = {}


def _ship_run_logs() -> None:
    """Send the run's last log lines to the Prefect API now, while its server is surely up:
    left to the exit handlers, a temporary server could be gone first ("Error logging to API")."""
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):  # the logs are a courtesy; the command's answer is not
        APILogWorker.drain_all(timeout=5)
