#!/usr/bin/env python3
"""Checks of `labench plan --emit-batches` through python/labench_batches, run by
tests/test_plan_export.c (no torch needed). Exit 0 and "ok ..." lines, or 1 with what failed.

  check   BATCHES LENGTHS RESULTS.json  the plan's invariants and weight metrics, read back
  same    PLAIN GZ LENGTHS              the reader gives the same steps from both files
  bad     BATCHES LENGTHS DIR           each bad input: its PlanError, printed
  grad    BATCHES LENGTHS TOKENS.jsonl STEP MICRO RANK OUT.json
                                        one micro-batch packed by the collator, as a labench
                                        grad batch
"""
import gzip
import json
import math
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from labench_batches import (BatchPlan, PlanDataset, PlanError, count_records, grad_batch, pack,  # noqa: E402
                             read_header)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def lengths_of(path):
    out = []
    with open(path) as f:
        for line in f:
            d = line.split("#", 1)[0].split()
            if d:
                out.append(int(d[0]))
    return out


def all_lines(path):
    """Every batch line of every rank: (step, micro, rank, rows)."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rt") as f:
        lines = [json.loads(x) for x in f]
    return lines[0], lines[1:-1], lines[-1]


def check(batches, lengths, results):
    h0 = read_header(batches)
    W, A, L = h0["world_size"], h0["grad_accum"], h0["max_tokens"]
    # the reader's own checks pass for every rank, and every rank's steps are whole
    for r in range(W):
        n = sum(1 for _ in BatchPlan(batches, rank=r, world_size=W, grad_accum=A, max_tokens=L,
                                     lengths=lengths).steps())
        if n != h0["steps"]:
            fail(f"rank {r}: {n} steps, header {h0['steps']}")
    h, lines, tail = all_lines(batches)
    rec_len = lengths_of(lengths)
    kept = [i for i, n in enumerate(rec_len) if n > 0]
    if h["records"] != len(rec_len) or h["samples"] != len(kept):
        fail(f"header records {h['records']} samples {h['samples']}, file {len(rec_len)} / {len(kept)}")
    # every kept index exactly once per epoch, skipped ones never
    first = h["epoch_first_step"] + [h["steps"]]
    for e in range(h["epochs"]):
        seen = [s[0] for x in lines if first[e] <= x["step"] < first[e + 1] for row in x["rows"] for s in row]
        if sorted(seen) != kept:
            fail(f"epoch {e}: {len(seen)} segments, {len(set(seen))} distinct; want each of {len(kept)} once")
    # rows within max_tokens; a segment is its record's last `tokens`, truncated only when over L
    truncated = 0
    for x in lines:
        for row in x["rows"]:
            if sum(s[1] for s in row) > L:
                fail(f"step {x['step']}: a row of {sum(s[1] for s in row)} tokens > {L}")
            for s in row:
                full = s[4] if len(s) == 5 else s[1]
                if full != rec_len[s[0]] or (len(s) == 5) != (rec_len[s[0]] > L) or s[1] != min(full, L):
                    fail(f"segment {s}: record {s[0]} has {rec_len[s[0]]} tokens, L {L}")
                truncated += len(s) == 5
    if truncated != h["truncated"]:
        fail(f"{truncated} truncated segments, header {h['truncated']}")
    # the weights: a step sums to 1; Eq. 2 (w * N_i = 1/M) per step under the per-sequence rule,
    # each micro-batch's target weight 1/K under the per-micro-batch rule
    per_seq = h["weighting"]["rule"] == "per-sequence"
    eff = []                                  # (record length, w * N_i * M), plan order
    worst = 0.0
    for s0 in range(h["steps"]):
        step = [x for x in lines if x["step"] == s0]
        segs = [s for x in step for row in x["rows"] for s in row if s[2] > 0]
        if not segs:
            continue
        M = len(segs)
        K = sum(1 for x in step if any(s[2] > 0 for row in x["rows"] for s in row))
        total = math.fsum(s[2] * s[3] for s in segs)
        worst = max(worst, abs(total - 1))
        if per_seq:
            for s in segs:
                worst = max(worst, abs(s[2] * s[3] * M - 1))
        else:
            for x in step:
                t = math.fsum(s[2] * s[3] for row in x["rows"] for s in row)
                if t > 0:
                    worst = max(worst, abs(t * K - 1))
        eff += [(rec_len[s[0]], s[2] * s[3]) for s in segs]
    if worst > 1e-12:
        fail(f"weights off by {worst:.3g} (want 1e-12)")
    # the plan's own metrics (from float weights, so to 1e-6): the longest 10%'s share, w*M range
    res = json.load(open(results))["strategies"][0]["plan"]
    k = (len(eff) + 9) // 10
    cut = sorted((n for n, _ in eff), reverse=True)[k - 1]
    above = sum(1 for n, _ in eff if n > cut)
    ties = k - above
    top = 0.0
    for n, w in eff:
        if n > cut or (n == cut and ties > 0):
            ties -= n == cut
            top += w
    share = top / math.fsum(w for _, w in eff)
    if abs(share - res["weight_share_longest10"]) > 1e-6:
        fail(f"longest 10% share {share:.9f}, the plan's {res['weight_share_longest10']:.9f}")
    print(f"ok {h['strategy']}: {len(lines)} lines, {len(eff)} weighted segments, {h['epochs']} epoch(s), "
          f"step sums and {'Eq. 2' if per_seq else '1/K per micro-batch'} within {worst:.1e}, "
          f"longest-10% share {share:.6f} = plan's {res['weight_share_longest10']:.6f}")


def same(plain, gz, lengths):
    h = json.loads(open(plain).readline())
    kw = dict(world_size=h["world_size"], grad_accum=h["grad_accum"], max_tokens=h["max_tokens"], lengths=lengths)
    for r in range(h["world_size"]):
        a = list(BatchPlan(plain, rank=r, **kw).steps())
        b = list(BatchPlan(gz, rank=r, **kw).steps())
        if a != b or len(a) != h["steps"]:
            fail(f"rank {r}: plain and gz differ")
    # resuming from a step gives the rest of the same steps
    s = h["steps"] // 2
    if list(BatchPlan(gz, rank=0, **kw).steps(s)) != list(BatchPlan(plain, rank=0, **kw).steps())[s:]:
        fail(f"resuming at step {s} differs")
    print(f"ok plain and gz read the same: {h['steps']} steps x {h['world_size']} ranks; resume at step {s}")


def expect_error(what, fn, *needles):
    try:
        fn()
    except PlanError as e:
        msg = str(e)
        for n in needles:
            if n not in msg:
                fail(f"{what}: the error does not say '{n}': {msg}")
        print(f"ok {what}: {msg}")
        return
    fail(f"{what}: no error")


def bad(batches, lengths, d):
    h = json.loads(open(batches).readline())
    W, A, L = h["world_size"], h["grad_accum"], h["max_tokens"]
    kw = dict(world_size=W, grad_accum=A, max_tokens=L)
    base = os.path.basename(batches)
    expect_error("wrong world size", lambda: BatchPlan(batches, rank=0, **dict(kw, world_size=W + 1)),
                 f"{base}:1: world_size: the plan has {W}, the training job {W + 1}")
    expect_error("wrong grad_accum", lambda: BatchPlan(batches, rank=0, **dict(kw, grad_accum=A + 1)),
                 f"{base}:1: grad_accum: the plan has {A}")
    expect_error("wrong max_tokens", lambda: BatchPlan(batches, rank=0, **dict(kw, max_tokens=L * 2)),
                 f"{base}:1: max_tokens: the plan has {L}")
    expect_error("rank out of range", lambda: BatchPlan(batches, rank=W, **kw), f"{base}:1: world_size: rank {W}")
    # a lengths file with one more record; one with the same count and other bytes
    more = os.path.join(d, "more.txt")
    shutil.copy(lengths, more)
    with open(more, "a") as f:
        f.write("7 3\n")
    expect_error("lengths count", lambda: BatchPlan(batches, rank=0, lengths=more, **kw),
                 f"{base}:1: records: the plan was made from {h['records']} records, {more} has {h['records'] + 1}")
    other = os.path.join(d, "other.txt")
    text = open(lengths).read().splitlines(True)
    i = next(j for j, x in enumerate(text) if x.split("#")[0].strip() and x.split()[0] != "0")
    n = int(text[i].split()[0])
    text[i] = f"{n + 1} {text[i].split()[1]}\n"
    open(other, "w").write("".join(text))
    expect_error("lengths checksum", lambda: BatchPlan(batches, rank=0, lengths=other, **kw),
                 f"{base}:1: source.crc32: {other}")
    raw = open(batches, "rb").read().splitlines(True)
    # truncated: the last lines gone (the trailer with them), or cut inside a line
    cut = os.path.join(d, "cut.jsonl")
    open(cut, "wb").write(b"".join(raw[:len(raw) // 2]))
    expect_error("truncated file", lambda: BatchPlan(cut, rank=0, **kw), "cut.jsonl:", "end: no trailer line")
    open(cut, "wb").write(b"".join(raw)[:-(len(raw[-1]) + 20)])
    expect_error("file cut inside a line", lambda: BatchPlan(cut, rank=0, **kw), "cut.jsonl:", "truncated")
    # and without the up-front pass, the stream stops before the first incomplete step
    open(cut, "wb").write(b"".join(raw[:len(raw) // 2]))
    got = []

    def stream():
        for st in BatchPlan(cut, rank=0, verify=False, **kw).steps():
            got.append(st.step)
    expect_error("truncated file, streamed", stream, "cut.jsonl:", "end: the file ends after")
    whole = (len(raw) // 2 - 1) // (A * W)
    if len(got) != whole:
        fail(f"streaming a cut file yielded {len(got)} steps, want the {whole} whole ones")
    # gz cut short
    gzcut = os.path.join(d, "cut.jsonl.gz")
    blob = gzip.compress(b"".join(raw))
    open(gzcut, "wb").write(blob[: len(blob) * 2 // 3])
    expect_error("truncated gz", lambda: BatchPlan(gzcut, rank=0, **kw), "cut.jsonl.gz:", "cut short")
    # a corrupt line: caught by the checksum up front, and by the line's own check when streaming
    bad_line = os.path.join(d, "corrupt.jsonl")
    k = next(j for j in range(len(raw) // 2, len(raw) - 1) if b"]]]" in raw[j])
    mangled = raw[:k] + [raw[k].replace(b"]]]", b"]]", 1)] + raw[k + 1:]
    open(bad_line, "wb").write(b"".join(mangled))
    expect_error("corrupt line", lambda: BatchPlan(bad_line, rank=0, **kw), f"corrupt.jsonl:{len(raw)}: crc32")
    r = json.loads(raw[k])["rank"]

    def stream2():
        for _ in BatchPlan(bad_line, rank=r, verify=False, **kw).steps():
            pass
    expect_error("corrupt line, streamed", stream2, f"corrupt.jsonl:{k + 1}: not JSON")
    # a line out of order
    swapped = raw[:2] + [raw[3], raw[2]] + raw[4:]
    sw = os.path.join(d, "swapped.jsonl")
    open(sw, "wb").write(b"".join(swapped))

    def stream3():
        for _ in BatchPlan(sw, rank=0, verify=False, **kw).steps():
            pass
    if W > 1:
        expect_error("lines out of order", stream3, "swapped.jsonl:3: step: (step, micro_step, rank) = (0, 0, 2), want (0, 0, 1)")


def grad(batches, lengths, tokens, step, micro, rank, out):
    h = json.loads(open(batches).readline())
    plan = BatchPlan(batches, rank=rank, world_size=h["world_size"], grad_accum=h["grad_accum"],
                     max_tokens=h["max_tokens"], lengths=lengths)
    with open(tokens) as f:
        records = [json.loads(x) for x in f]
    if len(records) != count_records(lengths):
        fail(f"{tokens}: {len(records)} records, {lengths} {count_records(lengths)}")
    ds = PlanDataset(records)
    for s, m, rows in plan.micro_batches(step):
        if (s, m) == (step, micro):
            items = [ds[(r, seg)] for r, row in enumerate(rows) for seg in row]
            p = pack(items)
            # labench grad reads tokens, cu_seqlens, weights; the test compares the rest too
            json.dump(dict(grad_batch(p), position_ids=p["position_ids"], labels=p["labels"]), open(out, "w"))
            print(f"ok step {s} micro {m} rank {rank}: {len(items)} segments, "
                  f"{sum(i['segment'].tokens for i in items)} tokens -> {out}")
            return
    fail(f"no step {step} micro-step {micro}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "grad":
        grad(args[0], args[1], args[2], int(args[3]), int(args[4]), int(args[5]), args[6])
    else:
        {"check": check, "same": same, "bad": bad}[cmd](*args)
