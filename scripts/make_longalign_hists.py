#!/usr/bin/env python3
"""Rebuilds data/longalign-10k.hist and data/longalign-mix.hist from the two published sources
shipped beside them (docs/hist-format.md, "Where the LongAlign files come from"):

  data/longalign-10k-quantiles.hist   LongAlign-10k alone: measured quantiles, Qwen3 tokens
  data/longalign-fig3-trainmix.hist   the training mix: the paper's Figure 3, ChatGLM tokens

    python3 scripts/make_longalign_hists.py            # rewrites both files
    python3 scripts/make_longalign_hists.py --check    # exit 1 if either differs

Standard library only; deterministic (same inputs, same bytes).
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data")

# One LongAlign-10k row measured with both tokenizers (the quantiles' source, section 0): the
# dataset's `length` column, ChatGLM3 tokens, says 63,954; its Qwen3 prefill is 53,176 tokens.
CHATGLM3_ROW0, QWEN3_ROW0 = 63954, 53176
# The paper (sec. 3.2): LongAlign-10k's samples are 8k-64k ChatGLM tokens long.
PAPER_MIN = 8192
LONG_TARGET = "100-1000"   # document QA and summaries: a few hundred response tokens
CHAT_TARGET = "50%-75%"    # ShareGPT chat: the assistant turns are most of a sample


def read_bins(path):
    bins = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line or line[0].startswith("@"):
                continue
            lo, _, hi = line[0].partition("-")
            bins.append((int(lo), int(hi or lo), int(line[1])))
    return bins


def to_chatglm(qwen_tokens):
    return round(qwen_tokens * CHATGLM3_ROW0 / QWEN3_ROW0)


def longalign_10k(quantile_bins):
    """The quantile buckets in ChatGLM3 tokens; the lowest starts at the paper's 8k."""
    out = []
    for i, (lo, hi, count) in enumerate(quantile_bins):
        clo = PAPER_MIN if i == 0 else out[-1][1] + 1
        out.append((clo, to_chatglm(hi), count))
    return out


def overlap_count(buckets, lo, hi):
    """Expected samples of `buckets` (lengths uniform within each) that fall in [lo, hi]."""
    total = 0.0
    for blo, bhi, count in buckets:
        a, b = max(lo, blo), min(hi, bhi)
        if a <= b:
            total += count * (b - a + 1) / (bhi - blo + 1)
    return total


def mix(fig3_bins, long_buckets):
    """Figure 3's counts per bin, each split into its LongAlign-10k part (what longalign-10k.hist
    puts in the bin, at most the bin's count) and the ShareGPT rest."""
    out = []
    for lo, hi, count in fig3_bins:
        n_long = min(count, round(overlap_count(long_buckets, max(lo, 1), hi)))
        out.append((lo, hi, n_long, count - n_long))
    return out


def fmt_bin(lo, hi, count, target):
    return f"{lo}-{hi} {count} {target}\n"


def write_10k(buckets, path):
    n = sum(c for _, _, c in buckets)
    mean = sum(c * (lo + hi) / 2 for lo, hi, c in buckets) / n
    head = f"""# longalign-10k.hist: LongAlign-10k alone (Bai et al., 2024, arXiv 2401.18058), ChatGLM3 tokens.
#
# APPROXIMATE, from measured quantiles: made by scripts/make_longalign_hists.py from
# longalign-10k-quantiles.hist (its header names the source: a strided sample of 240 of the
# 9,888 rows, measured with the Qwen3 tokenizer, so each bucket share is +-3%; median 11,490,
# p90 37,719, max 53,176, 29.6% >= 16k, 12.1% >= 32k Qwen3 tokens).
#
# Tokenizer: lengths are converted to ChatGLM3 tokens, the tokenizer of the paper (sec. 3.2:
# "8k to 64k, measured by ChatGLM tokenizer") and of its Figure 3, by the one row the source
# measured both ways: 63,954 ChatGLM3 tokens (the dataset's `length` column) = 53,176 Qwen3
# tokens, x{CHATGLM3_ROW0 / QWEN3_ROW0:.4f}. The ratio is an ASSUMPTION for every row: it varies with the
# language (the source finds 26% of prompts CJK-dominant) and content. LongAlign also trained
# Llama-2 models on this data; the paper chose ChatGLM's tokenizer "due to its higher
# compression rate for Chinese characters", so the same samples are longer in Llama-2 tokens,
# by an amount neither source gives. Tokenize your own data with your model's tokenizer
# (scripts/lengths.py).
#
# How it was made: bucket edges = the source's quantiles x{CHATGLM3_ROW0 / QWEN3_ROW0:.4f}; the lowest bucket,
# whose lower end the source does not publish, starts at the paper's minimum, 8192. Lengths
# are uniform within a bucket. The quantiles measure the prompt side (everything before the
# answer); the ratio was taken against the `length` column, which counts the whole sample, so
# the buckets are read as whole-sample lengths. Target (response tokens): 100-1000, uniform,
# an ASSUMPTION kept from the earlier version (document QA and summaries with answers of a few
# hundred tokens). {n:,} samples, mean length {mean:,.0f} tokens (bucket midpoints).
#
# The earlier version of this file spread 10,000 samples evenly over 8k-64k (mean 36,856; 57%
# above 32k); the measured quantiles put half the rows below 13.8k and 18% above 32k.
#
# Format: docs/hist-format.md.
# LO-HI COUNT TARGET
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(head)
        for lo, hi, c in buckets:
            f.write(fmt_bin(lo, hi, c, LONG_TARGET))


def write_mix(rows, long_buckets, path):
    n = sum(a + b for _, _, a, b in rows)
    n_long = sum(a for _, _, a, _ in rows)
    n_10k = sum(c for _, _, c in long_buckets)
    mean = sum((a + b) * (max(lo, 1) + hi) / 2 for lo, hi, a, b in rows) / n
    last = rows[-1][1]
    beyond = round(overlap_count(long_buckets, last + 1, long_buckets[-1][1]))
    capped = [(lo, hi) for lo, hi, a, b in rows if b == 0 and overlap_count(long_buckets, lo, hi) > a + 0.5]
    capped_range = f"{capped[0][0] / 1000:.0f}k-{capped[-1][1] / 1000:.0f}k" if capped else "no bin"
    above = sum(a + b for lo, hi, a, b in rows if lo > 9650)
    long_chat = sum(b for lo, hi, a, b in rows if lo > 9650)
    head = f"""# longalign-mix.hist: LongAlign's training mix, LongAlign-10k + ShareGPT (Bai et al., 2024,
# arXiv 2401.18058), as the paper's Figure 3 (left) shows it, ChatGLM tokens.
#
# The COUNTS are the paper's own length histogram: longalign-fig3-trainmix.hist, digitized from
# the paper's vector figure (about +-5% per bar, bin edges about +-100 tokens; its header names
# the source). 19 bins of about 3.2k tokens, {n:,} samples; the first bin starts at 0 as in the
# figure (labench draws its lengths from 1).
#
# The TARGETS (response tokens) are ASSUMED: the figure does not say which sample came from
# which source, so each bin is split in two lines. The LongAlign-10k part is what
# longalign-10k.hist (measured quantiles, converted to ChatGLM3 tokens) puts in that bin, at
# most the bin's count: 100-1000 response tokens. The rest is ShareGPT chat: 50%-75% of each
# sample is response. Made by scripts/make_longalign_hists.py.
#   LongAlign-10k part: {n_long:,} samples (longalign-10k.hist has {n_10k:,}; it puts more in
#                       {capped_range} than the figure shows there, and {beyond} beyond the figure's last
#                       bar, {last / 1000:.0f}k; the figure is followed)
#   ShareGPT part:      {n - n_long:,} samples, {long_chat:,} of them longer than 9.65k tokens (long
#                       multi-turn conversations: the figure holds {above:,} samples above 9.65k,
#                       more than LongAlign-10k's {n_10k:,} rows)
#   mean length:        {mean:,.0f} tokens (bin midpoints)
#
# The earlier version of this file took LongAlign-10k as evenly spread over 8k-64k and ShareGPT
# as a log-normal capped at 8k (110,000 samples, mean 4,455; 9.1% above 8k, 5.2% above 32k).
# The figure has twice the share above 8k (19.3%) but far fewer above 32k (2.1%): its long
# samples crowd the low end, and 64% of all its samples are under 3.2k tokens.
#
# Format: docs/hist-format.md.
# LO-HI COUNT TARGET
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(head)
        for lo, hi, a, b in rows:
            if b:
                f.write(fmt_bin(lo, hi, b, CHAT_TARGET))
            if a:
                f.write(fmt_bin(lo, hi, a, LONG_TARGET))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    args = ap.parse_args()
    q = read_bins(os.path.join(DATA, "longalign-10k-quantiles.hist"))
    fig3 = read_bins(os.path.join(DATA, "longalign-fig3-trainmix.hist"))
    long_buckets = longalign_10k(q)
    targets = {"longalign-10k.hist": lambda p: write_10k(long_buckets, p),
               "longalign-mix.hist": lambda p: write_mix(mix(fig3, long_buckets), long_buckets, p)}
    stale = 0
    for name, write in targets.items():
        path = os.path.join(DATA, name)
        tmp = f"{path}.tmp.{os.getpid()}"
        write(tmp)
        if args.check:
            same = os.path.exists(path) and open(path, "rb").read() == open(tmp, "rb").read()
            os.unlink(tmp)
            if not same:
                print(f"{path}: differs from what scripts/make_longalign_hists.py makes", file=sys.stderr)
                stale = 1
        else:
            os.replace(tmp, path)
            print(f"wrote {path}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
