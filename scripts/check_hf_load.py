#!/usr/bin/env python3
"""Checks that a labench checkpoint loads into transformers' LlamaForCausalLM.

usage: scripts/check_hf_load.py CHECKPOINT.safetensors

1. Reads the file with the standard library only and checks its layout: header length, JSON
   header, F32 entries whose data_offsets tile the data, the config keys in __metadata__.
2. If torch and transformers import, builds a LlamaConfig from that metadata, loads the file
   through LlamaForCausalLM.from_pretrained (transformers' own safetensors path), and prints
   for every tensor the largest absolute difference between the model's weight and the bytes
   in the file. Any missing or unexpected key, or any difference, fails.
   Without torch/transformers it says so and stops after step 1 (exit status 0).

Exit status: 0 when everything checked passed, 1 when something did not, 2 on bad usage.
"""
import json
import os
import struct
import sys
import tempfile

INT_KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads"]
FLOAT_KEYS = ["rms_norm_eps", "rope_theta"]


def read_checkpoint(path):
    """Returns (metadata dict, {name: (shape, begin, end)}, data start); raises ValueError."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("shorter than 8 bytes")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise ValueError(f"header length {n} runs past the end of the file ({size} bytes)")
        header = json.loads(f.read(n).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    if n % 8:
        print(f"note: header length {n} is not a multiple of 8")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict):
        raise ValueError("no __metadata__ object")
    data_size = size - 8 - n
    entries = {}
    for name, e in header.items():
        if e.get("dtype") != "F32":
            raise ValueError(f"{name}: dtype {e.get('dtype')}, expected F32")
        shape, (begin, end) = e["shape"], e["data_offsets"]
        count = 1
        for s in shape:
            count *= s
        if not 0 <= begin <= end <= data_size or end - begin != 4 * count:
            raise ValueError(f"{name}: data_offsets [{begin}, {end}] do not fit shape {shape}")
        entries[name] = (shape, begin, end)
    spans = sorted((b, e) for _, b, e in entries.values())
    covered = 0
    for b, e in spans:
        if b != covered:
            raise ValueError(f"tensor data has a gap or an overlap at byte {covered}")
        covered = e
    if covered != data_size:
        raise ValueError(f"tensors cover {covered} of {data_size} data bytes")
    for key in INT_KEYS + FLOAT_KEYS:
        if not isinstance(meta.get(key), str):
            raise ValueError(f"__metadata__ lacks the string '{key}'")
    if meta.get("format") != "pt":
        print('note: __metadata__ "format" is not "pt"; transformers may refuse the file')
    return meta, entries, 8 + n


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path = os.path.abspath(argv[1])
    try:
        meta, entries, data_start = read_checkpoint(path)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        print(f"{path}: {e}")
        return 1
    config = {k: int(meta[k]) for k in INT_KEYS}
    config.update({k: float(meta[k]) for k in FLOAT_KEYS})
    print(f"{path}: {len(entries)} F32 tensors, layout ok; config {config}")

    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"skipped the transformers check: {e}")
        return 0

    hf_config = transformers.LlamaConfig(**config, tie_word_embeddings=False, attention_bias=False)
    with tempfile.TemporaryDirectory() as tmp:
        hf_config.save_pretrained(tmp)
        os.symlink(path, os.path.join(tmp, "model.safetensors"))
        model, info = transformers.LlamaForCausalLM.from_pretrained(
            tmp, torch_dtype=torch.float32, output_loading_info=True)
    failed = False
    for what in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(what):
            print(f"FAIL {what}: {info[what]}")
            failed = True

    state = model.state_dict()
    with open(path, "rb") as f:
        for name, (shape, begin, end) in entries.items():
            f.seek(data_start + begin)
            raw = bytearray(f.read(end - begin))
            want = torch.frombuffer(raw, dtype=torch.float32).reshape(shape) if raw else torch.zeros(shape)
            got = state.get(name)
            if got is None:
                print(f"FAIL {name}: not a parameter of LlamaForCausalLM")
                failed = True
                continue
            if tuple(got.shape) != tuple(shape):
                print(f"FAIL {name}: model shape {tuple(got.shape)}, file shape {tuple(shape)}")
                failed = True
                continue
            diff = (got.detach().float() - want).abs().max().item() if want.numel() else 0.0
            print(f"{'ok  ' if diff == 0 else 'FAIL'} {name} {list(shape)} max |diff| = {diff:g}")
            failed |= diff != 0

    with torch.no_grad():
        tokens = torch.arange(min(8, config["vocab_size"])).unsqueeze(0)
        logits = model(tokens).logits
    finite = bool(torch.isfinite(logits).all())
    print(f"forward on {tokens.shape[1]} tokens: logits {tuple(logits.shape)}, finite: {finite}")
    failed |= not finite
    print("FAILED" if failed else "all tensors match")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
