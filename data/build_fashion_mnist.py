"""Rebuild data/fashion_mnist_subset.npz from the Debian package dataset-fashion-mnist.

Stratified subset: 600 train + 100 test images per class, chosen with a fixed seed, so every run writes the
same bytes. Also writes data/fashion_mnist_pretrain_idx.npy? No: the pretraining pool is "every training
image NOT in the subset", recomputed from the indices stored in the npz (``train_index``).

    apt-get install dataset-fashion-mnist && python data/build_fashion_mnist.py
"""
import hashlib
import io
import os
import zipfile

import numpy as np

from lab.data.images import read_fashion_mnist_full

SEED, N_TRAIN, N_TEST = 20261126, 600, 100


def stratified(y, per_class, rng):
    idx = [np.sort(rng.choice(np.flatnonzero(y == c), per_class, replace=False)) for c in range(10)]
    return np.sort(np.concatenate(idx))


def write_npz_deterministic(path, **arrays):
    """np.savez_compressed stamps zip entries with the current time; write fixed timestamps instead."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main():
    xtr, ytr, xte, yte = read_fashion_mnist_full()
    rng = np.random.default_rng(SEED)
    itr, ite = stratified(ytr, N_TRAIN, rng), stratified(yte, N_TEST, rng)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist_subset.npz")
    write_npz_deterministic(out, x_train=xtr[itr], y_train=ytr[itr].astype(np.uint8), train_index=itr.astype(np.int32),
                            x_test=xte[ite], y_test=yte[ite].astype(np.uint8), test_index=ite.astype(np.int32))
    print(out, os.path.getsize(out), "bytes, sha256", hashlib.sha256(open(out, "rb").read()).hexdigest()[:16])


if __name__ == "__main__":
    main()
