/* The one progress line of every long phase: drawing samples, planning, scoring a plan, training
 * a strategy (simulated or real ranks). They take seconds to hours.
 *
 * When enabled, a phase that runs longer than PROGRESS_AFTER_S seconds gets a line on stderr,
 * rewritten twice a second by a background thread: what it is doing, the share done and the
 * estimated time left where the phase reports its progress, the time so far, and a detail the
 * phase may set (a loss); when it ends the line says how long it took. Phases shorter than that
 * print nothing. A planner, a pure function, reports through progress_update alone: two atomic
 * stores, and nothing at all when no phase is shown. LABENCH_PROGRESS_AFTER=S sets the delay (0: every phase at
 * once; the tests use it to see the lines without waiting). Same convention as training's
 * progress: on stderr, by default when stderr is a terminal, --progress / --no-progress. */
#ifndef LABENCH_PROGRESS_H
#define LABENCH_PROGRESS_H

#include <stdint.h>

#define PROGRESS_AFTER_S 2.0

/* Starts a phase (ending the one before, if any). Does nothing unless `enabled`. */
void progress_begin(int enabled, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The share of the phase done: done out of total. Cheap (two atomic stores): call it from a
 * loop every few thousand items. */
void progress_update(int64_t done, int64_t total);

/* A short detail shown after the share done, e.g. "step 3/8, loss 5.4713" (replaces the last). */
void progress_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The estimate of the time left, in seconds, after `elapsed` seconds with done of total done;
 * negative when there is no estimate yet (nothing done, or under a second of work seen). */
double progress_eta(double elapsed, int64_t done, int64_t total);

/* Ends the phase; its line, if it got one, ends with the time the phase took. */
void progress_end(void);

/* Ends the phase without a verdict (an error follows): only ends its line, if it got one.
 * die_input calls it, so the error message starts a line of its own. */
void progress_abort(void);

#endif
