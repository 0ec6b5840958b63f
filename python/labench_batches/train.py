"""From a rank's plan to training inputs: a batch sampler, a dataset wrapper, a collator that
packs a micro-batch the way FlashAttention-2's varlen kernels and Hugging Face's padding-free
training take it, and the weighted loss. torch is imported only by the functions that make
tensors, so the sampler and pack() work without it.

Loss: a step's loss is sum over its ranks and micro-steps of sum_t weight[t] * CE[t]; the
weights of a step sum to 1 (labench's header says which rule made them). So:
  - do NOT divide by grad_accum (the weights already split the step between micro-steps);
  - under DDP, which AVERAGES gradients over the W ranks, multiply each rank's loss by W
    (loss_scale=world_size) so that the averaged gradient is the gradient of the step's loss.
"""
from .reader import BatchPlan

IGNORE = -100


class PlanBatchSampler:
    """batch_sampler for torch.utils.data.DataLoader: one batch per micro-step of this rank, in
    order, grad_accum per optimizer step. A batch is [(row, Segment), ...]; an idle micro-step
    is [] (collate() turns it into a zero-weight dummy row, so DDP's collectives still line up).
    start_step resumes a run."""

    def __init__(self, plan, start_step=0):
        if not isinstance(plan, BatchPlan):
            raise TypeError("PlanBatchSampler wants a labench_batches.BatchPlan")
        self.plan, self.start_step = plan, start_step

    def __iter__(self):
        for _, _, rows in self.plan.micro_batches(self.start_step):
            yield [(r, seg) for r, row in enumerate(rows) for seg in row]

    def __len__(self):
        return (self.plan.header["steps"] - self.start_step) * self.plan.header["grad_accum"]


class PlanDataset:
    """Maps a sampler item (row, Segment) to its tokens. records[index] is the record's token ids
    (a list, or a dict holding them under `key`), tokenized exactly as for the lengths file: the
    count must equal the segment's record_tokens, or the plan was made from other lengths."""

    def __init__(self, records, key="input_ids"):
        self.records, self.key = records, key

    def __getitem__(self, item):
        row, seg = item
        rec = self.records[seg.index]
        ids = rec[self.key] if isinstance(rec, dict) else rec
        if len(ids) != seg.record_tokens:
            raise ValueError(f"record {seg.index}: {len(ids)} tokens, the plan says {seg.record_tokens}: tokenize "
                             "the dataset as scripts/lengths.py did for the lengths file")
        return {"row": row, "segment": seg, "input_ids": list(ids[len(ids) - seg.tokens:])}

    def __len__(self):
        return len(self.records)


def pack(items):
    """One packed row from a micro-batch's items (dicts from PlanDataset), as plain lists:
    input_ids concatenated; position_ids restarting at 0 per segment; labels = the token where it
    is a loss target (the segment's last target_tokens), else -100; loss_weights = the segment's
    weight at each target (aligned with labels: the weight of predicting labels[t] from t-1);
    cu_seqlens (segment starts, then the total) and max_length. Rows of one micro-batch are laid
    end to end too: attention never crosses a segment, so a row boundary changes nothing. An empty
    micro-batch gives one dummy token with weight 0 (idle: True)."""
    out = {"input_ids": [], "position_ids": [], "labels": [], "loss_weights": [], "cu_seqlens": [0],
           "max_length": 0, "idle": not items}
    if not items:
        return {"input_ids": [0], "position_ids": [0], "labels": [IGNORE], "loss_weights": [0.0],
                "cu_seqlens": [0, 1], "max_length": 1, "idle": True}
    for it in items:
        seg, ids = it["segment"], it["input_ids"]
        first_target = seg.tokens - seg.target_tokens
        out["input_ids"] += ids
        out["position_ids"] += range(seg.tokens)
        out["labels"] += [IGNORE] * first_target + ids[first_target:]
        out["loss_weights"] += [0.0] * first_target + [seg.weight] * seg.target_tokens
        out["cu_seqlens"].append(out["cu_seqlens"][-1] + seg.tokens)
        out["max_length"] = max(out["max_length"], seg.tokens)
    return out


def collate(items, weight_dtype=None):
    """pack() as tensors of batch size 1: input_ids, position_ids, labels [1, T] (long),
    loss_weights [1, T] (float32 unless weight_dtype), cu_seqlens [n+1] (int32) and max_length,
    what FlashAttention-2's flash_attn_varlen_func and transformers' padding-free path
    (position_ids restarting at 0) take."""
    import torch
    p = pack(items)
    t = {k: torch.tensor([p[k]], dtype=torch.long) for k in ("input_ids", "position_ids", "labels")}
    t["loss_weights"] = torch.tensor([p["loss_weights"]], dtype=weight_dtype or torch.float32)
    t["cu_seqlens"] = torch.tensor(p["cu_seqlens"], dtype=torch.int32)
    t["max_length"] = p["max_length"]
    t["idle"] = p["idle"]
    return t


def block_causal_mask(cu_seqlens, dtype=None):
    """The additive attention mask [1, 1, T, T] of a packed row (0 where token t may attend to s:
    same segment, s <= t; the dtype's lowest value elsewhere), for attention implementations
    without varlen support (transformers' "eager" and "sdpa": they do not split a row by its
    position_ids). Give it as attention_mask= together with position_ids. With FlashAttention-2
    (attn_implementation="flash_attention_2") position_ids alone suffice. Memory is T^2: for
    long rows use FlashAttention-2."""
    import torch
    dtype = dtype or torch.float32
    cu = [int(x) for x in cu_seqlens]
    seg = torch.repeat_interleave(torch.arange(len(cu) - 1), torch.tensor([b - a for a, b in zip(cu, cu[1:])]))
    T = cu[-1]
    ok = (seg[:, None] == seg[None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
    return torch.where(ok, 0.0, torch.finfo(dtype).min).to(dtype)[None, None]


def weighted_loss(logits, labels, loss_weights, loss_scale=1.0):
    """sum_t loss_weights[t] * CE(logits[t-1], labels[t]) over a packed row (the causal shift is
    done here, as transformers does it), times loss_scale (world_size under DDP)."""
    import torch.nn.functional as F
    logits = logits[:, :-1, :]
    labels = labels[:, 1:]
    w = loss_weights[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                         ignore_index=IGNORE, reduction="none")
    return (ce * w.reshape(-1).to(ce.dtype)).sum() * loss_scale


def grad_batch(packed):
    """pack()'s row as `labench grad --batch` JSON: weights[t] is the weight of predicting token
    t+1 at position t (the labels' weights shifted left by one; a segment's last position 0)."""
    w = packed["loss_weights"][1:] + [0.0]
    for end in packed["cu_seqlens"][1:]:
        w[end - 1] = 0.0
    return {"tokens": packed["input_ids"], "cu_seqlens": packed["cu_seqlens"], "weights": w}
