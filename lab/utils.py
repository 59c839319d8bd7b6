"""Small shared helpers: input validation, seeding, device choice."""
from __future__ import annotations

import os
import random

import numpy as np


class LabError(ValueError):
    """Bad input from a user. The message names the parameter and the allowed range.

    The CLI prints it as one line (no traceback); the dashboard shows it in an error box.
    """


def check_range(name: str, value, low=None, high=None, *, low_open=False, high_open=False, integer=False):
    """Raise LabError unless ``low <(=) value <(=) high``; return the value.

    >>> check_range("alpha", 0.5, 0, None, low_open=True)
    0.5
    """
    if integer and (isinstance(value, bool) or int(value) != value):
        raise LabError(f"{name} must be an integer, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LabError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise LabError(f"{name} must be finite, got {value!r}")
    bad = (low is not None and (v <= low if low_open else v < low)) or (
        high is not None and (v >= high if high_open else v > high))
    if bad:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        lb = "(" if low_open or low is None else "["
        hb = ")" if high_open or high is None else "]"
        raise LabError(f"{name} must be in {lb}{lo}, {hi}{hb}, got {value!r}")
    return int(value) if integer else value


def check_choice(name: str, value, choices):
    if value not in choices:
        raise LabError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) so that the same seed gives the same numbers."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def get_device(prefer: str | None = None):
    """CUDA when present (or when asked for), otherwise CPU. ``LAB_DEVICE`` overrides."""
    import torch

    prefer = prefer or os.environ.get("LAB_DEVICE")
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_path(*parts: str) -> str:
    """Path under the committed ``data/`` folder (override with ``LAB_DATA_DIR``)."""
    base = os.environ.get("LAB_DATA_DIR") or os.path.join(repo_root(), "data")
    return os.path.join(base, *parts)


def cache_dir(*parts: str) -> str:
    """Path under the per-user cache folder (``LAB_CACHE_DIR``, else ``~/.cache/federated-privacy-lab``):
    derived artefacts rebuilt on demand, never committed."""
    base = os.environ.get("LAB_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "federated-privacy-lab")
    return os.path.join(base, *parts)


def write_json_atomic(path: str, obj) -> None:
    """Write JSON via a temp file + rename so a failed run leaves nothing half-written."""
    import json

    write_text_atomic(path, json.dumps(obj, indent=1))


def write_text_atomic(path: str, text: str) -> None:
    """Write text via a temp file + rename so a failed run leaves nothing half-written."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class RunConfig:
    """What every run config (a dataclass) shares: JSON form, a short hash for caches and file names, and the
    inverse that also reads strict-JSON infinities (``"inf"``) and refuses unknown keys."""

    def to_dict(self) -> dict:
        import dataclasses

        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    #: fields added after runs were made, with the value every earlier run had: left out of :meth:`key` while
    #: they hold it, so that the results and caches of those runs keep their names
    LATE_FIELDS: dict = {}

    def key(self) -> str:
        import hashlib
        import json

        d = {k: v for k, v in self.to_dict().items()
             if not (k in self.LATE_FIELDS and v == self.LATE_FIELDS[k] and type(v) is type(self.LATE_FIELDS[k]))}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict):
        """The config a stored dict describes. A late field it lacks was not there when it was written, so it takes
        the value every earlier run had (``LATE_FIELDS``), not today's default."""
        import dataclasses
        import math

        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise LabError(f"unknown config keys: {sorted(unknown)}")
        return cls(**{**cls.LATE_FIELDS, **{k: (math.inf if v == "inf" else v) for k, v in d.items()}})
