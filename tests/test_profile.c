/* Tests for profile/: interval union, the HTA-style idle split, top kernels, the Chrome trace
 * writer, and the CUPTI/NVTX entry points that must be safe without a GPU. */
#include "tests/test_util.h"

#include <jansson.h>
#include <sys/stat.h>

#include "profile/cupti.h"
#include "profile/intervals.h"
#include "profile/nvtx.h"
#include "profile/trace.h"

/* A kernel on rank 0, micro-batch 0. */
static KernelRecord K(int64_t start, int64_t end, int64_t launch, int32_t name)
{
    KernelRecord k = { start, end, launch, 0, 0, name };
    return k;
}

static void assert_sums(const IdleBreakdown *b)
{
    assert_int_equal(b->window_ns, b->busy_ns + b->host_wait_ns + b->kernel_gap_ns + b->other_ns);
    assert_int_equal(b->idle_ns, b->window_ns - b->busy_ns);
}

/* ---- union ----------------------------------------------------------------------------- */

static void test_union_overlap_and_nesting(void **state)
{
    (void)state;
    KernelRecord overlap[] = { K(5, 15, -1, 0), K(0, 10, -1, 0) };   /* unsorted on purpose */
    assert_int_equal(15, intervals_union_ns(overlap, 2, 0, 100));

    KernelRecord nested[] = { K(0, 100, -1, 0), K(10, 20, -1, 1), K(30, 40, -1, 2), K(10, 20, -1, 1) };
    assert_int_equal(100, intervals_union_ns(nested, 4, 0, 1000));

    KernelRecord apart[] = { K(0, 10, -1, 0), K(20, 25, -1, 0), K(25, 30, -1, 0) };  /* touching */
    assert_int_equal(20, intervals_union_ns(apart, 3, 0, 100));
}

static void test_union_clips_to_window(void **state)
{
    (void)state;
    KernelRecord k[] = { K(-5, 5, -1, 0), K(8, 20, -1, 0), K(30, 40, -1, 0), K(-20, -10, -1, 0) };
    assert_int_equal(5 + 2, intervals_union_ns(k, 4, 0, 10));
    assert_int_equal(0, intervals_union_ns(k, 4, 20, 30));    /* end == lo, start == hi: out */
    assert_int_equal(0, intervals_union_ns(k, 4, 10, 10));    /* empty window */
    assert_int_equal(0, intervals_union_ns(k, 4, 10, 5));     /* reversed window */
    assert_int_equal(0, intervals_union_ns(NULL, 0, 0, 10));
    KernelRecord bad[] = { K(5, 5, -1, 0), K(9, 3, -1, 0) };   /* empty and reversed kernels */
    assert_int_equal(0, intervals_union_ns(bad, 2, 0, 10));
}

/* ---- idle split ------------------------------------------------------------------------ */

static void test_idle_no_kernels_is_other(void **state)
{
    (void)state;
    IdleBreakdown b;
    assert_int_equal(0, idle_breakdown(NULL, 0, 1000, 5000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(4000, b.window_ns);
    assert_int_equal(0, b.busy_ns);
    assert_int_equal(4000, b.idle_ns);
    assert_int_equal(4000, b.other_ns);
    assert_int_equal(0, b.host_wait_ns);
    assert_int_equal(0, b.kernel_gap_ns);

    /* Kernels that all miss the window count as none. */
    KernelRecord k[] = { K(0, 500, 0, 0), K(6000, 7000, 5500, 0) };
    assert_int_equal(0, idle_breakdown(k, 2, 1000, 5000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(4000, b.other_ns);
    assert_int_equal(0, b.busy_ns);

    assert_int_equal(0, idle_breakdown(k, 2, 5000, 5000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(0, b.window_ns);
    assert_int_equal(0, b.other_ns);
}

static void test_idle_one_kernel(void **state)
{
    (void)state;
    IdleBreakdown b;
    /* Launched after the window opened: the GPU waited for the host until it started. */
    KernelRecord k = K(20000, 50000, 10000, 0);
    assert_int_equal(0, idle_breakdown(&k, 1, 0, 100000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(30000, b.busy_ns);
    assert_int_equal(20000, b.host_wait_ns);
    assert_int_equal(0, b.kernel_gap_ns);
    assert_int_equal(50000, b.other_ns);     /* after the last kernel: sync */
    assert_sums(&b);

    /* Unknown launch time: nothing can be said about the gap. */
    k.launch_ns = -1;
    assert_int_equal(0, idle_breakdown(&k, 1, 0, 100000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(0, b.host_wait_ns);
    assert_int_equal(70000, b.other_ns);

    /* Queued before the window opened: a short wait is launch overhead, a long one is not. */
    k = K(11500, 13000, 9900, 0);
    assert_int_equal(0, idle_breakdown(&k, 1, 10000, 13000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(1500, b.kernel_gap_ns);
    assert_int_equal(0, b.other_ns);
    assert_int_equal(1500, b.busy_ns);
    k = K(12500, 13000, 9900, 0);
    assert_int_equal(0, idle_breakdown(&k, 1, 10000, 13000, KERNEL_GAP_THRESHOLD_NS, &b));
    assert_int_equal(0, b.kernel_gap_ns);
    assert_int_equal(2500, b.other_ns);
}

static void test_idle_classifies_gaps(void **state)
{
    (void)state;
    KernelRecord k[] = {
        K(1000, 2000, 500, 0),      /* lead gap [0,1000): launched at 500 >= 0: host wait */
        K(2500, 4000, 1500, 1),     /* queued before 2000, gap 500 <= 2000: kernel gap */
        K(7000, 8000, 6000, 2),     /* launched after 4000: host wait 3000 */
        K(12000, 13000, 3000, 3),   /* queued long before, gap 4000 > 2000: other */
    };                              /* tail gap [13000,15000): other */
    IdleBreakdown b;
    assert_int_equal(0, idle_breakdown(k, 4, 0, 15000, 2000, &b));
    assert_int_equal(15000, b.window_ns);
    assert_int_equal(4500, b.busy_ns);
    assert_int_equal(10500, b.idle_ns);
    assert_int_equal(4000, b.host_wait_ns);
    assert_int_equal(500, b.kernel_gap_ns);
    assert_int_equal(6000, b.other_ns);
    assert_sums(&b);

    /* A larger threshold turns the 4000 ns queued gap into launch overhead. */
    assert_int_equal(0, idle_breakdown(k, 4, 0, 15000, 5000, &b));
    assert_int_equal(4500, b.kernel_gap_ns);
    assert_int_equal(2000, b.other_ns);
    assert_int_equal(4000, b.host_wait_ns);
    assert_sums(&b);

    /* Launch exactly at the previous end still means the GPU had nothing queued. */
    KernelRecord edge[] = { K(0, 1000, -1, 0), K(1200, 1500, 1000, 0) };
    assert_int_equal(0, idle_breakdown(edge, 2, 0, 1500, 2000, &b));
    assert_int_equal(200, b.host_wait_ns);
    assert_int_equal(0, b.kernel_gap_ns);
    assert_sums(&b);
}

static void test_idle_overlap_and_partial(void **state)
{
    (void)state;
    IdleBreakdown b;
    /* Concurrent kernels: the gap starts at the end of the union, not of the first kernel. */
    KernelRecord conc[] = { K(0, 1000, -1, 0), K(500, 3000, 100, 1), K(3500, 4000, 3200, 2) };
    assert_int_equal(0, idle_breakdown(conc, 3, 0, 4000, 2000, &b));
    assert_int_equal(3500, b.busy_ns);
    assert_int_equal(500, b.host_wait_ns);    /* 3200 >= 3000 */
    assert_int_equal(0, b.other_ns);
    assert_sums(&b);

    /* Kernels straddling both window edges are clipped; the gap between them was queued. */
    KernelRecord part[] = { K(-500, 300, -900, 0), K(900, 1200, 100, 1) };
    assert_int_equal(0, idle_breakdown(part, 2, 0, 1000, 2000, &b));
    assert_int_equal(400, b.busy_ns);
    assert_int_equal(600, b.kernel_gap_ns);
    assert_int_equal(0, b.host_wait_ns);
    assert_int_equal(0, b.other_ns);
    assert_sums(&b);

    /* Two kernels start together: the one with a known launch decides. */
    KernelRecord tie[] = { K(500, 600, -1, 0), K(500, 700, 200, 1) };
    assert_int_equal(0, idle_breakdown(tie, 2, 0, 700, 2000, &b));
    assert_int_equal(500, b.host_wait_ns);
    assert_int_equal(200, b.busy_ns);
    assert_sums(&b);
}

/* Brute force over 1-ns cells: the same rules computed cell by cell, with no sorting. */
static void oracle(const KernelRecord *k, int n, int64_t lo, int64_t hi, int64_t thr, IdleBreakdown *o)
{
    enum { T = 400 };
    int covered[T] = { 0 };
    memset(o, 0, sizeof *o);
    o->window_ns = hi - lo;
    for (int i = 0; i < n; i++)
        for (int64_t t = k[i].start_ns; t < k[i].end_ns; t++)
            if (t >= lo && t < hi) covered[t] = 1;
    for (int64_t t = lo; t < hi; t++) {
        if (covered[t]) {
            o->busy_ns++;
            continue;
        }
        int64_t a = t, b = t;
        while (a > lo && !covered[a - 1]) a--;
        while (b < hi && !covered[b]) b++;
        const KernelRecord *next = NULL;   /* among kernels clipped to start at b: known launch, earliest */
        for (int i = 0; b < hi && i < n; i++) {
            int64_t s = k[i].start_ns > lo ? k[i].start_ns : lo;
            if (s != b || k[i].end_ns <= b) continue;
            if (!next || (next->launch_ns < 0 && k[i].launch_ns >= 0) ||
                (k[i].launch_ns >= 0 && k[i].launch_ns < next->launch_ns))
                next = &k[i];
        }
        if (!next || next->launch_ns < 0) o->other_ns++;
        else if (next->launch_ns >= a) o->host_wait_ns++;
        else if (b - a <= thr) o->kernel_gap_ns++;
        else o->other_ns++;
    }
    o->idle_ns = o->window_ns - o->busy_ns;
}

static void test_idle_matches_brute_force(void **state)
{
    (void)state;
    uint64_t s = 12345;
    int host_seen = 0, gap_seen = 0;
    for (int trial = 0; trial < 300; trial++) {
        KernelRecord k[12];
        int n = trial % 12;
        for (int i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int64_t start = (int64_t)(s >> 33) % 380;
            int64_t len = 1 + (int64_t)(s >> 20) % 40;
            int64_t launch = (int64_t)(s >> 45) % 8 == 0 ? -1 : start - (int64_t)(s >> 10) % 60;
            k[i] = K(start, start + len, launch, i % 3);
        }
        int64_t lo = trial % 50, hi = 400 - (trial % 70);
        int64_t thr = trial % 20;
        IdleBreakdown got, want;
        assert_int_equal(0, idle_breakdown(k, n, lo, hi, thr, &got));
        oracle(k, n, lo, hi, thr, &want);
        assert_int_equal(want.busy_ns, got.busy_ns);
        assert_int_equal(want.host_wait_ns, got.host_wait_ns);
        assert_int_equal(want.kernel_gap_ns, got.kernel_gap_ns);
        assert_int_equal(want.other_ns, got.other_ns);
        assert_int_equal(want.busy_ns, intervals_union_ns(k, n, lo, hi));
        assert_sums(&got);
        host_seen += got.host_wait_ns > 0;
        gap_seen += got.kernel_gap_ns > 0;
    }
    /* The random cases must exercise both classes, or the comparison proves little. */
    assert_true(host_seen > 10);
    assert_true(gap_seen > 10);
}

/* ---- top kernels ----------------------------------------------------------------------- */

static void test_kernels_top(void **state)
{
    (void)state;
    KernelRecord k[] = {
        K(0, 10, -1, 7), K(10, 40, -1, 3), K(40, 45, -1, 7), K(45, 60, -1, 5),
        K(60, 75, -1, 7), K(75, 90, -1, 5),
    };
    KernelTotal t[3];
    assert_int_equal(3, kernels_top(k, 6, t, 3));
    assert_int_equal(3, t[0].name_id);   /* 30 */
    assert_int_equal(30, t[0].total_ns);
    assert_int_equal(1, t[0].count);
    assert_int_equal(5, t[1].name_id);   /* 30 too: ties go to the lower id, so 3 then 5 */
    assert_int_equal(30, t[1].total_ns);
    assert_int_equal(2, t[1].count);
    assert_int_equal(7, t[2].name_id);   /* 10 + 5 + 15 */
    assert_int_equal(30, t[2].total_ns);
    assert_int_equal(3, t[2].count);

    KernelTotal one;
    k[0].end_ns = 100;                   /* name 7 now 120 */
    assert_int_equal(1, kernels_top(k, 6, &one, 1));
    assert_int_equal(7, one.name_id);
    assert_int_equal(120, one.total_ns);
    assert_int_equal(0, kernels_top(k, 0, &one, 1));
}

/* ---- collector helpers ----------------------------------------------------------------- */

static void test_kernels_attribute(void **state)
{
    (void)state;
    ContextMark marks[] = { { 100, 0, 0 }, { 200, 1, 0 }, { 200, 2, 5 }, { 300, 0, 1 } };
    KernelRecord k[] = {
        K(210, 260, 150, 0),    /* launched in (0,0)'s span, ran in the next: launch decides */
        K(250, 260, -1, 0),     /* no launch time: its start decides; later of two equal marks */
        K(60, 90, 50, 0),       /* before any mark */
        K(310, 400, 300, 0),    /* launched exactly at a mark */
        K(205, 206, 200, 0),
    };
    kernels_attribute(k, 5, marks, 4);
    int want[5][2] = { { 0, 0 }, { 2, 5 }, { -1, -1 }, { 0, 1 }, { 2, 5 } };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(want[i][0], k[i].rank);
        assert_int_equal(want[i][1], k[i].micro_batch);
    }
    kernels_attribute(k, 5, NULL, 0);
    assert_int_equal(-1, k[0].rank);
    assert_int_equal(-1, k[0].micro_batch);
}

static void test_mem_replay(void **state)
{
    (void)state;
    MemEvent ev[] = {                /* out of order on purpose */
        { 4, 0xC, 200, 1 },
        { 1, 0xA, 100, 1 },
        { 3, 0xA, 0, 0 },            /* a free's own size is not trusted: the allocation's is */
        { 2, 0xD, 999, 0 },          /* freeing a block allocated before collection: ignored */
        { 2, 0xB, 50, 1 },
        { 5, 0xE, 10, 1 },           /* same time as the free of C: the free goes first */
        { 5, 0xC, 200, 0 },
    };
    int64_t live = -1, high = -1;
    assert_int_equal(0, mem_replay(ev, 7, &live, &high));
    assert_int_equal(250, high);     /* B + C at t = 4 */
    assert_int_equal(60, live);      /* B + E */
    assert_int_equal(0, mem_replay(NULL, 0, &live, &high));
    assert_int_equal(0, live);
    assert_int_equal(0, high);
}

/* ---- trace writer ---------------------------------------------------------------------- */

static json_t *find_meta(json_t *events, const char *what, json_int_t pid, json_int_t tid)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "ph")), "M") == 0 &&
            strcmp(json_string_value(json_object_get(e, "name")), what) == 0 &&
            json_integer_value(json_object_get(e, "pid")) == pid &&
            (tid < 0 || json_integer_value(json_object_get(e, "tid")) == tid))
            return e;
    }
    return NULL;
}

static void test_trace_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/labench-trace-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sub/trace.json", dir);

    Trace *t = trace_new();
    assert_non_null(t);
    int r0 = trace_track(t, "DP timeline (packing)", "rank 0", 0);
    int r1 = trace_track(t, "DP timeline (packing)", "rank 1", 1);
    int gpu = trace_track(t, "GPU", "GPU kernels", 0);
    assert_true(r0 >= 0 && r1 >= 0 && gpu >= 0);
    assert_true(r0 != r1 && r1 != gpu);

    trace_slice(t, r0, "micro-batch 0", "compute", 0.0, 1500.25, "{\"tokens\": 4096}");
    trace_slice(t, r1, "micro-batch 0", "compute", 0.0, 1000.0, NULL);
    trace_slice(t, r1, "bubble", "bubble", 1000.0, 500.25, NULL);
    trace_slice(t, r0, "micro-batch 1", "compute", 1500.25, 800.0, NULL);
    trace_slice(t, r1, "micro-batch 1", "compute", 1500.25, 1200.5, NULL);
    trace_slice(t, r0, "bubble", "bubble", 2300.25, 400.5, NULL);
    trace_slice(t, gpu, "ampere_bf16_gemm", "kernel", 12.5, 3.125, NULL);
    trace_instant(t, gpu, "sync", "nvtx", 2700.75);
    assert_close(trace_sum_dur(t, "bubble"), 900.75, 1e-9, 0);
    assert_close(trace_sum_dur(t, "compute"), 4500.75, 1e-9, 0);
    assert_close(trace_sum_dur(t, "nothing"), 0, 0, 0);

    char err[256] = "";
    assert_int_equal(0, trace_write(t, path, err, sizeof err));
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(-1, access(tmp, F_OK));     /* renamed into place, nothing left over */

    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) print_error("%s:%d: %s\n", path, jerr.line, jerr.text);
    assert_non_null(root);
    assert_string_equal("ms", json_string_value(json_object_get(root, "displayTimeUnit")));
    json_t *events = json_object_get(root, "traceEvents");
    assert_true(json_is_array(events));
    assert_int_equal(trace_event_count(t), json_array_size(events));

    /* Two processes, named; both ranks share the first pid on different tids. */
    int xs = 0, bubbles = 0;
    double bubble_sum = 0;
    json_int_t pid_dp = -1, tid0 = -1, tid1 = -1, pid_gpu = -1;
    size_t i;
    json_t *e = NULL;
    json_array_foreach(events, i, e) {
        const char *ph = json_string_value(json_object_get(e, "ph"));
        const char *name = json_string_value(json_object_get(e, "name"));
        assert_non_null(ph);
        assert_non_null(name);
        assert_true(json_is_integer(json_object_get(e, "pid")));
        assert_true(json_is_integer(json_object_get(e, "tid")));
        if (strcmp(ph, "M") == 0 && strcmp(name, "thread_name") == 0) {
            const char *tn = json_string_value(json_object_get(json_object_get(e, "args"), "name"));
            json_int_t pid = json_integer_value(json_object_get(e, "pid"));
            json_int_t tid = json_integer_value(json_object_get(e, "tid"));
            if (strcmp(tn, "rank 0") == 0) { pid_dp = pid; tid0 = tid; }
            if (strcmp(tn, "rank 1") == 0) { assert_int_equal(pid_dp, pid); tid1 = tid; }
            if (strcmp(tn, "GPU kernels") == 0) pid_gpu = pid;
        }
        if (strcmp(ph, "X") == 0) {
            xs++;
            assert_true(json_is_number(json_object_get(e, "ts")));
            assert_true(json_is_number(json_object_get(e, "dur")));
            assert_non_null(json_string_value(json_object_get(e, "cat")));
            if (strcmp(json_string_value(json_object_get(e, "cat")), "bubble") == 0) {
                bubbles++;
                assert_string_equal("bubble", name);
                bubble_sum += json_number_value(json_object_get(e, "dur"));
            }
        }
    }
    assert_int_equal(7, xs);
    assert_int_equal(2, bubbles);
    assert_true(pid_dp > 0 && pid_gpu > 0 && pid_dp != pid_gpu);
    assert_true(tid0 > 0 && tid1 > 0 && tid0 != tid1);
    assert_close(bubble_sum, trace_sum_dur(t, "bubble"), 1e-9, 0);
    assert_close(bubble_sum, 900.75, 1e-9, 0);

    json_t *pn = find_meta(events, "process_name", pid_dp, -1);
    assert_non_null(pn);
    assert_string_equal("DP timeline (packing)", json_string_value(json_object_get(json_object_get(pn, "args"), "name")));
    pn = find_meta(events, "process_name", pid_gpu, -1);
    assert_non_null(pn);
    assert_string_equal("GPU", json_string_value(json_object_get(json_object_get(pn, "args"), "name")));
    json_t *si = find_meta(events, "thread_sort_index", pid_dp, tid1);
    assert_non_null(si);
    assert_int_equal(1, json_integer_value(json_object_get(json_object_get(si, "args"), "sort_index")));

    /* The first slice: placed on rank 0, with its fields and args as given. */
    json_array_foreach(events, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "name")), "micro-batch 0") == 0 &&
            json_integer_value(json_object_get(e, "tid")) == tid0) break;
    }
    assert_true(i < json_array_size(events));
    assert_string_equal("X", json_string_value(json_object_get(e, "ph")));
    assert_int_equal(pid_dp, json_integer_value(json_object_get(e, "pid")));
    assert_close(json_number_value(json_object_get(e, "ts")), 0.0, 0, 0);
    assert_close(json_number_value(json_object_get(e, "dur")), 1500.25, 1e-9, 0);
    assert_int_equal(4096, json_integer_value(json_object_get(json_object_get(e, "args"), "tokens")));

    json_decref(root);
    trace_free(t);
    unlink(path);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
}

static void test_trace_errors_write_nothing(void **state)
{
    (void)state;
    char dir[] = "/tmp/labench-trace-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/bad.json", dir);

    Trace *t = trace_new();
    int tr = trace_track(t, "p", "t", 0);
    trace_slice(t, tr + 5, "lost", "compute", 0, 1, NULL);      /* no such track */
    assert_int_equal(-1, trace_write(t, path, err, sizeof err));
    assert_non_null(strstr(err, "unknown track"));
    assert_int_equal(-1, access(path, F_OK));
    trace_free(t);

    t = trace_new();
    tr = trace_track(t, "p", "t", 0);
    trace_slice(t, tr, "x", "compute", 0, 1, "[1, 2]");       /* args must be an object */
    assert_int_equal(-1, trace_write(t, path, err, sizeof err));
    assert_non_null(strstr(err, "args"));
    assert_int_equal(-1, access(path, F_OK));

    /* A negative duration is stored as 0, not as a slice running backwards. */
    Trace *ok = trace_new();
    tr = trace_track(ok, "p", "t", 0);
    trace_slice(ok, tr, "x", "bubble", 10, -5, NULL);
    assert_close(trace_sum_dur(ok, "bubble"), 0, 0, 0);
    assert_int_equal(0, trace_write(ok, path, err, sizeof err));
    unlink(path);
    trace_free(ok);
    trace_free(t);
    rmdir(dir);
}

/* ---- CUPTI / NVTX entry points without a running collector ---------------------------- */

static void test_cupti_idle_entry_points(void **state)
{
    (void)state;
    int n = 123;
    assert_null(prof_cupti_kernels(&n));
    assert_int_equal(0, n);
    assert_string_equal("?", prof_cupti_kernel_name(99999));
    assert_string_equal("?", prof_cupti_kernel_name(-1));
    ProfStats st;
    memset(&st, 0xff, sizeof st);
    prof_cupti_stats(&st);
    assert_int_equal(0, st.kernels);
    assert_int_equal(0, st.dropped_records);
    assert_int_equal(0, st.mem_high_water_bytes);
    assert_int_equal(-1, prof_cupti_flush());
    char why[256] = "";
    assert_int_equal(-1, prof_cupti_start(PROF_OFF, why, sizeof why));
    assert_true(why[0] != 0);
    /* NVTX with no tool attached must be harmless. */
    prof_range_push("labench-test");
    prof_mark("labench-mark");
    prof_range_pop();
}

/* CUPTI is loaded with dlopen at start: every entry point resolves (no "has no symbol"), and
 * without a GPU start fails with a reason instead of killing the process. */
static void test_cupti_start_loads_or_says_why(void **state)
{
    (void)state;
    char why[2048] = "";
    int rc = prof_cupti_start(PROF_BASIC, why, sizeof why);
    print_message("prof_cupti_start: %d (%s)\n", rc, why);
    if (rc == 0) {   /* a machine with a GPU */
        prof_cupti_stop();
        return;
    }
    assert_true(why[0] != 0);
    assert_null(strstr(why, "has no symbol"));
    assert_true(prof_cupti_now_ns() > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cupti_start_loads_or_says_why),
        cmocka_unit_test(test_union_overlap_and_nesting),
        cmocka_unit_test(test_union_clips_to_window),
        cmocka_unit_test(test_idle_no_kernels_is_other),
        cmocka_unit_test(test_idle_one_kernel),
        cmocka_unit_test(test_idle_classifies_gaps),
        cmocka_unit_test(test_idle_overlap_and_partial),
        cmocka_unit_test(test_idle_matches_brute_force),
        cmocka_unit_test(test_kernels_top),
        cmocka_unit_test(test_kernels_attribute),
        cmocka_unit_test(test_mem_replay),
        cmocka_unit_test(test_trace_roundtrip),
        cmocka_unit_test(test_trace_errors_write_nothing),
        cmocka_unit_test(test_cupti_idle_entry_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
