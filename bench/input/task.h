/* Synthetic training tasks: what the token streams of the samples are, as a pure function of
 * (task, data seed, sample id, length, target count). Every strategy trains on the same tokens
 * for the same sample, and the validation set is drawn from the same task.
 *
 *   markov      one random Markov chain for every token (the data labench always used).
 *   two-source  (default) what must be learnt depends on the sample's length: the target tokens
 *               of a sample of >= long_threshold tokens follow chain A, those of a shorter
 *               sample follow chain B, and every prompt follows a third chain P. A, B and P
 *               share the vocabulary and nothing in a token tells the sources apart, so a model
 *               that gives long samples' targets less weight in the loss predicts A worse: its
 *               validation loss on the long buckets is higher (docs/validation.md).
 */
#ifndef LABENCH_TASK_H
#define LABENCH_TASK_H

#include <stddef.h>
#include <stdint.h>

typedef struct Task Task;

#define TASK_DEFAULT "two-source"
/* The long/short boundary of two-source before --len-scale: LongAlign's 8k (long documents
 * against ShareGPT chat). */
#define TASK_LONG_THRESHOLD_UNSCALED 8192

/* Valid task names, NULL-terminated, for --help and errors. */
extern const char *const TASK_NAMES[];

/* 8192 x len_scale, rounded, at least 1. */
int64_t task_default_long_threshold(double len_scale);

/* Creates the task `name` over `vocab` tokens; its chains are drawn from `seed`. long_threshold
 * (>= 1) is the first length that counts as long (two-source; markov ignores it).
 * 0, or -1 with err set (unknown name, bad vocab or threshold, out of memory). */
int task_create(Task **t, const char *name, int vocab, int64_t long_threshold, uint64_t seed, char *err,
                size_t errlen);
void task_free(Task *t);

const char *task_name(const Task *t);
int64_t task_long_threshold(const Task *t);
/* One line saying what the task is, for the CLI and the results. */
void task_describe(const Task *t, char *buf, size_t n);

/* Which source a sample's targets follow: 1 for a long sample of two-source (chain A), else 0. */
int task_source(const Task *t, int len);
/* Entropy rate (nats/token) of the chain that targets of `source` follow: the lowest mean
 * target loss a model could reach on a sample of that source, were it told the source. */
double task_source_entropy(const Task *t, int source);

/* The `len` tokens of sample `sample` whose last `target` tokens are the targets, into out.
 * A pure function of its arguments; markov gives exactly markov_tokens' stream. */
void task_tokens(const Task *t, uint64_t seed, int64_t sample, int len, int target, int32_t *out);

#endif
