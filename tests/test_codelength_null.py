"""bench/codelength_null.py: the markov time chosen per client by its codelength against shuffled graphs (issue 9,
item 2). The shuffle keeps every sample's number of links and loses planted classes, the rule picks the time whose
savings exceed the shuffles' most, FedLPA's routed setting is the route's, and the committed report is what its
records give."""
import json
from pathlib import Path

import numpy as np
import pytest

from lab.gcd.clsd import KNN, SimilarityGraph
from lab.gcd.discovery import DiscoveryParams
from tests.test_backbones import _script


@pytest.fixture(scope="module")
def mod():
    return _script("bench/codelength_null.py")


def planted_blocks(seed=0, blocks=4, size=30, per_node=5, noise=40):
    """Four planted blocks (each sample links to five of its block) and a few random links between them."""
    rng = np.random.default_rng(seed)
    pairs = {(min(b * size + i, b * size + j), max(b * size + i, b * size + j))
             for b in range(blocks) for i in range(size) for j in rng.choice(size, per_node, replace=False) if i != j}
    pairs |= {(min(a, b), max(a, b)) for a, b in rng.integers(0, blocks * size, (noise, 2)) if a != b}
    src, dst = np.array(sorted(pairs)).T
    n = blocks * size
    return SimilarityGraph(n, src, dst, np.ones(len(src), np.float32), np.full(len(src), KNN, np.uint8),
                           np.full(n, -1), np.zeros(n, bool))


def test_the_shuffle_keeps_each_samples_links_and_the_rule_picks_the_time_the_shuffles_cannot_match(mod):
    g = planted_blocks()
    null = mod.null_links(g, np.random.default_rng(1))
    before = np.bincount(np.r_[g.src, g.dst], minlength=g.n)
    after = np.bincount(null[:, :2].astype(int).ravel(), minlength=g.n)
    dropped = 2 * len(g.src) - 2 * len(null)          # only links that would join a sample to itself are dropped
    assert (after <= before).all() and (before - after).sum() == dropped < 0.05 * 2 * len(g.src)
    assert not np.array_equal(np.sort(null[:, :2], axis=1), np.column_stack([g.src, g.dst]))
    links = np.column_stack([g.src, g.dst, g.weight]).astype(np.float64)
    times = (0.5, 1.0, 2.0)
    sav = {t: mod.savings(links, t, 1) for t in times}
    sav0 = {t: [mod.savings(mod.null_links(g, np.random.default_rng(r)), t, 1) for r in (2, 3)] for t in times}
    # at 0.5 the shuffles split into pieces and save about as much as the graph; from 1 on they are one module
    assert sav[0.5] > sav[1.0] > sav[2.0] > 0.5
    assert np.mean(sav0[0.5]) > 0.8 * sav[0.5] and max(map(abs, sav0[1.0] + sav0[2.0])) < 1e-6
    assert mod.chosen_time(times, sav, sav0) == 1.0
    assert mod.chosen_time(times, sav, {t: [0.0] for t in times}) == 0.5      # savings alone: the finest time
    assert mod.chosen_time((1.0, 2.0), {1.0: 1.0, 2.0: 1.0}, {1.0: [0.0], 2.0: [0.0]}) == 1.0   # ties: the finer


def test_fedlpa_as_the_library_runs_it_is_the_coarse_setting_where_fedlpa_counts_at_most_the_cutoff(mod):
    lib, p = DiscoveryParams(), mod.KA.fedlpa_config(mod.T.TABLE_ALPHAS[0], 0).discovery_params()
    own_at, coarse_at = ((mod.TIMES.index(p.markov_time), mod.MERGE.index(p.merge_new_cosine)),
                         (mod.TIMES.index(lib.coarse_markov_time), mod.MERGE.index(lib.coarse_merge_cosine)))

    def client(k_own):
        fin = [[[9, 0, 0, 0.9] for _ in mod.MERGE] for _ in mod.TIMES]
        fin[own_at[0]][own_at[1]] = [k_own, 0, 0, 0.1]
        fin[coarse_at[0]][coarse_at[1]] = [3, 0, 0, 0.2]
        return {"client": 0, "k": 5, "sav": [1.0] * len(mod.TIMES), "sav0": [[0.0]] * len(mod.TIMES),
                "finished": fin}

    for k_own, want in ((lib.coarse_k, [3, 0, 0, 0.2]), (lib.coarse_k + 1, [lib.coarse_k + 1, 0, 0, 0.1])):
        rows, chosen = mod.settings(client(k_own))
        assert rows[0] == [k_own, 0, 0, 0.1] and rows[1] == want
        assert chosen == {g: min(t) for g, t in mod.GRIDS.items()}


def test_the_committed_report_is_what_its_records_give(mod):
    res = json.loads(Path(mod.JSON).read_text())
    assert json.loads(json.dumps(mod.record(res["records"]))) == res
    assert Path(mod.MD).read_text() == "\n".join(mod.lines(res)) + "\n"
    assert sorted((r["alpha"], r["seed"]) for r in res["records"]) == sorted(
        (a, s) for a in mod.T.TABLE_ALPHAS for s in mod.KA.TUNING + mod.KA.EVALUATION)
    assert res["pick"] == mod.NS.pick(res["tuning"], mod.fedlpa_names()[1])
    # FedLPA's two settings are the discoveries the markov-merge and route studies recorded for the same clients
    mm = json.loads(Path(mod.MM.JSON).read_text())
    own, routed = mod.fedlpa_names()
    by = {(r["setting"], r["alpha"]): r for r in res["tuning"]}
    mm_by = {(r["setting"], r["alpha"]): r for r in mm["tuning"]}
    p = mod.KA.fedlpa_config(mod.T.TABLE_ALPHAS[0], 0).discovery_params()
    for a in mod.T.TABLE_ALPHAS:
        assert by[(own, a)]["kl"] == pytest.approx(mm_by[(mod.MM.name(p.markov_time, p.merge_new_cosine), a)]["kl"])
    cr = json.loads(Path(mod.KA.study_paths("coarse_route")[0]).read_text())
    cr_pick = {(r["setting"], r["alpha"]): r for r in cr["tuning"]}
    for a in mod.T.TABLE_ALPHAS:
        assert by[(routed, a)]["kl"] == pytest.approx(cr_pick[(cr["pick"]["setting"], a)]["kl"])
