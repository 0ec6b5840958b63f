#!/usr/bin/env python3
"""Train with Hugging Face's Trainer on a labench plan: a Trainer whose train dataloader is the
plan's (this rank's micro-batches, in order) and whose compute_loss is the plan's weighted loss.

    torchrun --nproc-per-node W python/examples/train_hf.py --plan plan.jsonl.gz \
        --lengths lengths.txt --data data.jsonl --tokenizer tokenizer.json --model MODEL_DIR \
        --grad-accum A --max-tokens L

The step's gradient must be that of sum(weight x token loss) over its ranks and micro-steps:
Trainer is told not to divide by gradient_accumulation_steps (loss_is_scaled_for_ga), and
compute_loss multiplies by the world size, which DDP's averaging divides out again.
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from labench_batches import BatchPlan, PlanBatchSampler, PlanDataset, block_causal_mask, collate, weighted_loss  # noqa: E402
from records import example_args, tokenize_jsonl  # noqa: E402


class PlanTrainer(Trainer):
    def __init__(self, *a, plan, records, **kw):
        super().__init__(*a, **kw)
        self.plan, self.records = plan, records
        # the plan's weights already split the step between its micro-steps: Trainer must not
        # divide by the accumulation (transformers >= 5 reads this; older ones always divide)
        self.divides_by_accumulation = not hasattr(self, "loss_is_scaled_for_ga")
        self.loss_is_scaled_for_ga = True

    def get_train_dataloader(self):
        # the plan is already this rank's: no distributed sampler, no shuffling, no re-batching
        return torch.utils.data.DataLoader(PlanDataset(self.records), batch_sampler=PlanBatchSampler(self.plan),
                                           collate_fn=collate)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        cu, w, labels = inputs.pop("cu_seqlens"), inputs.pop("loss_weights"), inputs.pop("labels")
        inputs.pop("max_length")
        inputs.pop("idle")
        if getattr(model.config, "_attn_implementation", "") != "flash_attention_2":
            inputs["attention_mask"] = block_causal_mask(cu).to(inputs["input_ids"].device)
        out = model(**inputs, use_cache=False)
        scale = self.args.world_size     # DDP averages the ranks' gradients: undo it
        if self.divides_by_accumulation:
            scale *= self.args.gradient_accumulation_steps
        loss = weighted_loss(out.logits, labels, w, loss_scale=scale)
        return (loss, out) if return_outputs else loss


def main():
    ap = example_args(__doc__)
    ap.add_argument("--out", default="out-labench-plan")
    args = ap.parse_args()
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    plan = BatchPlan(args.plan, rank=rank, world_size=world, grad_accum=args.grad_accum,
                     max_tokens=args.max_tokens, lengths=args.lengths)
    targs = TrainingArguments(output_dir=args.out, per_device_train_batch_size=1,
                              gradient_accumulation_steps=args.grad_accum, max_steps=plan.header["steps"],
                              remove_unused_columns=False, logging_steps=1, report_to=[])
    trainer = PlanTrainer(model=AutoModelForCausalLM.from_pretrained(args.model), args=targs, plan=plan,
                          records=tokenize_jsonl(args.data, args.tokenizer))
    trainer.train()


if __name__ == "__main__":
    main()
