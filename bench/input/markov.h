/* Synthetic training data a model can learn: seeded token streams from a random Markov chain
 * over the vocabulary. Each token has `fanout` possible successors with random probabilities,
 * so the best achievable loss is the chain's entropy rate (markov_entropy_rate), well below the
 * ln(V) of an untrained model: training that works is visible in the loss curve. */
#ifndef LABENCH_DATA_H
#define LABENCH_DATA_H

#include <stdint.h>

#include "common/rng.h"

typedef struct {
    int vocab;
    int fanout;
    int32_t *next;   /* [vocab * fanout] successor ids */
    double *cum;     /* [vocab * fanout] cumulative probabilities (last = 1) */
    uint64_t seed;
} MarkovChain;

int markov_create(MarkovChain *mc, int vocab, int fanout, uint64_t seed);
void markov_free(MarkovChain *mc);
/* The tokens of one sample: a pure function of (chain, seed, sample index, len), so every
 * strategy trains on the same sequence for the same sample. */
void markov_tokens(const MarkovChain *mc, uint64_t seed, int64_t sample, int32_t *out, int len);
/* One step of the chain from token s, drawing from r: for callers that mix chains in one stream. */
int32_t markov_step(const MarkovChain *mc, int32_t s, Rng *r);
/* The per-sample random stream markov_tokens draws from: seeded by (seed, sample). */
Rng markov_sample_rng(uint64_t seed, int64_t sample);
/* Entropy rate in nats per token under the chain's stationary distribution (power iteration). */
double markov_entropy_rate(const MarkovChain *mc);

#endif
