"""Streaming reader of a labench batches file (`labench plan --emit-batches`), for one rank.

Pure Python, no dependencies. A rank parses only its own lines; the others are checked by
their prefix (step, micro-step, rank must come in execution order) and otherwise skipped.

The reader never hands out part of a plan:
  - opening checks the header against what the caller trains with (world size, gradient
    accumulation, pack length, rank) and against the lengths file (record count and CRC-32);
  - with verify=True (the default) opening also reads the file once to its trailer, checking
    the line count and the CRC-32 of every byte, so a truncated or altered file is refused
    before the first step;
  - steps are yielded whole: every line of a step (all ranks, all micro-steps) is read and
    checked before that step's micro-batches come out.
Every error is a PlanError whose message starts with FILE:LINE and names the field.
"""
import gzip
import json
import re
import zlib
from collections import namedtuple

SCHEMA = "labench-batches"
VERSION = 1

# One sequence of a row. The segment is the record's LAST `tokens` tokens (a record longer than
# max_tokens is truncated: then record_tokens > tokens), and its last `target_tokens` are loss
# targets, each weighing `weight`.
Segment = namedtuple("Segment", "index tokens target_tokens weight record_tokens")

# This rank's share of one optimizer step: micro_batches[m] is a list of rows (lists of
# Segment); an idle micro-step is [].
Step = namedtuple("Step", "step micro_batches")

_PREFIX = re.compile(rb'^\{"step":(\d+),"micro_step":(\d+),"rank":(\d+),')


class PlanError(ValueError):
    """A batches file that cannot be trained on, or one that does not fit the training job."""


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def file_crc32(path):
    """(CRC-32, bytes) of a file, as labench writes them in the header's "source"."""
    crc, n = 0, 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
            n += len(block)
    return crc, n


def count_records(path):
    """Data lines of a lengths file: lines with something left after '#' comments are cut."""
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if line.split(b"#", 1)[0].strip():
                n += 1
    return n


def read_header(path):
    """The header object (line 1) of a batches file."""
    try:
        with _open(path) as f:
            first = f.readline()
    except (OSError, EOFError) as e:
        raise PlanError(f"{path}:1: cannot read the header: {e}")
    try:
        h = json.loads(first)
    except ValueError as e:
        raise PlanError(f"{path}:1: the header is not JSON ({e}); is this a labench batches file?")
    if not isinstance(h, dict) or h.get("schema") != SCHEMA:
        raise PlanError(f"{path}:1: schema: not a labench batches file (want \"schema\": \"{SCHEMA}\")")
    if h.get("version") != VERSION:
        raise PlanError(f"{path}:1: version: {h.get('version')!r}, this reader knows version {VERSION}")
    for k in ("strategy", "world_size", "grad_accum", "max_tokens", "epochs", "steps", "lines", "samples",
              "records", "source", "weighting"):
        if k not in h:
            raise PlanError(f"{path}:1: {k}: missing from the header")
    return h


class BatchPlan:
    """One rank's view of a batches file.

    world_size, grad_accum and max_tokens are what the training job runs with: they must equal
    the plan's (the weights of a step sum to 1 over exactly these ranks and micro-steps, and rows
    are packed to that length). lengths: the lengths file the plan was made from; its record
    count and CRC-32 must match the header's (give None to skip, e.g. for a --len-dist plan).
    """

    def __init__(self, path, *, rank, world_size, grad_accum, max_tokens, lengths=None, verify=True):
        self.path = str(path)
        self.h = h = read_header(self.path)
        for field, want in (("world_size", world_size), ("grad_accum", grad_accum), ("max_tokens", max_tokens)):
            if want is not None and h[field] != want:
                raise PlanError(f"{self.path}:1: {field}: the plan has {h[field]}, the training job {want}; "
                                f"train with {field} = {h[field]}, or plan again with yours")
        if not (isinstance(rank, int) and 0 <= rank < h["world_size"]):
            raise PlanError(f"{self.path}:1: world_size: rank {rank} is not one of the plan's "
                            f"{h['world_size']} ranks (0..{h['world_size'] - 1})")
        if h["lines"] != h["steps"] * h["grad_accum"] * h["world_size"]:
            raise PlanError(f"{self.path}:1: lines: {h['lines']} is not steps x grad_accum x world_size")
        self.rank = rank
        if lengths is not None:
            self.check_source(lengths)
        if verify:
            self.verify()

    @property
    def header(self):
        return self.h

    def __len__(self):
        return self.h["steps"]

    def check_source(self, lengths):
        src = self.h["source"]
        crc, size = file_crc32(lengths)
        n = count_records(lengths)
        if src.get("kind") == "lengths" and n != self.h["records"]:
            raise PlanError(f"{self.path}:1: records: the plan was made from {self.h['records']} records, "
                            f"{lengths} has {n}; plan again from this lengths file")
        if f"{crc:08x}" != src.get("crc32") or size != src.get("bytes"):
            raise PlanError(f"{self.path}:1: source.crc32: {lengths} (crc32 {crc:08x}, {size} bytes) is not the "
                            f"file the plan was made from ({src.get('path')}: crc32 {src.get('crc32')}, "
                            f"{src.get('bytes')} bytes); plan again from this lengths file")

    def verify(self):
        """Reads the whole file once: the trailer must close it, with the line count and CRC-32
        of everything before it."""
        crc, lines, last, tail = 0, 0, None, None
        try:
            with _open(self.path) as f:
                for n, line in enumerate(f, 1):
                    if tail is not None:
                        raise PlanError(f"{self.path}:{n}: end: a line after the trailer")
                    if line.startswith(b'{"end":'):
                        tail = (n, line)
                        continue
                    crc = zlib.crc32(line, crc)
                    lines = n
                    last = line
        except (OSError, EOFError, zlib.error) as e:
            raise PlanError(f"{self.path}:{lines + 1}: the file is cut short or damaged ({e}); write it again")
        if tail is None:
            cut = ", unterminated" if last and not last.endswith(b"\n") else ""
            raise PlanError(f"{self.path}:{lines + 1}: end: no trailer line: the file is truncated "
                            f"(last line {lines}{cut}); write it again")
        n, line = tail
        try:
            t = json.loads(line)
        except ValueError as e:
            raise PlanError(f"{self.path}:{n}: end: the trailer is not JSON ({e})")
        if t.get("lines") != self.h["lines"] or lines - 1 != self.h["lines"]:
            raise PlanError(f"{self.path}:{n}: lines: the trailer says {t.get('lines')} batch lines, the header "
                            f"{self.h['lines']}, the file holds {lines - 1}")
        if t.get("crc32") != f"{crc:08x}":
            raise PlanError(f"{self.path}:{n}: crc32: the file's bytes (crc32 {crc:08x}) are not what labench "
                            f"wrote ({t.get('crc32')}): it was altered or damaged; write it again")

    def _segment(self, seg, where):
        if not (isinstance(seg, list) and len(seg) in (4, 5)):
            raise PlanError(f"{where}: rows: a segment is [index, tokens, target_tokens, weight(, record_tokens)]")
        idx, tok, tgt, w = seg[:4]
        full = seg[4] if len(seg) == 5 else tok
        if not (isinstance(idx, int) and 0 <= idx < self.h["records"]):
            raise PlanError(f"{where}: index: {idx!r} is not a record of the {self.h['records']}")
        if not (isinstance(tok, int) and 1 <= tok <= self.h["max_tokens"]):
            raise PlanError(f"{where}: tokens: {tok!r} is not in 1..max_tokens ({self.h['max_tokens']})")
        if not (isinstance(tgt, int) and 0 <= tgt < tok):
            raise PlanError(f"{where}: target_tokens: {tgt!r} is not in 0..tokens-1 ({tok - 1})")
        if not (isinstance(w, (int, float)) and 0 <= w <= 1):
            raise PlanError(f"{where}: weight: {w!r} is not in [0, 1]")
        if not (isinstance(full, int) and full >= tok and (len(seg) == 4 or full > tok)):
            raise PlanError(f"{where}: record_tokens: {full!r} must exceed tokens ({tok})")
        return Segment(idx, tok, tgt, float(w), full)

    def _rows(self, raw, where):
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise PlanError(f"{where}: not JSON ({e}): the file is damaged; write it again")
        rows = obj.get("rows") if isinstance(obj, dict) else None
        if not isinstance(rows, list):
            raise PlanError(f"{where}: rows: missing or not a list")
        out = []
        for row in rows:
            if not isinstance(row, list) or not row:
                raise PlanError(f"{where}: rows: a row is a non-empty list of segments")
            segs = [self._segment(s, where) for s in row]
            if sum(s.tokens for s in segs) > self.h["max_tokens"]:
                raise PlanError(f"{where}: rows: a row of {sum(s.tokens for s in segs)} tokens is over max_tokens "
                                f"({self.h['max_tokens']})")
            out.append(segs)
        return out

    def steps(self, start=0):
        """Yields Step(step, micro_batches) for this rank from optimizer step `start` on (to resume a
        run: the step after the last one the checkpoint holds)."""
        h, W, A = self.h, self.h["world_size"], self.h["grad_accum"]
        if not (0 <= start <= h["steps"]):
            raise PlanError(f"{self.path}: start step {start} is not in 0..{h['steps']}")
        expect = 0                              # batch line number, 0-based, in execution order
        mine = [None] * A
        with _open(self.path) as f:
            try:
                f.readline()
                n = 1
                for line in f:
                    n += 1
                    where = f"{self.path}:{n}"
                    if expect == h["lines"]:
                        if not line.startswith(b'{"end":'):
                            raise PlanError(f"{where}: end: want the trailer after {h['lines']} batch lines")
                        return
                    m = _PREFIX.match(line)
                    if not m or not line.endswith(b"\n"):
                        raise PlanError(f"{where}: step: not a batch line (the file is damaged or cut short)")
                    s, ms, r = (int(x) for x in m.groups())
                    want = (expect // (A * W), expect // W % A, expect % W)
                    if (s, ms, r) != want:
                        raise PlanError(f"{where}: step: (step, micro_step, rank) = ({s}, {ms}, {r}), want {want}")
                    expect += 1
                    if s < start:
                        continue
                    if r == self.rank:
                        mine[ms] = self._rows(line, where)
                    if ms == A - 1 and r == W - 1:   # the step's last line: it is whole
                        yield Step(s, mine)
                        mine = [None] * A
            except (OSError, EOFError, zlib.error) as e:
                raise PlanError(f"{self.path}:{n + 1}: the file is cut short or damaged ({e})")
        raise PlanError(f"{self.path}:{n + 1}: end: the file ends after {expect} of {h['lines']} batch lines "
                        "(truncated); write it again")

    def micro_batches(self, start=0):
        """This rank's micro-batches in order, grad_accum per step: (step, micro_step, rows)."""
        for st in self.steps(start):
            for m, rows in enumerate(st.micro_batches):
                yield st.step, m, rows
