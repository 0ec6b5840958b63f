#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the shapes tests/gpu/bench_attention times, and one
table of both (measure.sh; issue 21).

usage: sdpa_torch.py --labench-json FILE [--out attention.json] [--repeat N]

The shapes: 65536 tokens of bf16 in causal segments of 1k, 4k, 16k or 64k tokens, head dim 64
(32 heads) or 128 (16 heads), no GQA, laid out as PyTorch users call it: [segments, heads,
length, D], is_causal=True (flash attention, or cuDNN's, as PyTorch picks; the backend it used
is recorded). The inputs have the distribution bench_attention gives labench's kernels
(uniform in [-2, 2)); the data differ, the shapes, layout and arithmetic do not. Forward and
backward are timed apart with CUDA events, once untimed, then N times (default 5), median;
TFLOP/s by FlashAttention's count (forward 4 L^2 D H / 2 per causal segment, backward 2.5x).
Writes --out: both sets of runs and, per shape, labench / PyTorch time for each kernel. Exit 0;
2 when torch or a GPU is missing (one line)."""
import argparse
import json
import os
import statistics
import sys
import time

TOKENS, WIDTH = 65536, 2048


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labench-json", help="bench_attention --out's file (optional)")
    ap.add_argument("--out", default="attention.json")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"sdpa_torch: cannot run: PyTorch does not import ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("sdpa_torch: cannot run: torch sees no GPU", file=sys.stderr)
        return 2

    runs = []
    for D in (64, 128):
        H = WIDTH // D
        for L in (1024, 4096, 16384, 65536):
            B = TOKENS // L
            g = torch.Generator(device="cuda").manual_seed(1)
            q, k, v = ((torch.rand(B, H, L, D, device="cuda", generator=g) * 4 - 2).to(torch.bfloat16)
                       .requires_grad_(True) for _ in range(3))
            do = (torch.rand(B, H, L, D, device="cuda", generator=g) * 4 - 2).to(torch.bfloat16)
            tf, tb = [], []
            for r in range(-1, args.repeat):
                a, b, c = (torch.cuda.Event(enable_timing=True) for _ in range(3))
                q.grad = k.grad = v.grad = None
                a.record()
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                b.record()
                o.backward(do)
                c.record()
                torch.cuda.synchronize()
                if r >= 0:
                    tf.append(a.elapsed_time(b) / 1e3)
                    tb.append(b.elapsed_time(c) / 1e3)
            fs, bs = statistics.median(tf), statistics.median(tb)
            flops = 4.0 * L * L * D * H / 2.0 * B
            runs.append({"impl": "torch-sdpa", "D": D, "H": H, "segment": L, "fwd_s": fs, "bwd_s": bs,
                         "fwd_tflops": flops / fs / 1e12, "bwd_tflops": 2.5 * flops / bs / 1e12})
            print(f"torch  D={D:<3} H={H:<2} segments of {L:5}: fwd {fs * 1e3:8.3f} ms "
                  f"{flops / fs / 1e12:6.1f} TFLOP/s   bwd {bs * 1e3:8.3f} ms {2.5 * flops / bs / 1e12:6.1f} TFLOP/s",
                  flush=True)
            del q, k, v, do, o
            torch.cuda.empty_cache()

    lb = {"runs": []}
    if args.labench_json and os.path.isfile(args.labench_json):
        with open(args.labench_json) as f:
            lb = json.load(f)
    ratios = []
    torch_by = {(r["D"], r["segment"]): r for r in runs}
    print(f"{'kernel':<7} {'D':>3} {'segment':>7} {'fwd TFLOP/s':>11} {'torch':>6} {'bwd TFLOP/s':>11} {'torch':>6}"
          f" {'time / torch (fwd, bwd)':>24}")
    for r in lb.get("runs", []):
        if "unavailable" in r:
            print(f"{r['impl']:<7} not run: {r['unavailable']}")
            continue
        t = torch_by.get((r["D"], r["segment"]))
        if not t:
            continue
        rf, rb = r["fwd_s"] / t["fwd_s"], r["bwd_s"] / t["bwd_s"]
        ratios.append({"impl": r["impl"], "D": r["D"], "segment": r["segment"], "fwd_time_vs_torch": rf,
                       "bwd_time_vs_torch": rb})
        print(f"{r['impl']:<7} {r['D']:>3} {r['segment']:>7} {r['fwd_tflops']:>11.1f} {t['fwd_tflops']:>6.1f} "
              f"{r['bwd_tflops']:>11.1f} {t['bwd_tflops']:>6.1f} {rf:>11.2f} {rb:>12.2f}")
    doc = {"schema": "labench-attention-speed-vs-torch", "schema_version": 1,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "device": torch.cuda.get_device_name(), "torch_version": torch.__version__,
           "torch_sdpa": "F.scaled_dot_product_attention(is_causal=True), PyTorch's own backend choice", "cudnn_version": torch.backends.cudnn.version(),
           "note": "same shapes, layout and input distribution; the data differ",
           "labench": lb, "torch": runs, "time_vs_torch": ratios}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, args.out)
    print(f"sdpa_torch: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
