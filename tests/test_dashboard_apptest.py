"""The Streamlit dashboard under ``streamlit.testing.v1.AppTest``: every page renders its figures on the
committed data, every widget survives its extremes, URL presets load, and uploads are validated.

AppTest runs the scripts without a browser (plotly charts come back as raw specs, no JavaScript runs);
``test_dashboard_browser.py`` covers the real browser.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from lab.data import tabular  # noqa: E402
from lab.gcd.discovery import DiscoveryParams  # noqa: E402
from lab.results import BACKBONE_STUDIES, K_HAT_STUDIES, k_hat_frontier_rows  # noqa: E402
from lab.utils import LabError  # noqa: E402

# dashboard/loaders.py and result_files.py, the very modules the pages import (pytest's `pythonpath` in
# pyproject.toml, like `streamlit run`, puts dashboard/ on the path): patching their folders redirects the pages
import loaders  # noqa: E402
import result_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

APP = str(ROOT / "dashboard" / "app.py")
TIMEOUT = 180
PAGES = {"tour": None, "data": "views/data_partitions.py", "graph": "views/similarity_graph.py",
         "communities": "views/communities.py", "prior": "views/prior_alignment.py", "training": "views/training.py",
         "privacy": "views/privacy_utility.py"}


def open_page(name: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(query or {})
    at.run()
    if PAGES[name]:
        at.switch_page(PAGES[name]).run()
    return at


def ok(at: AppTest, charts: int = 1) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) >= charts
    return at


KINDS = ("select_slider", "slider", "selectbox", "number_input", "multiselect", "toggle", "checkbox")


def widget(at: AppTest, key: str):
    return next(x for kind in KINDS for x in getattr(at, kind) if x.key == key)


def rerun(at: AppTest, **values) -> AppTest:
    """Set widgets by key, rerun, and check the page kept the values it was given."""
    for key, v in values.items():
        widget(at, key).set_value(v)
    at.run()
    for key, v in values.items():
        assert widget(at, key).value == v, (key, widget(at, key).value, v)
    return at


# ---------------------------------------------------------------------------------------------------------
# Pages: defaults and extremes
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_data_page_default_and_extremes():
    at = ok(open_page("data"), charts=3)            # heatmap, histograms, sample images
    assert at.metric[0].value == "5"
    ok(rerun(at, alpha=100.0, clients=2, seed=10_000), charts=3)
    ok(rerun(at, part="shards", clients=20), charts=3)
    ok(rerun(at, client=19), charts=3)
    ok(rerun(at, part="iid", ds="digits", client=0), charts=3)
    # an impossible partition is a clear error box, not a traceback
    rerun(at, part="dirichlet", ds="fashion_mnist")
    rerun(at, alpha=0.01, clients=20)
    assert not at.exception
    assert at.error and "raise alpha" in at.error[0].value


def test_url_preset_is_applied_and_bad_values_ignored():
    at = ok(open_page("data", {"alpha": "0.1", "clients": "7", "client": "6"}), charts=3)
    assert at.select_slider(key="alpha").value == 0.1
    assert at.slider(key="clients").value == 7
    assert at.slider(key="client").value == 6
    at = ok(open_page("data", {"alpha": "lots", "clients": "999"}), charts=3)
    assert at.select_slider(key="alpha").value == 0.5
    assert at.slider(key="clients").value == 5


@pytest.mark.slow
def test_graph_page_default_and_extremes():
    at = ok(open_page("graph"))
    assert any(m.label.startswith("Precision (refined)") for m in at.metric)
    ok(rerun(at, nmax=250, k=1, P=0.0, floor=-1.0, edges=1000))
    ok(rerun(at, k=50, P=1.0, floor=0.99, edges=50000))
    ok(rerun(at, k=10, floor=0.0, layout="tsne"))
    ok(rerun(at, layout="spring", model="pixels"))
    ok(rerun(at, layout="pca", model="backbone", clients=20, nmax=4000))
    ok(rerun(at, client=19))


@pytest.mark.slow
def test_communities_page_default_and_extremes():
    at = ok(open_page("communities"), charts=3)     # scatter, community x class, K per client
    ok(rerun(at, nmax=250, mt=0.5, k=1, minc=0.0), charts=3)
    ok(rerun(at, mt=5.0, k=50, minc=0.1), charts=3)
    ok(rerun(at, mt=1.0, k=10, minc=0.02, layout="spring"), charts=3)
    # FedLPA's coarse route: the page names the clients it found again, each first K̂ within the cutoff
    ok(rerun(at, route=True, mt=2.0), charts=3)
    (said,) = [c.value for c in at.caption if c.value.startswith("The route found")]
    firsts = [int(f) for f in re.findall(r"client \d+: (\d+) →", said)]
    assert firsts and all(f <= DiscoveryParams().coarse_k for f in firsts)
    assert f"The route found {len(firsts)} of" in said


def test_the_communities_pages_route_is_fedlpas_rule_on_each_client():
    """The communities page's route (``loaders.communities_routed``) finds a client again at the route's coarse
    time exactly when its communities number at most the cutoff (``DiscoveryParams.routes``, FedLPA's rule), and
    keeps the first count; a client above the cutoff, the route off, or a first time not finer than the coarse one
    keeps its first communities. The cutoff is one client's own count, so a client sits on it and clients sit on
    both sides."""
    ckeys = [("digits", "dirichlet", 0.1, 5, 0, c, "pixels", 2000) for c in range(5)]
    firsts = [loaders.communities_for(ck, 10, 0.5, 0.0, 1.0, 0.02) for ck in ckeys]
    route = DiscoveryParams(coarse_k=sorted(f.k_est for f in firsts)[2])
    again = []
    for ck, first in zip(ckeys, firsts):
        com, k_first = loaders.communities_routed(ck, 10, 0.5, 0.0, 1.0, 0.02, route)
        assert loaders.communities_routed(ck, 10, 0.5, 0.0, 1.0, 0.02) == (first, None)
        if first.k_est <= route.coarse_k:
            again.append(first.k_est)
            coarse = loaders.communities_for(ck, 10, 0.5, 0.0, route.coarse_markov_time, 0.02)
            assert k_first == first.k_est and com.markov_time == route.coarse_markov_time
            assert np.array_equal(com.labels, coarse.labels)
        else:
            assert k_first is None and com is first
    assert route.coarse_k in again and 0 < len(again) < len(ckeys)
    # a first time at or above the coarse one (the slider allows it; FedLPA's never is): the route stays off
    late = loaders.communities_for(ckeys[0], 10, 0.5, 0.0, route.coarse_markov_time, 0.02)
    assert route.routes(late.k_est)
    assert loaders.communities_routed(ckeys[0], 10, 0.5, 0.0, route.coarse_markov_time, 0.02, route) == (late, None)


@pytest.mark.slow
def test_prior_page_each_end_client():
    at = ok(open_page("prior"))
    slider = at.select_slider(key="pclient")
    last = slider.options[-1]
    ok(rerun(at, pclient=int(last)))
    assert at.dataframe
    # each prior rule on the FedLPA snapshot's discovery, the rule in use marked once, its KL a real number
    from lab.gcd.discovery import PRIORS

    (rules,) = [d.value for d in at.dataframe if "prior rule" in d.value.columns]
    assert [r.removesuffix(" (in use)") for r in rules["prior rule"]] == list(PRIORS)
    assert sum(r.endswith(" (in use)") for r in rules["prior rule"]) == 1
    kl = dict(zip(rules["prior rule"], rules["KL(true ‖ π)"]))
    assert all(np.isfinite(list(kl.values()))) and len(set(np.round(list(kl.values()), 6))) > 1


def check_backbone_tables(s: dict, runs, pairs) -> None:
    """One of item 7's parts on the training page: its runs' table has its backbones, its pairs' table the pairs
    its runs allow, and FedLPA's column the seed count its runs have."""
    assert set(runs["backbone"]) == {n for e in s["alphas"] for n in e["all"]} >= {"pretrained-wide"}
    made = {label for e in s["alphas"] for by in e["all"].values() for label in by}
    expect = {"FedLPA, oracle prior − FedAvg+GCD"} if {"FedLPA, oracle prior", "FedAvg+GCD"} <= made \
        else {f"FedLPA − {label}" for label in made - {"FedLPA"}}       # the references' study
    assert expect and expect <= set(pairs["difference"])
    # a run with no seed made yet (FedLPA on a GPU study after its default moved) has no column
    col = runs.get("FedLPA (seeds)", [])
    seeds = {int(v.rsplit("(", 1)[1].rstrip(")")) for v in col if isinstance(v, str)}
    assert max(seeds, default=0) == max((by["FedLPA"]["n"] for a in s["alphas"] for by in a["all"].values()
                                         if "FedLPA" in by), default=0)


@pytest.mark.slow
def test_training_page_results_and_a_live_run():
    at = open_page("training")
    assert not at.exception
    results, _ = result_files.gcd_results()
    if results:
        ok(at, charts=2)
        alphas = at.select_slider(key="ralpha").options
        ok(rerun(at, ralpha=float(alphas[0])), charts=2)
        ok(rerun(at, ralpha=float(alphas[-1])), charts=2)
        if result_files.seed_study()[0]:                 # FedLPA − baselines paired over the seed study
            assert any("Is the difference real?" in m.value for m in at.markdown)
            assert any("FedLPA − other" in c.proto.spec for c in at.get("plotly_chart"))
            assert any("Oracle prior − federated baseline" in c.proto.spec for c in at.get("plotly_chart"))
            study = result_files.seed_study()[0]
            (kd,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "direction of its K" in c.proto.spec]
            # one trace per difference per alpha, its dots at each seed's net over-count from the summary
            xs = [tr["x"] for tr in kd["data"]]
            assert xs == [[e["k_hat_direction"]["net_overcount"][s] for s in d]
                          for e in study["alphas"] for d in e["k_hat_direction"]["per_seed"].values()]
            assert any("a diagnosis, never a choice" in c.value for c in at.caption)
            anatomy = result_files.named_files({"a": "kest_anatomy.json"})["a"]
            if anatomy:                                  # K-hat's misses taken apart: the script's rows, as written
                (parts,) = [d.value for d in at.dataframe if "split" in d.value.columns]
                assert parts["split"].tolist() == [r["split"] for r in anatomy["parts"]]
                assert parts["K̂ − K"].tolist() == [r["k_hat_minus_k"] for r in anatomy["parts"]]
            frontier = k_hat_frontier_rows(result_files.named_files(K_HAT_STUDIES))
            if frontier:                                 # every studied discovery setting, at both alphas, as written
                (fr,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "at both α" in c.proto.spec]
                dots = [(x, y) for tr in fr["data"] if tr["name"] != "FedLPA's setting"
                        for x, y in zip(tr["x"], tr["y"])]
                assert sorted(dots) == sorted((100 * r["within_1_alpha_0.1"], 100 * r["within_1_alpha_1"])
                                              for r in frontier)
            bars = result_files.done_when()[0]           # issue 9's bars, from the same summary: lines and verdicts
            assert bars, "gcd_summary.json has a seed study but no done_when: rerun --stage summary"
            (exp,) = [e for e in at.expander if e.label.startswith("Does FedLPA earn its claim?")]
            (table,) = [d.value for d in exp.dataframe]
            assert table["target"].tolist() == [x["target"] for x in bars["eval_seeds"]]
            assert [v.endswith("(met)") for v in table["evaluation seeds"]] == [x["met"] for x in bars["eval_seeds"]]
        studies = [s for s in (result_files.backbone_study(k)[0] for k in BACKBONE_STUDIES) if s and s["alphas"]]
        if studies:                                      # item 7, per machine: the runs on both backbones, the pairs
            (exp,) = [e for e in at.expander if e.label == "A stronger backbone?"]
            frames = iter(d.value for d in exp.dataframe)
            assert all(any(s["title"] in m.value for m in exp.markdown) for s in studies)
            # each study's two tables, two more over the seed study's next seeds where those runs exist, then issue
            # 9's bar per backbone where the study read it
            for s in studies:
                for part in (s, s.get("more_seeds")):
                    if part:
                        check_backbone_tables(part, next(frames), next(frames))
                for read in s.get("done_when", {}).values():
                    table = next(frames)
                    assert table["target"].tolist() == [x["target"] for x in read["eval_seeds"]]
                    assert [v.endswith("(met)") for v in table["evaluation seeds"]] == [
                        x["met"] for x in read["eval_seeds"]]
                    # the study's own further seeds, named as such: they are not the seed study's
                    more = s.get("more_seeds")
                    assert not any("seed study" in c for c in table.columns)
                    assert not more or f"seeds {min(more['seeds'])}–{max(more['seeds'])}" in table.columns
            assert next(frames, None) is None
    # a tiny live run (8x8 digits, 1 round, 2 clients): progress, curves and a table, no exception
    rerun(at, t_methods=["simgcd"], t_ds="digits", t_rounds=1, t_clients=2, t_warm=0, t_alpha=100.0)
    at.button(key="t_run").click().run()
    ok(at)
    assert any("live" in str(d.value.columns.tolist()) or len(d.value) for d in at.dataframe)
    n_before = len(at.dataframe)
    at.run()                                          # revisit: the finished run is kept, no new training
    assert len(at.dataframe) == n_before


@pytest.mark.slow
def test_a_slider_move_on_the_training_page_rebuilds_only_the_figures_it_changes(monkeypatch):
    """The figures of committed results (seed study, K̂ frontier, accuracy against α) are built once per results
    file, not on every rerun: a move of the α slider rebuilds the two figures of the runs it selects only."""
    import lab.viz.alpha
    import lab.viz.gcd

    if not (result_files.gcd_results()[0] and result_files.seed_study()[0] and result_files.alpha_curve()[0]):
        pytest.skip("no training results committed")
    built = []
    for mod, name in ((lab.viz.gcd, "paired_seed_differences"), (lab.viz.gcd, "k_hat_frontier"),
                      (lab.viz.gcd, "training_curves"), (lab.viz.alpha, "accuracy_vs_alpha")):
        def counted(*a, _f=getattr(mod, name), _n=name, **kw):
            built.append(_n)
            return _f(*a, **kw)
        monkeypatch.setattr(mod, name, counted)
    result_files._figure.clear()
    at = ok(open_page("training"), charts=2)
    assert sorted(set(built)) == ["accuracy_vs_alpha", "k_hat_frontier", "paired_seed_differences",
                                  "training_curves"]
    built.clear()
    alphas = at.select_slider(key="ralpha").options
    ok(rerun(at, ralpha=float(alphas[-1])), charts=2)
    assert built == ["training_curves"]


@pytest.mark.slow
def test_the_tour_opens_without_importing_torch():
    """The tour is the first page a visitor opens, in a server that has imported nothing yet: it reads committed
    results only, so it must not pay for importing torch (1-2 s here), which the pages that run a model import when
    they first open. A fresh interpreter runs the tour and reports what it imported."""
    import subprocess
    import sys

    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            f"at = AppTest.from_file({APP!r}, default_timeout={TIMEOUT}); at.run(); "
            "assert not at.exception, [e.value for e in at.exception]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "dashboard",
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.slow
def test_presenter_mode_enlarges_a_copy_of_a_shared_figure():
    """The results figures are built once and shared by every rerun and session (``result_files.figure``); presenter
    mode enlarges a copy: the accuracy-against-α figure keeps its height over two presenter reruns, and a page
    without presenter mode opened after them draws it at its own height."""
    if not result_files.alpha_curve()[0]:
        pytest.skip("no accuracy-against-α results committed")

    def height(at):
        specs = [json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart")]
        (h,) = [s["height"] for s in specs if s.get("title", {}).get("text", "").startswith("Accuracy against α")]
        return h

    plain = height(open_page("training"))
    at = open_page("training", {"present": "1"})
    big = height(at)
    alphas = at.select_slider(key="ralpha").options
    assert height(rerun(at, ralpha=float(alphas[-1]))) == big == int(plain * 1.3)
    assert height(open_page("training")) == plain


@pytest.mark.slow
def test_privacy_page_default_and_extremes():
    at = open_page("privacy")
    assert not at.exception and not at.error
    ok(rerun(at, bound=1, sigma=5.0, steps=100, delta=1e-4, batch=16, curve=True))
    rerun(at, bound=64, sigma=0.5, steps=3000, delta=1e-7, batch=256, curve=False)
    assert not at.exception and not at.error
    values = {m.label: m.value for m in at.metric}
    assert values["ELS example ε"] != "∞"


@pytest.mark.slow
def test_pages_degrade_without_result_files(tmp_path, monkeypatch):
    """No snapshots, no training results, no DP sweeps: each page says so and still draws a figure."""
    monkeypatch.setattr(loaders, "SNAPSHOT_DIR", tmp_path / "snapshots")
    monkeypatch.setattr(result_files, "GCD_RESULTS_DIR", tmp_path / "gcd")
    monkeypatch.setattr(result_files, "RESULTS_DIR", tmp_path / "dp")
    at = ok(open_page("prior"))
    assert any("No trained snapshots" in i.value for i in at.info)
    at = open_page("training")
    assert not at.exception and any("No result files" in i.value for i in at.info)
    at = open_page("privacy")
    assert not at.exception and not at.error
    assert any("not computed yet" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) >= 1                 # the live ε-vs-σ curve stands in
    at = open_page("graph")
    ok(at)
    assert widget(at, "model").value == "backbone"           # no snapshot to default to


def test_privacy_page_reads_a_sweep_still_being_written(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(result_files, "RESULTS_DIR", tmp_path)
    rows = [{"algo": a, "epsilon_target": e, "eval_loss": 2.0 + 0.1 / e + (0.05 if a == "els" else 0),
             "noise_multiplier": 1.0, "pretrained_loss": 2.3, "n_train_examples": 1000, "n_train_users": 100}
            for a in ("els", "uls") for e in (1.0, 4.0)]
    (tmp_path / "dp_privacy_utility.json").write_text(json.dumps({"kind": "privacy-utility", "partial": True,
                                                                  "rows": rows}))
    (tmp_path / "dp_accounting.json").write_text(json.dumps({"kind": "accounting", "rows": "oops"}))
    at = open_page("privacy")
    assert not at.exception and not at.error
    assert any("Partial results" in c.value for c in at.caption)
    assert any("could not be drawn" in i.value for i in at.info)        # the broken accounting file
    assert len(at.get("plotly_chart")) >= 1


# ---------------------------------------------------------------------------------------------------------
# Bring your own data
# ---------------------------------------------------------------------------------------------------------

def blobs_csv(n=300, d=6, classes=4, users=12, seed=0, label="label") -> bytes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(0, 4, (classes, d))
    x = centres[y] + rng.normal(0, 1, (n, d))
    head = ",".join([f"f{j}" for j in range(d)] + [label, "user"])
    rows = [",".join([f"{v:.4f}" for v in x[i]] + [f"c{y[i]}", f"u{i % users}"]) for i in range(n)]
    return (head + "\n" + "\n".join(rows) + "\n").encode()


def test_validate_valid_csv():
    ud = tabular.validate_upload("blobs.csv", blobs_csv())
    assert ud.features.shape == (300, 6) and ud.features.dtype == np.float32
    assert ud.class_names == ["c0", "c1", "c2", "c3"]
    assert set(np.unique(ud.labels)) == {0, 1, 2, 3}
    assert ud.users is not None and len(np.unique(ud.users)) == 12


def test_validate_rejects_non_numeric_column():
    data = blobs_csv().decode().splitlines()
    data[5] = data[5].replace(data[5].split(",")[2], "oops", 1)
    with pytest.raises(LabError, match="'f2' is not numeric"):
        tabular.validate_upload("bad.csv", ("\n".join(data) + "\n").encode())


def test_validate_rejects_missing_label_column():
    with pytest.raises(LabError, match="no label column"):
        tabular.validate_upload("nolabel.csv", blobs_csv(label="species"))


def test_validate_rejects_empty_file():
    with pytest.raises(LabError, match="empty"):
        tabular.validate_upload("empty.csv", b"")
    with pytest.raises(LabError, match="no data|no rows"):
        tabular.validate_upload("header_only.csv", b"f0,f1,label\n")


def test_validate_rejects_oversized_file():
    with pytest.raises(LabError, match="upload limit"):
        tabular.validate_upload("big.csv", b"0" * (tabular.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(LabError, match="upload limit"):
        tabular.validate_upload("blobs.csv", blobs_csv(), max_bytes=1000)


def test_validate_rejects_too_few_rows_and_one_class():
    with pytest.raises(LabError, match="at least 50"):
        tabular.validate_upload("small.csv", blobs_csv(n=20))
    with pytest.raises(LabError, match="single class"):
        tabular.validate_upload("one.csv", blobs_csv(classes=1))


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_validate_npz_images_and_refuses_pickles():
    rng = np.random.default_rng(0)
    ud = tabular.validate_upload("imgs.npz", _npz(X=rng.integers(0, 255, (80, 8, 8), dtype=np.uint8),
                                                  y=np.arange(80) % 3))
    assert ud.features.shape == (80, 64) and ud.image_shape == (8, 8)
    with pytest.raises(LabError, match="allow_pickle|numeric"):
        tabular.validate_upload("obj.npz", _npz(X=np.array([{"a": 1}] * 60, dtype=object), y=np.arange(60) % 2))
    with pytest.raises(LabError, match="not a valid .npz"):
        tabular.validate_upload("fake.npz", b"PK-not-really-a-zip" * 10)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("run.py", "print('hi')")
    with pytest.raises(LabError, match="other than .npy"):
        tabular.validate_upload("code.npz", buf.getvalue())
    with pytest.raises(LabError, match="only .csv and .npz"):
        tabular.validate_upload("model.pkl", b"\x80\x04")


def _upload(at: AppTest, name: str, data: bytes, mime="text/csv") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    return at.run()


@pytest.mark.parametrize("name,data,message", [
    ("bad.csv", b"f0,f1,label\n" + b"1,x,a\n" * 60, "not numeric"),
    ("nolabel.csv", blobs_csv(label="species"), "no label column"),
    ("empty.csv", b"", "empty"),
    ("big.csv", b"0" * (tabular.MAX_UPLOAD_BYTES + 1), "upload limit"),
], ids=["non-numeric", "no-label", "empty", "oversized"])
def test_upload_rejected_through_the_page(name, data, message):
    at = open_page("data")
    _upload(at, name, data)
    assert not at.exception
    assert any("Upload rejected" in e.value and message in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="ds").value == "fashion_mnist"      # the committed data stays selected


def test_upload_valid_csv_drives_every_data_page():
    at = open_page("data")
    _upload(at, "blobs.csv", blobs_csv())
    assert not at.exception
    assert at.selectbox(key="ds").value == "upload"
    assert any("Loaded blobs.csv" in s.value for s in at.success)
    ok(at, charts=2)                                  # heatmap + histograms (no images in this upload)
    assert "natural" in at.selectbox(key="part").options
    ok(rerun(at, part="natural", clients=4), charts=2)
    at.switch_page(PAGES["graph"]).run()
    ok(at)
    assert at.selectbox(key="model").value == "features"
    at.switch_page(PAGES["communities"]).run()
    ok(at, charts=3)
