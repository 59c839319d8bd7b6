"""lab.machine: a record says how its machine rounds the model's own training step, and every table run says it."""
import json

import torch
import torch.nn.functional as F

from lab.machine import machine, rounding_fingerprint
from tests.test_backbones import _script


def test_the_fingerprint_is_one_machines_and_leaves_the_rng_and_the_threads_alone(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)   # a caller with 3 threads (however many cores here)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: set_to.append(n))
    set_to = []
    torch.manual_seed(5)
    a = rounding_fingerprint()
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))            # the global stream did not move
    assert a == rounding_fingerprint() and len(a) == 12
    assert set_to[0] == 1 and set_to[-1] == 3              # it steps with one thread, as the runs do, then restores
    monkeypatch.undo()
    assert machine()["rounding"] == a and machine()["threads_per_run"] == 1


def _in_float64(fn):
    def wrapped(x, w, *a, **kw):                        # the same operation, summed in float64 and rounded once
        return fn(x.double(), w.double(), *(t.double() if torch.is_tensor(t) else t for t in a), **kw).float()
    return wrapped


def test_the_fingerprint_reads_the_rounding_of_the_models_own_kernels(monkeypatch):
    """Two machines whose convolutions (or matrix products) sum in another order round the same step apart: the
    fingerprint must tell them apart, or a record cannot say which runs pair on one rounding."""
    base = rounding_fingerprint()
    with monkeypatch.context() as m:
        m.setattr(F, "conv2d", _in_float64(F.conv2d))
        assert rounding_fingerprint() != base
    with monkeypatch.context() as m:
        m.setattr(F, "linear", _in_float64(F.linear))
        assert rounding_fingerprint() != base
    assert rounding_fingerprint() == base


def test_every_table_run_records_the_machine_it_was_made_on(tmp_path):
    """A folder's runs may come from several machines (its machine.json says only the last call's): each run's own
    record says where it was made."""
    T = _script("bench/run_gcd_tables.py")
    path, _, _ = T.run_one(T.config("fedlpa", 0.1, 0, True, lr=0.2), str(tmp_path))
    assert json.loads(open(path).read())["machine"] == machine() == T.machine()
