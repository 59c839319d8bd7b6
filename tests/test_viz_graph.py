"""The readability figures: graph edges by kind (cross-class on top, one toggleable path each), class names, the
drawn subsample, the layouts, accuracy against α and the paired per-seed differences."""
from __future__ import annotations

import numpy as np
import pytest

from lab.viz import alpha as va
from lab.viz.gcd import EDGE_STYLES, PALETTE, similarity_graph
from lab.viz.layout import draw_subset, embed_2d, induced_edges

NAMES = ["T-shirt/top", "Trouser", "Pullover"]


def small_graph():
    pos = np.array([[0, 0], [1, 0], [0, 1], [5, 5], [6, 5]], float)
    y = np.array([0, 0, 1, 1, 2])
    src = np.array([0, 0, 1, 2, 3, 0])
    dst = np.array([1, 2, 2, 3, 4, 3])
    kind = np.array([0, 0, 1, 2, 0, 0])       # kNN same, kNN cross, must, cut, kNN cross, kNN cross
    return pos, src, dst, kind, y


def test_edges_are_one_path_per_kind_with_the_cross_class_kind_on_top_and_toggleable():
    fig = similarity_graph(*small_graph(), class_names=NAMES)
    shapes = fig.layout.shapes
    assert [s.name.split(" (")[0] for s in shapes] == [e[0] for e in EDGE_STYLES]
    top = shapes[-1]
    assert top.name == "kNN, joins two classes (3)" and top.showlegend and top.visible is True
    assert top.path.count("M") == 3 and top.path.count("L") == 3              # three segments, one path
    assert "214,39,40" in top.line.color and top.line.width == max(s.line.width for s in shapes)
    assert {s.name: s.path.count("M") for s in shapes[:-1]} == {"kNN, same class (1)": 1, "must-link (1)": 1,
                                                                 "cut (1)": 1}
    assert not any(t.mode == "lines" for t in fig.data)                        # no per-segment trace


def test_nodes_are_named_by_class_and_never_red():
    fig = similarity_graph(*small_graph(), class_names=NAMES)
    assert [t.name for t in fig.data] == NAMES
    assert "#d62728" not in PALETTE and all(t.marker.color != "#d62728" for t in fig.data)
    no_names = similarity_graph(*small_graph())
    assert [t.name for t in no_names.data] == ["true class 0", "true class 1", "true class 2"]


def test_an_empty_kind_stays_in_the_legend_but_hidden():
    pos, src, dst, kind, y = small_graph()
    fig = similarity_graph(pos, src, dst, np.zeros_like(kind), y)
    by = {s.name.split(" (")[0]: s for s in fig.layout.shapes}
    assert by["cut"].visible == "legendonly" and by["must-link"].visible == "legendonly"


def test_draw_subset_and_induced_edges():
    keep = draw_subset(10, 4, seed=0)
    assert len(keep) == 4 and np.all(np.diff(keep) > 0) and np.array_equal(keep, draw_subset(10, 4, seed=0))
    assert np.array_equal(draw_subset(3, 4), np.arange(3))
    s, d, k = induced_edges(np.array([1, 3, 4]), np.array([1, 1, 0, 3]), np.array([3, 2, 4, 4]),
                            np.array([7, 8, 9, 6]))
    assert s.tolist() == [0, 1] and d.tolist() == [1, 2] and k.tolist() == [7, 6]


def _knn_acc(pos, y):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return cross_val_score(KNeighborsClassifier(5), pos, y, cv=3).mean()


def test_tsne_separates_classes_better_than_pca():
    """On 300 Fashion-MNIST images of 6 classes (pixels), the t-SNE layout's 2-D neighbours agree with the true
    class more often than PCA's: the reason it is the default."""
    from lab.data.images import load_dataset

    d = load_dataset("fashion_mnist")
    idx = np.flatnonzero(d.y_train < 6)[::15][:300]
    x, y = d.x_train[idx].reshape(len(idx), -1) / 255.0, d.y_train[idx]
    assert _knn_acc(embed_2d(x, "tsne"), y) > _knn_acc(embed_2d(x, "pca"), y) + 0.05


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_layouts_take_tiny_clients(n):
    x = np.random.default_rng(0).normal(size=(n, 4))
    for m in ("tsne", "pca"):
        assert embed_2d(x, m).shape == (n, 2)


def test_accuracy_vs_alpha_has_a_log_axis_and_seed_bands():
    from lab.results import alpha_curve
    from test_tour import alpha_curve_standin

    rows = alpha_curve(alpha_curve_standin())
    fig = va.accuracy_vs_alpha(rows, dashed={"central"})
    assert all(ax.type == "log" for ax in (fig.layout.xaxis, fig.layout.xaxis2, fig.layout.xaxis3))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == len(bands) == 3 * 3                        # 3 methods x All / Old / New
    fed = next(t for t in lines if t.name.startswith("FedLPA") and t.xaxis == "x")
    assert list(fed.x) == [0.1, 1.0, 100.0] and fed.y[1] == pytest.approx(0.605)
    assert next(t for t in lines if t.name.startswith("centralized")).line.dash == "dash"
    spread = va.client_spread_vs_alpha(rows)
    dots = [t for t in spread.data if t.mode == "markers"]
    assert len(dots) == 2 and len(dots[0].x) == 3 * 2 * 3           # methods with clients: 3 alphas x 2 seeds x 3
    worst = next(t for t in spread.data if t.name == "worst client")
    assert worst.y[0] == pytest.approx(min(c["acc"] for c in rows[0]["clients"]))


def test_paired_seed_differences_draws_every_seed_and_the_interval_around_the_mean():
    from lab.viz.gcd import paired_seed_differences

    study = {"seeds": [0, 1, 2], "alphas": [{"alpha": 0.1, "seeds": [0, 1, 2], "paired": [
        {"vs": "FedAvg+SimGCD", "diff": {"mean": 0.02, "values": [0.01, 0.02, 0.03]}, "ci95": [0.0, 0.05],
         "ahead": 3}]}]}
    fig = paired_seed_differences(study)
    dots, mean = fig.data
    assert list(dots.x) == pytest.approx([1, 2, 3]) and set(dots.y) == {"FedAvg+SimGCD"}
    assert mean.x[0] == pytest.approx(2.0)
    assert mean.error_x.array[0] == pytest.approx(3.0) and mean.error_x.arrayminus[0] == pytest.approx(2.0)


def test_paired_seed_differences_draws_the_ceiling_when_asked():
    """``key="ceiling"`` draws the oracle prior − baseline pairs, not FedLPA's, and names who is ahead."""
    from lab.viz.gcd import paired_seed_differences

    pair = lambda vs, vals: {"vs": vs, "diff": {"mean": float(np.mean(vals)), "values": vals},  # noqa: E731
                             "ci95": [min(vals), max(vals)], "ahead": sum(v > 0 for v in vals)}
    study = {"seeds": [0, 1], "alphas": [{"alpha": 1.0, "seeds": [0, 1],
                                          "paired": [pair("FedAvg+GCD", [-0.05, -0.03])],
                                          "ceiling": [pair("FedAvg+GCD", [0.04, 0.02])]}]}
    fig = paired_seed_differences(study, key="ceiling", lead="oracle prior")
    assert list(fig.data[0].x) == pytest.approx([4, 2])
    assert "oracle prior ahead" in fig.layout.xaxis.title.text
    assert paired_seed_differences({"alphas": [{**study["alphas"][0], "ceiling": []}]}, key="ceiling").data == ()


def test_paired_seed_differences_parts_use_their_own_seeds():
    """The parts of the oracle's lead may cover fewer seeds than the study (runs still to finish): the panel
    title counts and the hover names the seeds of ``parts_seeds``, not the study's."""
    from lab.viz.gcd import paired_seed_differences

    part = {"vs": "oracle prior − oracle heads, equal masses", "diff": {"mean": 0.03, "values": [0.02, 0.04]},
            "ci95": [0.0, 0.06], "ahead": 2}
    study = {"seeds": [0, 1, 2], "alphas": [{"alpha": 0.1, "seeds": [0, 1, 2], "parts_seeds": [0, 2],
                                             "paired": [], "parts": [part]}]}
    fig = paired_seed_differences(study, key="parts", lead="the first")
    assert fig.layout.annotations[0].text == "α = 0.1 · 2 seeds"
    assert list(fig.data[0].text) == ["seed 0", "seed 2"] and set(fig.data[0].y) == {part["vs"]}
