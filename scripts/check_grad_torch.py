#!/usr/bin/env python3
"""Checks `labench grad` against PyTorch autograd, in float64.

usage: scripts/check_grad_torch.py [--labench PATH] [--load-model M.safetensors] [--batch B.json]
                                   [--workdir DIR] [--seed N] [--lengths 5,1,9]
                                   [--init-std S] [--tol T] [--no-hf]

1. Without --load-model, writes a random checkpoint of the tiny shape (vocab 256, hidden 64,
   intermediate 176, 2 layers, 4 heads, 2 kv heads, head dim 16, rms_eps 1e-5, rope_theta 1e4):
   matrices N(0, 0.02) (--init-std), norms 1, fp32, Hugging Face Llama names, config in
   __metadata__. Without --batch, writes a packed row of 3 segments of lengths 5, 1, 9
   (--lengths) with random tokens and weights 1/(M*N_i) (M = number of segments, N_i = targets
   of segment i = its length - 1), the last position of every segment weighing 0.
2. Runs `labench grad --load-model M --batch B --out G`.
3. Runs the same forward in PyTorch, float64, from the checkpoint's fp32 values: embedding; per
   layer RMSNorm, q/k/v projections, RoPE (rotate_half, positions restarting at 0 in each
   segment), GQA by repeating kv heads, causal attention inside each segment, o_proj, residual,
   RMSNorm, silu(gate)*up, down_proj, residual; final RMSNorm, untied lm_head; loss =
   sum_t weights[t] * CE(logits[t], tokens[t+1]). Backpropagates, and compares the loss and
   every gradient tensor of G (by name) with autograd's: max |diff| and relative error
   max|diff| / max|torch grad| per tensor.
4. If transformers imports (and --no-hf is not given), also runs LlamaForCausalLM (eager
   attention, float64) on the same checkpoint, one segment at a time, and compares its loss and
   gradients with labench's in the same way.

Exit status: 0 when every relative error is <= --tol (default 1e-4), 1 when one is not (or a
tensor is missing or extra), 2 on bad usage or when labench or torch cannot run.
"""
import argparse
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

TINY = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0}
INT_KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads"]
FLOAT_KEYS = ["rms_norm_eps", "rope_theta"]


# ---------------------------------------------------------------- safetensors (standard library)

def st_write(path, tensors, meta):
    """tensors: list of (name, shape, values) written as F32; values are a flat list/array of floats
    or their float32 bytes already."""
    import array
    header, blobs, off = {}, [], 0
    for name, shape, values in tensors:
        blob = bytes(values) if isinstance(values, (bytes, bytearray)) else array.array("f", values).tobytes()
        assert len(blob) == 4 * math.prod(shape), name
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def st_read(path):
    """Returns (metadata, {name: (shape, bytes)}) of an all-F32 file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode())
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError(f"{path}: {name} has dtype {e['dtype']}, expected F32")
        b, end = e["data_offsets"]
        out[name] = (tuple(e["shape"]), data[b:end])
    return meta, out


def hf_names(cfg):
    """(name, shape) of every parameter, in LlamaForCausalLM's naming."""
    V, C, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    names = [("model.embed_tokens.weight", (V, C))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names += [(p + "input_layernorm.weight", (C,)),
                  (p + "self_attn.q_proj.weight", (H * D, C)),
                  (p + "self_attn.k_proj.weight", (Hkv * D, C)),
                  (p + "self_attn.v_proj.weight", (Hkv * D, C)),
                  (p + "self_attn.o_proj.weight", (C, H * D)),
                  (p + "post_attention_layernorm.weight", (C,)),
                  (p + "mlp.gate_proj.weight", (F, C)),
                  (p + "mlp.up_proj.weight", (F, C)),
                  (p + "mlp.down_proj.weight", (C, F))]
    names += [("model.norm.weight", (C,)), ("lm_head.weight", (V, C))]
    return names


def make_checkpoint(path, cfg, seed, std=0.02):
    rng = random.Random(seed)
    tensors = []
    for name, shape in hf_names(cfg):
        n = math.prod(shape)
        vals = [1.0] * n if name.endswith("norm.weight") else [rng.gauss(0.0, std) for _ in range(n)]
        tensors.append((name, shape, vals))
    meta = {k: str(cfg[k]) for k in INT_KEYS}
    meta.update({k: repr(float(cfg[k])) for k in FLOAT_KEYS})
    meta["format"] = "pt"
    st_write(path, tensors, meta)


def make_batch(path, vocab, seed, lengths=(5, 1, 9)):
    rng = random.Random(seed + 1)
    tokens = [rng.randrange(vocab) for _ in range(sum(lengths))]
    cu, weights = [0], []
    M = len(lengths)
    for L in lengths:
        cu.append(cu[-1] + L)
        n_targets = L - 1
        weights += [1.0 / (M * n_targets)] * n_targets + [0.0] if n_targets else [0.0]
    with open(path, "w") as f:
        json.dump({"tokens": tokens, "cu_seqlens": cu, "weights": weights}, f)


def run_grad(cmd, gpath):
    """Runs a `labench grad` command line, echoing its output: (run, metadata, gradients of
    gpath), or None (said on stderr) when it fails."""
    print("$ " + " ".join(cmd), flush=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        print(f"labench grad failed with exit status {run.returncode}", file=sys.stderr)
        return None
    meta, graw = st_read(gpath)
    return run, meta, graw


def work_dir(path, prefix):
    """(TemporaryDirectory or None, path): path, created, or a new temporary directory."""
    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix=prefix)
        path = tmp.name
    os.makedirs(path, exist_ok=True)
    return tmp, path


# ---------------------------------------------------------------- the PyTorch reference

def load_params(torch, path):
    meta, tensors = st_read(path)
    cfg = {k: int(meta[k]) for k in INT_KEYS}
    cfg.update({k: float(meta[k]) for k in FLOAT_KEYS})
    params = {}
    for name, (shape, raw) in tensors.items():
        t = torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape)
        params[name] = t.to(torch.float64).clone().requires_grad_(True)
    return cfg, params


def rotate_half(x):
    h = x.shape[-1] // 2
    return __import__("torch").cat((-x[..., h:], x[..., :h]), dim=-1)


def reference_loss(torch, cfg, P, tokens, cu, weights):
    """The weighted loss of one packed row, float64, differentiable in P."""
    C, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D, eps, theta = C // H, cfg["rms_norm_eps"], cfg["rope_theta"]
    N = len(tokens)
    tok = torch.tensor(tokens, dtype=torch.long)
    seg = torch.empty(N, dtype=torch.long)
    pos = torch.empty(N, dtype=torch.float64)
    targets = torch.zeros(N, dtype=torch.long)
    for s in range(len(cu) - 1):
        a, b = cu[s], cu[s + 1]
        seg[a:b] = s
        pos[a:b] = torch.arange(b - a, dtype=torch.float64)
        targets[a:b - 1] = tok[a + 1:b]          # the last position predicts nothing (weight 0)
    w = torch.tensor(weights, dtype=torch.float64)

    inv_freq = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)      # [D/2]
    ang = pos[:, None] * inv_freq[None, :]                                     # [N, D/2]
    cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None, :]                    # [N, 1, D]
    sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None, :]
    idx = torch.arange(N)
    allowed = (seg[:, None] == seg[None, :]) & (idx[None, :] <= idx[:, None])  # [i, j]

    def rms(x, wt):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * wt

    x = P["model.embed_tokens.weight"][tok]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, P[p + "input_layernorm.weight"])
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(N, H, D)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(N, Hkv, D)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(N, Hkv, D)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=1)      # query head h reads kv head h // (H/Hkv)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(D)
        s = s.masked_fill(~allowed[None], float("-inf"))
        att = torch.einsum("hij,jhd->ihd", torch.softmax(s, -1), v).reshape(N, H * D)
        x = x + att @ P[p + "self_attn.o_proj.weight"].T
        h = rms(x, P[p + "post_attention_layernorm.weight"])
        g = h @ P[p + "mlp.gate_proj.weight"].T
        u = h @ P[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    logits = rms(x, P["model.norm.weight"]) @ P["lm_head.weight"].T
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    return (w * ce).sum()


def hf_loss_and_grads(torch, transformers, cfg, ckpt, tokens, cu, weights):
    """LlamaForCausalLM (eager, float64), one segment at a time: (loss, {name: grad})."""
    hf_config = transformers.LlamaConfig(**cfg, tie_word_embeddings=False, attention_bias=False,
                                         mlp_bias=False, hidden_act="silu",
                                         max_position_embeddings=max(64, len(tokens)))
    with tempfile.TemporaryDirectory() as tmp:
        hf_config.save_pretrained(tmp)
        os.symlink(os.path.abspath(ckpt), os.path.join(tmp, "model.safetensors"))
        model = transformers.LlamaForCausalLM.from_pretrained(
            tmp, torch_dtype=torch.float32, attn_implementation="eager")
    model = model.to(torch.float64)
    model.train()        # dropout is 0 in LlamaConfig's defaults
    total = 0.0
    for s in range(len(cu) - 1):
        a, b = cu[s], cu[s + 1]
        ids = torch.tensor(tokens[a:b], dtype=torch.long)[None]
        logits = model(input_ids=ids, use_cache=False).logits[0]          # [L, V]
        w = torch.tensor(weights[a:b], dtype=torch.float64)
        tgt = torch.cat((ids[0, 1:], torch.zeros(1, dtype=torch.long)))
        ce = torch.nn.functional.cross_entropy(logits, tgt, reduction="none")
        seg_loss = (w * ce).sum()
        seg_loss.backward()
        total += seg_loss.item()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach()
             for n, p in model.named_parameters()}
    return total, grads


# ---------------------------------------------------------------- comparison

def compare(torch, label, ref_loss, ref_grads, lb_loss, lb_grads, tol):
    """Prints a per-tensor table; returns (ok, rows)."""
    ok = True
    rows = []
    loss_rel = abs(lb_loss - ref_loss) / max(abs(ref_loss), 1e-300)
    print(f"\n[{label}] loss: labench {lb_loss:.9g}  {label} {ref_loss:.12g}  "
          f"|diff| {abs(lb_loss - ref_loss):.3g}  rel {loss_rel:.3g}")
    ok &= loss_rel <= tol
    rows.append(("loss", abs(lb_loss - ref_loss), abs(ref_loss), loss_rel))
    missing = sorted(set(ref_grads) - set(lb_grads))
    extra = sorted(set(lb_grads) - set(ref_grads))
    for n in missing:
        print(f"FAIL {n}: not in labench's gradients")
    for n in extra:
        print(f"FAIL {n}: in labench's gradients but not a parameter of {label}")
    ok &= not missing and not extra
    print(f"{'tensor':<48} {'shape':<12} {'max|g|':>10} {'max|diff|':>10} {'rel':>10}")
    for name in [n for n in ref_grads if n in lb_grads]:
        r, g = ref_grads[name], lb_grads[name]
        if tuple(r.shape) != tuple(g.shape):
            print(f"FAIL {name}: shape {tuple(g.shape)} in labench, {tuple(r.shape)} in {label}")
            ok = False
            continue
        diff = (g - r).abs().max().item()
        scale = r.abs().max().item()
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        bad = not rel <= tol
        ok &= not bad
        rows.append((name, diff, scale, rel))
        print(f"{name:<48} {'x'.join(map(str, r.shape)):<12} {scale:10.3e} {diff:10.3e} {rel:10.3e}"
              f"{'  FAIL' if bad else ''}")
    worst = max(rows, key=lambda x: x[3])
    print(f"[{label}] worst relative error {worst[3]:.3e} ({worst[0]}); tolerance {tol:g}: "
          f"{'ok' if ok else 'FAILED'}")
    return ok, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "..", "labench"))
    ap.add_argument("--load-model", help="checkpoint to use (default: write a random tiny one)")
    ap.add_argument("--batch", help="batch JSON to use (default: write the 3-segment one)")
    ap.add_argument("--workdir", help="where to put the files (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--lengths", type=lambda v: [int(x) for x in v.split(",")], default=[5, 1, 9],
                    help="segment lengths of a written batch (default 5,1,9)")
    ap.add_argument("--init-std", type=float, default=0.02,
                    help="std of the random matrices of a written checkpoint (default 0.02)")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers comparison")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        print(f"cannot check: PyTorch does not import ({e})", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    tmp, work = work_dir(args.workdir, "labench-torch-check-")
    ckpt = args.load_model or os.path.join(work, "model.safetensors")
    batch = args.batch or os.path.join(work, "batch.json")
    gpath = os.path.join(work, "grads.safetensors")
    if not args.load_model:
        make_checkpoint(ckpt, TINY, args.seed, args.init_std)
    cfg, P = load_params(torch, ckpt)
    if not args.batch:
        make_batch(batch, cfg["vocab_size"], args.seed, args.lengths)
    with open(batch) as f:
        b = json.load(f)
    tokens, cu, weights = b["tokens"], b["cu_seqlens"], b["weights"]
    # labench reads weights as f32: use the same values in the reference.
    weights = [struct.unpack("f", struct.pack("f", w))[0] for w in weights]

    cmd = [args.labench, "grad", "--load-model", ckpt, "--batch", batch, "--out", gpath]
    got = run_grad(cmd, gpath)
    if got is None:
        return 2
    run, meta, graw = got
    printed = [l for l in run.stdout.splitlines() if l.startswith("loss ")]
    lb_loss = float(printed[0].split()[1]) if printed else float(meta["loss"])
    lb_grads = {n: torch.frombuffer(bytearray(raw), dtype=torch.float32).reshape(shape).to(torch.float64)
                for n, (shape, raw) in graw.items()}

    print(f"torch {torch.__version__}; model {cfg}; {len(tokens)} tokens, cu_seqlens {cu}")
    loss = reference_loss(torch, cfg, P, tokens, cu, weights)
    loss.backward()
    ref_grads = {name: P[name].grad if P[name].grad is not None else torch.zeros_like(P[name])
                 for name, _ in hf_names(cfg)}
    extra_ckpt = sorted(set(P) - set(ref_grads))
    if extra_ckpt:
        print(f"FAIL checkpoint tensors the reference does not know: {extra_ckpt}")
    ok, _ = compare(torch, "torch", loss.item(), ref_grads, lb_loss, lb_grads, args.tol)
    ok &= not extra_ckpt

    if not args.no_hf:
        try:
            import transformers
        except ImportError as e:
            print(f"\nskipped the transformers comparison: {e}")
        else:
            print(f"\ntransformers {transformers.__version__}")
            transformers.utils.logging.disable_progress_bar()
            hf_loss, hf_grads = hf_loss_and_grads(torch, transformers, cfg, ckpt, tokens, cu, weights)
            hok, _ = compare(torch, "transformers", hf_loss, hf_grads, lb_loss, lb_grads, args.tol)
            ok &= hok
    print("\nPASSED" if ok else "\nFAILED")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
