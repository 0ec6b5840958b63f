#!/usr/bin/env python3
"""From a chat dataset to a lengths list for `labench hist`.

Reads JSONL (one record a line) in the common chat layouts, tokenizes each record with the
tokenizer you name (a local Hugging Face tokenizer folder or a tokenizer.json file; nothing is
downloaded), and writes one line `LEN TARGET` per record: LEN its tokens, TARGET its response
tokens, the ones the loss is on.

    python3 scripts/lengths.py data.jsonl --tokenizer path/to/tokenizer.json -o lengths.txt
    labench hist lengths.txt -o my-data.hist

Layouts, by the fields of a record:
  messages       [{"role": "system"|"user"|"assistant"|..., "content": "..."}, ...]
                 (content may also be a list of {"type": "text", "text": "..."} parts)
  conversations  ShareGPT's [{"from": "human"|"gpt"|"system", "value": "..."}, ...]
  prompt, response (or completion, output, answer)
  instruction, input, output   (Alpaca; the prompt is instruction and input, joined by "\\n")
The response is every assistant turn (as LongAlign's pre_tokenize.py and assistant-only SFT
label them), or the last one with --last-turn-only. Each text is tokenized on its own, without
special tokens; --per-message N adds N tokens per message (role markers, separators) to the
prompt side, --per-sample N adds N (BOS/EOS) to each sample.

Exit status: 0 ok; 2 unusable input (a missing file, a line that is not JSON, a record in no
known layout, a tokenizer that cannot be loaded), with FILE:LINE and what to do. Output with -o
is written to a temporary name and renamed, so a failure leaves no half-written file.

One data line per record, in the dataset's order (blank JSONL lines are not records): the
record's 0-based position is its data line's, the `index` of `labench plan --emit-batches`.
A record with no response tokens cannot be trained on (labench needs at least one target): it
is written as `0  # line N: skipped, no response tokens`, a length-0 line that labench reads as
a record it plans no batch for, and stderr counts the skipped records and names their lines.
A record that is all response keeps its first token as prompt.
"""
import argparse
import json
import os
import sys

# Never reach a hub: the tokenizer is a local file or folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ASSISTANT = {"assistant", "gpt", "model", "bot", "chatgpt"}
RESPONSE_KEYS = ("response", "completion", "output", "answer")


class BadInput(Exception):
    pass


def text_of(content, where):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "".join(parts)
    raise BadInput(f"{where}: content is a {type(content).__name__}, want a string or a list of text parts")


def turns(rec, where):
    """The record as [(is_response, text), ...]."""
    if not isinstance(rec, dict):
        raise BadInput(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    for key, role_key, text_key in (("messages", "role", "content"), ("conversations", "from", "value")):
        if key in rec:
            msgs = rec[key]
            if not isinstance(msgs, list):
                raise BadInput(f"{where}: \"{key}\" must be a list of messages")
            out = []
            for i, m in enumerate(msgs):
                if not isinstance(m, dict) or role_key not in m:
                    raise BadInput(f"{where}: {key}[{i}] has no \"{role_key}\"")
                role = str(m[role_key]).lower()
                out.append((role in ASSISTANT, text_of(m.get(text_key), f"{where}: {key}[{i}]")))
            return out
    if "prompt" in rec:
        resp = next((k for k in RESPONSE_KEYS if k in rec), None)
        if resp is None:
            raise BadInput(f"{where}: \"prompt\" without a response (want one of {', '.join(RESPONSE_KEYS)})")
        return [(False, text_of(rec["prompt"], where)), (True, text_of(rec[resp], where))]
    if "instruction" in rec and "output" in rec:
        prompt = text_of(rec["instruction"], where)
        extra = text_of(rec.get("input"), where)
        if extra:
            prompt = prompt + "\n" + extra
        return [(False, prompt), (True, text_of(rec["output"], where))]
    keys = ", ".join(sorted(rec)) or "none"
    raise BadInput(f"{where}: no known layout (fields: {keys}); want messages, conversations, "
                   "prompt/response or instruction/input/output")


def load_tokenizer(path, trust_remote_code):
    """A counting function: list of texts -> list of token counts."""
    if not os.path.exists(path):
        raise BadInput(f"{path}: no such tokenizer file or folder (give a tokenizer.json or a local "
                       "Hugging Face tokenizer folder; nothing is downloaded)")
    file = path if os.path.isfile(path) else os.path.join(path, "tokenizer.json")
    if os.path.isfile(file):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            Tokenizer = None
        if Tokenizer is not None:
            try:
                tok = Tokenizer.from_file(file)
            except Exception as e:  # the library's own message says what is wrong
                raise BadInput(f"{file}: not a tokenizer.json the tokenizers library can load: {e}")
            return lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    if os.path.isdir(path):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise BadInput(f"{path}: has no tokenizer.json usable without the transformers library, and "
                           "transformers is not installed (pip install transformers, or point at a tokenizer.json "
                           "with the tokenizers library installed)")
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        except Exception as e:
            raise BadInput(f"{path}: transformers cannot load a tokenizer from this folder: {e}")
        return lambda texts: [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    raise BadInput(f"{path}: reading a tokenizer.json needs the tokenizers library (pip install tokenizers)")


def records(path):
    """(line number, record) for every non-blank line."""
    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as e:
        raise BadInput(f"{path}: cannot open: {e.strerror}")
    with f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise BadInput(f"{path}:{n}: not JSON ({e.msg} at column {e.colno}); "
                                   "the input is JSONL, one record a line")
        except UnicodeDecodeError as e:
            raise BadInput(f"{path}: not UTF-8 text ({e.reason})")


def count_lengths(path, count, last_turn_only, per_message, per_sample, batch=512):
    """Yields (line, total tokens, response tokens) per record."""
    pending = []

    def flush():
        texts = [t for _, ts in pending for _, t in ts]
        counts = iter(count(texts)) if texts else iter(())
        for n, ts in pending:
            c = [next(counts) for _ in ts]
            total = sum(c) + per_message * len(ts) + per_sample
            resp = [i for i, (is_resp, _) in enumerate(ts) if is_resp]
            if last_turn_only:
                resp = resp[-1:]
            yield n, total, sum(c[i] for i in resp)
        pending.clear()

    for n, rec in records(path):
        pending.append((n, turns(rec, f"{path}:{n}")))
        if len(pending) >= batch:
            yield from flush()
    yield from flush()


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="lengths.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n", 1)[0], epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("jsonl", help="the dataset, JSONL ('-': stdin)")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json, or a local Hugging Face tokenizer folder")
    ap.add_argument("-o", "--out", help="write the lengths list here (default: stdout)")
    ap.add_argument("--last-turn-only", action="store_true", help="the response is the last assistant turn only")
    ap.add_argument("--per-message", type=int, default=0, metavar="N",
                    help="tokens a chat template adds per message (default 0)")
    ap.add_argument("--per-sample", type=int, default=0, metavar="N",
                    help="tokens added per sample, e.g. BOS/EOS (default 0)")
    ap.add_argument("--trust-remote-code", action="store_true",
                    help="let transformers run the tokenizer folder's own code (ChatGLM's needs it)")
    args = ap.parse_args(argv)
    if args.per_message < 0 or args.per_sample < 0:
        print("lengths.py: --per-message and --per-sample must be 0 or more", file=sys.stderr)
        return 2

    tmp = None
    out = sys.stdout
    try:
        count = load_tokenizer(args.tokenizer, args.trust_remote_code)
        if args.out:
            tmp = f"{args.out}.tmp.{os.getpid()}"
            out = open(tmp, "w", encoding="utf-8")
        written = 0
        skipped = []
        out.write(f"# lengths of {args.jsonl}, tokenizer {args.tokenizer}: LEN TARGET (response tokens)\n")
        for n, total, resp in count_lengths(args.jsonl, count, args.last_turn_only, args.per_message,
                                            args.per_sample):
            resp = min(resp, total - 1)  # the first token has nothing before it to be predicted from
            if resp < 1:  # keep the record's line, so later lines keep their index
                skipped.append(n)
                out.write(f"0  # line {n}: skipped, no response tokens\n")
                continue
            out.write(f"{total} {resp}\n")
            written += 1
        if args.out:
            out.close()
            os.replace(tmp, args.out)
            tmp = None
    except BadInput as e:
        print(f"lengths.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"lengths.py: {e}", file=sys.stderr)
        return 2
    finally:
        if tmp:  # a failure: nothing half-written stays
            out.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
    msg = f"lengths.py: {written} samples"
    if skipped:
        lines = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        msg += f"; skipped {len(skipped)} with no response tokens (line {lines}; written as length 0)"
    print(msg + (f" -> {args.out}" if args.out else ""), file=sys.stderr)
    if written == 0:
        print("lengths.py: no sample has a response: nothing for labench to plan", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
