"""Champion/challenger split: the traffic file and the per-request choice.

``state_dir/traffic.json`` holds ``{"challenger_share": 0.0, "shadow": false}``.

* ``shadow=false``: a request goes to the challenger with probability
  ``challenger_share`` and the caller gets the challenger's answer.
* ``shadow=true``: the caller always gets the champion's answer; the requests
  that the share selects are *also* sent to the challenger, whose answer is
  recorded (metrics, profile, feedback) but not returned. ``share=1`` mirrors all.

With an ``entity_key`` the choice is sticky: blake2b(key) mapped to [0, 1) is
compared to the share, so a key keeps its model while the share is unchanged and
raising the share only moves keys from champion to challenger.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from ratchet.core.files import atomic_write_json

TRAFFIC_FILE = "traffic.json"


@dataclass(frozen=True)
class Traffic:
    challenger_share: float = 0.0
    shadow: bool = False

    def __post_init__(self) -> None:
        s = self.challenger_share
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 <= s <= 1:
            raise ValueError(f"challenger_share must be a number in [0, 1], got {s!r}")
        if not isinstance(self.shadow, bool):
            raise ValueError(f"shadow must be true or false, got {self.shadow!r}")
        object.__setattr__(self, "challenger_share", float(s))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> Traffic:
        if not isinstance(d, dict):
            raise ValueError("traffic must be a JSON object")
        unknown = set(d) - {"challenger_share", "shadow"}
        if unknown:
            raise ValueError(f"unknown traffic field(s): {sorted(unknown)}")
        return cls(challenger_share=d.get("challenger_share", 0.0), shadow=d.get("shadow", False))


def read_traffic(path: Path) -> Traffic:
    """The traffic file; defaults (all champion) when it does not exist. Raises on a bad file."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return Traffic()
    try:
        return Traffic.from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def write_traffic(path: Path, traffic: Traffic) -> None:
    """Write atomically (temp file in the same folder, fsync, rename)."""
    atomic_write_json(path, traffic.to_dict(), fsync=True)


def stable_unit(key: str) -> float:
    """A stable number in [0, 1) for ``key`` (same across processes and restarts)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def selects_challenger(share: float, entity_key: str | None, rng: random.Random | None = None) -> bool:
    """Whether this request falls in the challenger's share."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    u = stable_unit(entity_key) if entity_key is not None else (rng or random).random()
    return u < share
