"""The lab's Python values as Flower records, and back: what crosses the process boundary, nothing else.

A lab message is a dict of numpy arrays and scalars (weights, a round config, k-means statistics, a client's
state). Flower carries arrays in an :class:`~flwr.app.ArrayRecord` (``np.save`` bytes: dtype, shape and every
bit kept, key order kept) and scalars in a :class:`~flwr.app.ConfigRecord` (ints, floats as doubles, strings,
bools). :func:`put` splits a dict into the two, :func:`take` joins them again, so ``take(put(d)) == d``
exactly — which is what lets the Flower engines reproduce the in-process numbers bit for bit.
"""
from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

ARRAYS = ".arrays"     # suffix of the ArrayRecord that holds a dict's array values


def arrays(d: dict) -> ArrayRecord:
    """A dict of numpy arrays as an ArrayRecord (names and order kept)."""
    # np.ascontiguousarray would turn a 0-d array (BatchNorm's num_batches_tracked) into shape (1,)
    return ArrayRecord({k: Array(np.require(v, requirements="C")) for k, v in d.items()})


def numpy(rec: ArrayRecord) -> dict:
    return {k: v.numpy() for k, v in rec.items()}


def _scalar(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (bool, int, float, str, bytes)) or v is None:
        return v
    raise TypeError(f"cannot send a {type(v).__name__} in a Flower record (arrays and scalars only)")


def put(rd: RecordDict, name: str, d: dict) -> RecordDict:
    """Store ``d`` in ``rd``: arrays under ``name + '.arrays'``, scalars under ``name`` (None is dropped)."""
    arr = {k: v for k, v in d.items() if isinstance(v, np.ndarray)}
    sca = {k: _scalar(v) for k, v in d.items() if not isinstance(v, np.ndarray)}
    rd[name] = ConfigRecord({k: v for k, v in sca.items() if v is not None})
    rd[name + ARRAYS] = arrays(arr)
    return rd


def take(rd: RecordDict, name: str) -> dict:
    """The dict :func:`put` stored under ``name`` ({} when absent)."""
    out = dict(rd[name]) if name in rd else {}
    if name + ARRAYS in rd:
        out.update(numpy(rd[name + ARRAYS]))
    return out


def pack(**parts: dict) -> RecordDict:
    """A message body: ``pack(weights=w, config=c)`` -> RecordDict with each part stored by :func:`put`."""
    rd = RecordDict()
    for name, d in parts.items():
        put(rd, name, d)
    return rd
