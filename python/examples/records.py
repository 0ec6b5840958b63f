"""Token ids of a JSONL dataset's records, tokenized the way scripts/lengths.py counts them (each
text of a record on its own, no special tokens, concatenated), so that record i has exactly the
tokens line i of the lengths file says. Run lengths.py with --per-message 0 --per-sample 0 (its
defaults); for multi-turn chats add --last-turn-only, so that a record's loss targets are its
last tokens, as the plan assumes."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from lengths import turns  # noqa: E402


def tokenize_jsonl(path, tokenizer_json):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tokenizer_json)
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue  # not a record: lengths.py skips blank lines too
            texts = [t for _, t in turns(json.loads(line), f"{path}:{n}")]
            out.append([i for e in tok.encode_batch(texts, add_special_tokens=False) for i in e.ids])
    return out


def example_args(doc):
    """The options both examples take: what they read, and the plan's shape to check it against."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    for a in ("--plan", "--lengths", "--data", "--tokenizer", "--model"):
        ap.add_argument(a, required=True)
    ap.add_argument("--grad-accum", type=int, required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    return ap
