"""Small helpers every stage uses: atomic writes, a free port, a class by import path.

Plain standard library, so that the lightest process (a node agent, the CLI's read-only
commands) can import them without pulling in a stage.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
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


def atomic_write_json(path: Path | str, obj: Any, *, fsync: bool = False) -> Path:
    return atomic_write(path, json.dumps(obj, default=str) + "\n", fsync=fsync)


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
