"""A folder on a disk of its own, to fill or make read-only: a size-limited tmpfs mounted
there (tests run as root, so permissions do not stop a write; a mount does). Where
mounting is not allowed the test is skipped, with mount's own words."""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class SmallDisk:
    path: Path

    @property
    def filler(self) -> Path:
        return self.path / ".filler"

    def fill(self) -> None:
        """Write until the disk has no byte left."""
        with open(self.filler, "ab", buffering=0) as f:
            for chunk in (1 << 20, 1 << 12, 1 << 9):
                block = b"\0" * chunk
                try:
                    while True:
                        f.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
        assert shutil.disk_usage(self.path).free == 0

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def _remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True, capture_output=True)

    def read_only(self) -> None:
        self._remount("ro")

    def writable(self) -> None:
        self._remount("rw")


@contextmanager
def small_disk(path: Path, size: str = "256m") -> Iterator[SmallDisk]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "ratchet-test", str(path)],
                           capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        pytest.skip(f"no mount command to make a size-limited folder: {e}")
    if r.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {(r.stderr or r.stdout).strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


# each way a disk goes bad: (what the error says, make it so, mend it)
TROUBLES = {
    "full": ("No space left on device", SmallDisk.fill, SmallDisk.free),
    "read_only": ("Read-only file system", SmallDisk.read_only, SmallDisk.writable),
}
