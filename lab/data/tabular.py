"""Bring your own data: parse and validate an uploaded CSV or npz into numeric features + labels.

Nothing an upload contains is executed or unpickled (npz members are read with ``allow_pickle=False``
after their declared sizes are checked). Every rejection is a :class:`lab.utils.LabError` whose message
says what is wrong and what is allowed.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from lab.utils import LabError

MAX_UPLOAD_MB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 200 * 1024 * 1024    # npz members, uncompressed
MAX_ROWS = 20_000
MAX_FEATURES = 4096
MIN_ROWS = 50
MIN_FEATURES = 2
MAX_CLASSES = 50
LABEL_COLUMNS = ("label", "labels", "class", "target", "y")
USER_COLUMNS = ("user", "user_id", "client", "client_id", "writer", "group")
NPZ_FEATURES = ("x", "features", "data", "images")


@dataclass
class UserData:
    """A validated upload: numeric features, integer labels 0..C-1, optional user ids."""
    name: str
    features: np.ndarray          # (n, d) float32, raw
    labels: np.ndarray            # (n,) int64
    class_names: list
    users: np.ndarray | None      # (n,) int64 or None
    feature_names: list
    digest: str
    image_shape: tuple | None = None
    notes: list = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.labels)

    # the data-object interface of lab.gcd.experiment.prepare: y_train, n_classes, users
    @property
    def y_train(self) -> np.ndarray:
        return self.labels

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_users(self) -> int:
        return 0 if self.users is None else int(len(np.unique(self.users)))

    @property
    def has_natural_partition(self) -> bool:
        """A ``natural`` (by user) partition needs at least 2 users to make 2 clients."""
        return self.n_users >= 2

    def default_clients(self, preferred: int = 5) -> int:
        """The client count this upload starts with (:func:`lab.data.partition.default_clients`)."""
        from lab.data.partition import default_clients

        return default_clients(self.n, preferred)

    def carries(self, clients: int | None = None) -> str:
        """What the defaults make of this upload, e.g. "178 rows: 3 clients of ≥ 30 samples"."""
        from lab.data.partition import min_client_size

        c = self.default_clients() if clients is None else clients
        return f"{self.n} rows: {c} clients of ≥ {min_client_size(self.n, c)} samples"

    def summary(self) -> str:
        u = f", {len(np.unique(self.users))} users" if self.users is not None else ""
        return (f"{self.name}: {self.n} rows, {self.features.shape[1]} features, "
                f"{len(self.class_names)} classes{u}")

    @property
    def old_classes(self) -> tuple:
        """The category-discovery split of an upload: its first half of the classes (at least one) are "old"."""
        return tuple(range(max(1, len(self.class_names) // 2)))

    def standardised(self) -> np.ndarray:
        """Features at zero mean and unit variance per column (float32): what graphs and layouts see."""
        f = self.features
        return ((f - f.mean(0)) / (f.std(0) + 1e-8)).astype(np.float32)

    def images(self) -> np.ndarray | None:
        """(n, H, W) uint8 for an image upload (min-max scaled over the whole array), else None."""
        if self.image_shape is None:
            return None
        raw = self.features
        lo, hi = raw.min(), raw.max()
        return ((raw - lo) / max(hi - lo, 1e-12) * 255).round().astype(np.uint8).reshape((-1, *self.image_shape))


def _match(names, wanted):
    low = {str(n).strip().lower(): n for n in names}
    for w in wanted:
        if w in low:
            return low[w]
    return None


def _encode_labels(raw, what="label"):
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        if np.isnan(raw).any():
            raise LabError(f"the {what} column has {int(np.isnan(raw).sum())} missing values")
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    if raw.dtype.kind in "OUS":
        raw = raw.astype(str)
    values, codes = np.unique(raw, return_inverse=True)
    return [str(v) for v in values], codes.astype(np.int64)


def _check_arrays(name, X, y_raw, users_raw, feature_names, digest, image_shape=None) -> UserData:
    n = len(X)
    if n < MIN_ROWS:
        raise LabError(f"{name} has {n} rows; at least {MIN_ROWS} are needed to partition and draw a graph")
    if n > MAX_ROWS:
        raise LabError(f"{name} has {n} rows; the limit is {MAX_ROWS}: subsample it first")
    if X.shape[1] < MIN_FEATURES:
        raise LabError(f"{name} has {X.shape[1]} feature column(s); at least {MIN_FEATURES} numeric features are "
                       "needed: the similarity graph compares samples by the angle between their feature vectors, "
                       "and one number has no angle (only a sign)")
    if X.shape[1] > MAX_FEATURES:
        raise LabError(f"{name} has {X.shape[1]} features; the limit is {MAX_FEATURES}")
    X = X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        cols = sorted({feature_names[j] for j in np.flatnonzero(bad.any(0))})[:5]
        raise LabError(f"{name}: {int(bad.sum())} missing or infinite feature values (columns {', '.join(cols)}); "
                       "fill or drop them first")
    class_names, y = _encode_labels(y_raw)
    if len(class_names) < 2:
        raise LabError(f"{name}: the label column holds a single class; at least 2 are needed")
    if len(class_names) > MAX_CLASSES:
        raise LabError(f"{name}: the label column has {len(class_names)} distinct values (the limit is "
                       f"{MAX_CLASSES} classes); is it a continuous column?")
    users = None
    if users_raw is not None:
        _, users = _encode_labels(users_raw, "user")
    return UserData(name, X, y, class_names, users, list(feature_names), digest, image_shape)


def _parse_csv(name: str, data: bytes, digest: str) -> UserData:
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(data), engine="c", low_memory=False)
    except pd.errors.EmptyDataError:
        raise LabError(f"{name} holds no data (no header and no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise LabError(f"{name} is not a readable CSV: {str(e).splitlines()[0][:200]}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise LabError(f"{name} has a header but no rows")
    label = _match(df.columns, LABEL_COLUMNS)
    if label is None:
        raise LabError(f"{name} has no label column: name one column {' / '.join(LABEL_COLUMNS)} "
                       f"(found: {', '.join(map(str, list(df.columns)[:8]))}{'…' if df.shape[1] > 8 else ''})")
    user = _match([c for c in df.columns if c != label], USER_COLUMNS)
    feats = [c for c in df.columns if c not in (label, user)]
    non_numeric = [c for c in feats if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        c = non_numeric[0]
        example = next((v for v in df[c] if isinstance(v, str)), df[c].iloc[0])
        more = f" and {len(non_numeric) - 1} more" if len(non_numeric) > 1 else ""
        raise LabError(f"{name}: feature column {c!r}{more} is not numeric (e.g. {str(example)[:30]!r}); every "
                       f"column other than the label ({label!r}) and user column must hold numbers")
    if df[label].isna().any():
        raise LabError(f"{name}: the label column {label!r} has {int(df[label].isna().sum())} empty cells")
    if user is not None and df[user].isna().any():
        raise LabError(f"{name}: the user column {user!r} has {int(df[user].isna().sum())} empty cells")
    X = df[feats].to_numpy(dtype=np.float64) if feats else np.zeros((len(df), 0))
    side = int(round(math.sqrt(len(feats)))) if feats else 0
    image_shape = (side, side) if side * side == len(feats) and len(feats) >= 64 else None
    return _check_arrays(name, X, df[label].to_numpy(), None if user is None else df[user].to_numpy(),
                         [str(c) for c in feats], digest, image_shape)


def _parse_npz(name: str, data: bytes, digest: str) -> UserData:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError):
        raise LabError(f"{name} is not a valid .npz file (not a zip archive)") from None
    if not infos:
        raise LabError(f"{name} is an empty .npz archive")
    if any(not i.filename.endswith(".npy") for i in infos):
        raise LabError(f"{name} holds files other than .npy arrays")
    total = sum(i.file_size for i in infos)
    if total > MAX_DECOMPRESSED_BYTES:
        raise LabError(f"{name} unpacks to {total / 2**20:.0f} MB; the limit is {MAX_DECOMPRESSED_BYTES // 2**20} MB")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:       # object arrays need pickle: refused
        raise LabError(f"{name}: {e}; store plain numeric/string arrays") from None
    except Exception as e:  # noqa: BLE001 - any malformed member is the user's data problem
        raise LabError(f"{name} could not be read as npz: {str(e)[:200]}") from None
    xk = _match(arrays, NPZ_FEATURES)
    yk = _match(arrays, LABEL_COLUMNS)
    if xk is None:
        raise LabError(f"{name} has no feature array: name it one of {', '.join(NPZ_FEATURES)} "
                       f"(found: {', '.join(arrays)})")
    if yk is None:
        raise LabError(f"{name} has no label array: name it one of {', '.join(LABEL_COLUMNS)} "
                       f"(found: {', '.join(arrays)})")
    uk = _match(arrays, USER_COLUMNS + ("users", "clients", "groups"))
    X, y = arrays[xk], arrays[yk]
    if X.dtype.kind not in "biuf":
        raise LabError(f"{name}: the feature array {xk!r} is not numeric (dtype {X.dtype})")
    if X.ndim not in (2, 3) or len(X) == 0:
        raise LabError(f"{name}: the feature array {xk!r} must be (rows, features) or (rows, H, W); "
                       f"got shape {X.shape}")
    image_shape = tuple(X.shape[1:]) if X.ndim == 3 else None
    X = X.reshape(len(X), -1)
    if y.ndim != 1 or len(y) != len(X):
        raise LabError(f"{name}: the label array {yk!r} must be 1-D with one entry per row "
                       f"({len(X)}); got shape {y.shape}")
    users = arrays[uk] if uk is not None else None
    if users is not None and (users.ndim != 1 or len(users) != len(X)):
        raise LabError(f"{name}: the user array {uk!r} must be 1-D with one entry per row")
    return _check_arrays(name, X.astype(np.float64), y, users, [f"f{j}" for j in range(X.shape[1])], digest,
                         image_shape)


def read_upload(path: str) -> UserData:
    """:func:`validate_upload` of a file on disk (the CLI's ``--data FILE``)."""
    if os.path.isdir(path):
        raise LabError(f"data must be a .csv or .npz file, got the folder {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_UPLOAD_BYTES + 1)
    except OSError as e:
        raise LabError(f"data: cannot read {path} ({e.strerror})") from None
    return validate_upload(path, raw)


def validate_upload(name: str, data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> UserData:
    """Validate an uploaded CSV or npz; return :class:`UserData` or raise :class:`LabError` with the reason.

    CSV: one label column (``label``/``class``/``target``/``y``), optionally a user column
    (``user``/``client``/...), every other column numeric. npz: arrays ``X`` (or ``features``, 2-D or
    (n, H, W) images) and ``y`` (or ``label``), optionally ``user``. Checks: non-empty, at most ``max_bytes``,
    {MIN_ROWS}..{MAX_ROWS} rows, >= {MIN_FEATURES} numeric finite features, 2..{MAX_CLASSES} classes.
    """
    name = os.path.basename(str(name or "upload"))
    if data is None or len(data) == 0:
        raise LabError(f"{name} is empty")
    if len(data) > max_bytes:
        raise LabError(f"{name} is {len(data) / 2**20:.1f} MB; the upload limit is {max_bytes / 2**20:.0f} MB")
    digest = hashlib.sha256(data).hexdigest()[:16]
    low = name.lower()
    if low.endswith(".csv"):
        return _parse_csv(name, data, digest)
    if low.endswith(".npz"):
        return _parse_npz(name, data, digest)
    raise LabError(f"{name}: only .csv and .npz files are accepted")
