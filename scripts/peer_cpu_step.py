#!/usr/bin/env python3
"""Times one CPU training step of labench against PyTorch, on the same weights and packed row.

usage: scripts/peer_cpu_step.py [--labench PATH] [--shapes small,tiny] [--repeats 3]
                                [--threads N] [--coretype auto,best] [--workdir DIR]
                                [--out FILE.md]

For each shape it writes a checkpoint (Hugging Face Llama names, fp32, matrices N(0, 0.02),
norms 1) and one packed row of 4096 tokens in segments 2048, 1024, 512, 256, 128, 64, 64
(random tokens, weights 1/(M*N_i), the last position of each segment 0), the files that
`labench grad` reads. Then, --repeats times, interleaved:
  labench  `labench grad --repeat 2` once per --coretype (auto: OpenBLAS picks its kernel
           itself; best: the widest core the CPU's flags allow, SKYLAKEX with AVX-512 F/CD/BW/DQ/VL,
           else HASWELL with AVX2 and FMA; any other name is used as is; a core name is passed as
           OPENBLAS_CORETYPE to that run only); its time is the faster of the two steps it prints
           (step_seconds), so
           neither side's time holds process start-up, loading or first-touch page faults;
  PyTorch  the same model in float32 (fused QKV and gate/up weights, rms_norm, SDPA causal per
           segment, cross-entropy over the whole row), forward + backward, two steps, the
           faster one.
It prints the best of the repeats of each, the ratio labench / PyTorch (below 1: labench is
faster) and the losses of both (they must agree to f32 rounding), with the load average before
each repeat. Both sides use --threads threads (default: the CPU count) and the same environment,
OMP_WAIT_POLICY and GOMP_SPINCOUNT included (`make bench-peer` sets GOMP_SPINCOUNT=10000 when
neither is set; PyTorch's bundled libgomp reads them as labench's does).

Shapes: `small` (vocab 32000, hidden 768, intermediate 2048, 12 heads, 12 kv heads) and `tiny`
(vocab 256, hidden 64, intermediate 176, 4 heads, 2 kv heads), both with 2 layers.

It installs nothing. It needs PyTorch (the CPU wheel is enough):
    pip install torch --index-url https://download.pytorch.org/whl/cpu    (or: pip install torch)
Exit status: 0, or 2 when torch does not import or labench fails.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_grad_torch as cg  # noqa: E402  (safetensors writer, HF names, the packed batch)

LENGTHS = (2048, 1024, 512, 256, 128, 64, 64)
SHAPES = {
    "small": {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 2,
              "num_attention_heads": 12, "num_key_value_heads": 12, "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0},
    "tiny": dict(cg.TINY),
}


def write_checkpoint(torch, path, cfg, seed):
    """The checkpoint, and the same values as float32 torch tensors by name."""
    gen = torch.Generator().manual_seed(seed)
    params, tensors = {}, []
    for name, shape in cg.hf_names(cfg):
        t = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=gen) * 0.02
        params[name] = t.contiguous()
        tensors.append((name, shape, t.numpy().tobytes()))
    meta = {k: str(cfg[k]) for k in cg.INT_KEYS}
    meta.update({k: repr(float(cfg[k])) for k in cg.FLOAT_KEYS})
    meta["format"] = "pt"
    cg.st_write(path, tensors, meta)
    return params


class TorchStep:
    """The step of labench's model in PyTorch, float32, written for speed."""

    def __init__(self, torch, cfg, params, batch):
        F = torch.nn.functional
        self.torch, self.F, self.cfg = torch, F, cfg
        C, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.H, self.Hkv, self.D = H, Hkv, C // H
        leaf = lambda t: t.clone().requires_grad_(True)
        self.embed = leaf(params["model.embed_tokens.weight"])
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            self.layers.append({
                "ln1": leaf(params[p + "input_layernorm.weight"]),
                "qkv": leaf(torch.cat([params[p + "self_attn." + x + "_proj.weight"] for x in "qkv"])),
                "o": leaf(params[p + "self_attn.o_proj.weight"]),
                "ln2": leaf(params[p + "post_attention_layernorm.weight"]),
                "gate_up": leaf(torch.cat([params[p + "mlp.gate_proj.weight"], params[p + "mlp.up_proj.weight"]])),
                "down": leaf(params[p + "mlp.down_proj.weight"]),
            })
        self.norm = leaf(params["model.norm.weight"])
        self.head = leaf(params["lm_head.weight"])
        tokens, cu = batch["tokens"], batch["cu_seqlens"]
        N = len(tokens)
        self.tok = torch.tensor(tokens, dtype=torch.long)
        self.targets = torch.zeros(N, dtype=torch.long)
        pos = torch.empty(N, dtype=torch.float64)
        for a, b in zip(cu[:-1], cu[1:]):
            self.targets[a:b - 1] = self.tok[a + 1:b]
            pos[a:b] = torch.arange(b - a, dtype=torch.float64)
        self.segs = list(zip(cu[:-1], cu[1:]))
        self.w = torch.tensor(batch["weights"], dtype=torch.float32)
        D = self.D
        inv_freq = cfg["rope_theta"] ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        ang = pos[:, None] * inv_freq[None, :]
        self.cos = torch.cat((ang.cos(), ang.cos()), -1).float()[:, None, :]   # [N, 1, D]
        self.sin = torch.cat((ang.sin(), ang.sin()), -1).float()[:, None, :]

    def params(self):
        out = [self.embed, self.norm, self.head]
        for L in self.layers:
            out += list(L.values())
        return out

    def rope(self, x):
        h = x.shape[-1] // 2
        return x * self.cos + self.torch.cat((-x[..., h:], x[..., :h]), -1) * self.sin

    def loss(self):
        torch, F, cfg = self.torch, self.F, self.cfg
        H, Hkv, D, eps = self.H, self.Hkv, self.D, cfg["rms_norm_eps"]
        N, C = self.tok.shape[0], cfg["hidden_size"]
        x = F.embedding(self.tok, self.embed)
        for L in self.layers:
            h = F.rms_norm(x, (C,), L["ln1"], eps)
            qkv = h @ L["qkv"].T
            q = self.rope(qkv[:, :H * D].view(N, H, D))
            k = self.rope(qkv[:, H * D:(H + Hkv) * D].view(N, Hkv, D))
            v = qkv[:, (H + Hkv) * D:].view(N, Hkv, D)
            att = [F.scaled_dot_product_attention(q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None],
                                                  v[a:b].transpose(0, 1)[None], is_causal=True,
                                                  enable_gqa=H != Hkv)[0].transpose(0, 1)
                   for a, b in self.segs]
            x = x + torch.cat(att).reshape(N, H * D) @ L["o"].T
            h = F.rms_norm(x, (C,), L["ln2"], eps)
            g, u = (h @ L["gate_up"].T).chunk(2, dim=-1)
            x = x + (F.silu(g) * u) @ L["down"].T
        logits = F.rms_norm(x, (C,), self.norm, eps) @ self.head.T
        return (self.w * F.cross_entropy(logits, self.targets, reduction="none")).sum()

    def step(self):
        """(seconds, loss) of one forward + backward, gradients from zero."""
        for p in self.params():
            p.grad = None
        t = time.perf_counter()
        loss = self.loss()
        loss.backward()
        return time.perf_counter() - t, loss.item()


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def best_coretype():
    """The OpenBLAS core the CPU's flags allow at best, or None (not x86, or no AVX2)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return None
    if all(x in flags for x in ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")):
        return "SKYLAKEX"
    if "avx2" in flags and "fma" in flags:
        return "HASWELL"
    return None


def run_labench(args, ckpt, batch, gpath, coretype):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype != "auto":
        env["OPENBLAS_CORETYPE"] = coretype
    cmd = [args.labench, "grad", "--load-model", ckpt, "--batch", batch, "--out", gpath, "--repeat", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        sys.stderr.write(run.stdout + run.stderr)
        raise RuntimeError(f"{' '.join(cmd)} exited {run.returncode}")
    loss = float(re.search(r"^loss (\S+)", run.stdout, re.M).group(1))
    steps = [float(x) for x in re.search(r"^step_seconds (.*)$", run.stdout, re.M).group(1).split()]
    blas = [l for l in run.stderr.splitlines() if "OpenBLAS" in l]   # the fallback warning, if any
    core = re.search(r"^blas .* core (\S+)", run.stdout, re.M)
    return min(steps), loss, blas, core.group(1) if core else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labench", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "labench"))
    ap.add_argument("--shapes", default="small,tiny")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--coretype", default="auto,best",
                    help="comma-separated: auto, best and/or OPENBLAS_CORETYPE names for labench's runs")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workdir", help="keep the written files here (default: a temporary directory)")
    ap.add_argument("--out", help="also write the results as markdown to this file")
    args = ap.parse_args()
    shapes = args.shapes.split(",")
    for s in shapes:
        if s not in SHAPES:
            print(f"--shapes: unknown shape '{s}' (known: {', '.join(SHAPES)})", file=sys.stderr)
            return 2
    coretypes = []
    for c in args.coretype.split(","):
        if c == "best":
            c = best_coretype()
            if c is None:
                print("--coretype best: the CPU's flags show neither AVX-512 nor AVX2+FMA; running auto only",
                      file=sys.stderr)
                continue
        if c not in coretypes:
            coretypes.append(c)
    try:
        import torch
    except ImportError as e:
        print(f"cannot compare: PyTorch does not import ({e}).\n"
              "Install it (the CPU wheel is enough): pip install torch --index-url "
              "https://download.pytorch.org/whl/cpu   (or: pip install torch)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if not os.access(args.labench, os.X_OK):
        print(f"{args.labench}: no labench binary (run make first)", file=sys.stderr)
        return 2

    tmp, work = cg.work_dir(args.workdir, "labench-peer-")
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    lines = [f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
             f"- machine: {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
             f"{platform.release()}",
             f"- labench {commit}, torch {torch.__version__}, Python {platform.python_version()}; "
             f"{args.threads} threads each; best of {args.repeats} interleaved repeats, each the faster of 2 steps",
             f"- OpenMP waiting (both sides read it): OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
             f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'unset')}",
             f"- row: {sum(LENGTHS)} tokens in segments {','.join(map(str, LENGTHS))}; f32; forward + backward",
             ""]
    table = ["| shape | labench BLAS core | labench s | PyTorch s | labench / PyTorch | loss labench | loss PyTorch |"
             " load average before each repeat |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    status = 0
    for shape in shapes:
        cfg = SHAPES[shape]
        ckpt = os.path.join(work, f"{shape}.safetensors")
        batch_path = os.path.join(work, f"{shape}-batch.json")
        gpath = os.path.join(work, f"{shape}-grads.safetensors")
        params = write_checkpoint(torch, ckpt, cfg, args.seed)
        cg.make_batch(batch_path, cfg["vocab_size"], args.seed, LENGTHS)
        with open(batch_path) as f:
            batch = json.load(f)
        model = TorchStep(torch, cfg, params, batch)
        best_t, loss_t = float("inf"), None
        best_l = {c: (float("inf"), None, [], "?") for c in coretypes}
        loads = []
        for rep in range(args.repeats):
            loads.append(load_average())
            for c in coretypes:
                try:
                    res = run_labench(args, ckpt, batch_path, gpath, c)
                except RuntimeError as e:
                    print(e, file=sys.stderr)
                    return 2
                if res[0] < best_l[c][0]:
                    best_l[c] = res
            t = min(model.step() for _ in range(2))
            if t[0] < best_t:
                best_t, loss_t = t
            print(f"{shape} repeat {rep + 1}: load {loads[-1]}; PyTorch {t[0]:.3f} s; labench "
                  + ", ".join(f"{c} {best_l[c][0]:.3f} s (best so far)" for c in coretypes), flush=True)
        for c in coretypes:
            t, loss, blas, ran = best_l[c]
            rel = abs(loss - loss_t) / abs(loss_t)
            if rel > 1e-4:
                print(f"{shape}: the losses differ by {rel:.2g} relative: not the same computation", file=sys.stderr)
                status = 1
            core = (f"auto: {ran}" if c == "auto" else f"OPENBLAS_CORETYPE={c}: {ran}")
            table.append(f"| {shape} | {core} | {t:.3f} | {best_t:.3f} | {t / best_t:.2f} | {loss:.6f} | "
                         f"{loss_t:.6f} | {'; '.join(loads)} |")
            for line in blas:
                print(f"{shape} ({core}) labench said: {line}")
    text = "\n".join(lines + table) + "\n"
    print()
    print(text, end="")
    if args.out:
        tmp_out = args.out + ".tmp"
        with open(tmp_out, "w") as f:
            f.write(text)
        os.replace(tmp_out, args.out)
    if tmp is not None:
        tmp.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
