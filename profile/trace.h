/* Chrome trace writer: {"traceEvents": [...], "displayTimeUnit": "ms"}, which Perfetto
 * (ui.perfetto.dev) and chrome://tracing open. A track is one (process, thread) row; slices
 * are complete events (ph "X") with ts and dur in microseconds from a base the caller picks.
 *
 * Errors inside trace_track / trace_slice (out of memory, bad track id, args that are not a
 * JSON object) are remembered and reported by trace_write, so callers need not check each. */
#ifndef LABENCH_PROFILE_TRACE_H
#define LABENCH_PROFILE_TRACE_H

#include <stddef.h>

typedef struct Trace Trace;

Trace *trace_new(void);   /* NULL if out of memory */
void trace_free(Trace *t);

/* Returns a track id (>= 0) for the row `thread` under `process`, or -1 on failure. The same
 * process name always gets the same pid; processes are ordered as first created, threads by
 * sort_index. */
int trace_track(Trace *t, const char *process, const char *thread, int sort_index);

/* A slice [ts_us, ts_us + dur_us) on a track. args_json: a JSON object shown with the slice
 * (e.g. "{\"tokens\": 4096}"), or NULL. A negative dur is stored as 0. */
void trace_slice(Trace *t, int track, const char *name, const char *category,
                 double ts_us, double dur_us, const char *args_json);

/* A point in time on a track (ph "i", thread scope), e.g. an NVTX mark. */
void trace_instant(Trace *t, int track, const char *name, const char *category, double ts_us);

/* Sum of dur over the slices of one category (e.g. "bubble"), in microseconds. */
double trace_sum_dur(const Trace *t, const char *category);

/* Number of events so far, metadata included. */
size_t trace_event_count(const Trace *t);

/* Writes the trace to path through a temporary file (nothing is left behind on failure).
 * Returns 0, or -1 with a message in err. */
int trace_write(Trace *t, const char *path, char *err, size_t errlen);

#endif
