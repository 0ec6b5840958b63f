#include "bench/input/task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/input/markov.h"

enum { TASK_MARKOV, TASK_TWO_SOURCE };

/* Successors per token of every chain: as the markov task has always used. */
#define TASK_FANOUT 4

struct Task {
    int kind;
    int64_t long_threshold;
    MarkovChain prompt;    /* two-source: prompts */
    MarkovChain src[2];    /* targets: [0] short samples (B) or every token (markov), [1] long (A) */
    double entropy[2];     /* of src[], computed once */
};

const char *const TASK_NAMES[] = {"two-source", "markov", NULL};

int64_t task_default_long_threshold(double len_scale)
{
    long long x = llround(TASK_LONG_THRESHOLD_UNSCALED * len_scale);
    return x < 1 ? 1 : (int64_t)x;
}

/* Chain seeds of two-source, one per role, derived from the user seed. */
static uint64_t role_seed(uint64_t seed, uint64_t role)
{
    uint64_t x = seed ^ (role * 0xa0761d6478bd642fULL);
    return splitmix64(&x);
}

int task_create(Task **out, const char *name, int vocab, int64_t long_threshold, uint64_t seed, char *err,
                size_t errlen)
{
    *out = NULL;
    int kind;
    if (name && strcmp(name, "markov") == 0) {
        kind = TASK_MARKOV;
    } else if (name && strcmp(name, "two-source") == 0) {
        kind = TASK_TWO_SOURCE;
    } else {
        char valid[128] = "";
        for (int i = 0; TASK_NAMES[i]; i++)
            snprintf(valid + strlen(valid), sizeof valid - strlen(valid), "%s%s", i ? ", " : "", TASK_NAMES[i]);
        snprintf(err, errlen, "--task: unknown task '%s'; valid: %s", name ? name : "(null)", valid);
        return -1;
    }
    if (vocab < 2) {
        snprintf(err, errlen, "task %s: vocabulary of %d tokens, need >= 2", name, vocab);
        return -1;
    }
    if (long_threshold < 1) {
        snprintf(err, errlen, "task %s: long threshold %lld, need >= 1", name, (long long)long_threshold);
        return -1;
    }
    Task *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->kind = kind;
    t->long_threshold = long_threshold;
    if (kind == TASK_MARKOV) {
        /* the very chain (and seed) labench trained on before tasks existed */
        if (markov_create(&t->src[0], vocab, TASK_FANOUT, seed) != 0) goto oom;
        t->entropy[0] = t->entropy[1] = markov_entropy_rate(&t->src[0]);
    } else {
        if (markov_create(&t->prompt, vocab, TASK_FANOUT, role_seed(seed, 'P')) != 0 ||
            markov_create(&t->src[0], vocab, TASK_FANOUT, role_seed(seed, 'B')) != 0 ||
            markov_create(&t->src[1], vocab, TASK_FANOUT, role_seed(seed, 'A')) != 0)
            goto oom;
        t->entropy[0] = markov_entropy_rate(&t->src[0]);
        t->entropy[1] = markov_entropy_rate(&t->src[1]);
    }
    *out = t;
    return 0;
oom:
    task_free(t);
    snprintf(err, errlen, "out of memory creating task %s over %d tokens", name, vocab);
    return -1;
}

void task_free(Task *t)
{
    if (!t) return;
    markov_free(&t->prompt);
    markov_free(&t->src[0]);
    markov_free(&t->src[1]);
    free(t);
}

const char *task_name(const Task *t) { return TASK_NAMES[t->kind == TASK_MARKOV ? 1 : 0]; }

int64_t task_long_threshold(const Task *t) { return t->long_threshold; }

void task_describe(const Task *t, char *buf, size_t n)
{
    if (t->kind == TASK_MARKOV)
        snprintf(buf, n, "markov: every token from one Markov chain (entropy rate %.3f nats)", t->entropy[0]);
    else
        snprintf(buf, n,
                 "two-source: targets of samples >= %lld tokens follow chain A (entropy rate %.3f nats), "
                 "of shorter ones chain B (%.3f); prompts follow chain P",
                 (long long)t->long_threshold, t->entropy[1], t->entropy[0]);
}

int task_source(const Task *t, int len) { return t->kind == TASK_TWO_SOURCE && len >= t->long_threshold; }

double task_source_entropy(const Task *t, int source) { return t->entropy[source ? 1 : 0]; }

void task_tokens(const Task *t, uint64_t seed, int64_t sample, int len, int target, int32_t *out)
{
    if (t->kind == TASK_MARKOV) {
        markov_tokens(&t->src[0], seed, sample, out, len);
        return;
    }
    if (len <= 0) return;
    const MarkovChain *answer = &t->src[task_source(t, len)];
    const int first_target = len - target;
    Rng r = markov_sample_rng(seed, sample);
    out[0] = (int32_t)rng_below(&r, (uint64_t)t->prompt.vocab);
    /* token i is drawn from the chain of its role, given token i-1 (the first target token is
     * drawn by the answer's chain from the last prompt token) */
    for (int i = 1; i < len; i++) out[i] = markov_step(i >= first_target ? answer : &t->prompt, out[i - 1], &r);
}
