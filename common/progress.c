/* A phase's progress line on stderr, kept alive by a thread so that a phase which cannot report
 * from inside (a planner is a pure function) still shows it is working. */
#include "common/progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/host.h"
#include "common/parse.h"

static struct {
    int active;
    pthread_t thread;
    atomic_int stop;
    atomic_llong done, total;
    char what[256];
    char detail[96];
    pthread_mutex_t detail_lock;
    double t0, after;
    int width;        /* characters of the last line, to blank it out */
    int printed;      /* the line has been shown (only the thread writes it before the join) */
} P = {.detail_lock = PTHREAD_MUTEX_INITIALIZER};

static double progress_delay(void)
{
    const char *e = getenv("LABENCH_PROGRESS_AFTER");
    double v;
    if (e && parse_f64(e, 0, 1e9, &v) == 0) return v;
    return PROGRESS_AFTER_S;
}

static void show(const char *tail)
{
    char line[600];
    int n = snprintf(line, sizeof line, "  %s: %s", P.what, tail);
    if (n < 0) return;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    fprintf(stderr, "\r%s%*s", line, P.width > n ? P.width - n : 0, "");
    fflush(stderr);
    P.width = n;
    P.printed = 1;
}

double progress_eta(double elapsed, int64_t done, int64_t total)
{
    if (done <= 0 || total <= 0 || elapsed < 1.0) return -1;
    if (done >= total) return 0;
    return elapsed * (double)(total - done) / (double)done;
}

static void show_running(void)
{
    char tail[256], left[48] = "", detail[96];
    double t = wall_seconds() - P.t0;
    long long d = atomic_load(&P.done), tot = atomic_load(&P.total);
    double eta = progress_eta(t, d, tot);
    if (eta >= 0) snprintf(left, sizeof left, ", about %.0f s left", eta);
    pthread_mutex_lock(&P.detail_lock);
    snprintf(detail, sizeof detail, "%s", P.detail);
    pthread_mutex_unlock(&P.detail_lock);
    if (tot > 0)
        snprintf(tail, sizeof tail, "%.0f%% after %.0f s%s%s%s", 100.0 * (double)d / (double)tot, t, left,
                 detail[0] ? "; " : "", detail);
    else
        snprintf(tail, sizeof tail, "%.0f s%s%s", t, detail[0] ? "; " : "", detail);
    show(tail);
}

static void *ticker(void *arg)
{
    (void)arg;
    const struct timespec nap = {0, 50 * 1000 * 1000};
    double next = P.t0 + P.after;
    while (!atomic_load(&P.stop)) {
        double now = wall_seconds();
        if (now >= next) {
            show_running();
            next = now + 0.5;
        }
        nanosleep(&nap, NULL);
    }
    return NULL;
}

void progress_begin(int enabled, const char *fmt, ...)
{
    progress_end();
    if (!enabled) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P.what, sizeof P.what, fmt, ap);
    va_end(ap);
    P.t0 = wall_seconds();
    P.after = progress_delay();
    P.width = 0;
    P.printed = 0;
    P.detail[0] = 0;
    atomic_store(&P.stop, 0);
    atomic_store(&P.done, 0);
    atomic_store(&P.total, 0);
    /* Without a thread the phase just goes unreported: progress is never worth failing for. */
    P.active = pthread_create(&P.thread, NULL, ticker, NULL) == 0;
}

void progress_update(int64_t done, int64_t total)
{
    atomic_store(&P.total, (long long)total);
    atomic_store(&P.done, (long long)done);
}

void progress_detail(const char *fmt, ...)
{
    if (!P.active) return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&P.detail_lock);
    vsnprintf(P.detail, sizeof P.detail, fmt, ap);
    pthread_mutex_unlock(&P.detail_lock);
    va_end(ap);
}

static void stop_ticker(void)
{
    atomic_store(&P.stop, 1);
    pthread_join(P.thread, NULL);
    P.active = 0;
}

void progress_abort(void)
{
    if (!P.active) return;
    stop_ticker();
    if (P.printed) fputc('\n', stderr);
}

void progress_end(void)
{
    if (!P.active) return;
    stop_ticker();
    double t = wall_seconds() - P.t0;
    if (P.printed || t >= P.after) {
        char tail[64];
        snprintf(tail, sizeof tail, "done in %.1f s", t);
        show(tail);
        fputc('\n', stderr);
    }
}
