/* DESIGN.md's data-parallel arithmetic, written once (DESIGN.md, "Measurements — definitions"):
 *   at each sync point the group waits for its slowest rank: it lasts max_r t_r, and rank r idles
 *   max - t_r (the bubble);
 *   DP wall   = sum over sync points of max_r t_r + communication + the optimizer (unless it runs
 *               on the host, ZeRO-3 offload's CPU Adam, which the communication then counts);
 *   bubble    = sum over sync points of sum_r (max - t_r) / (W x DP wall).
 * Used by the run metrics, the plan metrics' predicted bubble, the prediction, the runner's trace
 * and the report's timeline. */
#ifndef LABENCH_SYNC_POINT_H
#define LABENCH_SYNC_POINT_H

/* One sync point of W ranks with times t[0..W): returns max_r t_r and adds sum_r (max - t_r),
 * computed as W x max - sum t, to *idle (NULL: not wanted). */
static inline double sync_point_close(const double *t, int W, double *idle)
{
    double mx = 0, sum = 0;
    for (int r = 0; r < W; r++) {
        sum += t[r];
        if (t[r] > mx) mx = t[r];
    }
    if (idle) *idle += W * mx - sum;
    return mx;
}

/* The DP wall time from the sum of the sync points' maxima, the communication and the optimizer
 * time (left out when the optimizer runs on the host). */
static inline double dp_wall_seconds(double sum_max_s, double comm_s, double optimizer_s, int optimizer_on_host)
{
    return sum_max_s + comm_s + (optimizer_on_host ? 0.0 : optimizer_s);
}

/* The bubble fraction of a wall time: idle rank-seconds over W x wall (0 for an empty wall). */
static inline double dp_bubble_fraction(double idle_s, int W, double wall_s)
{
    return wall_s > 0 ? idle_s / (W * wall_s) : 0.0;
}

#endif
