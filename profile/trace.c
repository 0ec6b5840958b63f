/* Chrome trace writer, events built with jansson. */
#include "profile/trace.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomic_file.h"

typedef struct {
    char *name;
    int pid;
    int threads;        /* threads made so far: the next tid is threads + 1 */
} Process;

typedef struct {
    int pid, tid;
} Track;

struct Trace {
    json_t *events;     /* array of event objects, in the order they were added */
    Process *procs;
    int nprocs, capprocs;
    Track *tracks;
    int ntracks, captracks;
    char error[256];    /* first error, reported by trace_write */
};

static void fail(Trace *t, const char *msg, const char *detail)
{
    if (!t->error[0]) snprintf(t->error, sizeof t->error, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

/* json_string rejects invalid UTF-8; a garbled kernel name should not lose the whole trace. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s ? s : "");
    return j ? j : json_string("(invalid UTF-8)");
}

/* json_real rejects NaN and infinities; they would mean a caller bug, so keep 0 and complain. */
static json_t *jreal(Trace *t, double v)
{
    if (!isfinite(v)) {
        fail(t, "trace: time is not a finite number", NULL);
        v = 0;
    }
    return json_real(v);
}

/* Appends an event made of the common fields; returns it (owned by the array) or NULL.
 * jansson's *_set_new and append_new take ownership even when they fail. */
static json_t *add_event(Trace *t, const char *ph, const char *name, int pid, int tid)
{
    json_t *e = json_object();
    if (!e || json_object_set_new(e, "name", jstr(name)) || json_object_set_new(e, "ph", json_string(ph)) ||
        json_object_set_new(e, "pid", json_integer(pid)) || json_object_set_new(e, "tid", json_integer(tid))) {
        json_decref(e);
        fail(t, "trace: out of memory", NULL);
        return NULL;
    }
    if (json_array_append_new(t->events, e)) {
        fail(t, "trace: out of memory", NULL);
        return NULL;
    }
    return e;
}

/* Metadata event: {"ph": "M", "name": what, "args": {key: value}}; takes value. */
static void add_meta(Trace *t, const char *what, int pid, int tid, const char *key, json_t *value)
{
    json_t *e = add_event(t, "M", what, pid, tid);
    json_t *args = e ? json_object() : NULL;
    if (!args) {
        json_decref(value);
        fail(t, "trace: out of memory", NULL);
        return;
    }
    if (json_object_set_new(args, key, value)) {
        json_decref(args);
        fail(t, "trace: out of memory", NULL);
        return;
    }
    if (json_object_set_new(e, "args", args)) fail(t, "trace: out of memory", NULL);
}

Trace *trace_new(void)
{
    Trace *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->events = json_array();
    if (!t->events) {
        free(t);
        return NULL;
    }
    return t;
}

void trace_free(Trace *t)
{
    if (!t) return;
    json_decref(t->events);
    for (int i = 0; i < t->nprocs; i++) free(t->procs[i].name);
    free(t->procs);
    free(t->tracks);
    free(t);
}

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int ncap = *cap ? 2 * *cap : 8;
    while (ncap < need) ncap *= 2;
    void *q = realloc(*p, (size_t)ncap * elem);
    if (!q) return -1;
    *p = q;
    *cap = ncap;
    return 0;
}

int trace_track(Trace *t, const char *process, const char *thread, int sort_index)
{
    if (!process || !thread) {
        fail(t, "trace: track needs a process and a thread name", NULL);
        return -1;
    }
    Process *p = NULL;
    for (int i = 0; i < t->nprocs; i++)
        if (strcmp(t->procs[i].name, process) == 0) p = &t->procs[i];
    if (!p) {
        char *name = strdup(process);
        if (!name || grow((void **)&t->procs, &t->capprocs, t->nprocs + 1, sizeof *t->procs)) {
            free(name);
            fail(t, "trace: out of memory", NULL);
            return -1;
        }
        p = &t->procs[t->nprocs++];
        p->name = name;
        p->pid = t->nprocs;     /* pids from 1 */
        p->threads = 0;
        add_meta(t, "process_name", p->pid, 0, "name", jstr(process));
        add_meta(t, "process_sort_index", p->pid, 0, "sort_index", json_integer(p->pid));
    }
    if (grow((void **)&t->tracks, &t->captracks, t->ntracks + 1, sizeof *t->tracks)) {
        fail(t, "trace: out of memory", NULL);
        return -1;
    }
    Track *tr = &t->tracks[t->ntracks];
    tr->pid = p->pid;
    tr->tid = ++p->threads;
    add_meta(t, "thread_name", tr->pid, tr->tid, "name", jstr(thread));
    add_meta(t, "thread_sort_index", tr->pid, tr->tid, "sort_index", json_integer(sort_index));
    return t->ntracks++;
}

static json_t *track_event(Trace *t, int track, const char *ph, const char *name,
                           const char *category, double ts_us)
{
    if (track < 0 || track >= t->ntracks) {
        fail(t, "trace: event on an unknown track", name);
        return NULL;
    }
    json_t *e = add_event(t, ph, name, t->tracks[track].pid, t->tracks[track].tid);
    if (!e) return NULL;
    if (json_object_set_new(e, "cat", jstr(category ? category : "")) ||
        json_object_set_new(e, "ts", jreal(t, ts_us))) {
        fail(t, "trace: out of memory", NULL);
        return NULL;
    }
    return e;
}

void trace_slice(Trace *t, int track, const char *name, const char *category,
                 double ts_us, double dur_us, const char *args_json)
{
    json_t *e = track_event(t, track, "X", name, category, ts_us);
    if (!e) return;
    if (json_object_set_new(e, "dur", jreal(t, dur_us > 0 ? dur_us : 0))) {
        fail(t, "trace: out of memory", NULL);
        return;
    }
    if (args_json) {
        json_error_t jerr;
        json_t *args = json_loads(args_json, 0, &jerr);
        if (!args || !json_is_object(args)) {
            json_decref(args);
            fail(t, "trace: slice args are not a JSON object", args_json);
            return;
        }
        if (json_object_set_new(e, "args", args)) fail(t, "trace: out of memory", NULL);
    }
}

void trace_instant(Trace *t, int track, const char *name, const char *category, double ts_us)
{
    json_t *e = track_event(t, track, "i", name, category, ts_us);
    if (e && json_object_set_new(e, "s", json_string("t"))) fail(t, "trace: out of memory", NULL);
}

double trace_sum_dur(const Trace *t, const char *category)
{
    double sum = 0;
    size_t i;
    json_t *e;
    json_array_foreach(t->events, i, e) {
        const char *ph = json_string_value(json_object_get(e, "ph"));
        const char *cat = json_string_value(json_object_get(e, "cat"));
        if (ph && cat && strcmp(ph, "X") == 0 && strcmp(cat, category) == 0)
            sum += json_number_value(json_object_get(e, "dur"));
    }
    return sum;
}

size_t trace_event_count(const Trace *t)
{
    return json_array_size(t->events);
}

int trace_write(Trace *t, const char *path, char *err, size_t errlen)
{
    if (t->error[0]) {
        snprintf(err, errlen, "%s: %s", path, t->error);
        return -1;
    }
    AtomicFile af;
    if (atomic_open(&af, path, err, errlen) != 0) return -1;
    /* One event per line: the file stays greppable and diffable. 15 significant digits keep
     * ns resolution on timestamps up to about 10^12 us without printing float noise. */
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(15);
    int bad = fputs("{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n", af.f) < 0;
    size_t i;
    json_t *e;
    json_array_foreach(t->events, i, e) {
        if (bad) break;
        bad = (i > 0 && fputs(",\n", af.f) < 0) || json_dumpf(e, af.f, flags) != 0;
    }
    if (bad || fputs("\n]}\n", af.f) < 0) {
        snprintf(err, errlen, "%s: write failed (disk full?)", af.tmp);
        atomic_abort(&af);
        return -1;
    }
    return atomic_commit(&af, err, errlen);
}
