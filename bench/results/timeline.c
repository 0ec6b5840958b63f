/* The DP timeline of one optimizer step, from a results file's micro-batch rows (read by
 * bench/results/results_read.c, which puts them in plan order and bounds them by the plan config). */
#include "bench/results/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/analysis/sync_point.h"

/* Steps by DP wall time, then by index; NaN walls last. */
typedef struct {
    double wall;
    int step;
} StepWall;

static int cmp_step_wall(const void *pa, const void *pb)
{
    const StepWall *a = pa, *b = pb;
    int na = isnan(a->wall), nb = isnan(b->wall);
    if (na != nb) return na - nb;
    if (!na && a->wall != b->wall) return a->wall < b->wall ? -1 : 1;
    return (a->step > b->step) - (a->step < b->step);
}

int timeline_pick_step(const RepRun *run)
{
    if (!run || run->n_steps <= 0) return -1;
    /* The lower median (the earlier step on ties): sorted, not counted pairwise, since a file may
     * hold up to RUN_MAX_STEPS steps. */
    StepWall *w = malloc((size_t)run->n_steps * sizeof *w);
    if (!w) return 0;
    for (int s = 0; s < run->n_steps; s++) w[s] = (StepWall){run->step_wall_s[s], s};
    qsort(w, (size_t)run->n_steps, sizeof *w, cmp_step_wall);
    int step = w[(run->n_steps - 1) / 2].step;
    free(w);
    return step;
}

typedef struct {
    TimelineBox *b;
    int n, cap;
} BoxList;

static int box_add(BoxList *l, int rank, TimelineKind kind, double start, double end)
{
    if (!(end > start)) return 0;   /* nothing to draw */
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        TimelineBox *b = realloc(l->b, (size_t)cap * sizeof *b);
        if (!b) return -1;
        l->b = b;
        l->cap = cap;
    }
    l->b[l->n++] = (TimelineBox){rank, kind, start, end};
    return 0;
}

/* Closes a sync point: every rank waits until the slowest (end[r] -> max), then communication.
 * Returns the time the next sync point starts. */
static double sync_point(BoxList *l, double *end, int W, double comm_s, int *oom)
{
    const double mx = sync_point_close(end, W, NULL);
    for (int r = 0; r < W; r++) {
        if (box_add(l, r, TL_WAIT, end[r], mx) != 0) *oom = 1;
        if (box_add(l, r, TL_COMM, mx, mx + comm_s) != 0) *oom = 1;
    }
    return mx + comm_s;
}

int timeline_build(const RepStrategy *s, int step, double comm_s, TimelineBox **boxes, int *n_boxes)
{
    *boxes = NULL;
    *n_boxes = 0;
    const RepRun *run = s->run;
    const int W = s->cfg.world_size, A = s->cfg.grad_accum;
    if (!run || step < 0 || (int64_t)(step + 1) * A * W > run->n_mbs) return 0;
    /* The step's micro-steps up to the last one in which some rank has work. */
    const MbRow *cell = run->mbs + (size_t)step * A * W;
    int micro_steps = 0;
    for (int m = 0; m < A; m++)
        for (int r = 0; r < W; r++)
            if (cell[(size_t)m * W + r].rows > 0) micro_steps = m + 1;
    double *end = calloc((size_t)W, sizeof *end);
    if (!end) return -1;
    BoxList l = {0};
    int oom = 0, per_micro = s->cfg.sync == SYNC_MICRO;
    double t0 = 0;
    for (int m = 0; m < micro_steps; m++) {
        if (per_micro || m == 0)
            for (int r = 0; r < W; r++) end[r] = t0;
        for (int r = 0; r < W; r++) {
            const MbRow *x = &cell[(size_t)m * W + r];
            if (box_add(&l, r, TL_COMPUTE, end[r], end[r] + x->seconds) != 0) oom = 1;
            if (x->seconds > 0) end[r] += x->seconds;
        }
        if (per_micro || m == micro_steps - 1) t0 = sync_point(&l, end, W, comm_s, &oom);
    }
    double opt = step < run->n_steps && run->optimizer_step_s ? run->optimizer_step_s[step] : 0;
    for (int r = 0; r < W && opt > 0; r++)
        if (box_add(&l, r, TL_OPTIMIZER, t0, t0 + opt) != 0) oom = 1;
    free(end);
    if (oom) {
        free(l.b);
        return -1;
    }
    *boxes = l.b;
    *n_boxes = l.n;
    return 0;
}
