/* Held-out validation: what each strategy's batches made the model learn, measured on samples no
 * strategy trains on, per length bucket (docs/validation.md).
 *
 *   val_split     splits the sampled set into a training part (what the planners see) and a
 *                 validation part, disjoint by construction; both keep each sample's identity
 *                 (its index in the sampled set), which is also what its tokens are drawn from.
 *   val_eval      validation loss per length bucket: the mean over the bucket's sequences of each
 *                 sequence's mean target-token cross-entropy (every sequence counts the same).
 *   ValCurves     those losses at each evaluation point of a run, for the results JSON and a table.
 *   steps_for_sequences  how many optimizer steps of a plan see a given number of sequences, so
 *                 that every strategy is evaluated after the same training data.
 */
#ifndef LABENCH_VALIDATE_H
#define LABENCH_VALIDATE_H

#include <jansson.h>
#include <stdio.h>

#include "bench/input/task.h"
#include "model/model.h"
#include "strategies/strategy.h"

#define VAL_MAX_BUCKETS 8
/* Edges of the default buckets before --len-scale: <2k, 2k-8k, 8k-32k, >=32k tokens. */
#define VAL_DEFAULT_EDGES {2048, 8192, 32768}
/* Stream constant for rng_seed: the split's draws are independent of the sampler's and planners'. */
#define VAL_RNG_STREAM UINT64_C(0x76616c6964617465)   /* "validate" */

/* Length buckets: bucket i holds lengths in [edges[i-1], edges[i]), from 0 for the first and
 * without bound for the last. Lengths are after truncation to L: what the model sees. */
typedef struct {
    int n;                                /* 1 .. VAL_MAX_BUCKETS */
    int64_t edges[VAL_MAX_BUCKETS - 1];   /* n - 1 strictly increasing edges, all >= 1 */
    int64_t long_threshold;               /* a bucket whose lower edge is >= this is "long" */
} ValBuckets;

/* The default buckets scaled by len_scale (edges rounded; any that collapse onto the previous one
 * are dropped), long from 8192 x len_scale on, the two-source task's boundary. */
void val_buckets_default(double len_scale, ValBuckets *b);
int val_bucket_of(const ValBuckets *b, int64_t len);
int val_bucket_is_long(const ValBuckets *b, int i);
/* "<2k", "2k-8k", ">=32k"; lengths that are not multiples of 1024 are written in full. */
void val_bucket_label(const ValBuckets *b, int i, char *buf, size_t n);

/* The validation part of a split. */
typedef struct {
    ValBuckets buckets;
    int64_t n;
    Sample *samples;       /* truncated to L as the planners do (the last L tokens kept) */
    int64_t *ids;          /* identity of each: its index in the sampled set; ascending */
    int *bucket;           /* bucket of each */
    int64_t count[VAL_MAX_BUCKETS];   /* validation sequences per bucket */
    double share[VAL_MAX_BUCKETS];    /* share of all sampled sequences (with targets) per bucket */
    int max_len;           /* longest validation sequence: the model needs this much capacity */
} ValSet;

/* The training part: what the planners get. ids[i] is the identity of samples[i]: hand it to
 * the batch builder (BatchBuf.sample_ids) so its tokens are those of sample ids[i]. */
typedef struct {
    Sample *samples;       /* untruncated, in the sampled order */
    int64_t *ids;
    int64_t n;
} TrainSet;

/* Default validation size for n sampled sequences: 2% of them, at least 32 and at most 128 (32
 * per default bucket), and never more than a quarter of the set: one evaluation of LongAlign's
 * mix at x 1/16 then costs about as much CPU time as two optimizer steps. */
int64_t val_default_count(int64_t n_samples);

/* Splits all[0..n_all) into *train and *vs: n_val validation samples chosen by a seeded draw
 * (seed, VAL_RNG_STREAM), spread as evenly over the buckets as the samples allow (so the long
 * buckets, rare in the data, are measured on as many sequences as the short ones), among samples
 * that have at least one target token after truncation to max_tokens; the rest is the training
 * part, in the sampled order. Deterministic in (all, n_val, max_tokens, buckets, seed).
 * n_val = 0 gives an empty validation set and the whole set for training.
 * 0, or -1 with err set (n_val out of range, out of memory). */
int val_split(const Sample *all, int64_t n_all, int64_t n_val, int max_tokens, const ValBuckets *buckets,
              uint64_t seed, ValSet *vs, TrainSet *train, char *err, size_t errlen);
void val_set_free(ValSet *vs);
void train_set_free(TrainSet *t);

/* Checks that no sequence of the plan is a validation sample: segment s is sample
 * sample_ids[s.sample] (the identity of the plan's input; NULL: s.sample itself).
 * 0, or -1 with err naming the first offender. */
int val_check_disjoint(const ValSet *vs, const Plan *plan, const int64_t *sample_ids, char *err, size_t errlen);

/* Validation loss per bucket: every validation sequence's mean cross-entropy over its target
 * tokens, averaged over the sequences of each bucket (bucket_loss[b] = NAN and bucket_count[b] = 0
 * for an empty bucket; both arrays have vs->buckets.n entries). The sequences are packed into
 * rows of up to m->max_tokens tokens (attention never crosses a sequence, so packing does not
 * change any loss) and run with model_forward; gradients and optimizer state are untouched.
 * Tokens: task_tokens(task, seed, ids[i], ...), the same data the training samples are drawn from.
 * 0, or -1 when a sequence is longer than the model's capacity (size the model for at least
 * vs->max_len tokens) or out of memory. */
int val_eval(Model *m, const ValSet *vs, const Task *task, uint64_t seed, double *bucket_loss, int *bucket_count);

/* Sequences (segments) in the first `steps` optimizer steps of a plan (clamped to the plan). */
int64_t plan_sequences_in_steps(const Plan *p, int steps);
/* The fewest optimizer steps after which the plan has trained on at least n_seqs sequences
 * (the whole plan when it holds fewer; 0 for n_seqs <= 0). */
int steps_for_sequences(const Plan *p, int64_t n_seqs);

/* Validation losses of one run at each evaluation point. */
typedef struct {
    ValBuckets buckets;
    int64_t count[VAL_MAX_BUCKETS];
    double share[VAL_MAX_BUCKETS];
    int n_points, cap;
    int *step;             /* optimizer steps taken before the evaluation */
    int64_t *sequences;    /* training sequences seen by then */
    double *loss;          /* [n_points][VAL_MAX_BUCKETS] */
} ValCurves;

int val_curves_init(ValCurves *c, const ValSet *vs);   /* 0, or -1 out of memory */
int val_curves_add(ValCurves *c, int step, int64_t sequences_seen, const double *bucket_loss);
void val_curves_free(ValCurves *c);
/* Summaries of point i (-1: the last), weighting the buckets by their share of the sampled set:
 * the estimated per-sequence loss over the whole distribution (LongAlign's Eq. 2 objective on
 * held-out data), and the same over the long buckets only. NAN when there is nothing to average. */
double val_curves_overall(const ValCurves *c, int point);
double val_curves_long(const ValCurves *c, int point);

/* {"buckets": [{label, min, max, long, sequences, population_share}], "bucket_edges": [...],
 *  "long_threshold", "points": [{step, sequences_seen, loss: [per bucket], overall, long}],
 *  "final": the last point}. Empty buckets' losses are null. NULL when out of memory. */
json_t *val_curves_json(const ValCurves *c);

/* Plain-text table: each strategy's final validation loss per bucket, overall and long; then,
 * when both packing and packing-lw are there, packing minus packing-lw on each long bucket. */
void val_print_table(FILE *f, const char *const *names, const ValCurves *const *curves, int n);

#endif
