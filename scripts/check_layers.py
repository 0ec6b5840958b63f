#!/usr/bin/env python3
"""The layer check: labench's C and CUDA sources form one stack of folders, and this keeps it so.

The folders, top to bottom (print them with --list):

    bench/cli/ > bench/results/ > bench/run/ > bench/analysis/ > bench/input/ > bench/comm/ >
    model/ > profile/ > strategies/ > [kernels/cpu/ | kernels/cuda/] > kernels/ > common/

A file may include headers of its own folder and of folders BELOW it, never above: so a folder
can be read, tested and reused knowing only what lies under it. kernels/cpu/ and kernels/cuda/
are siblings on one step (two backends of kernels/backend.h): each may include kernels/*.h and
its own folder, not the other. tests/ (with tests/gpu/, tests/fuzz/) sits outside the stack and
may include anything; it is not read here.

Reads every .c .h .cu .cuh under bench/ common/ kernels/ model/ profile/ strategies/ (and any
directly in the repository root), and prints one line per problem, `FILE:LINE: what is wrong`:

  upward include    an #include "..." of a header in a folder above the file's own, or in a
                    sibling folder, or outside the stack (tests/, a stray folder)
  missing include   an #include "..." that names no file of the repository (project headers
                    are found from the including file's folder, then from the root, as -I. does;
                    system headers take <...>)
  include cycle     modules that include each other, directly or through others. A module is a
                    path without its extension (bench/run/dp.c + bench/run/dp.h = bench/run/dp);
                    A depends on B when A.c or A.h includes B.h. So run.c including dp.h while
                    dp.h includes run.h is a cycle, even inside one folder. Each cycle is printed
                    with the file:line of every edge; break one edge.
  stray file        a source file in a folder that is not a layer (bench/ keeps no source of its
                    own; new code goes into the layer it belongs to)
  CUDA header       a CUDA header (cuda*.h, cublas*, cudnn*, nccl.h, cupti*, nvtx3/*, ...) included
                    outside kernels/cuda/, profile/ and bench/comm/: everything else builds and
                    runs without the toolkit
  exits below CLI   a call of exit(), _exit(), _Exit(), quick_exit(), abort() or die_input() in a
                    file below bench/cli/. Below the CLI a function returns -1 with a message in
                    (char *err, size_t errlen); only bench/cli/ turns that into exit status 2.
                    The few legitimately fatal paths are listed in EXIT_ALLOWED below, each with
                    its reason; comments and string literals are ignored.

Exit status: 0 and one summary line (`layers: N files, M includes, ok`) when clean; 1 with the
problems when not; 2 on a usage error. `make test` runs it through tests/test_layers.c.

    scripts/check_layers.py            # the repository this script sits in
    scripts/check_layers.py ROOT       # another tree (tests/test_layers.c plants bad ones)
    scripts/check_layers.py --list     # the stack and the rules
"""
import fnmatch
import os
import re
import sys

# The stack, top to bottom. One entry per step; a step with two folders holds siblings, which
# may not include each other. Each folder with a line saying what lives there.
STACK = [
    [("bench/cli", "the commands: options, the command table, usage text; the only layer that exits")],
    [("bench/results", "results files: schema, writer, the one reader, report, timeline, compare")],
    [("bench/run", "running a plan: batches, the runner, real data parallelism, validation loss")],
    [("bench/analysis", "plan and run metrics, the memory budget, the time fit and prediction")],
    [("bench/input", "inputs: length histograms, sampling, grad batches, tasks, synthetic data")],
    [("bench/comm", "communication: the cost model, the MPI/NCCL world, collectives, bandwidth")],
    [("model", "the model: config, parameters, one training step, safetensors")],
    [("profile", "profiling: Chrome traces, NVTX ranges, CUPTI, intervals")],
    [("strategies", "batching strategies: pure C, no I/O")],
    [("kernels/cpu", "the CPU backend"), ("kernels/cuda", "the CUDA backend")],
    [("kernels", "the backend op table (kernels/backend.h)")],
    [("common", "errors and QUOTE, bounded input, atomic output, parsing, host facts, progress, rng")],
]
RANK = {folder: i for i, step in enumerate(STACK) for folder, _ in step}
ROOTS = sorted({f.split("/")[0] for f in RANK})          # the top-level folders that are read
SOURCE_EXT = (".c", ".h", ".cu", ".cuh")
HEADER_EXT = (".h", ".cuh")

# CUDA headers, by the name in the #include, and the folders that may include them.
CUDA_HEADER = re.compile(r"^(cuda[^/]*\.h|cuda/.*|cublas[^/]*|cudnn[^/]*|nccl\.h|cupti[^/]*|nvtx3/.*"
                         r"|nvToolsExt[^/]*|curand[^/]*|cufft[^/]*|cusparse[^/]*|cusolver[^/]*|nvml\.h"
                         r"|cooperative_groups[^/]*)$")
CUDA_FOLDERS = ("kernels/cuda", "profile", "bench/comm")

# Calls that end the process, forbidden below bench/cli/.
EXIT_CALLS = ("exit", "_exit", "_Exit", "quick_exit", "abort", "die_input")

# The allowed exits below the CLI: (file, function (a glob on the enclosing function's name),
# the calls allowed there, why). Keep it short: each entry is a place where a returned error
# cannot reach anyone. An entry whose file exists but that allows nothing is reported, so the
# list shrinks when the code does.
EXIT_ALLOWED = [
    ("bench/comm/world_mpi.c", "end_job", ("exit", "_exit", "abort"),
     "real data parallelism's documented fatal path: the job ends with status 2 once every rank "
     "has heard the verdict (MPI_Abort when one no longer answers)"),
    ("bench/comm/world_mpi.c", "dp_fail", ("exit",),
     "real DP's documented fatal path: a rank's error before the world is up ends that rank"),
    ("bench/comm/world_nompi.c", "dp_fail", ("exit",),
     "the no-MPI build of the same contract: dp_fail never returns"),
    ("bench/results/report.c", "run_gnuplot", ("_exit",),
     "the forked child when exec of gnuplot fails: _exit is how a fork's child ends without "
     "running the parent's exit handlers"),
    ("bench/comm/world_nompi.c", "unreachable", ("abort",),
     "internal error: the --dp real machinery called in a build without MPI"),
    ("bench/run/batch.c", "batch_build", ("abort",),
     "internal error (an assertion): batch_build made a malformed micro-batch"),
    ("model/model.c", "batch_fits", ("abort",),
     "internal error (an assertion): the runner handed the model a batch it was not sized for"),
    ("kernels/cpu/backend_cpu.c", "cpu_free", ("abort",),
     "internal error (an assertion): free of a pointer the backend did not allocate"),
    ("kernels/cpu/ops_impl.h", "*", ("abort",),
     "out of host memory inside a CPU op: the ops of kernels/backend.h return nothing"),
    ("kernels/cuda/backend_cuda.cu", "cuda_free", ("abort",),
     "internal error (an assertion): free of a pointer the arena did not allocate"),
    ("kernels/cuda/backend_cuda.cu", "cuda_mark", ("abort",),
     "internal error (an assertion): a timing mark slot out of range"),
    ("kernels/cuda/backend_cuda.cu", "cuda_seconds_between", ("abort",),
     "internal error (an assertion): a timing mark slot out of range"),
    ("kernels/cuda/ops.cu", "cuda_cast", ("abort",),
     "internal error (an assertion): a cast the backend never offers"),
    ("kernels/cuda/attention.cu", "dmax_for", ("exit",),
     "a head dim over the kernels' 128 inside an op, which has no error return"),
    ("kernels/cuda/attention.cu", "launch_attention_backward", ("exit",),
     "out of GPU memory for the attention backward's scratch inside an op, which has no error return"),
    ("kernels/cuda/backend_cuda.cu", "host_stage", ("exit",),
     "out of host memory staging a transfer inside an op, which has no error return"),
    ("kernels/cuda/attention.cu", "cuda_attention_cudnn_declined", ("exit",),
     "--attention cudnn asked for cuDNN and cuDNN refused the shape inside an op, which has no error "
     "return (auto falls back to labench's kernels instead)"),
    ("kernels/cuda/attention_cudnn.cu", "call_mem", ("exit",),
     "out of GPU memory for cuDNN's workspace inside an op, which has no error return"),
    ("kernels/cuda/attention_cudnn.cu", "run_graph", ("exit",),
     "a cuDNN execution error inside an op, like CUDA_CHECK's"),
    ("kernels/cuda/common.cuh", "cu*_check_", ("exit",),
     "a CUDA or cuBLAS error inside an op, which has no way to report failure (CUDA_CHECK)"),
]


SELF = "scripts/check_layers.py"


def allow_line(f, glob):
    """The line of this script where EXIT_ALLOWED names (f, glob), for a FILE:LINE message."""
    with open(os.path.abspath(__file__), encoding="utf-8") as fh:
        for k, line in enumerate(fh, 1):
            if '("%s", "%s"' % (f, glob) in line:
                return k
    return 1


# ---- reading C: comments and strings out, line numbers kept ----------------------------------

def strip(text, strings):
    """text with comments blanked (and string/char literals emptied when strings is true); every
    newline stays where it was, so line numbers still hold."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" ")
            i = j
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            lit = text[i:j]
            # an #include "..." keeps its name: it is read from the comment-free text
            out.append(c + c + "\n" * lit.count("\n") if strings else lit)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]*)[>"]')


def includes(text):
    """(line, '<' or '"', name) of every #include outside comments."""
    return [(k + 1, m.group(1), m.group(2)) for k, line in enumerate(strip(text, False).split("\n"))
            for m in [INCLUDE.match(line)] if m]


def directive_lines(lines):
    """Indices of the lines that belong to a preprocessor directive (continuations included)."""
    out, cont = set(), False
    for k, line in enumerate(lines):
        if cont or line.lstrip().startswith("#"):
            out.add(k)
            cont = line.rstrip().endswith("\\")
        else:
            cont = False
    return out


EXIT_CALL = re.compile(r"(?<![\w.>])(" + "|".join(EXIT_CALLS) + r")\s*\(")


def function_name(header):
    """The name a function definition's header declares: the identifier before its parameter
    list (OP(name)(...) gives name); None when it is not a function."""
    depth = 0
    for m in re.finditer(r"[()]|\w+", header):
        t = m.group(0)
        if t == "(":
            depth += 1
        elif t == ")":
            depth -= 1
        elif depth == 0 and t not in ("__attribute__", "__declspec", "alignas", "_Alignas"):
            after = header[m.end():]
            if after.lstrip().startswith("("):
                inner = re.match(r"\s*\(\s*(\w+)\s*\)\s*\(", after)
                return inner.group(1) if inner else t
    return None


def exit_calls(text):
    """(line, callee, enclosing function) of every exit-like call: inside a function body, or in
    a #define (whose name is then the function). Declarations and prototypes are not calls."""
    code = strip(text, True)
    lines = code.split("\n")
    directives = directive_lines(lines)
    found = []
    # braces: a stack of (kind, name); kind is 'fn' for a function body (and what nests in it),
    # 'pass' for extern "C" { / namespace X {, 'other' for struct bodies and initializers
    stack, header, macro = [], "", None
    for k, line in enumerate(lines):
        if k in directives:
            m = re.match(r"\s*#\s*define\s+(\w+)", line)
            if m:
                macro = m.group(1)
            for c in EXIT_CALL.finditer(line):
                found.append((k + 1, c.group(1), macro or "#directive"))
            if not line.rstrip().endswith("\\"):
                macro = None
            continue
        pos = 0
        for m in re.finditer(r"[{};]", line):
            seg = line[pos:m.start()]
            pos = m.end()
            fn = next((name for kind, name in reversed(stack) if kind == "fn"), None)
            if fn is not None:
                found.extend((k + 1, c.group(1), fn) for c in EXIT_CALL.finditer(seg))
            else:
                header += " " + seg
            if m.group(0) == "{":
                if fn is not None:
                    stack.append(("fn", fn))
                else:
                    h = header.strip()
                    if re.match(r"^(extern\s*\"\"|namespace\b)", h) and "(" not in h:
                        stack.append(("pass", None))
                    elif "(" in h and not re.match(r"^(typedef|struct|union|enum)\b", h) \
                            and "=" not in re.sub(r"\([^()]*\)", "", h):
                        stack.append(("fn", function_name(h) or "?"))
                    else:
                        stack.append(("other", None))
                header = ""
            elif m.group(0) == "}":
                if stack:
                    stack.pop()
                header = ""
            else:
                header = ""
        seg = line[pos:]
        fn = next((name for kind, name in reversed(stack) if kind == "fn"), None)
        if fn is not None:
            found.extend((k + 1, c.group(1), fn) for c in EXIT_CALL.finditer(seg))
        else:
            header += " " + seg
    return found


# ---- the tree ----------------------------------------------------------------------------------

def folder_of(rel):
    return os.path.dirname(rel)


def source_files(root):
    """Every source file under the stack's top-level folders, and directly in root."""
    out = [f for f in os.listdir(root) if f.endswith(SOURCE_EXT) and os.path.isfile(os.path.join(root, f))]
    for top in ROOTS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in filenames:
                if f.endswith(SOURCE_EXT):
                    out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out)


def resolve(root, rel, name):
    """The repository path an #include "name" in rel reaches (its folder first, then the root,
    as the compiler with -I. does), or None."""
    for base in (folder_of(rel), ""):
        cand = os.path.normpath(os.path.join(base, name)).replace(os.sep, "/")
        if not cand.startswith("../") and os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def stack_line():
    return " > ".join("[" + " | ".join(f + "/" for f, _ in step) + "]" if len(step) > 1 else step[0][0] + "/"
                      for step in STACK)


def module(path):
    return os.path.splitext(path)[0]


def sccs(graph):
    """Strongly connected components (Tarjan), each a sorted list of nodes."""
    index, low, on, st, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(max(10000, 4 * len(graph)))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        st.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = st.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_cycle(graph, start, members):
    """The shortest cycle through start inside members, as a node list start..start."""
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return [start] + path[::-1][1:] + [start] if path[-1] == start else None
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return None


def check(root):
    files = source_files(root)
    problems = []          # (file, line, message)
    n_includes = 0
    graph, edge_at = {}, {}  # module -> modules; (a, b) -> "file:line includes header"
    allowed_used = set()

    def bad(f, line, msg):
        problems.append((f, line, msg))

    for rel in files:
        folder = folder_of(rel)
        if folder not in RANK:
            bad(rel, 1, "stray file: %s is not a layer folder; move the file into the layer it belongs to "
                "(layers, top to bottom: %s)" % ((folder or ".") + "/", stack_line()))
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        mod = module(rel)
        graph.setdefault(mod, set())
        for line, kind, name in includes(text):
            n_includes += 1
            target = resolve(root, rel, name) if kind == '"' else None
            if target is None and CUDA_HEADER.match(name):
                if folder not in CUDA_FOLDERS:
                    bad(rel, line, "CUDA header: includes %s%s%s outside %s; keep CUDA behind kernels/backend.h "
                        "(or a profile/ or bench/comm/ interface with a *_nocuda.c stub)"
                        % (kind, name, ">" if kind == "<" else '"', ", ".join(f + "/" for f in CUDA_FOLDERS)))
                continue
            if kind == "<":
                continue
            if target is None:
                bad(rel, line, 'missing include: "%s" is no file of the repository (looked in %s/ and the '
                    'root; system headers take <...>)' % (name, folder or "."))
                continue
            tfolder = folder_of(target)
            if folder in RANK and tfolder != folder:
                if tfolder not in RANK:
                    bad(rel, line, "upward include: includes %s, outside the layer folders (layers, top to "
                        "bottom: %s)" % (target, stack_line()))
                elif RANK[tfolder] < RANK[folder]:
                    bad(rel, line, "upward include: includes %s, a layer above %s/ (layers, top to bottom: %s)"
                        % (target, folder, stack_line()))
                elif RANK[tfolder] == RANK[folder]:
                    bad(rel, line, "upward include: includes %s, from %s/, a sibling of %s/ on the same step; "
                        "share through the layer below (layers, top to bottom: %s)"
                        % (target, tfolder, folder, stack_line()))
            if target.endswith(HEADER_EXT) and module(target) != mod:
                graph[mod].add(module(target))
                edge_at.setdefault((mod, module(target)), "%s:%d includes %s" % (rel, line, target))

        if not folder.startswith("bench/cli"):
            for line, callee, fn in exit_calls(text):
                ok = [i for i, (f, glob, calls, _) in enumerate(EXIT_ALLOWED)
                      if f == rel and callee in calls and fnmatch.fnmatchcase(fn, glob)]
                if ok:
                    allowed_used.update(ok)
                    continue
                bad(rel, line, "exits below CLI: %s() in %s; below bench/cli/ return -1 with the message in "
                    "(char *err, size_t errlen) and let the command exit 2 (or, if this path is truly fatal, "
                    "add it to EXIT_ALLOWED in scripts/check_layers.py with the reason)"
                    % (callee, fn if fn != "?" else "a function"))

    for i, (f, glob, calls, why) in enumerate(EXIT_ALLOWED):
        if i not in allowed_used and os.path.isfile(os.path.join(root, f)):
            bad(SELF, allow_line(f, glob), "stale allow-list entry: EXIT_ALLOWED's %s in %s() (%s) allows "
                "nothing any more: remove it" % (f, glob, "/".join(calls)))

    # cycles: per tangle (strongly connected set of modules), shortest cycles until each member
    # has been shown in one
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        members, shown, seen = set(comp), set(), set()
        for start in comp:
            if start in shown:
                continue
            cyc = shortest_cycle(graph, start, members)
            if not cyc:
                continue
            shown.update(cyc)
            ring = cyc[:-1]
            r = ring.index(min(ring))
            ring = ring[r:] + ring[:r]
            if tuple(ring) in seen:
                continue
            seen.add(tuple(ring))
            edges = [edge_at[(ring[j], ring[(j + 1) % len(ring)])] for j in range(len(ring))]
            first_file, first_line = edges[0].split(" ", 1)[0].rsplit(":", 1)
            bad(first_file, int(first_line), "include cycle: %s (%s)%s"
                % (" -> ".join(ring + ring[:1]), "; ".join(edges),
                   "; tangled with it: " + ", ".join(sorted(members - set(ring))) if len(members) > len(ring)
                   else ""))

    return files, n_includes, sorted(set(problems), key=lambda p: (p[0], p[1], p[2]))


def print_list():
    print("labench's layers, top to bottom: a file includes headers of its own folder and of folders below.")
    for i, step in enumerate(STACK):
        for j, (folder, what) in enumerate(step):
            mark = "  (sibling of %s/: neither includes the other)" % step[1 - j][0] if len(step) == 2 else ""
            print("  %2d  %-16s %s%s" % (i + 1, folder + "/", what, mark))
    print("Outside the stack: tests/ (may include anything), scripts/.")
    print("CUDA headers only in: %s" % ", ".join(f + "/" for f in CUDA_FOLDERS))
    print("Exits below bench/cli/ only at:")
    for f, glob, calls, why in EXIT_ALLOWED:
        print("  %s %s(): %s  -- %s" % (f, glob, "/".join(c + "()" for c in calls), why))


def main(argv):
    args = argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    if "--list" in args:
        print_list()
        return 0
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("check_layers.py: usage: check_layers.py [ROOT] | --list | --help (got %s)" % " ".join(args),
              file=sys.stderr)
        return 2
    root = args[0] if args else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(root):
        print("check_layers.py: %s: no such folder; give the repository root" % root, file=sys.stderr)
        return 2
    files, n_includes, problems = check(root)
    for f, line, msg in problems:
        print("%s:%d: %s" % (f, line, msg))
    if problems:
        print("layers: %d files, %d includes, %d problem%s" % (len(files), n_includes, len(problems),
              "" if len(problems) == 1 else "s"))
        return 1
    print("layers: %d files, %d includes, ok" % (len(files), n_includes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
