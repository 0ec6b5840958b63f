#!/usr/bin/env python3
"""A tiny LlamaForCausalLM trained a few optimizer steps on the CPU through labench_batches'
sampler and collator (W ranks played in turn by one process, A micro-steps each); at every step
its loss and gradients equal `labench grad`'s on the same weights and micro-batches.

Needs torch and transformers; tests/test_plan_export.c runs it where they import (PYTHON_TORCH,
else python3) and skips elsewhere. By hand:  python3 tests/plan_export_torch.py --labench ./labench
Exit 0 with one line per step, 1 when a step differs, 2 when labench fails.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import torch  # noqa: E402
import transformers  # noqa: E402
from check_grad_torch import FLOAT_KEYS, INT_KEYS, TINY, st_read, st_write  # noqa: E402
from labench_batches import (BatchPlan, PlanBatchSampler, PlanDataset, block_causal_mask, collate,  # noqa: E402
                             grad_batch, weighted_loss)

W, A, L = 2, 2, 64


def save_checkpoint(model, path):
    meta = {k: str(TINY[k]) for k in INT_KEYS}
    meta.update({k: repr(float(TINY[k])) for k in FLOAT_KEYS})
    meta["format"] = "pt"
    st_write(path, [(n, tuple(t.shape), t.detach().float().contiguous().numpy().tobytes())
                    for n, t in model.state_dict().items()], meta)


def labench_grad(labench, ckpt, batch, d, tag):
    path, out = os.path.join(d, f"{tag}.json"), os.path.join(d, f"{tag}.grad.safetensors")
    json.dump(batch, open(path, "w"))
    run = subprocess.run([labench, "grad", "--load-model", ckpt, "--batch", path, "--out", out],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"labench grad failed ({run.returncode}): {run.stderr}")
        sys.exit(2)
    loss = float(next(x for x in run.stdout.splitlines() if x.startswith("loss ")).split()[1])
    _, g = st_read(out)
    return loss, {n: torch.frombuffer(bytearray(b), dtype=torch.float32).reshape(s) for n, (s, b) in g.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labench", default="./labench")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--strategy", default="packing-lw")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="labench-torch-")
    rng = random.Random(3)
    # the dataset: 40 records of random tokens, one without a response (length 0)
    lengths, records = os.path.join(d, "lengths.txt"), []
    with open(lengths, "w") as f:
        for i in range(40):
            n = 0 if i == 5 else rng.randint(3, 30)
            f.write(f"{n} {rng.randint(1, n - 1) if n else 0}\n")
            records.append([rng.randrange(TINY["vocab_size"]) for _ in range(n)])
    plan_path = os.path.join(d, "plan.jsonl")
    run = subprocess.run([args.labench, "plan", "--strategy", args.strategy, "--lengths", lengths, "--world-size",
                          str(W), "--grad-accum", str(A), "--max-tokens", str(L), "--emit-batches", plan_path],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"labench plan failed ({run.returncode}): {run.stderr}")
        sys.exit(2)

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**TINY, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                                   hidden_act="silu", max_position_embeddings=L)
    model = transformers.LlamaForCausalLM(cfg).float()
    model.set_attn_implementation("sdpa")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loaders = [iter(torch.utils.data.DataLoader(
        PlanDataset(records),
        batch_sampler=PlanBatchSampler(BatchPlan(plan_path, rank=r, world_size=W, grad_accum=A, max_tokens=L,
                                                 lengths=lengths)),
        collate_fn=lambda items: collate(items, weight_dtype=torch.float64))) for r in range(W)]
    steps = min(args.steps, BatchPlan(plan_path, rank=0, world_size=W, grad_accum=A, max_tokens=L).header["steps"])
    worst_loss = worst_grad = 0.0
    for step in range(steps):
        ckpt = os.path.join(d, f"step{step}.safetensors")
        save_checkpoint(model, ckpt)
        opt.zero_grad()
        t_loss, l_loss, l_grads = 0.0, 0.0, {}
        for m in range(A):
            for r in range(W):
                b = next(loaders[r])
                mask = block_causal_mask(b["cu_seqlens"])
                logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"], attention_mask=mask,
                               use_cache=False).logits
                loss = weighted_loss(logits, b["labels"], b["loss_weights"])   # one process: no DDP scale
                loss.backward()
                t_loss += loss.item()
                if b["idle"]:
                    continue
                packed = {"input_ids": b["input_ids"][0].tolist(), "cu_seqlens": b["cu_seqlens"].tolist(),
                          "loss_weights": b["loss_weights"][0].tolist()}
                lb, g = labench_grad(args.labench, ckpt, grad_batch(packed), d, f"s{step}m{m}r{r}")
                l_loss += lb
                for n, x in g.items():
                    l_grads[n] = l_grads.get(n, 0) + x
        rel = abs(t_loss - l_loss) / abs(l_loss)
        grel = 0.0
        for n, p in model.named_parameters():
            ref = l_grads[n]
            grel = max(grel, (p.grad.float() - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30))
        worst_loss, worst_grad = max(worst_loss, rel), max(worst_grad, grel)
        print(f"step {step}: loss torch {t_loss:.8f}, labench grad {l_loss:.8f} (rel {rel:.1e}); "
              f"gradients max rel {grel:.1e}")
        opt.step()
    ok = worst_loss <= 1e-5 and worst_grad <= 1e-4
    print(f"{'ok' if ok else 'FAIL'}: {steps} steps of {args.strategy} (W={W}, A={A}, L={L}) through the sampler and "
          f"collator; loss within {worst_loss:.1e} (1e-5), gradients within {worst_grad:.1e} (1e-4) of labench grad; "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
