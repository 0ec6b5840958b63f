#!/usr/bin/env python3
"""The PyTorch peer of labench's training step: the same model, weights and packed row through
labench (`labench grad`) and through a plain PyTorch Llama, side by side.

usage: peer_torch.py --labench PATH [--device cuda|cpu] [--model tiny|small|7b] [--layers N]
                     [--tokens N] [--repeat N] [--seed S] [--workdir DIR] [--out peer.json]

1. Writes a checkpoint of the model shape (random, matrices N(0, 0.02), norms 1, F32, Hugging
   Face Llama names, the config in __metadata__) and one packed row of --tokens tokens: random
   segment lengths, random tokens, each target of segment i weighing 1/(M N_i) (packing-lw).
2. labench: `labench grad --backend cuda --dtype bf16 --repeat N` (on --device cpu: the CPU
   backend, fp32): loss, gradients, and the median time of N forward+backward passes; on cuda
   twice, with LABENCH_ATTN=cudnn (cuDNN's fused attention) and =wmma (labench's kernels), each
   judged and timed on its own (a path that cannot run, e.g. no cuDNN, is listed as not run).
3. PyTorch, on the same device: a Llama written here (RMSNorm, q/k/v, rotate_half RoPE with
   positions restarting per segment, GQA, causal attention by F.scaled_dot_product_attention
   one segment at a time (flash attention in bf16 on a GPU), SwiGLU MLP, untied head, weighted
   cross-entropy). Run twice: as the reference (fp32 with TF32 off on cuda, float64 on cpu),
   and as the peer users run (fp32 master weights under bf16 autocast on cuda; fp32 on cpu),
   the peer timed with CUDA events (wall clock on cpu): warm-up, then N passes, median.
4. Compares the loss and every gradient tensor with the reference, for labench and for the
   peer: per tensor the largest over its rows of |g - ref| / |ref| (as tests/step_compare.h).
   Passes when labench's error of every tensor is within max(bound, 2 x the peer's own), the
   bound being 0.15 for bf16 (tests/step_compare.h) and 1e-4 for fp32.
5. Writes --out (JSON): config, the row's segments, both losses and step times, tokens/s of
   both, the per-tensor errors, and the verdict. Exit 0 passed, 1 failed, 2 cannot run.

--device cpu runs the same logic on a tiny shape on any machine with torch (no GPU needed).
"""
import argparse
import json
import math
import os
import random
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for d in (os.path.join(HERE, "scripts"), os.path.join(HERE, "..", "..", "scripts")):
    if os.path.isfile(os.path.join(d, "check_grad_torch.py")):
        sys.path.insert(0, d)
        break
from check_grad_torch import FLOAT_KEYS, INT_KEYS, hf_names, run_grad, st_read, st_write  # noqa: E402

# the presets of model/config.c (vocab, hidden, intermediate, layers, heads, kv heads)
PRESETS = {
    "tiny": (256, 64, 176, 2, 4, 2),
    "small": (32000, 768, 2048, 12, 12, 12),
    "7b": (32000, 4096, 11008, 32, 32, 32),
}
BF16_BOUND = 0.15   # STEP_GRAD_TOL_BF16
F32_BOUND = 1e-4


def config_of(name, layers):
    V, C, F, L, H, Hkv = PRESETS[name]
    return {"vocab_size": V, "hidden_size": C, "intermediate_size": F,
            "num_hidden_layers": layers or L, "num_attention_heads": H,
            "num_key_value_heads": Hkv, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}


def write_checkpoint(torch, path, cfg, seed, std=0.02):
    """Random F32 checkpoint in labench's safetensors layout, drawn with torch (fast at 7b)."""
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for name, shape in hf_names(cfg):
        t = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=g) * std
        tensors.append((name, shape, t.to(torch.float32).contiguous().numpy().tobytes()))
    meta = {k: str(cfg[k]) for k in INT_KEYS}
    meta.update({k: repr(float(cfg[k])) for k in FLOAT_KEYS})
    meta["format"] = "pt"
    st_write(path, tensors, meta)


def make_row(n_tokens, vocab, seed):
    """Segment lengths log-uniform in [16, n/2] until the row is full; random tokens; weights
    1/(M N_i) on every target (every position but a segment's last)."""
    rng = random.Random(seed)
    lens, left = [], n_tokens
    while left > 0:
        L = int(math.exp(rng.uniform(math.log(16), math.log(max(17, n_tokens // 2)))))
        L = min(max(L, 1), left)
        lens.append(L)
        left -= L
    tokens = [rng.randrange(vocab) for _ in range(n_tokens)]
    cu, weights, M = [0], [], len(lens)
    for L in lens:
        cu.append(cu[-1] + L)
        weights += [1.0 / (M * (L - 1))] * (L - 1) + [0.0] if L > 1 else [0.0]
    return lens, tokens, cu, weights


def row_error(torch, g, ref):
    """Largest over rows of |g_row - ref_row| / |ref_row| (a 1-D tensor is one row)."""
    g2, r2 = g.double().reshape(g.shape[0] if g.dim() > 1 else 1, -1), ref.double().reshape(
        ref.shape[0] if ref.dim() > 1 else 1, -1)
    d = (g2 - r2).norm(dim=1)
    n = r2.norm(dim=1)
    e = torch.where(d == 0, torch.zeros_like(d), d / n.clamp_min(1e-300))
    return float(e.max())


class Llama:
    """The Llama of labench's DESIGN.md over a dict of parameter tensors (HF names)."""

    def __init__(self, torch, cfg, params):
        self.t, self.cfg, self.P = torch, cfg, params

    def loss(self, tokens, cu, positions, targets, weights, autocast, loss_chunk=0):
        torch, cfg, P = self.t, self.cfg, self.P
        F = torch.nn.functional
        C, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D, eps, theta = C // H, cfg["rms_norm_eps"], cfg["rope_theta"]
        N = tokens.shape[0]
        dev = tokens.device
        inv_freq = theta ** (-torch.arange(0, D, 2, device=dev, dtype=torch.float64) / D)
        ang = positions.double()[:, None] * inv_freq[None, :]
        cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None, :].float()
        sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None, :].float()
        if P["lm_head.weight"].dtype == torch.float64:
            cos, sin = cos.double(), sin.double()

        def rms(x, w):   # in the parameters' precision, as labench (f32 statistics)
            xf = x.to(w.dtype)
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w).to(x.dtype)

        def rope(x):
            h = x.shape[-1] // 2
            rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
            return (x * cos.to(x.dtype) + rot * sin.to(x.dtype))

        ctx = torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if autocast else _nullcontext()
        with ctx:
            x = P["model.embed_tokens.weight"][tokens]
            for i in range(cfg["num_hidden_layers"]):
                p = f"model.layers.{i}."
                h = rms(x, P[p + "input_layernorm.weight"])
                q = rope(F.linear(h, P[p + "self_attn.q_proj.weight"]).view(N, H, D))
                k = rope(F.linear(h, P[p + "self_attn.k_proj.weight"]).view(N, Hkv, D))
                v = F.linear(h, P[p + "self_attn.v_proj.weight"]).view(N, Hkv, D)
                if Hkv != H:   # query head h reads kv head h // (H / Hkv)
                    k = k.repeat_interleave(H // Hkv, dim=1)
                    v = v.repeat_interleave(H // Hkv, dim=1)
                att = []
                for s in range(len(cu) - 1):   # causal inside each segment, never across
                    a, b = cu[s], cu[s + 1]
                    qs, ks, vs = (t[a:b].transpose(0, 1)[None] for t in (q, k, v))   # [1, H, len, D]
                    att.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)[0].transpose(0, 1))
                att = torch.cat(att, 0).reshape(N, H * D)
                x = x + F.linear(att, P[p + "self_attn.o_proj.weight"])
                h = rms(x, P[p + "post_attention_layernorm.weight"])
                g = F.linear(h, P[p + "mlp.gate_proj.weight"])
                u = F.linear(h, P[p + "mlp.up_proj.weight"])
                x = x + F.linear(F.silu(g) * u, P[p + "mlp.down_proj.weight"])
        if not loss_chunk:
            with ctx:
                logits = F.linear(rms(x, P["model.norm.weight"]), P["lm_head.weight"])
            ce = F.cross_entropy(logits.to(weights.dtype), targets, reduction="none")
            return (weights * ce).sum()

        # The reference's logits in fp32 are N x V x 4 bytes (8.4 GB at 64k x 32000) and autograd
        # holds them up to three times: the head and the loss run on row chunks under checkpoint,
        # so one chunk's logits live at a time (recomputed in the backward). Same arithmetic.
        def head(xc, tc, wc):
            with ctx:
                lc = F.linear(rms(xc, P["model.norm.weight"]), P["lm_head.weight"])
            return (wc * F.cross_entropy(lc.to(wc.dtype), tc, reduction="none")).sum()

        from torch.utils.checkpoint import checkpoint
        return sum(checkpoint(head, x[a:a + loss_chunk], targets[a:a + loss_chunk], weights[a:a + loss_chunk],
                              use_reentrant=False) for a in range(0, N, loss_chunk))


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labench", default=os.path.join(HERE, "labench"))
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--model", choices=sorted(PRESETS), default=None,
                    help="shape (default small on cuda, tiny on cpu)")
    ap.add_argument("--layers", type=int, default=0, help="layers of the preset to run (default all)")
    ap.add_argument("--tokens", type=int, default=0, help="tokens of the packed row (default 65536 on cuda, 300 on cpu)")
    ap.add_argument("--repeat", type=int, default=0, help="timed passes (default 5 on cuda, 2 on cpu)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", help="where the checkpoint, row and gradients go (default: a temporary folder)")
    ap.add_argument("--out", default="peer.json")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    model = args.model or ("small" if cuda else "tiny")
    n_tokens = args.tokens or (65536 if cuda else 300)
    repeat = args.repeat or (5 if cuda else 2)

    try:
        import torch
    except ImportError as e:
        print(f"peer_torch: cannot run: PyTorch does not import ({e})", file=sys.stderr)
        return 2
    if cuda and not torch.cuda.is_available():
        print("peer_torch: cannot run: --device cuda, but torch sees no GPU", file=sys.stderr)
        return 2
    dev = torch.device(args.device)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False   # the reference is plain fp32
        torch.backends.cudnn.allow_tf32 = False

    tmp = None
    work = args.workdir
    if not work:
        tmp = tempfile.TemporaryDirectory(prefix="labench-peer-")
        work = tmp.name
    os.makedirs(work, exist_ok=True)
    cfg = config_of(model, args.layers)
    ckpt, batch, gpath = (os.path.join(work, n) for n in ("model.safetensors", "batch.json", "grads.safetensors"))
    write_checkpoint(torch, ckpt, cfg, args.seed)
    lens, tokens, cu, weights = make_row(n_tokens, cfg["vocab_size"], args.seed)
    with open(batch, "w") as f:
        json.dump({"tokens": tokens, "cu_seqlens": cu, "weights": weights}, f)
    print(f"peer_torch: torch {torch.__version__} on {args.device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if cuda else ''}; model {model} {cfg}; "
          f"{n_tokens} tokens in {len(lens)} segments (longest {max(lens)})", flush=True)

    # ---- labench: on cuda once per attention (LABENCH_ATTN: cuDNN's fused kernels, labench's
    # WMMA ones; issue 21), each judged and timed on its own; on cpu the one it has
    cmd = [args.labench, "grad", "--load-model", ckpt, "--batch", batch, "--out", gpath, "--repeat", str(repeat),
           "--backend", args.device] + (["--dtype", "bf16"] if cuda else [])
    lb_runs, unavailable = {}, {}
    for path in (["cudnn", "wmma"] if cuda else [None]):
        if path:
            os.environ["LABENCH_ATTN"] = path
        got = run_grad(cmd, gpath)
        os.environ.pop("LABENCH_ATTN", None)
        if got is None:
            unavailable[path] = "labench grad failed (its message is above)"
            continue
        _, meta, graw = got
        lb_runs[path or "default"] = {
            "loss": float(meta["loss"]), "step": float(meta["step_seconds"]),
            "attention": meta.get("attention", "?"),
            "grads": {n: torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape)
                      for n, (shape, raw) in graw.items()}}
    if not lb_runs:
        return 2

    # ---- PyTorch: reference and peer
    _, traw = st_read(ckpt)
    ref_dtype = torch.float32 if cuda else torch.float64

    def params(dtype):
        return {n: torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape).to(dev, dtype)
                .requires_grad_(True) for n, (shape, raw) in traw.items()}

    tok = torch.tensor(tokens, dtype=torch.long, device=dev)
    pos = torch.cat([torch.arange(L, device=dev) for L in lens])
    tgt = torch.zeros_like(tok)
    for s in range(len(lens)):
        tgt[cu[s]:cu[s + 1] - 1] = tok[cu[s] + 1:cu[s + 1]]
    w32 = torch.tensor([struct.unpack("f", struct.pack("f", x))[0] for x in weights], device=dev)

    def step(P, autocast, dtype, loss_chunk=0):
        for p in P.values():
            p.grad = None
        loss = Llama(torch, cfg, P).loss(tok, cu, pos, tgt, w32.to(dtype), autocast, loss_chunk)
        loss.backward()
        return float(loss.detach())

    P_ref = params(ref_dtype)
    ref_loss = step(P_ref, False, ref_dtype, loss_chunk=8192 if cuda else 64)   # (the cpu case tests the chunking)
    ref_grads = {n: p.grad.detach().float().cpu() for n, p in P_ref.items()}
    del P_ref

    P_peer = params(torch.float32)
    peer_autocast = cuda
    peer_loss = step(P_peer, peer_autocast, torch.float32)   # also the warm-up
    peer_grads = {n: p.grad.detach().float().cpu() for n, p in P_peer.items()}
    step(P_peer, peer_autocast, torch.float32)
    times = []
    for _ in range(repeat):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step(P_peer, peer_autocast, torch.float32)
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1000.0)
        else:
            t0 = time.perf_counter()
            step(P_peer, peer_autocast, torch.float32)
            times.append(time.perf_counter() - t0)
    peer_step = statistics.median(times)
    del P_peer

    # ---- compare: each labench run against the reference, beside the peer's own error
    bound = BF16_BOUND if cuda else F32_BOUND
    rel = lambda x: abs(x - ref_loss) / abs(ref_loss)   # noqa: E731
    ok = True
    for path, r in lb_runs.items():
        lb_grads = r["grads"]
        print(f"== labench, attention {path}: {r['attention']}")
        if set(lb_grads) != set(ref_grads):
            ok = False
            print(f"FAIL: gradient names differ: only labench {sorted(set(lb_grads) - set(ref_grads))}, "
                  f"only torch {sorted(set(ref_grads) - set(lb_grads))}")
        errors = {}
        print(f"{'tensor':<48} {'labench':>10} {'torch peer':>10}")
        for name, _ in hf_names(cfg):
            if name not in lb_grads or name not in ref_grads:
                continue
            e_lb = row_error(torch, lb_grads[name], ref_grads[name])
            e_pt = row_error(torch, peer_grads[name], ref_grads[name])
            bad = not e_lb <= max(bound, 2 * e_pt)
            ok &= not bad
            errors[name] = {"labench": e_lb, "torch": e_pt}
            print(f"{name:<48} {e_lb:10.3e} {e_pt:10.3e}{'  FAIL' if bad else ''}")
        lb_loss, lb_step = r["loss"], r["step"]
        loss_ok = rel(lb_loss) <= max(2e-2 if cuda else 1e-5, 2 * rel(peer_loss))
        ok &= loss_ok
        print(f"loss: reference {ref_loss:.8g}; labench {lb_loss:.8g} (rel {rel(lb_loss):.2e}); "
              f"torch peer {peer_loss:.8g} (rel {rel(peer_loss):.2e}){'' if loss_ok else '  FAIL'}")
        print(f"step: labench ({path}) {lb_step * 1e3:.2f} ms ({n_tokens / lb_step:,.0f} tokens/s); torch peer "
              f"{peer_step * 1e3:.2f} ms ({n_tokens / peer_step:,.0f} tokens/s); labench / torch time "
              f"{lb_step / peer_step:.2f}")
        r.update({"dtype": "bf16" if cuda else "fp32", "step_seconds": lb_step, "tokens_per_s": n_tokens / lb_step,
                  "time_vs_torch": lb_step / peer_step, "loss_ok": bool(loss_ok), "grad_errors": errors})
        del r["grads"], r["step"]
    for path, why in unavailable.items():
        print(f"== labench, attention {path}: not run: {why}")
    first = next(iter(lb_runs.values()))

    doc = {
        "schema": "labench-peer", "schema_version": 2,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch_version": torch.__version__,
        "model": {"preset": model, **cfg},
        "tokens": n_tokens, "segments": lens, "seed": args.seed, "repeat": repeat,
        "reference": {"dtype": "fp32 (TF32 off)" if cuda else "float64", "loss": ref_loss},
        "labench_command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
        "labench": first, "labench_by_attention": lb_runs, "labench_not_run": unavailable,
        "torch": {"dtype": "fp32 weights, bf16 autocast" if cuda else "fp32",
                  "attention": "F.scaled_dot_product_attention per segment, is_causal",
                  "loss": peer_loss, "step_seconds": peer_step, "step_seconds_all": times,
                  "tokens_per_s": n_tokens / peer_step},
        "grad_error_measure": "per tensor: max over rows of |g - ref| / |ref|",
        "grad_bound": bound, "passed": bool(ok),
    }
    tmp_out = args.out + ".tmp"
    with open(tmp_out, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp_out, args.out)
    print(f"peer_torch: {'PASSED' if ok else 'FAILED'}; wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
