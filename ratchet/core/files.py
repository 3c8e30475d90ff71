"""Small helpers every stage uses: atomic writes, a free port, a class by import path.

Plain standard library, so that the lightest process (a node agent, the CLI's read-only
commands) can import them without pulling in a stage.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import ipaddress
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path | str, data: bytes | str, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` so a reader sees the old content or the new, never half:
    a temporary file in the same folder, optionally fsynced, renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a full disk fails the write, which names no file: name it
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def private_dir(path: Path | str) -> Path:
    """A folder only its owner can enter (0700, whatever the umask), made when absent; a folder
    that exists is left as it is (its owner chose its mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return path
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def write_private_once(path: Path | str, data: str) -> str:
    """Write a secret to ``path`` readable by its owner only (0600, whatever the umask) unless
    the file exists; returns what ``path`` holds then. Two processes racing both return the
    first one's: the content goes to a private temporary file that is hard-linked into place
    (atomic and exclusive, so no reader ever sees it half written)."""
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text()
        return data
    finally:
        Path(tmp).unlink(missing_ok=True)


def create_private(path: Path | str) -> Path:
    """Create (or truncate) ``path`` as a file only its owner can read (0600, whatever the umask),
    before anything is written to it: an archive of secrets is never readable by others, not
    even while it is being written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT, and the umask masks a new one's
    finally:
        os.close(fd)
    return Path(path)


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, ``localhost``); False
    for anything else, a wildcard (``0.0.0.0``, ``::``) or another name included."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def atomic_write_json(path: Path | str, obj: Any, *, fsync: bool = False) -> Path:
    return atomic_write(path, json.dumps(obj, default=str) + "\n", fsync=fsync)


def alive(pid: int) -> bool:
    """A process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: Any, grace_s: float = 20.0) -> None:
    """Stop a child process (a ``subprocess.Popen``): SIGTERM, then SIGKILL after ``grace_s``."""
    import subprocess

    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), else None: with the id, it
    tells a process from a later one given the same id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (``""``: on every interface, for peers on other nodes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def import_path(path: str, what: str = "object") -> Any:
    """The attribute named by a dotted import path (``pkg.mod.Name``); a ``ValueError``
    naming ``what`` and the path when it cannot be imported."""
    module, _, name = str(path).rpartition(".")
    if not module:
        raise ValueError(f"{what} must be a dotted import path, got {path!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ValueError(f"cannot import {what} {path!r}: {e}") from e


CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def check_data_file(path: Path | str) -> None:
    """A user's mistake in naming a data file, raised before anything is read (the CLI: one
    line, exit code 1): no such file, a folder, an unknown format, no read permission. A batch
    that is read and fails its checks is a rejection instead (``ratchet.data.checks``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder, not a data file", str(path))
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ValueError(f"{path}: unknown format {suffix or '(no suffix)'!r}; use .csv or .parquet")
    with open(path, "rb"):  # no permission: PermissionError, naming the file
        pass
