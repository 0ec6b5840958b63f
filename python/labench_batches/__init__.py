"""Train with a labench plan: read the batches `labench plan --emit-batches` writes.

    from labench_batches import BatchPlan, PlanBatchSampler, PlanDataset, collate, weighted_loss
    plan = BatchPlan("plan.jsonl.gz", rank=rank, world_size=W, grad_accum=A, max_tokens=L,
                     lengths="lengths.txt")
    loader = DataLoader(PlanDataset(tokenized), batch_sampler=PlanBatchSampler(plan), collate_fn=collate)

The reader (labench_batches.reader) needs nothing beyond the standard library; the tensor parts
(labench_batches.train: collate, weighted_loss) import torch when called. Examples: examples/.
"""
from .reader import BatchPlan, PlanError, Segment, Step, count_records, file_crc32, read_header
from .train import PlanBatchSampler, PlanDataset, block_causal_mask, collate, grad_batch, pack, weighted_loss

__all__ = ["BatchPlan", "PlanError", "Segment", "Step", "count_records", "file_crc32", "read_header",
           "PlanBatchSampler", "PlanDataset", "block_causal_mask", "collate", "grad_batch", "pack", "weighted_loss"]
