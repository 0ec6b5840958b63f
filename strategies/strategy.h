/* labench strategies: the interface every batching strategy implements, and the plan it makes.
 *
 * A strategy is a pure planner: (samples, config, seed) -> plan. It reads no clock, touches no
 * GPU and does no I/O, so the same inputs give the same plan on every machine. (The rows it adds
 * are counted for the progress line, common/progress.h: two atomic stores, nothing the plan reads.)
 *
 * Plan shape: optimizer steps x micro-steps x ranks, each cell one micro-batch (possibly empty
 * in the last step of an epoch); a micro-batch is rows; a row is consecutive segments (one
 * sequence each). Sync point = (step, micro-step) under --sync micro, = step under --sync step.
 */
#ifndef LABENCH_STRATEGY_H
#define LABENCH_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"

/* One training sample: `len` tokens, of which the last `target` are loss targets (the response).
 * target <= len - 1: a target token is predicted from the position before it. */
typedef struct {
    int32_t len;
    int32_t target;
} Sample;

typedef enum { SYNC_MICRO = 0, SYNC_STEP = 1 } SyncModel;

/* Estimated compute of a micro-batch, in arbitrary units (see strategies/cost.c):
 *   per_token * tokens + per_token_sq * sum over segments of len^2 + per_row * rows
 *   + per_segment * segments.
 * Attention is quadratic in segment length, so equal tokens are not equal time. */
typedef struct {
    double per_token;
    double per_token_sq;
    double per_row;
    double per_segment;  /* 0 unless fitted to a measured run (labench plan --cost-from) */
} CostModel;

typedef struct {
    int world_size;      /* W: simulated data-parallel ranks */
    int micro_batch;     /* B: sequences per rank per micro-step (naive, sorted) */
    int grad_accum;      /* A: micro-steps per optimizer step */
    int max_tokens;      /* L: longest row (packing) and truncation length (all strategies) */
    int epochs;          /* E: passes over the samples */
    SyncModel sync;
    uint64_t seed;
    CostModel cost;      /* used by packing-balanced, packing-fair and the predicted bubble */
} PlanConfig;

/* The largest plan config values labench takes, on the command line and in results files. */
#define PLAN_MAX_WORLD_SIZE  (1 << 20)
#define PLAN_MAX_MICRO_BATCH (1 << 20)
#define PLAN_MAX_GRAD_ACCUM  (1 << 20)
#define PLAN_MAX_TOKENS      (1 << 30)
#define PLAN_MAX_EPOCHS      1000

/* One sequence inside a row. Every target token of the segment carries `weight` in the loss
 * (all strategies here weigh tokens uniformly within a sequence); prompt tokens weigh 0. */
typedef struct {
    int32_t sample;      /* index into the sample array */
    int32_t len;         /* tokens, after truncation to L */
    int32_t target;      /* target tokens, after truncation */
    float weight;        /* loss weight of each target token */
} Segment;

/* A row: segments laid end to end, attention never crossing them. A padded row (naive, sorted)
 * is computed at padded_len >= tokens; the pads are computed and weigh 0. `capacity` is the
 * row's slot count for packing efficiency: L for packs, padded_len for padded rows. */
typedef struct {
    int32_t first_segment;
    int32_t n_segments;
    int32_t tokens;      /* real tokens: sum of segment lengths */
    int32_t padded_len;  /* tokens computed */
    int32_t capacity;
} Row;

typedef struct {
    int32_t first_row;
    int32_t n_rows;      /* 0: this rank idles at this micro-step */
} MicroBatch;

typedef struct {
    char strategy[32];
    PlanConfig cfg;
    int n_steps;         /* optimizer steps */
    int micro_steps;     /* micro-steps per optimizer step (A for every strategy here) */
    MicroBatch *mbs;     /* n_steps * micro_steps * world_size; see plan_mb() */
    Row *rows;
    int64_t n_rows;
    Segment *segs;
    int64_t n_segs;
    int64_t n_samples;   /* samples given to the planner, per epoch */
    int64_t n_truncated; /* sample-uses longer than L, truncated (counted over all epochs) */
    int weights_per_sequence; /* the rule plan_set_weights applied: 1: 1/(M*N_i), 0: 1/(K*T_mb) */
} Plan;

static inline MicroBatch *plan_mb(const Plan *p, int step, int micro, int rank)
{
    return &p->mbs[((size_t)step * p->micro_steps + micro) * p->cfg.world_size + rank];
}

/* A strategy fills `plan` (already zeroed, cfg and strategy name set) from the samples.
 * Returns 0, or -1 with a message in err (only on allocation failure: configs are validated
 * before planning by plan_config_check). Called through plan_make only: the samples it gets
 * are already truncated to L, and plan->segs / plan->rows already have room for
 * n_samples * epochs entries (each sample is used once per epoch, and a row is never empty). */
typedef int (*PlanFn)(Plan *plan, const Sample *samples, int64_t n_samples, char *err, size_t errlen);

typedef struct {
    const char *name;
    const char *summary;  /* one line for --help */
    PlanFn plan;
    int packs;            /* 1: rows are packs of up to L tokens; 0: padded rows of B sequences */
} Strategy;

/* A sample's target tokens from the count its source asks for: at most len - 1 (a target is
 * predicted from the position before it), and at least 1 where the sample has room for one. */
static inline int32_t sample_target_clamp(int64_t len, int64_t target)
{
    const int64_t lo = len > 1 ? 1 : 0;
    if (target < lo) target = lo;
    if (target > len - 1) target = len - 1;
    return (int32_t)target;
}

/* The truncation policy of every strategy (docs/strategies.md): a sample longer than L keeps its
 * LAST L tokens, so the response survives; its target becomes at most L - 1. */
static inline Sample sample_truncate(Sample s, int32_t L)
{
    if (s.len > L) {
        s.len = L;
        if (s.target > L - 1) s.target = L - 1;
    }
    return s;
}

/* Registry (strategies/registry.c). */
extern const Strategy *const STRATEGIES[];
extern const int N_STRATEGIES;
const Strategy *strategy_find(const char *name);

/* Defaults mirroring LongAlign (DESIGN.md): W=8; naive/sorted B=1, A=12; packs A=1, L=65536. */
PlanConfig plan_config_default(const Strategy *s);

/* Returns 0 if usable, else -1 with the offending option named in err. */
int plan_config_check(const PlanConfig *cfg, char *err, size_t errlen);

/* Runs the strategy: allocates and fills *plan. 0 on success, -1 with err set. */
int plan_make(const Strategy *s, const PlanConfig *cfg, const Sample *samples, int64_t n_samples,
              Plan *plan, char *err, size_t errlen);
void plan_free(Plan *plan);

/* Cost of one micro-batch under cfg->cost (strategies/cost.c). */
double plan_mb_cost(const Plan *p, const MicroBatch *mb);
double row_cost(const CostModel *c, const Plan *p, const Row *r);
/* Cost model from a Llama-style layer shape: hidden size d, MLP size f (FLOP-derived). */
CostModel cost_model_from_shape(int hidden, int intermediate);

/* ---- Planner toolkit (strategies/plan.c, packing_bfd.c): for the strategy files, not callers ---- */

/* Random streams, one per purpose: strategies sharing a purpose see the same numbers for the same
 * seed and epoch (naive and packing walk the same shuffled order; packing-bfd and
 * packing-balanced build the same packs). */
enum { PLAN_STREAM_ORDER = 1, PLAN_STREAM_GROUPS = 2, PLAN_STREAM_ROWS = 3 };
Rng plan_rng(const Plan *p, int stream, int epoch);

/* A fresh seeded permutation of 0..n-1 for one epoch; malloc'd, NULL when out of memory. */
int32_t *plan_epoch_order(const Plan *p, int64_t n, int epoch);

/* An index with a sort key; keyed_desc orders by key, largest first, ties by lower index (qsort). */
typedef struct {
    double key;
    int32_t index;
} Keyed;
int keyed_desc(const void *a, const void *b);

/* Sorts a[0..n) ascending in O(n) (LSD radix); tmp has room for n keys. */
void plan_sort_u64(uint64_t *a, uint64_t *tmp, int64_t n);

/* Appends one row holding samples idx[0..k) in that order (weights set later by
 * plan_set_weights). padded_len 0 means "its tokens", capacity 0 means L. */
void plan_add_row(Plan *p, const Sample *samples, const int32_t *idx, int32_t k,
                  int32_t padded_len, int32_t capacity);

/* Deals rows [first_row, n_rows) as consecutive micro-batches of rows_per_mb rows (the last may
 * be short) in (step, micro-step, rank) order, starting a new optimizer step; the slots after
 * the last micro-batch stay empty. -1 with err on allocation failure. */
int plan_deal(Plan *p, int64_t first_row, int rows_per_mb, char *err, size_t errlen);

/* naive/sorted: micro-batches of B consecutive sequences of order[0..n), each sequence its own
 * row padded to the micro-batch's longest, dealt with plan_deal. */
int plan_add_padded(Plan *p, const Sample *samples, const int32_t *order, int64_t n,
                    char *err, size_t errlen);

/* Sets every segment's weight, step by step (DESIGN.md "Loss weights"): per_sequence 0 gives
 * 1/(K*T_mb), 1 gives 1/(M*N_i); segments without targets weigh 0. */
void plan_set_weights(Plan *p, int per_sequence);
/* The pieces of that rule, for readers that want the weights in double (Segment.weight is a
 * float; labench plan --emit-batches writes them exact): M and K of one step, T_mb of one
 * micro-batch, and the weight of each target token of a segment with `target` targets. */
void plan_step_weight_counts(const Plan *p, int step, int64_t *M, int64_t *K);
int64_t plan_mb_targets(const Plan *p, const MicroBatch *mb);
double plan_weight(int per_sequence, int64_t M, int64_t K, int64_t T_mb, int32_t target);

/* Packs of one epoch as lists of sample indices: row r holds items[start[r] .. start[r+1]). */
typedef struct {
    int32_t n_rows;
    int32_t *start;   /* n_rows + 1 */
    int32_t *items;
} Packs;
/* Best-fit decreasing into rows of L tokens (strategies/packing_bfd.c). 0, or -1 when out of
 * memory. Each row lists its samples longest first. packs_bfd packs the whole epoch (in its
 * seeded order, which breaks ties between equal lengths); packs_bfd_items packs the samples
 * items[0..n), ties going to the earlier item. */
int packs_bfd(const Plan *p, const Sample *samples, int64_t n, int epoch, Packs *out);
int packs_bfd_items(const Plan *p, const Sample *samples, const int32_t *items, int64_t n, Packs *out);
void packs_free(Packs *packs);

/* Best fit of n items of lengths len[0..n), in that order (longest first for BFD), into bins of
 * L tokens: free_tokens[0..*n_bins) are bins already open (their free space), and a new bin of
 * L opens when none holds the item (free_tokens has room for *n_bins + n). bin_of[j]: item j's
 * bin. 0, or -1 when out of memory. */
int bins_best_fit(int32_t L, const int32_t *len, int64_t n, int32_t *free_tokens, int32_t *n_bins, int32_t *bin_of);

/* Evening out packs that wait for each other (strategies/balance.c). A group of w slots (packs)
 * holds g items: item[j] (a sample index) sits in slot label[j]; cost[r] and tokens[r] are slot
 * r's cost (cost model, per_row included) and tokens. balance_slots repeatedly takes the
 * costliest and the cheapest slot and makes the single move (never emptying a slot) or swap of
 * one item each that lowers the larger of the two most, keeping both within L; it stops when
 * none does, or after max_rounds. Returns the rounds made. */
typedef struct {
    int32_t *item, *label, *sorted;   /* per item (sorted: scratch for the caller) */
    uint64_t *hk, *lk, *tmp;          /* per item: scratch */
    double *cost;                     /* per slot */
    int64_t *tokens;                  /* per slot */
    int32_t *count;                   /* per slot + 1: scratch for the caller */
} BalanceWork;
int balance_work_init(BalanceWork *wk, int64_t max_items, int max_slots);
void balance_work_free(BalanceWork *wk);
int balance_slots(const Sample *s, const CostModel *c, int64_t L, int w, int32_t g, int max_rounds, BalanceWork *wk);
/* balance_slots under the plan's cost model and L, then one row per slot appended to the plan,
 * each keeping its items' order. */
void balance_emit(Plan *p, const Sample *s, int w, int32_t g, int max_rounds, BalanceWork *wk);
/* One segment's share of a row's cost (everything but per_row). */
double seg_cost(const CostModel *c, int64_t len);

/* Karmarkar-Karp's largest differencing method: splits n items (cost[i]) into k parts of n/k
 * items each with sums as even as it can; part_of[i] in 0..k-1. Deterministic. 0, or -1 when n
 * is not a multiple of k (k >= 2) or out of memory. */
int kk_partition_equal(const double *cost, int32_t n, int k, int32_t *part_of);

#endif
