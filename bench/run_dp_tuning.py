"""Privacy half, made fair: tune ELS and ULS each at its own (k, lr, clip) on a tuning seed, then the headline
privacy-utility curve on evaluation seeds, the fixed-k = 16 contrast and the two bound rules against the grid.

Protocol (budget, grids, seeds, what epsilon covers): ``bench/README.md``, "User-level DP: tuning and
evaluation protocol". Outputs in ``bench/results/``: ``dp_tuning.json`` (every tuning run, the gradient-norm
quantiles, the tuned settings), ``dp_tuned_curve.json`` (the evaluation runs, ``summary`` + ``paired``),
``dp_tuned_summary.md``.

    nice -n 10 python bench/run_dp_tuning.py --stage all > /tmp/dp_tuning.log 2>&1 &   # resumable
    nice -n 10 python bench/run_dp_tuning.py --stage subset > /tmp/dp_tuning.log 2>&1 &  # eps = 1 full, eps = 8 in k
    python bench/run_dp_tuning.py --stage refine --refine-epsilon 8   # then eps = 8 certified in k, lr, clip
    python bench/run_dp_tuning.py --stage curve --epsilons 8 4 16 &   # processes on disjoint epsilons share the
    python bench/run_dp_tuning.py --stage curve --epsilons 0.5 1 2    # curve file (merged under a lock)
    python bench/run_dp_tuning.py --stage summary            # the markdown from the two JSON files
    python bench/run_dp_tuning.py --stage all --quick --results-dir /tmp/dp_quick        # smoke test (tiny runs)

Resumable: every finished run is written at once (temp file + rename) under the hash of its DPRunConfig; a
restart replays the same deterministic search and reuses every stored run, so an interruption costs at most
the run in progress. One worker, one torch thread; progress bar on stderr.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

RES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

TUNING_SEED = 100                       # every tuning run; the evaluation seeds are never seen by a choice
EVAL_SEEDS = (0, 1, 2)
UNSEEN_SEEDS = (1, 2)                   # seeds no tuning ever saw (seed 0 chose today's k = 16 defaults)
TUNING_EPSILONS = (1.0, 8.0)            # tuned here; every other epsilon takes the nearest one in log scale
CURVE_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ALGOS = ("els", "uls")
FIXED_BOUND = 16                        # the teaching contrast: today's bound and today's clip/lr (runner.DEFAULTS)
K0 = 4                                  # the bound of stage A, the same for both algorithms
LR_LADDER = (1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2)
K_LADDER = (1, 2, 4, 8, 16, 32, 64, 128)
K_GRID = (1, 2, 4, 8, 16, 32)           # stage B; 64 (then 128) only when the largest tried k wins
A_LR = (3e-4, 1e-3, 3e-3)               # stage A: every other rung of LR_LADDER
A_Q = (0.1, 0.5)                        # stage A: two rungs of the quantile ladder (widened in steps of 2)
SUBSET = {"ran": "eps = 1: the full protocol (stages A, B, C and the pad); eps = 8: local search in k from eps = 1's "
                  "optimum (one-rung neighbours until none is better), then k, lr and clip quantile certified by "
                  "coordinate search from there (`--stage refine`), equal runs for both algorithms; the curve at "
                  "all six epsilons x 3 evaluation seeds (0.5 and 2 with eps = 1's settings, 4 and 16 with eps = "
                  "8's); the k = 16 contrast at every epsilon (reused from dp_privacy_utility.json where the same "
                  "run is there, one re-run to check); both bound rules at eps 1 and 8",
          "cut": "stages A and B at eps = 8 (its search starts from eps = 1's optimum instead of a fresh lr x clip "
                 "grid at k = 4): the optimum found there is certified locally (every one-rung neighbour in k, lr "
                 "and clip quantile is worse) but not globally; tuning at 0.5, 2, 4 and 16 (interpolated, as the "
                 "protocol allows)"}
MIN_BUDGET = 0                          # no floor: both algorithms get max(runs either needed to certify)
SETTINGS = {"steps": 100, "batch": 256, "delta": 1e-5}
QUICK = {"steps": 2, "batch": 8, "delta": 1e-5, "max_train_users": 40, "eval_windows": 16}
DIMS = ("k", "lr", "q")


def _say(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _write(path, obj):
    from lab.privacy.runner import json_safe
    from lab.utils import write_json_atomic

    write_json_atomic(path, json_safe(obj))


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stats(values) -> dict:
    v = [float(x) for x in values]
    return {"mean": float(np.mean(v)) if v else None, "std": float(np.std(v)) if v else None, "n": len(v),
            "values": v}


class Study:
    """The tuning state (``dp_tuning.json``) and the evaluation state (``dp_tuned_curve.json``), with a
    run cache keyed by config hash so the deterministic search can be replayed after an interruption."""

    def __init__(self, results_dir, quick=False):
        from lab.privacy.bounds import QUANTILES

        self.dir, self.quick = results_dir, quick
        os.makedirs(results_dir, exist_ok=True)
        self.settings = dict(QUICK if quick else SETTINGS)
        self.q_ladder = QUANTILES
        self.tune_path = os.path.join(results_dir, "dp_tuning.json")
        self.curve_path = os.path.join(results_dir, "dp_tuned_curve.json")
        self.tune = _load(self.tune_path) or {}
        self.tune.setdefault("runs", [])
        self.tune.setdefault("norms", {})
        self.curve = _load(self.curve_path) or {}
        self.curve.setdefault("rows", [])
        self.cache = {r["key"]: r for r in self.tune["runs"] + self.curve["rows"] if "key" in r}
        self._data = self._model = self._bar = None
        self.new_runs = 0
        self.seen = {}

    # ------------------------------------------------------------------ data, norms and one run
    def data(self):
        if self._data is None:
            from lab.privacy.users import load_user_data

            self._data = load_user_data()
        return self._data

    def train_windows(self):
        w = self.data().train_windows
        n = self.settings.get("max_train_users")
        return w if n is None else w[:n]

    def norms(self, k: int) -> dict:
        """Gradient-norm quantiles at bound ``k`` on the pretrained model (measured once, stored)."""
        key = str(int(k))
        if key not in self.tune["norms"]:
            from lab.privacy.bounds import gradient_stats
            from lab.privacy.charlm import load_pretrained

            if self._model is None:
                self._model = load_pretrained()
            t = time.time()
            st = gradient_stats(self._model, self.train_windows(), int(k), bound_seed=TUNING_SEED)
            self.tune["norms"][key] = dict(st.to_dict(), seconds=time.time() - t)
            self._save_tune()
            _say(f"norms k={k}: median example {np.median(st.example_norms):.2f}, user {np.median(st.user_norms):.2f} "
                 f"({time.time() - t:.0f}s)")
        return self.tune["norms"][key]

    def clip(self, algo, k, q) -> float:
        from lab.privacy.tuned import CLIP_UNIT

        qs = self.norms(k)[f"{CLIP_UNIT[algo]}_quantiles"]
        return float(qs[min(qs, key=lambda s: abs(float(s) - q))])

    def clip_near(self, algo, k, q) -> float:
        """:meth:`clip` at the measured bound nearest to ``k`` in log scale (the ELS rule's k, the median,
        need not be on the grid; measuring norms at a new k costs about one run)."""
        import math

        kk = min({*K_GRID, *(int(b) for b in self.tune["norms"])}, key=lambda b: (abs(math.log(b / k)), b))
        return self.clip(algo, kk, q)

    def config(self, algo, eps, k, lr, clip, seed):
        from lab.privacy.accounting import REPORT_DISCRETIZATION
        from lab.privacy.config import DPRunConfig

        return DPRunConfig(task="lm", algo=algo, epsilon=float(eps), bound=int(k), seed=int(seed), clip=float(clip),
                           lr=float(lr), report_discretization=REPORT_DISCRETIZATION, **self.settings)

    def run(self, cfg, store: str, **tags) -> dict:
        """The run record of ``cfg`` (from the cache, else trained now and stored at once)."""
        key = run_key(cfg)
        if key in self.cache:
            return self.cache[key]
        from lab.privacy.runner import run_lm

        r = run_lm(cfg)
        rec = {k: v for k, v in r.items() if k != "device"}
        rec.update(key=key, **tags)
        self.cache[key] = rec
        if store == "tune":
            self.tune["runs"].append(rec)
            self._save_tune()
        else:
            self.curve["rows"].append(rec)
            self._save_curve()
        self.new_runs += 1
        if self._bar is not None:
            self._bar.update(1)
        _say(f"[{store}] {cfg.algo} eps={cfg.epsilon} k={cfg.bound} lr={cfg.lr:g} clip={cfg.clip:.3f} seed={cfg.seed} "
             f"{' '.join(f'{k}={v}' for k, v in tags.items())}: loss={r['eval_loss']:.4f} "
             f"sigma={r['noise_multiplier']:.3f} ({r['seconds']:.0f}s)")
        return rec

    def _save_tune(self):
        self.tune.update(kind="dp-tuning", partial=not self.tune.get("tuned_complete", False))
        _write(self.tune_path, self.tune)

    def _save_curve(self):
        """Write the curve file with its summaries recomputed from the runs so far (readers such as the tour
        see whole-seed summaries while it grows; ``partial`` stays true until every tuned run is in).

        Several processes may grow the curve at once (``--epsilons`` splits the work): under a file lock, the
        rows another process wrote since this one read the file are merged in (by run key) before writing."""
        import fcntl

        with open(self.curve_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk = _load(self.curve_path) or {}
            for r in disk.get("rows", []):
                if "key" in r and r["key"] not in self.cache:
                    self.cache[r["key"]] = r
                    self.curve["rows"].append(r)
            fresh = _load(self.tune_path)  # another process may have re-tuned an epsilon meanwhile
            if fresh and fresh.get("tuned"):
                self.tune["tuned"], self.tune["rules"] = fresh["tuned"], fresh.get("rules", self.tune.get("rules"))
            self.derive()
            self.curve.update(kind="dp-tuned-curve", partial=not self.curve.get("complete", False))
            _write(self.curve_path, self.curve)

    # ------------------------------------------------------------------ the search (one algo, one epsilon)
    def point(self, x):
        ki, li, qi = x
        return K_LADDER[ki], LR_LADDER[li], self.q_ladder[qi]

    def loss(self, algo, eps, x, stage) -> float:
        k, lr, q = self.point(x)
        cfg = self.config(algo, eps, k, lr, self.clip(algo, k, q), TUNING_SEED)
        r = self.run(cfg, "tune", stage=stage, tune_epsilon=float(eps), clip_quantile=float(q))
        self.seen.setdefault((algo, float(eps)), {})[x] = r["eval_loss"]
        return r["eval_loss"]

    def tried(self, algo, eps) -> dict:
        """``{x: loss}`` (x: ladder indices) of the points this search has visited so far, stored or new: the
        search reads only these, so a replay after an interruption takes exactly the same path."""
        return dict(self.seen.get((algo, float(eps)), {}))

    def _line(self, algo, eps, x, dim):
        d = DIMS.index(dim)
        return {y[d]: v for y, v in self.tried(algo, eps).items() if all(y[i] == x[i] for i in range(3) if i != d)}

    def widen(self, algo, eps, x, dim, step, stage, natural_ends=False, lo=0, hi=None):
        """Extend the line through ``x`` along ``dim`` by ``step`` rungs while its best point is an end of
        the tried values (and the ladder goes on). Returns the best point of the line."""
        d = DIMS.index(dim)
        size = (len(K_LADDER), len(LR_LADDER), len(self.q_ladder))[d]
        hi = size - 1 if hi is None else hi
        for _ in range(6):
            line = self._line(algo, eps, x, dim)
            b = min(line, key=line.get)
            x = tuple(b if i == d else x[i] for i in range(3))
            nxt = b - step if b == min(line) else (b + step if b == max(line) else None)
            if nxt is None:
                return x
            nxt = min(max(nxt, lo), hi)
            if nxt in line:
                return x
            self.loss(algo, eps, tuple(nxt if i == d else x[i] for i in range(3)), stage)
        return x

    def neighbours(self, x, step=1, dims=DIMS):
        for d in (DIMS.index(dim) for dim in dims):
            size = (len(K_LADDER), len(LR_LADDER), len(self.q_ladder))[d]
            for s in (-step, step):
                v = x[d] + s
                if 0 <= v < size:
                    yield tuple(v if i == d else x[i] for i in range(3))

    def certify(self, algo, eps, x, stage="C", dims=DIMS):
        """Coordinate-wise local search on the ladders: evaluate both neighbours of ``x`` in k, lr and the
        clip quantile (or only ``dims``); move to any better one and repeat. Ends at a point no neighbour beats."""
        for _ in range(12):
            for y in self.neighbours(x, dims=dims):
                self.loss(algo, eps, y, stage)
            t = self.tried(algo, eps)
            best = min([x] + list(self.neighbours(x, dims=dims)), key=lambda y: t[y])
            if best == x:
                return x
            x = best
        return x

    def search(self, algo, eps):
        """Stages A (lr x clip quantile at k = K0), B (k at A's best), C (certify) for one algorithm."""
        ki0 = K_LADDER.index(K0)
        for lr in A_LR:
            for q in A_Q:
                self.loss(algo, eps, (ki0, LR_LADDER.index(lr), self.q_ladder.index(q)), "A")
        t = self.tried(algo, eps)
        x = min((y for y in t if y[0] == ki0), key=t.get)
        x = self.widen(algo, eps, x, "lr", 2, "A")            # coarse steps until the best lr is interior
        x = self.widen(algo, eps, x, "q", 2, "A")             # (quantile ends 0 and 1 are natural)
        for k in K_GRID:
            self.loss(algo, eps, (K_LADDER.index(k), x[1], x[2]), "B")
        x = self.widen(algo, eps, x, "k", 1, "B")             # k = 1 is natural; 32 -> 64 -> 128
        return self.certify(algo, eps, x)

    def pad(self, algo, eps, x, target):
        """Spend runs up to ``target`` on untried points nearest the optimum in (lr, clip quantile) at its k
        (corners first), moving and re-certifying whenever one wins: extra runs can only help ``algo``."""
        for _ in range(50):
            t = self.tried(algo, eps)
            if len(t) >= target:
                return x
            cand = [(x[0], x[1] + a, x[2] + b) for a in (-2, -1, 0, 1, 2) for b in (-2, -1, 0, 1, 2)]
            cand = [y for y in cand if 0 <= y[1] < len(LR_LADDER) and 0 <= y[2] < len(self.q_ladder) and y not in t]
            if not cand:
                return x
            y = min(cand, key=lambda y: (max(abs(y[1] - x[1]), abs(y[2] - x[2])), abs(y[1] - x[1]) + abs(y[2] - x[2]),
                                         y[1], y[2]))
            if self.loss(algo, eps, y, "pad") < t[x]:
                x = self.certify(algo, eps, y, stage="pad")
        return x

    def tune_epsilon(self, eps):
        best = {a: self.search(a, eps) for a in ALGOS}
        for _ in range(10):  # the same number of runs for both algorithms
            n = {a: len(self.tried(a, eps)) for a in ALGOS}
            target = max(max(n.values()), MIN_BUDGET)
            if all(v == target for v in n.values()):
                break
            for a in ALGOS:
                if n[a] < target:
                    best[a] = self.pad(a, eps, best[a], target)
        return best

    def describe(self, algo, eps, x) -> dict:
        """The tuned setting at ``x`` with, per coordinate, whether it is interior or at a natural boundary."""
        t = self.tried(algo, eps)
        k, lr, q = self.point(x)
        where = {}
        for d, dim in enumerate(DIMS):
            lo = tuple(x[i] - (i == d) for i in range(3))
            hi = tuple(x[i] + (i == d) for i in range(3))
            nb = {"lower": t.get(lo), "upper": t.get(hi)}
            if dim == "k" and x[0] == 0:
                where[dim] = "natural boundary (k = 1)"
            elif dim == "q" and x[2] in (0, len(self.q_ladder) - 1):
                where[dim] = f"natural boundary (quantile {self.q_ladder[x[2]]:g})"
            elif nb["lower"] is not None and nb["upper"] is not None and min(nb.values()) >= t[x]:
                where[dim] = "interior"
            else:
                where[dim] = "EDGE (not certified)"
            where[f"{dim}_neighbours"] = nb
        return {"bound": k, "lr": lr, "clip": self.clip(algo, k, q), "clip_quantile": q, "tuning_loss": t[x],
                "tuning_seed": TUNING_SEED, "runs": len(t), "optimum": where}

    def _start_tune(self):
        from lab.privacy.bounds import examples_per_user

        self.tune.update(protocol=protocol(self), tuning_seed=TUNING_SEED, evaluation_seeds=list(EVAL_SEEDS),
                         tuning_epsilons=list(TUNING_EPSILONS), curve_epsilons=list(CURVE_EPSILONS),
                         settings=self.settings, quick=self.quick, k0=K0, lr_ladder=list(LR_LADDER),
                         quantile_ladder=list(self.q_ladder), k_ladder=list(K_LADDER),
                         counts_per_user=examples_per_user(self.train_windows()).tolist())
        for k in K_GRID:
            self.norms(k)

    def _store_tuned(self, eps, best: dict, protocol="full", **extra):
        """Write the tuned setting of every algorithm at ``eps`` (and the rules) into the tuning file."""
        tuned = self.tune.setdefault("tuned", {a: {} for a in ALGOS})
        for a in ALGOS:
            tuned[a][str(float(eps))] = dict(self.describe(a, eps, best[a]), protocol=protocol, **extra)
            _say(f"tuned {a} eps={eps} ({protocol}): {tuned[a][str(float(eps))]}")
        for a in ALGOS:  # keep the epsilons in order (readers list them)
            tuned[a] = dict(sorted(tuned[a].items(), key=lambda kv: float(kv[0])))
        # the runs each search made, as stored with its setting (a process that re-tunes one epsilon has not
        # replayed the others' searches, so counting what it visited would zero them)
        self.tune["budget"] = {a: {e: tuned[a][e]["runs"] for e in tuned[a]} for a in ALGOS}
        self.tune["rules"] = self.rules()
        self._save_tune()

    def stage_tune(self):
        """The full protocol (stages A, B, C and the equal-budget pad) at every tuning epsilon."""
        self._start_tune()
        for eps in TUNING_EPSILONS:
            self._store_tuned(eps, self.tune_epsilon(eps))
        self.tune["tuned_complete"] = True
        self._save_tune()

    def tune_k_lr(self, eps, from_eps, dims=("k", "lr"), k_grid=K_GRID):
        """The reduced search (``--stage subset``) at ``eps``, on the tuning seed, from the (k, lr, clip
        quantile) each algorithm got from its full tuning at ``from_eps``: first every k of ``k_grid`` at that
        lr and quantile (the best widened past the grid's end if it sits there), then coordinate search in
        ``dims`` until no one-rung neighbour is better, then the same number of runs for both (the one that
        needed fewer tries untried lr rungs next to its optimum). What is not in ``dims`` is carried over and
        said so per row (a clip quantile at level 0 is a natural boundary, ``bounds.QUANTILES``)."""
        src = self.tune["tuned"]
        best = {}
        for a in ALGOS:
            s = src[a][str(float(from_eps))]
            li, qi = LR_LADDER.index(s["lr"]), self.q_ladder.index(s["clip_quantile"])
            x = (K_LADDER.index(s["bound"]), li, qi)
            for k in k_grid:
                self.loss(a, eps, (K_LADDER.index(k), li, qi), "k-lr")
            if k_grid:
                t = self.tried(a, eps)
                x = min((y for y in t if y[1:] == (li, qi)), key=t.get)
                x = self.widen(a, eps, x, "k", 1, "k-lr")
            self.loss(a, eps, x, "k-lr")
            best[a] = self.certify(a, eps, x, stage="k-lr", dims=dims)
        for _ in range(10):  # equal budgets: untried lr rungs nearest the optimum, re-certifying on a win
            n = {a: len(self.tried(a, eps)) for a in ALGOS}
            short = [a for a in ALGOS if n[a] < max(n.values())]
            if not short:
                break
            for a in short:
                x, t = best[a], self.tried(a, eps)
                cand = [(x[0], x[1] + s, x[2]) for s in (-2, 2, -3, 3, -4, 4)
                        if 0 <= x[1] + s < len(LR_LADDER) and (x[0], x[1] + s, x[2]) not in t]
                if not cand:
                    break
                if self.loss(a, eps, cand[0], "pad") < t[x]:
                    best[a] = self.certify(a, eps, cand[0], stage="pad", dims=("k", "lr"))
        carried = [d for d in DIMS if d not in dims]
        self._store_tuned(eps, best, protocol=f"{' and '.join(dims)} only ({', '.join(carried)} from eps={from_eps:g})",
                          carried_from=float(from_eps))
        for a in ALGOS:  # what was not searched here: say so unless it sits at a natural end
            o = self.tune["tuned"][a][str(float(eps))]["optimum"]
            for d in carried:
                if not o[d].startswith("natural"):
                    there = src[a][str(float(from_eps))]["optimum"][d]
                    o[d] = f"carried from eps={from_eps:g} (not tuned here; {there} there)"
        self._save_tune()

    def stage_subset(self):
        """What fit the session of 2 December (a restart left the eps = 8 tuning at 2 of ~40 runs): eps = 1
        fully tuned (done), its evaluation seeds; eps = 8 tuned in k only; then the bound rules and a
        re-run of one reused k = 16 run. In order of value, so that an interruption leaves whole parts."""
        self._start_tune()
        self._store_tuned(1.0, self.tune_epsilon(1.0))                   # all cached
        self.curve["subset"] = SUBSET
        self.stage_curve((1.0,))
        self.stage_contrast((1.0, 8.0))                                  # reused from dp_privacy_utility.json
        self.tune_k_lr(8.0, 1.0, dims=("k",), k_grid=())          # the time left allowed k only (see SUBSET)
        self.stage_curve((1.0, 8.0))
        self.stage_rules(only=1.0)
        self.stage_rules(only=8.0)
        self.verify_reuse()

    def refine(self, eps):
        """Certify a reduced tuning (``tune_k_lr``) in every dimension: coordinate search with one-rung
        neighbours in k, lr and clip quantile from the stored optimum at ``eps`` (its runs are reused), then the
        same number of runs for both algorithms. What was carried over before is tuned after this."""
        before = {a: dict(self.tune["tuned"][a][str(float(eps))]) for a in ALGOS}
        best = {}
        for a in ALGOS:  # replay what the reduced search visited, so certify sees those runs
            for r in self.tune["runs"]:
                if r["algo"] == a and float(r.get("tune_epsilon", -1)) == float(eps):
                    x = (K_LADDER.index(r["bound"]), LR_LADDER.index(r["lr"]),
                         self.q_ladder.index(r["clip_quantile"]))
                    self.seen.setdefault((a, float(eps)), {})[x] = r["eval_loss"]
            s = before[a]
            x = (K_LADDER.index(s["bound"]), LR_LADDER.index(s["lr"]), self.q_ladder.index(s["clip_quantile"]))
            best[a] = self.certify(a, eps, x, stage="refine")
        for _ in range(10):
            n = {a: len(self.tried(a, eps)) for a in ALGOS}
            target = max(n.values())
            if all(v == target for v in n.values()):
                break
            for a in ALGOS:
                if n[a] < target:
                    best[a] = self.pad(a, eps, best[a], target)
        src = before[ALGOS[0]].get("carried_from")
        self._store_tuned(eps, best, protocol=f"k from eps={src:g}'s setting, then k, lr and clip quantile "
                                              "certified by coordinate search" if src else "full",
                          carried_from=src, refined=True)

    def verify_reuse(self, algo="els", eps=1.0, seed=1):
        """Re-run one reused k = 16 run with today's code: the reuse holds only if the loss is the same."""
        from lab.privacy.runner import DEFAULTS

        cfg = self.config(algo, eps, FIXED_BOUND, DEFAULTS[algo]["lr"], DEFAULTS[algo]["clip"], seed)
        old = self.cache.get(run_key(cfg))
        if old is None or "reused_from" not in old:
            return
        from lab.privacy.runner import run_lm

        r = run_lm(cfg)
        self.curve["reuse_check"] = {"algo": algo, "epsilon": eps, "seed": seed, "bound": FIXED_BOUND,
                                     "stored_loss": old["eval_loss"], "rerun_loss": r["eval_loss"],
                                     "abs_diff": abs(old["eval_loss"] - r["eval_loss"]), "seconds": r["seconds"]}
        _say(f"reuse check: stored {old['eval_loss']:.6f}, re-run {r['eval_loss']:.6f}")
        self._save_curve()

    def rules(self) -> dict:
        from lab.privacy.bounds import els_rule_bound, examples_per_user, uls_rule_bound

        counts = examples_per_user(self.train_windows())
        st = self.norms(max(K_GRID))
        uls = {str(e): uls_rule_bound(counts, e, delta=self.settings["delta"], steps=self.settings["steps"],
                                      batch=self.settings["batch"], stats=st, bounds=K_GRID)
               for e in TUNING_EPSILONS}
        return {"els": {"bound": els_rule_bound(counts), "rule": "median examples per training user",
                        "median": float(np.median(counts))},
                "uls": {"by_epsilon": uls, "stats_bound": max(K_GRID),
                        "stats": {k: st[k] for k in ("mu2", "between", "within")},
                        "rule": "argmin over k of sigma(k) / (q(k) N rho_hat(k)) (lab/privacy/bounds.py)"}}

    # ------------------------------------------------------------------ evaluation
    def eval_run(self, algo, eps, k, lr, clip, seed, **tags):
        return self.run(self.config(algo, eps, k, lr, clip, seed), "curve", **tags)

    def fixed_run(self, algo, eps, seed, reuse):
        """Today's k = 16 run (runner.DEFAULTS), reused from dp_privacy_utility.json when the same run is there."""
        from lab.privacy.runner import DEFAULTS

        cfg = self.config(algo, eps, FIXED_BOUND, DEFAULTS[algo]["lr"], DEFAULTS[algo]["clip"], seed)
        if run_key(cfg) not in self.cache:
            for r in reuse:
                if (r["algo"] == algo and r.get("epsilon_target") not in (None, "inf")
                        and float(r["epsilon_target"]) == eps and r["seed"] == seed and r["bound"] == cfg.bound
                        and r["clip"] == cfg.clip and r["lr"] == cfg.lr and r["steps"] == cfg.steps
                        and r["batch"] == cfg.batch and r["delta"] == cfg.delta
                        and all(r.get("config", {}).get(f) == getattr(cfg, f) for f in ("max_train_users",
                                                                                          "eval_windows"))):
                    rec = dict(r, key=run_key(cfg), set="fixed_k16", reused_from="dp_privacy_utility.json")
                    self.cache[rec["key"]] = rec
                    self.curve["rows"].append(rec)
                    self._save_curve()
                    break
        return self.run(cfg, "curve", set="fixed_k16")

    def stage_curve(self, epsilons=CURVE_EPSILONS):
        """The headline: each algorithm at its tuned setting (nearest tuned epsilon), every curve epsilon,
        every evaluation seed."""
        from lab.privacy.tuned import nearest_epsilon

        tuned = self.tune["tuned"]
        self.curve.update(delta=self.settings["delta"], steps=self.settings["steps"], batch=self.settings["batch"],
                          seeds=list(EVAL_SEEDS), epsilons=list(CURVE_EPSILONS), quick=self.quick)
        for seed in EVAL_SEEDS:  # seed by seed, so a partial file holds whole curves
            for eps in epsilons:
                for a in ALGOS:
                    te = nearest_epsilon(eps, tuned_epsilons(self.tune))
                    s = tuned[a][str(te)]
                    self.eval_run(a, eps, s["bound"], s["lr"], s["clip"], seed, set="tuned", tuned_at=te)
        self._save_curve()

    def stage_contrast(self, epsilons=CURVE_EPSILONS):
        """The teaching contrast: both algorithms at k = 16 with today's clip/lr, every curve epsilon and seed."""
        pu = self.headline_k16()
        for seed in EVAL_SEEDS:
            for eps in epsilons:
                for a in ALGOS:
                    self.fixed_run(a, eps, seed, pu["rows"])  # (quick runs never match: other settings)
        self._save_curve()

    def stage_rules(self, seeds=EVAL_SEEDS, only=None):
        """Each bound rule's k at the tuned lr and clip quantile, at every tuning epsilon, on evaluation seeds
        (where the rule's k is the grid's best k, the tuned runs themselves)."""
        tuned, rules = self.tune["tuned"], self.tune["rules"]
        only = None if only is None else {float(e) for e in np.atleast_1d(only)}
        for te in tuned_epsilons(self.tune):
            if only is not None and te not in only:
                continue
            for a in ALGOS:
                s = tuned[a][str(te)]
                k = rules["els"]["bound"] if a == "els" else rules["uls"]["by_epsilon"][str(te)]["bound"]
                if k != s["bound"]:
                    for seed in seeds:
                        self.eval_run(a, te, k, s["lr"], self.clip_near(a, k, s["clip_quantile"]), seed,
                                      set="rule")
        self._save_curve()

    def headline_k16(self):
        return _load(os.path.join(RES, "dp_privacy_utility.json")) or {"rows": []}

    def derive(self):
        """summary / paired / fixed_k16 / tuned_vs_fixed_k16 / rules of the curve file, from its rows."""
        from lab.privacy.runner import DEFAULTS
        from lab.privacy.tuned import nearest_epsilon

        tuned, rows = self.tune["tuned"], self.curve["rows"]
        tuned_eps = tuned_epsilons(self.tune)

        def pick(set_, algo, eps, bound=None):
            out = {}
            for r in rows:
                if (r.get("set") == set_ and r["algo"] == algo and float(r["epsilon_target"]) == eps
                        and (bound is None or r["bound"] == bound) and r["seed"] in EVAL_SEEDS):
                    out[r["seed"]] = r
            return out

        def summary(set_):
            out = []
            for a in ALGOS:
                for eps in CURVE_EPSILONS:
                    rs = pick(set_, a, eps)
                    if not rs:
                        continue
                    r0 = next(iter(rs.values()))
                    st = stats([r["eval_loss"] for r in rs.values()])
                    row = {"algo": a, "epsilon": eps, **{k: v for k, v in st.items() if k != "values"},
                           "seeds": sorted(rs), "noise_multiplier": r0["noise_multiplier"],
                           "n_train_examples": r0["n_train_examples"], "bound": r0["bound"], "lr": r0["lr"],
                           "clip": r0["clip"]}
                    if set_ == "tuned":
                        te = float(r0.get("tuned_at", nearest_epsilon(eps, tuned_eps)))
                        row.update(tuned_at=te, clip_quantile=tuned[a][str(te)]["clip_quantile"],
                                   tuning=tuned[a][str(te)].get("protocol", "full"))
                    out.append(row)
            return out

        def paired(set_):
            out = []
            for eps in CURVE_EPSILONS:
                e, u = pick(set_, "els", eps), pick(set_, "uls", eps)
                seeds = sorted(set(e) & set(u))
                if not seeds:
                    continue
                d = stats([u[s]["eval_loss"] - e[s]["eval_loss"] for s in seeds])
                out.append({"epsilon": eps, "seeds": seeds, "diff": d, "winner": winner(d)})
            return out

        vs16 = []
        for a in ALGOS:
            for eps in CURVE_EPSILONS:
                t, f = pick("tuned", a, eps), pick("fixed_k16", a, eps, FIXED_BOUND)
                seeds = sorted(set(t) & set(f))
                if not seeds:
                    continue
                unseen = [s for s in seeds if s in UNSEEN_SEEDS]
                d = stats([t[s]["eval_loss"] - f[s]["eval_loss"] for s in seeds])
                du = stats([t[s]["eval_loss"] - f[s]["eval_loss"] for s in unseen])
                vs16.append({"algo": a, "epsilon": eps, "seeds": seeds, "diff": d, "unseen_seeds": unseen,
                             "diff_unseen": du,  # None: no unseen seed finished yet (not a verdict)
                             "at_least_as_good_on_unseen": max(du["values"]) <= 0 if unseen else None})
        rule_rows = []
        rules = self.tune["rules"]
        for te in tuned_eps:
            for a in ALGOS:
                s = tuned[a][str(te)]
                k = rules["els"]["bound"] if a == "els" else rules["uls"]["by_epsilon"][str(te)]["bound"]
                g = pick("tuned", a, te)
                r = g if k == s["bound"] else pick("rule", a, te, k)
                seeds = sorted(set(g) & set(r))
                if not seeds:
                    continue
                rule_rows.append({"algo": a, "epsilon": te, "rule_bound": k, "grid_bound": s["bound"], "seeds": seeds,
                                  "rule": stats([r[x]["eval_loss"] for x in seeds]),
                                  "grid": stats([g[x]["eval_loss"] for x in seeds]),
                                  "diff": stats([r[x]["eval_loss"] - g[x]["eval_loss"] for x in seeds])})
        settings = {a: {str(e): {"tuned_at": nearest_epsilon(e, tuned_eps),
                                 **{k: tuned[a][str(nearest_epsilon(e, tuned_eps))].get(k)
                                    for k in ("bound", "lr", "clip", "clip_quantile", "optimum", "protocol")}}
                        for e in CURVE_EPSILONS} for a in ALGOS}
        complete = all(len(pick("tuned", a, e)) == len(EVAL_SEEDS) for a in ALGOS for e in CURVE_EPSILONS)
        missing = []
        for te in tuned_eps:  # at every tuned epsilon: tuned, k = 16 and rule runs on every evaluation seed
            for a in ALGOS:
                want = [("tuned", None), ("fixed_k16", FIXED_BOUND)]
                k = rules["els"]["bound"] if a == "els" else rules["uls"]["by_epsilon"][str(te)]["bound"]
                if k != tuned[a][str(te)]["bound"]:
                    want.append(("rule", k))
                for set_, b in want:
                    have = pick(set_, a, te, b)
                    missing += [f"{set_} {a} eps={te:g}{'' if b is None else f' k={b}'} seed={s}"
                                for s in EVAL_SEEDS if s not in have]
        pre = rows[0]["pretrained_loss"] if rows else None
        self.curve.update(
            summary=summary("tuned"), paired=paired("tuned"), tuned=settings,
            tuning_file="dp_tuning.json", pretrained_loss=pre,
            nonprivate=None if self.quick else self.headline_k16().get("nonprivate"),
            fixed_k16={"bound": FIXED_BOUND, "settings": {a: DEFAULTS[a] for a in ALGOS},
                       "summary": summary("fixed_k16"), "paired": paired("fixed_k16")},
            tuned_vs_fixed_k16=vs16, rules=rule_rows, complete=complete, missing=missing,
            epsilon_covers=("Each epsilon covers the training run only. The tuning runs (dp_tuning.json), the "
                            "gradient-norm quantiles and the two bound rules read the private training users "
                            "and are not counted in epsilon."))


def tuned_epsilons(tune) -> list:
    """The tuning epsilons with a tuned setting in ``tune`` (the tuning file may hold only some)."""
    return sorted(float(e) for e in tune.get("tuned", {}).get(ALGOS[0], {}))


#: The config fields that identify a run here (a stable subset: DPRunConfig may grow fields meanwhile).
KEY_FIELDS = ("task", "algo", "epsilon", "delta", "bound", "steps", "seed", "batch", "clip", "lr", "model",
              "max_train_users", "eval_windows")


def run_key(cfg) -> str:
    import hashlib

    d = {f: getattr(cfg, f) for f in KEY_FIELDS}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def winner(d) -> str:
    """Which algorithm has the lower loss, from paired ULS - ELS differences."""
    v = d["values"]
    if not v:
        return "—"
    lower = "ULS" if d["mean"] < 0 else "ELS"
    agree = sum(1 for x in v if (x < 0) == (d["mean"] < 0) and x != 0)
    if agree == len(v):
        return f"{lower} ({agree}/{len(v)} seeds)"
    return f"no clear winner ({lower} on {agree}/{len(v)} seeds)"


def protocol(study) -> dict:
    return {"tuning_seed": TUNING_SEED, "evaluation_seeds": list(EVAL_SEEDS), "tuning_epsilons": list(TUNING_EPSILONS),
            "interpolation": "every curve epsilon uses the setting tuned at the nearest tuning epsilon in log scale "
                             "(0.5, 1, 2 -> 1; 4, 8, 16 -> 8)",
            "stages": {"A": f"lr {list(A_LR)} x clip quantile {list(A_Q)} at k = {K0}, widened in coarse steps while "
                            "the best lr or quantile is an end of the tried values",
                       "B": f"k in {list(K_GRID)} at A's best (lr, quantile); 64 (then 128) if the largest k wins",
                       "C": "coordinate-wise local search with one-rung neighbours in k, lr and quantile until no "
                            "neighbour is better",
                       "pad": "both algorithms get the same number of runs per tuning epsilon: the one that needed "
                              "fewer spends the difference on untried (lr, quantile) points next to its optimum, "
                              "moving there (and re-running C) if one wins"},
            "clip": "placed on quantiles of the gradient norms the algorithm clips, measured on the pretrained model "
                    "at each k with the tuning seed's bounded data: per-example norms (ELS), per-user mean-gradient "
                    "norms (ULS)",
            "selection": "lowest held-out loss on the tuning seed",
            "epsilon_covers": "tuning runs are not counted in epsilon"}


def write_summary(results_dir):
    tu = _load(os.path.join(results_dir, "dp_tuning.json"))
    cu = _load(os.path.join(results_dir, "dp_tuned_curve.json"))
    L = ["# User-level DP, each algorithm at its own tuned (k, lr, clip)", "",
         "Written by `python bench/run_dp_tuning.py --stage summary` from `dp_tuning.json` and "
         "`dp_tuned_curve.json` (protocol: `bench/README.md`, *User-level DP: tuning and evaluation protocol*). "
         "Loss = held-out users' next-character cross-entropy, nats/char; user-level ε (unit: one "
         "(play, character)), δ = 1e-5; mean ± std over evaluation seeds; paired differences per seed.", ""]
    if not tu or not cu or "summary" not in cu:
        L.append("**Not finished yet** (run `bench/run_dp_tuning.py --stage all`).")
    if cu and cu.get("partial"):
        L += ["**(partial: the runs finished so far)**", ""]
    if cu and cu.get("subset"):
        L += [f"**What ran:** {cu['subset']['ran']}.", "", f"**What was cut:** {cu['subset']['cut']}.", "",
              "**Missing at the tuned ε (did not finish):** " + (", ".join(cu.get("missing") or []) or "nothing") + ".",
              ""]
    if cu and cu.get("summary"):
        s = {(r["algo"], float(r["epsilon"])): r for r in cu["summary"]}
        p = {float(r["epsilon"]): r for r in cu["paired"]}
        L += ["## Headline: tuned ELS vs tuned ULS", "",
              "| user-level ε | ELS (k, lr, clip q) | ELS loss | ULS (k, lr, clip q) | ULS loss | ULS − ELS per seed "
              "| mean diff | better |", "|---|---|---|---|---|---|---|---|"]
        for e in CURVE_EPSILONS:
            el, ul, d = s.get(("els", e)), s.get(("uls", e)), p.get(e)
            if not (el and ul and d):
                continue
            L.append(f"| {e:g} | {_hp(el)} | {el['mean']:.4f} ± {el['std']:.4f} | {_hp(ul)} | {ul['mean']:.4f} ± "
                     f"{ul['std']:.4f} | {', '.join(f'{v:+.4f}' for v in d['diff']['values'])} | "
                     f"{d['diff']['mean']:+.4f} ± {d['diff']['std']:.4f} | {d['winner']} |")
        if cu.get("nonprivate") and cu.get("pretrained_loss") is not None:
            L += ["", f"References (dp_privacy_utility.json): pretrained {cu['pretrained_loss']:.4f}, non-private "
                  f"fine-tune {cu['nonprivate']['mean']:.4f} ± {cu['nonprivate']['std']:.4f}."]
        L.append("")
    if tu and tu.get("tuned"):
        L += ["## Tuned settings (tuning seed {}; ε in between takes the nearest tuned ε in log scale)".format(
            tu["tuning_seed"]), "",
              "| algo | tuned at ε | searched | k | lr | clip (quantile) | tuning loss | runs | k | lr "
              "| clip quantile |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for a, per in tu["tuned"].items():
            for e, t in per.items():
                o = t["optimum"]
                L.append(f"| {a.upper()} | {float(e):g} | {t.get('protocol', 'full')} | {t['bound']} | {t['lr']:g} | "
                         f"{t['clip']:.3g} "
                         f"({t['clip_quantile']:g}) | {t['tuning_loss']:.4f} | {t['runs']} | {o['k']} | {o['lr']} | "
                         f"{o['q']} |")
        n = len(tu["runs"])
        secs = sum(r.get("seconds", 0) for r in tu["runs"])
        budget = "; ".join(f"ε = {float(e):g}: " + ", ".join(f"{a.upper()} {tu['budget'][a][e]}" for a in tu["budget"])
                           for e in tu["budget"][ALGOS[0]])
        L += ["", f"Runs per algorithm and tuning ε: {budget}. {n} tuning runs in the file (a run of the search "
              f"that no longer feeds a choice stays listed), {secs / 3600:.1f} CPU-hours (1 thread). Tuning runs "
              "are not counted in ε.", ""]
    if cu and cu.get("fixed_k16", {}).get("summary"):
        f = {(r["algo"], float(r["epsilon"])): r for r in cu["fixed_k16"]["summary"]}
        fp = {float(r["epsilon"]): r for r in cu["fixed_k16"]["paired"]}
        L += ["## Teaching contrast: both at k = 16 with today's clip/lr (`runner.DEFAULTS`)", "",
              "| user-level ε | ELS k=16 | ULS k=16 | ULS − ELS (mean) | better |", "|---|---|---|---|---|"]
        for e in CURVE_EPSILONS:
            el, ul, d = f.get(("els", e)), f.get(("uls", e)), fp.get(e)
            if el and ul and d:
                L.append(f"| {e:g} | {el['mean']:.4f} ± {el['std']:.4f} | {ul['mean']:.4f} ± {ul['std']:.4f} | "
                         f"{d['diff']['mean']:+.4f} | {d['winner']} |")
        L.append("")
    if cu and cu.get("tuned_vs_fixed_k16"):
        L += ["## Tuned defaults vs k = 16 with today's settings (seeds no tuning saw: "
              f"{list(UNSEEN_SEEDS)})", "",
              "| algo | ε | tuned − k16 on unseen seeds | all eval seeds (mean) | at least as good |",
              "|---|---|---|---|---|"]
        for r in cu["tuned_vs_fixed_k16"]:
            L.append(f"| {r['algo'].upper()} | {float(r['epsilon']):g} | "
                     f"{', '.join(f'{v:+.4f}' for v in r['diff_unseen']['values'])} | {r['diff']['mean']:+.4f} | "
                     f"{ {True: 'yes', False: 'NO', None: 'no unseen seed yet'}[r['at_least_as_good_on_unseen']]} |")
        judged = [r for r in cu["tuned_vs_fixed_k16"] if r["at_least_as_good_on_unseen"] is not None]
        ok = bool(judged) and all(r["at_least_as_good_on_unseen"] for r in judged)
        where = ", ".join(f"{r['algo'].upper()} ε={float(r['epsilon']):g}" for r in judged)
        L += ["", f"**Bench line:** tuned defaults at least as good as k = 16 / today's settings on every unseen "
              f"seed, for {where or 'nothing yet'}: **{'yes' if ok else 'no'}**.", ""]
    if cu and cu.get("rules"):
        L += ["## The paper's bound rules vs the grid's best k (evaluation seeds, same lr and clip quantile)", "",
              "| algo | ε | rule k | grid-best k | rule loss | grid loss | rule − grid per seed |",
              "|---|---|---|---|---|---|---|"]
        for r in cu["rules"]:
            L.append(f"| {r['algo'].upper()} | {float(r['epsilon']):g} | {r['rule_bound']} | {r['grid_bound']} | "
                     f"{r['rule']['mean']:.4f} | {r['grid']['mean']:.4f} | "
                     f"{', '.join(f'{v:+.4f}' for v in r['diff']['values'])} |")
        if tu and tu.get("rules"):
            ru = tu["rules"]
            L += ["", f"ELS rule: median examples per training user = {ru['els']['median']:g} → k = "
                  f"{ru['els']['bound']}. ULS rule: argmin of the predicted noise-to-signal ratio σ(k)/(q(k)·N·ρ̂(k)) "
                  f"(`lab/privacy/bounds.py`), gradient statistics at k = {ru['uls']['stats_bound']}: "
                  + ", ".join(f"ε={float(e):g} → k={v['bound']}" for e, v in ru["uls"]["by_epsilon"].items()) + "."]
        L.append("")
    L += ["## What this comparison does and does not show", "",
          "It compares the two samplings each at settings chosen by the same budget on a seed the table never uses, "
          "on one small char-LM, one data set and one compute budget (T = {} steps, {} example-gradients per step); "
          .format(*(((cu or {}).get(f, "?") for f in ("steps", "batch")))) +
          "it does not show how the gap behaves for large models, other user-size distributions or longer training, "
          "and ε covers the training run only, not the tuning.", ""]
    with open(os.path.join(results_dir, "dp_tuned_summary.md"), "w") as fh:
        fh.write("\n".join(L))
    print("\n".join(L))


def _hp(r):
    return f"k={r['bound']}, lr={r['lr']:g}, q={r.get('clip_quantile', '—')}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("norms", "tune", "refine", "curve", "contrast", "rules", "subset", "summary",
                                         "all"),
                    required=True)
    ap.add_argument("--epsilons", type=float, nargs="+", default=None,
                    help="stages curve/contrast/rules: only these epsilons (run several processes on disjoint "
                         "sets; the curve file is merged under a lock)")
    ap.add_argument("--refine-epsilon", type=float, default=8.0, help="stage refine: the epsilon to certify")
    ap.add_argument("--rule-seeds", type=int, nargs="+", default=list(EVAL_SEEDS), help="stage rules: seeds")
    ap.add_argument("--results-dir", default=RES)
    ap.add_argument("--quick", action="store_true", help="tiny runs (smoke test); needs another --results-dir")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.quick and os.path.abspath(a.results_dir) == os.path.abspath(RES):
        sys.stderr.write("error: --quick writes tiny runs; give --results-dir outside bench/results\n")
        raise SystemExit(2)
    import torch
    from tqdm import tqdm

    torch.set_num_threads(a.threads)
    st = Study(a.results_dir, quick=a.quick)
    if a.stage in ("norms", "tune", "refine", "curve", "contrast", "rules", "subset", "all"):
        st._bar = tqdm(desc="new runs", unit="run", file=sys.stderr, mininterval=30)
        t = time.time()
        if a.stage == "norms":
            for k in K_GRID:
                st.norms(k)
        if a.stage in ("tune", "all"):
            st.stage_tune()
        if a.stage == "refine":
            st.refine(a.refine_epsilon)
        eps = tuple(a.epsilons) if a.epsilons else CURVE_EPSILONS
        if a.stage in ("curve", "all"):
            st.stage_curve(eps)
        if a.stage in ("contrast", "all"):
            st.stage_contrast(eps)
        if a.stage in ("rules", "all"):
            st.stage_rules(tuple(a.rule_seeds), only=None if a.epsilons is None else a.epsilons)
        if a.stage == "subset":
            st.stage_subset()
        st._bar.close()
        _say(f"{st.new_runs} new runs in {time.time() - t:.0f}s")
    if a.stage == "summary":  # re-derive the tables from the runs (the files may come from an older script)
        st = Study(a.results_dir, quick=a.quick)
        if st.curve["rows"] and st.tune.get("tuned"):
            if "subset" in st.curve and not a.quick:
                st.curve["subset"] = SUBSET
            st._save_curve()
    if a.stage in ("summary", "all"):
        write_summary(a.results_dir)


if __name__ == "__main__":
    main()
