"""Trains Parallel Prompt Decoding's prompt tokens for a GGUF model on the CPU, then writes the
artifact (tools/ppd/README.md; arXiv 2405.18628).

Self-distillation in one streaming pass: for each batch of training prompts the frozen model
greedily generates G tokens (batched, with a KV cache), recording its full next-token distribution
at every generated position. Truncation points t are drawn inside the generated span; with the real
tokens x_0..x_t in the cache, prompt token i (1..k) sits at position t+i and is trained towards the
model's own distribution at position t+i given the true prefix x_0..x_{t+i} (which was recorded
during generation, so no second teacher pass is needed):
    loss = mean over truncation points of  sum_i 0.8^(i-1) * KL(teacher_i || student_i)
where student_i is the softmax of the mean logits of prompt token i's m ensemble (virtual) tokens;
virtual token j of prompt i sees the prefix and virtual token j of prompts 1..i. Only the k*m
prompt vectors are trained (AdamW, weight decay 0, cosine learning rate from --lr to 0, no warm-up).
They start as the token embeddings of the k*m most frequent tokens of the training prompts' user
text (the template's own tokens left out): prompt i, virtual token j gets the (i*m + j)-th.

Held-out prompts (5 %, never trained on) measure top-1/5/10 accuracy per offset at intervals and at
the end, where acc[i][r] = P(the model's token at offset i+1 is exactly rank r of prompt token
i+1's logits) is measured for r < K and turned into sparse trees (trees.py) for the artifact.

    .venv/bin/python tools/ppd/train.py                      # the default model, ~40 min on 2 cores
    .venv/bin/python tools/ppd/train.py --max-prompts 100    # a short run
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import artifact as artifact_mod  # noqa: E402
import trees as trees_mod  # noqa: E402
from model import KVCache, TorchLlama, model_metadata  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DECAY = 0.8


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--out", type=Path, help="artifact (default data/ppd/<model stem>.ppd)")
    ap.add_argument("--log", type=Path, help="JSON-lines log (default data/ppd/<model stem>.train.log.jsonl)")
    ap.add_argument("--prompt-ids", type=Path,
                    help="JSON lines of {\"ids\": [...]}: already tokenized prompts instead of tools/ppd/prompts.py "
                         "(for models without a tokenizer, e.g. the smoke test's)")
    ap.add_argument("-k", "--n-prompt", type=int, default=3, help="prompt tokens k")
    ap.add_argument("--ensemble", type=int, default=1, help="virtual tokens per prompt token m")
    ap.add_argument("--top-k", type=int, default=10, help="K, ranks measured per prompt token")
    ap.add_argument("--gen-tokens", type=int, default=48, help="G, tokens generated per prompt")
    ap.add_argument("--gen-batch", type=int, default=32, help="prompts generated together")
    ap.add_argument("--trunc", type=int, default=32, help="truncation points per generated sequence")
    ap.add_argument("--steps-per-batch", type=int, default=8,
                    help="optimizer steps per generated batch (the truncation points are split among them)")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--max-prompts", type=int, default=0, help="training prompts used (0: all)")
    ap.add_argument("--max-prompt-tokens", type=int, default=512, help="longer prompts are left out")
    ap.add_argument("--heldout-frac", type=float, default=0.05)
    ap.add_argument("--eval-prompts", type=int, default=32, help="held-out prompts of the periodic evaluation")
    ap.add_argument("--evals", type=int, default=8, help="periodic evaluations during training")
    ap.add_argument("--final-eval-prompts", type=int, default=0, help="held-out prompts of the final measurement (0: all)")
    ap.add_argument("--max-budget", type=int, default=128, help="largest tree budget S")
    ap.add_argument("--log-every", type=int, default=5, help="steps between JSON step lines")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    args = ap.parse_args(argv)
    stem = args.model.name[:-5] if args.model.name.endswith(".gguf") else args.model.name
    args.out = args.out or REPO / "data" / "ppd" / f"{stem}.ppd"
    args.log = args.log or REPO / "data" / "ppd" / f"{stem}.train.log.jsonl"
    if args.trunc % args.steps_per_batch:
        ap.error("--trunc must be a multiple of --steps-per-batch")
    return args


# ----------------------------------------------------------------------------------- data


class PromptData:
    """Tokenized training and held-out prompts, the shared template prefix, the stop tokens and
    the initial prompt vectors' token ids."""

    def __init__(self, args, n_vocab: int):
        self.source = ""
        if args.prompt_ids:
            rows = [json.loads(x) for x in args.prompt_ids.read_text().splitlines() if x.strip()]
            ids = [r["ids"] for r in rows]
            from prompts import split_heldout

            train, held = split_heldout(ids, args.heldout_frac)
            self.stop = set()
            self.template_ids: set = set()
            self.source = f"token ids from {args.prompt_ids}"
            self.categories = {}
        else:
            from prompts import ChatRenderer, build_prompt_set, split_heldout

            renderer = ChatRenderer(args.model)
            prompts = build_prompt_set(args.seed)
            renderer.check_against_jinja(prompts[0]["text"])
            train_p, held_p = split_heldout(prompts, args.heldout_frac)
            train = [renderer.encode(p["text"]) for p in train_p]
            held = [renderer.encode(p["text"]) for p in held_p]
            self.stop = renderer.stop_ids()
            self.template_ids = set(renderer.encode(""))
            self.source = ("tools/ppd/prompts.py (seed %d, Python %s): stdlib docstrings and code, pydoc topics, "
                           "templated chat/qa/math/rag/summarize prompts" % (args.seed, sys.version.split()[0]))
            self.categories = dict(Counter(p["category"] for p in train_p))
        keep = lambda xs: [x for x in xs if 2 <= len(x) <= args.max_prompt_tokens]  # noqa: E731
        self.train, self.heldout = keep(train), keep(held)
        if args.max_prompts:
            self.train = self.train[:args.max_prompts]
        if not self.train:
            raise SystemExit("train: no training prompts")
        for xs in (self.train, self.heldout):
            for x in xs:
                if max(x) >= n_vocab or min(x) < 0:
                    raise SystemExit("train: a prompt token id is outside the model's vocabulary")
        # Longest prefix shared by every prompt (the system turn), run once.
        allp = self.train + self.heldout
        n = min(len(x) for x in allp) - 1
        first = allp[0]
        for x in allp:
            while n > 0 and x[:n] != first[:n]:
                n -= 1
        self.prefix = first[:n]

    def init_tokens(self, count: int) -> list[int]:
        """The `count` most frequent token ids of the training prompts outside the template."""
        c = Counter(t for x in self.train for t in x if t not in self.template_ids and t not in self.stop)
        ranked = [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
        if len(ranked) < count:
            ranked += [t for t in range(count) if t not in ranked]
        return ranked[:count]


def batches_by_length(prompts: list, batch: int, rng: random.Random) -> list[list[int]]:
    """Prompt indices in batches of similar length: shuffled, sorted by length within windows of 8
    batches, then the batches shuffled."""
    order = list(range(len(prompts)))
    rng.shuffle(order)
    out = []
    window = batch * 8
    for s in range(0, len(order), window):
        w = sorted(order[s:s + window], key=lambda i: len(prompts[i]))
        out += [w[j:j + batch] for j in range(0, len(w), batch)]
    rng.shuffle(out)
    return out


# ----------------------------------------------------------------------------------- PPD rows


class Generated:
    """One generated batch: the cache, tokens, recorded logits, and each sequence's valid range of
    truncation points t in [lo_b, hi_b] (the targets x_{t+2}..x_{t+k+1} lie in the generated span
    and end at the first stop token at the latest)."""

    def __init__(self, model: TorchLlama, prompts: list, G: int, k: int, stop: set, prefix_cache, n_prefix):
        self.cache, self.gen, self.logits = model.greedy_generate(prompts, G, prefix_cache, n_prefix)
        self.lens = [len(p) for p in prompts]
        self.lo, self.hi = [], []
        for b, P in enumerate(self.lens):
            g = self.gen[b].tolist()
            s = next((i for i, x in enumerate(g) if x in stop), G - 1)
            # targets need g-index up to t - P + 1 + k <= s  ->  t <= P + s - k - 1
            self.lo.append(P - 1)
            self.hi.append(P + s - k - 1)

    def candidates(self, b: int) -> list[int]:
        return list(range(self.lo[b], self.hi[b] + 1))


def row_layout(ts: list, k: int, m: int):
    """For the truncation points of one sequence: per row (a, j, i) in order ((a*m + j)*k + i),
    the prompt-vector index i*m + j, the position t_a + i + 1, the visible cache n t_a + 1, and the
    row mask [R, R] (same chain (a, j), earlier or same i)."""
    A = len(ts)
    R = A * m * k
    a_idx = torch.arange(R) // (m * k)
    j_idx = (torch.arange(R) // k) % m
    i_idx = torch.arange(R) % k
    t = torch.tensor(ts, dtype=torch.long)[a_idx]
    vec = i_idx * m + j_idx
    chain = torch.arange(R) // k
    mask = (chain[:, None] == chain[None, :]) & (i_idx[:, None] >= i_idx[None, :])
    return vec, t + i_idx + 1, t + 1, mask


def prompt_row_logits(model: TorchLlama, emb: torch.Tensor, cache: KVCache, ts_per_seq: list, k: int, m: int):
    """Logits [B, A*m*k, V] of the prompt rows of every truncation point ts_per_seq[b] (every
    sequence the same count A) against the cache, rows in row_layout's order (chain by chain): the
    function the trainer differentiates (and tools/ppd/agreement_fixture.py records)."""
    B = len(ts_per_seq)
    layouts = [row_layout(ts, k, m) for ts in ts_per_seq]
    vec = layouts[0][0]
    pos = torch.stack([lay[1] for lay in layouts])
    vis = torch.stack([lay[2] for lay in layouts])
    mask = layouts[0][3][None]
    x = emb[vec][None].expand(B, -1, -1)
    return model.forward_rows(x, pos, cache, vis, mask)


def student_logits(model: TorchLlama, emb: torch.Tensor, gb: Generated, ts_per_seq: list, k: int, m: int):
    """Ensemble-averaged logits [B, A, k, V] of the prompt tokens at the truncation points."""
    B, A = len(ts_per_seq), len(ts_per_seq[0])
    logits = prompt_row_logits(model, emb, gb.cache, ts_per_seq, k, m)
    return logits.reshape(B, A, m, k, -1).mean(dim=2)


def teacher_index(gb: Generated, ts_per_seq: list, k: int) -> torch.Tensor:
    """Indices g [B, A, k] into gb.logits / gb.gen for prompt i at truncation t: g = t - P + 1 + i."""
    out = torch.empty(len(ts_per_seq), len(ts_per_seq[0]), k, dtype=torch.long)
    for b, ts in enumerate(ts_per_seq):
        P = gb.lens[b]
        out[b] = torch.tensor([[t - P + 1 + i for i in range(1, k + 1)] for t in ts])
    return out


def ppd_loss(student: torch.Tensor, teacher_logits: torch.Tensor, weight: torch.Tensor):
    """sum_i 0.8^(i-1) KL(teacher_i || student_i), averaged over the truncation points with weight 1.
    student, teacher_logits [B, A, k, V]; weight [B, A]. Returns (loss, per-offset KL [k])."""
    logq = torch.log_softmax(student, dim=-1)
    logp = torch.log_softmax(teacher_logits, dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(dim=-1)  # [B, A, k]
    k = kl.shape[-1]
    decay = DECAY ** torch.arange(k, dtype=kl.dtype)
    n = weight.sum().clamp(min=1)
    per_point = (kl * decay).sum(dim=-1)
    loss = (per_point * weight).sum() / n
    per_offset = (kl * weight[..., None]).sum(dim=(0, 1)) / n
    return loss, per_offset.detach()


# ----------------------------------------------------------------------------------- evaluation


class Evaluator:
    """Accuracy of the prompt tokens on held-out sequences at every valid truncation point."""

    def __init__(self, k: int, m: int, K: int):
        self.k, self.m, self.K = k, m, K

    @torch.no_grad()
    def measure(self, model, emb, gbs: list, chunk: int = 8):
        """Returns {"positions", "rank_counts" [k, K] (exact ranks), "top1/5/10", "kl" [k]}."""
        k, K = self.k, self.K
        counts = np.zeros((k, K), dtype=np.int64)
        kl_sum = np.zeros(k)
        n = 0
        for gb in gbs:
            B = len(gb.lens)
            cands = [gb.candidates(b) for b in range(B)]
            longest = max((len(c) for c in cands), default=0)
            for s in range(0, longest, chunk):
                ts, weight = [], []
                for b in range(B):
                    part = cands[b][s:s + chunk]
                    w = [1.0] * len(part)
                    while len(part) < min(chunk, longest - s):
                        part.append(gb.lo[b])
                        w.append(0.0)
                    ts.append(part)
                    weight.append(w)
                if not ts[0]:
                    continue
                weight_t = torch.tensor(weight)
                if weight_t.sum() == 0:
                    continue
                st = student_logits(model, emb, gb, ts, k, self.m)
                gi = teacher_index(gb, ts, k)
                tl = torch.stack([gb.logits[b][gi[b]] for b in range(B)])
                target = torch.stack([gb.gen[b][gi[b]] for b in range(B)])  # [B, A, k]
                tgt_logit = st.gather(-1, target[..., None])
                rank = (st > tgt_logit).sum(dim=-1)  # [B, A, k]
                valid = weight_t > 0
                for i in range(k):
                    r = rank[..., i][valid]
                    counts[i] += np.bincount(r[r < K].numpy(), minlength=K)[:K]
                _, per_off = ppd_loss(st, tl, weight_t)
                nv = int(valid.sum())
                kl_sum += per_off.numpy() * nv
                n += nv
        acc = counts / max(n, 1)
        cum = acc.cumsum(axis=1)
        top = lambda r: [float(cum[i, min(r, K) - 1]) for i in range(k)]  # noqa: E731
        return {"positions": n, "acc": acc, "top1": top(1), "top5": top(5), f"top{K}": top(K),
                "kl": [float(x) for x in kl_sum / max(n, 1)]}


# ----------------------------------------------------------------------------------- training


def fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Logger:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("w")

    def __call__(self, **rec):
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()


def train(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    nprng = np.random.default_rng(args.seed)
    t_start = time.time()
    k, m, K, G = args.n_prompt, args.ensemble, args.top_k, args.gen_tokens
    if G < k + 2:
        raise SystemExit("train: --gen-tokens must be at least k + 2")

    model = TorchLlama(args.model)
    meta = model_metadata(args.model)
    data = PromptData(args, model.n_vocab)
    log = Logger(args.log)
    init_ids = data.init_tokens(k * m)
    emb = torch.nn.Parameter(model.embed(init_ids))
    opt = torch.optim.AdamW([emb], lr=args.lr, weight_decay=0.0)

    prefix_cache, n_prefix = None, 0
    if len(data.prefix) >= 2:
        n_prefix = len(data.prefix)
        prefix_cache = model.new_cache(1, n_prefix)
        model.prefill(prefix_cache, 0, data.prefix)

    batches = batches_by_length(data.train, args.gen_batch, rng)
    total_steps = len(batches) * args.steps_per_batch
    eval_every = max(1, total_steps // max(1, args.evals))
    per_step = args.trunc // args.steps_per_batch
    config = {k_: (str(v) if isinstance(v, Path) else v) for k_, v in vars(args).items()}
    log(event="config", **config, n_train=len(data.train), n_heldout=len(data.heldout), total_steps=total_steps,
        init_tokens=init_ids, shared_prefix_tokens=n_prefix, categories=data.categories, data_source=data.source,
        model_name=meta["name"], torch_threads=torch.get_num_threads())

    gen_args = (G, k, data.stop, prefix_cache, n_prefix)
    evaluator = Evaluator(k, m, K)
    eval_set = data.heldout[:args.eval_prompts]
    eval_gbs = [Generated(model, eval_set[s:s + args.gen_batch], *gen_args)
                for s in range(0, len(eval_set), args.gen_batch)]

    def periodic_eval(step):
        if not eval_gbs:
            return None
        r = evaluator.measure(model, emb.detach(), eval_gbs)
        rec = {x: r[x] for x in ("positions", "top1", "top5", f"top{K}", "kl")}
        log(event="eval", step=step, elapsed=round(time.time() - t_start, 1), heldout_prompts=len(eval_set), **rec)
        return r

    first_eval = periodic_eval(0)
    tty = sys.stderr.isatty() and not args.quiet
    step, done, losses, per_off = 0, 0, [], None
    t_train = time.time()
    for bi, idx in enumerate(batches):
        prompts = [data.train[i] for i in idx]
        gb = Generated(model, prompts, *gen_args)
        B = len(prompts)
        # Truncation points: --trunc distinct ones per sequence where possible (weight 0 padding).
        picks, weights = [], []
        for b in range(B):
            c = gb.candidates(b)
            chosen = sorted(nprng.choice(c, size=min(len(c), args.trunc), replace=False).tolist()) if c else []
            nprng.shuffle(chosen)
            w = [1.0] * len(chosen) + [0.0] * (args.trunc - len(chosen))
            chosen = chosen + [gb.lo[b]] * (args.trunc - len(chosen))
            picks.append(chosen)
            weights.append(w)
        for sp in range(args.steps_per_batch):
            ts = [p[sp * per_step:(sp + 1) * per_step] for p in picks]
            w = torch.tensor([x[sp * per_step:(sp + 1) * per_step] for x in weights])
            lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            for g in opt.param_groups:
                g["lr"] = lr
            if w.sum() > 0:
                st = student_logits(model, emb, gb, ts, k, m)
                gi = teacher_index(gb, ts, k)
                tl = torch.stack([gb.logits[b][gi[b]] for b in range(B)])
                loss, per_off = ppd_loss(st, tl, w)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            step += 1
            if step % args.log_every == 0 or step == total_steps:
                recent = losses[-args.log_every:] or [float("nan")]
                log(event="step", step=step, prompts=done + B, loss=float(np.mean(recent)), lr=lr,
                    elapsed=round(time.time() - t_start, 1), kl=[float(x) for x in per_off] if per_off is not None else None)
            if step % eval_every == 0 and step < total_steps:
                periodic_eval(step)
        done += B
        if not args.quiet:
            el = time.time() - t_train
            eta = el / done * (len(data.train) - done)
            line = (f"[ppd] prompts {done}/{len(data.train)} step {step}/{total_steps} "
                    f"loss {np.mean(losses[-args.steps_per_batch * 4:]) if losses else float('nan'):.4f} "
                    f"lr {lr:.2e} elapsed {fmt_time(time.time() - t_start)} eta {fmt_time(eta)}")
            print(("\r" + line + "\033[K") if tty else line, file=sys.stderr, end="" if tty else "\n", flush=True)
        del gb
    if tty:
        print(file=sys.stderr)
    train_seconds = time.time() - t_train
    periodic_eval(step)

    # Final measurement on the held-out set, streamed.
    final_set = data.heldout[:args.final_eval_prompts] if args.final_eval_prompts else data.heldout
    res_parts = []
    for s in range(0, len(final_set), args.gen_batch):
        gb = Generated(model, final_set[s:s + args.gen_batch], *gen_args)
        res_parts.append(evaluator.measure(model, emb.detach(), [gb]))
        del gb
    n_pos = sum(r["positions"] for r in res_parts)
    if n_pos:
        acc = sum(r["acc"] * r["positions"] for r in res_parts) / n_pos
        kl = [float(sum(r["kl"][i] * r["positions"] for r in res_parts) / n_pos) for i in range(k)]
    else:
        acc, kl = np.zeros((k, K)), [float("nan")] * k
    cum = acc.cumsum(axis=1)
    final = {"positions": int(n_pos), "heldout_prompts": len(final_set),
             "top1": [float(cum[i, 0]) for i in range(k)], "top5": [float(cum[i, min(5, K) - 1]) for i in range(k)],
             f"top{K}": [float(cum[i, K - 1]) for i in range(k)], "kl": kl,
             "acc": [[float(x) for x in row] for row in acc]}
    log(event="final", step=step, elapsed=round(time.time() - t_start, 1), **final)

    t_tree = time.time()
    trees = trees_mod.build_all(acc, ensemble=m, max_budget=max(args.max_budget, k * m + 1))
    tree_seconds = time.time() - t_tree
    fp = artifact_mod.model_fingerprint(args.model)
    n_tokens = len(data.train) * G
    final_loss = float(np.mean(losses[-10:])) if losses else float("nan")
    training = {
        "prompts": len(data.train), "heldout_prompts": len(data.heldout), "generated_tokens": n_tokens,
        "tokens_per_prompt": G, "truncation_points_per_prompt": args.trunc, "steps": step,
        "seconds": round(time.time() - t_start, 1), "train_seconds": round(train_seconds, 1),
        "final_loss": final_loss, "first_loss": float(np.mean(losses[:10])) if losses else float("nan"),
        "lr": args.lr, "seed": args.seed, "threads": torch.get_num_threads(),
        "data_source": data.source, "init_tokens": ",".join(str(x) for x in init_ids),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "heldout_top1": ",".join(f"{x:.4f}" for x in final["top1"]),
        f"heldout_top{K}": ",".join(f"{x:.4f}" for x in final[f"top{K}"]),
        "torch": torch.__version__,
    }
    art = artifact_mod.Artifact(emb.detach().numpy().astype(np.float32), k, m, K, meta["name"], model.n_embd,
                                model.n_vocab, model.hp.n_layer, fp, acc.astype(np.float32), trees, training)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    artifact_mod.write(args.out, art)
    artifact_mod.read(args.out)  # validates what was written
    steady = {t.budget: t.steady_accept for t in trees}
    log(event="artifact", path=str(args.out), trees=len(trees), tree_seconds=round(tree_seconds, 1),
        steady_accept={str(S): round(steady[S], 4) for S in sorted(steady) if S in (k * m + 1, 16, 32, 64, 128)},
        seconds=round(time.time() - t_start, 1))
    if not args.quiet:
        print(f"[ppd] done in {fmt_time(time.time() - t_start)}: loss {training['first_loss']:.4f} -> {final_loss:.4f}; "
              f"held-out top-1 {final['top1']} top-{K} {final[f'top{K}']}; steady accept at S=64: "
              f"{steady.get(64, float('nan')):.3f}; wrote {args.out}", file=sys.stderr)
    return {"losses": losses, "final": final, "first_eval": first_eval, "artifact": args.out,
            "train_seconds": train_seconds, "steps": step}


def main(argv=None) -> int:
    args = parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
