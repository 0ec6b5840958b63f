#!/usr/bin/env python3
"""Train a Hugging Face causal LM on a labench plan with a plain PyTorch loop (one process per
data-parallel rank under torchrun, or one process for world size 1).

    torchrun --nproc-per-node W python/examples/train_torch.py --plan plan.jsonl.gz \
        --lengths lengths.txt --data data.jsonl --tokenizer tokenizer.json --model MODEL_DIR \
        --grad-accum A --max-tokens L

The plan's world size, gradient accumulation and pack length must be the run's: the loader
refuses otherwise. The loss of a step is sum(weight x token loss) over all its ranks and
micro-steps; the weights sum to 1 per step, so nothing is divided by the accumulation, and each
rank's loss is multiplied by W because DDP averages gradients over the ranks.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from labench_batches import BatchPlan, PlanBatchSampler, PlanDataset, block_causal_mask, collate, weighted_loss  # noqa: E402
from records import example_args, tokenize_jsonl  # noqa: E402


def main():
    ap = example_args(__doc__)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--start-step", type=int, default=0, help="resume: the first optimizer step to run")
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")

    # refuses a plan made for another world size, accumulation or pack length, or other lengths
    plan = BatchPlan(args.plan, rank=rank, world_size=world, grad_accum=args.grad_accum,
                     max_tokens=args.max_tokens, lengths=args.lengths)
    loader = torch.utils.data.DataLoader(PlanDataset(tokenize_jsonl(args.data, args.tokenizer)),
                                         batch_sampler=PlanBatchSampler(plan, args.start_step), collate_fn=collate)

    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(args.model).to(device)
    flash = getattr(model.config, "_attn_implementation", "") == "flash_attention_2"
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    step_loss = 0.0
    for i, b in enumerate(loader):
        last = (i + 1) % args.grad_accum == 0
        kw = {} if flash else {"attention_mask": block_causal_mask(b["cu_seqlens"]).to(device)}
        # DDP: sync gradients on the step's last micro-step only
        ctx = model.no_sync() if world > 1 and not last else torch.enable_grad()
        with ctx:
            logits = model(input_ids=b["input_ids"].to(device), position_ids=b["position_ids"].to(device),
                           use_cache=False, **kw).logits
            loss = weighted_loss(logits, b["labels"].to(device), b["loss_weights"].to(device), loss_scale=world)
            loss.backward()
        step_loss += loss.item() / world
        if last:
            opt.step()
            opt.zero_grad()
            if rank == 0:
                print(f"step {args.start_step + i // args.grad_accum}: loss (this rank's share) {step_loss:.4f}")
            step_loss = 0.0


if __name__ == "__main__":
    main()
