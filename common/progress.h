/* Progress of the phases before training (drawing samples, planning, scoring a plan), which take
 * seconds to minutes on histograms of 10^8 samples.
 *
 * When enabled, a phase that runs longer than PROGRESS_AFTER_S seconds gets a line on stderr,
 * rewritten twice a second by a background thread: what it is doing, the share done where the
 * phase reports one, and the time so far; when it ends the line says how long it took. Phases
 * shorter than that print nothing. LABENCH_PROGRESS_AFTER=S sets the delay (0: every phase at
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

/* Ends the phase; its line, if it got one, ends with the time the phase took. */
void progress_end(void);

/* Ends the phase without a verdict (an error follows): only ends its line, if it got one.
 * die_input calls it, so the error message starts a line of its own. */
void progress_abort(void);

#endif
