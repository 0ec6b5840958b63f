#include "bench/input/markov.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

int markov_create(MarkovChain *mc, int vocab, int fanout, uint64_t seed)
{
    memset(mc, 0, sizeof *mc);
    if (fanout > vocab) fanout = vocab;
    mc->vocab = vocab;
    mc->fanout = fanout;
    mc->seed = seed;
    mc->next = malloc((size_t)vocab * fanout * sizeof *mc->next);
    mc->cum = malloc((size_t)vocab * fanout * sizeof *mc->cum);
    if (!mc->next || !mc->cum) {
        markov_free(mc);
        return -1;
    }
    Rng r = rng_seed(seed, 0xda7a);
    for (int s = 0; s < vocab; s++) {
        int32_t *nx = mc->next + (size_t)s * fanout;
        double *cm = mc->cum + (size_t)s * fanout, total = 0;
        for (int j = 0; j < fanout; j++) {
            nx[j] = (int32_t)rng_below(&r, (uint64_t)vocab);
            /* uneven weights (exponential) so the chain's entropy is below ln(fanout) */
            cm[j] = -log(1.0 - rng_uniform(&r));
            total += cm[j];
        }
        double acc = 0;
        for (int j = 0; j < fanout; j++) {
            acc += cm[j] / total;
            cm[j] = acc;
        }
        cm[fanout - 1] = 1.0;
    }
    return 0;
}

void markov_free(MarkovChain *mc)
{
    free(mc->next);
    free(mc->cum);
    memset(mc, 0, sizeof *mc);
}

int32_t markov_step(const MarkovChain *mc, int32_t s, Rng *r)
{
    const double *cm = mc->cum + (size_t)s * mc->fanout;
    double u = rng_uniform(r);
    int j = 0;
    while (j < mc->fanout - 1 && u >= cm[j]) j++;
    return mc->next[(size_t)s * mc->fanout + j];
}

Rng markov_sample_rng(uint64_t seed, int64_t sample)
{
    return rng_seed(seed ^ (uint64_t)sample * 0x9e3779b97f4a7c15ULL, 0x70c5);
}

void markov_tokens(const MarkovChain *mc, uint64_t seed, int64_t sample, int32_t *out, int len)
{
    Rng r = markov_sample_rng(seed, sample);
    if (len <= 0) return;
    out[0] = (int32_t)rng_below(&r, (uint64_t)mc->vocab);
    for (int t = 1; t < len; t++) out[t] = markov_step(mc, out[t - 1], &r);
}

double markov_entropy_rate(const MarkovChain *mc)
{
    const int V = mc->vocab, K = mc->fanout;
    double *pi = malloc((size_t)V * sizeof *pi), *nx = malloc((size_t)V * sizeof *nx);
    if (!pi || !nx) {
        free(pi);
        free(nx);
        return NAN;
    }
    for (int s = 0; s < V; s++) pi[s] = 1.0 / V;
    for (int it = 0; it < 2000; it++) {
        memset(nx, 0, (size_t)V * sizeof *nx);
        for (int s = 0; s < V; s++) {
            double prev = 0;
            for (int j = 0; j < K; j++) {
                double p = mc->cum[(size_t)s * K + j] - prev;
                prev = mc->cum[(size_t)s * K + j];
                nx[mc->next[(size_t)s * K + j]] += pi[s] * p;
            }
        }
        /* average with the previous iterate: converges on periodic chains too */
        for (int s = 0; s < V; s++) pi[s] = 0.5 * (pi[s] + nx[s]);
    }
    double h = 0;
    for (int s = 0; s < V; s++) {
        /* successors may repeat: merge equal ids before taking the entropy of the row */
        double prev = 0;
        for (int j = 0; j < K; j++) {
            double p = mc->cum[(size_t)s * K + j] - prev;
            prev = mc->cum[(size_t)s * K + j];
            int dup = 0;
            for (int i = 0; i < j; i++)
                if (mc->next[(size_t)s * K + i] == mc->next[(size_t)s * K + j]) dup = 1;
            if (dup || p <= 0) continue;
            double q = p, prev2 = prev;
            for (int i = j + 1; i < K; i++) {
                double pi_ = mc->cum[(size_t)s * K + i] - prev2;
                prev2 = mc->cum[(size_t)s * K + i];
                if (mc->next[(size_t)s * K + i] == mc->next[(size_t)s * K + j]) q += pi_;
            }
            h -= pi[s] * q * log(q);
        }
    }
    free(pi);
    free(nx);
    return h;
}
