"""What the in-process federation can and cannot promise about client data, and that training never reads
what it must not: the true labels of unlabelled samples, or (FedLPA) the true number of classes."""
import gc

import numpy as np
import pytest

from lab.federated.core import ClientProxy
from lab.gcd.config import FedGCDConfig
from lab.gcd.experiment import Experiment


class Holder:
    def __init__(self):
        self.cid = 0
        self._x = np.arange(12.0)          # the "raw data"

    def fit(self, weights, config):
        return weights

    def evaluate(self, weights, config):
        return {}


def _reachable(root, depth=10):
    seen, frontier = {id(root)}, [root]
    for _ in range(depth):
        nxt = []
        for o in frontier:
            for r in gc.get_referents(o):
                if id(r) not in seen:
                    seen.add(id(r))
                    nxt.append(r)
        frontier = nxt
        yield from nxt


def test_attribute_access_from_a_proxy_does_not_reach_the_client():
    client = Holder()
    p = ClientProxy(client)
    assert not hasattr(p, "__dict__") and not hasattr(p, "_x")
    assert p.fit.__self__ is p and p.evaluate.__self__ is p      # bound to the proxy, not to the client
    with pytest.raises(AttributeError):
        p.fit = None
    with pytest.raises(TypeError):
        vars(p)


def test_in_process_isolation_is_only_a_convention():
    """In one Python process nothing is private: the closure and the garbage collector lead to the client
    and its arrays. Only a process boundary (the Flower engine) makes 'the server never sees client data'
    a fact; this test documents the limit so nobody claims more."""
    client = Holder()
    p = ClientProxy(client)
    cells = [c.cell_contents for c in p._call.__closure__]
    assert any(isinstance(c, dict) and c["fit"].__self__ is client for c in cells)
    assert any(o is client._x for o in _reachable(p))


def _tiny(method, **kw):
    base = dict(method=method, dataset="digits", clients=3, alpha=0.5, rounds=3, seed=1, warmup_rounds=1,
                refresh_every=1)
    base.update(kw)
    return FedGCDConfig(**base)


def _train(cfg, corrupt=None):
    exp = Experiment(cfg)
    if corrupt is not None:
        corrupt(exp)
    rec, weights = exp.run(return_weights=True)
    return rec, weights


def _permute_hidden_labels(exp):
    """Shuffle the true classes of the unlabelled training samples (what only the evaluator may read)."""
    unl = np.flatnonzero(exp.split.unlabelled)
    exp.data.y_train[unl] = np.random.default_rng(0).permutation(exp.data.y_train[unl])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simgcd", "gcd", "fedlpa"])
def test_training_never_reads_the_true_labels_of_unlabelled_samples(method):
    a, wa = _train(_tiny(method))
    b, wb = _train(_tiny(method), _permute_hidden_labels)
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert a["k_est"] == b["k_est"]
    assert a["acc_all"] != b["acc_all"]          # the evaluator does read them: the corruption took effect


@pytest.mark.slow
def test_fedlpa_never_reads_the_true_number_of_classes():
    """SimGCD's heads are the true K (its protocol); FedLPA's are |old| + k_max_new, whatever K is: declaring
    seven more classes than the data has changes SimGCD's training and leaves FedLPA's bit-identical."""
    from lab.data.images import load_dataset

    for method, same in (("fedlpa", True), ("simgcd", False)):
        _, wa = Experiment(_tiny(method)).run(return_weights=True)
        more = load_dataset("digits")
        more.class_names = more.class_names + ["phantom"] * 7
        _, wb = Experiment(_tiny(method), data=more).run(return_weights=True)
        equal = wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
        assert equal == same, method
