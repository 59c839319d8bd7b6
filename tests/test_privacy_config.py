"""The run config (one place of validation, JSON round trip, records that rerun) and the one Gaussian-sum
mechanism (torch and numpy twins compute the same thing, with noise of std z*C/D)."""
import json
import math

import numpy as np
import pytest
import torch

from lab.privacy.config import DPRunConfig
from lab.privacy.meanest import run_meanest
from lab.privacy.mechanism import empty_rows, gaussian_sum, gaussian_sum_np
from lab.privacy.sweep import json_safe
from lab.utils import LabError


def _rt(obj):
    return json.loads(json.dumps(json_safe(obj)))


def test_config_round_trip_and_key():
    cfg = DPRunConfig(algo="els", epsilon=math.inf, bound=4, steps=3, clip=2.0).validate()
    back = DPRunConfig.from_dict(_rt(cfg.to_dict()))  # strict JSON: inf travels as "inf"
    assert back == cfg and back.key() == cfg.key()
    assert DPRunConfig(seed=1).key() != DPRunConfig(seed=2).key()
    with pytest.raises(LabError, match="unknown config keys"):
        DPRunConfig.from_dict({"algo": "uls", "epsilonn": 1.0})


@pytest.mark.parametrize("kw,name", [
    (dict(algo="els", epsilon=None), "epsilon"),                  # a DP algo needs a target ...
    (dict(algo="uls", epsilon=0.0), "epsilon"),
    (dict(algo="uls", epsilon=float("nan")), "epsilon"),
    (dict(task="meanest", noise_multiplier=2.0), "noise_multiplier"),
    (dict(noise_multiplier=0.0), "noise_multiplier"),
    (dict(delta=1.0), "delta"), (dict(bound=0), "bound"), (dict(steps=0), "steps"), (dict(seed=-1), "seed"),
    (dict(batch=0), "batch"), (dict(clip=0.0), "clip"), (dict(lr=-1.0), "lr"),
    (dict(algo="dpsgd"), "algo"), (dict(task="image"), "task"), (dict(model="gpt5"), "model"),
    (dict(regime="chaotic"), "regime"),
])
def test_validate_names_the_parameter(kw, name):
    with pytest.raises(LabError, match=name):
        DPRunConfig(**kw).validate()


def test_validate_accepts_the_documented_special_cases():
    DPRunConfig(algo="els", epsilon=None, noise_multiplier=3.0).validate()  # ... unless sigma is given
    DPRunConfig(algo="nonprivate", epsilon=None).validate()
    DPRunConfig(algo="uls", epsilon=math.inf).validate()  # clipping without noise
    DPRunConfig(algo="nonprivate", epsilon=None, clip=0.0).validate()  # clip is not used without privacy
    with pytest.raises(LabError, match="batch"):
        DPRunConfig(batch=300).validate(n_examples=256)  # the data-dependent cap


def test_meanest_record_carries_a_config_that_reruns_it():
    cfg = DPRunConfig(task="meanest", algo="uls", epsilon=2.0, bound=4, steps=50, regime="identical", seed=5)
    r = _rt(run_meanest(cfg))
    again = DPRunConfig.from_dict(r["config"])
    assert (again.clip, again.lr, again.batch) == (r["clip"], r["lr"], r["batch"])  # defaults filled in
    r2 = run_meanest(again)
    assert r2["eval_loss"] == r["eval_loss"] and r2["noise_multiplier"] == r["noise_multiplier"]


def _rows(b=6, seed=0):
    g = np.random.default_rng(seed).standard_normal((b, 7)) * np.array([0.1, 1, 3, 1, 1, 1, 5])
    return g, {"w": torch.from_numpy(g[:, :3].reshape(b, 3)), "b": torch.from_numpy(g[:, 3:].copy())}


def test_torch_and_numpy_mechanisms_are_one_function():
    """Without noise both give sum_i clip_C(g_i) / D, a row's norm taken over all parameters together."""
    g, rows = _rows()
    C, D = 2.5, 3.7
    gen = torch.Generator().manual_seed(0)
    t = gaussian_sum(rows, clip=C, noise_multiplier=0.0, denominator=D, generator=gen)
    n = gaussian_sum_np(g, clip=C, noise_multiplier=0.0, denominator=D, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.concatenate([t["w"].numpy(), t["b"].numpy()]), n, rtol=1e-5)
    norms = np.linalg.norm(g, axis=1)
    assert norms.min() < C < norms.max()  # some rows clipped, some not
    ref = (g * np.minimum(1, C / norms)[:, None]).sum(0) / D
    np.testing.assert_allclose(n, ref, rtol=1e-10)


def test_noise_std_is_z_C_over_D_in_both_twins():
    """With no row sampled the output is pure noise: per coordinate N(0, (z C / D)^2)."""
    z, C, D, reps = 1.7, 0.8, 5.0, 4000
    gen = torch.Generator().manual_seed(1)
    params = {"w": torch.zeros(reps, 2)}
    t = gaussian_sum(empty_rows(params), clip=C, noise_multiplier=z, denominator=D, generator=gen)["w"]
    rng = np.random.default_rng(1)
    n = np.stack([gaussian_sum_np(np.zeros((0, 2)), clip=C, noise_multiplier=z, denominator=D, rng=rng)
                  for _ in range(reps)])
    for x in (t.numpy().ravel(), n.ravel()):
        assert abs(x.mean()) < 4 * z * C / D / math.sqrt(x.size)
        assert x.std() == pytest.approx(z * C / D, rel=0.05)
