/* `labench predict`'s output: console tables and the predictions JSON ("labench-predict"). */
#ifndef LABENCH_PREDICTIONS_H
#define LABENCH_PREDICTIONS_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "bench/analysis/predict.h"
#include "bench/comm/comm_model.h"

/* The fit of each strategy (or the pooled one) and the replay check. */
void predictions_print_fits(FILE *f, const Measured *src, int holdout_every, int pooled);
/* One world size's predictions, compute only and with communication. */
void predictions_print_world(FILE *f, int W, const CommCost *cc, const CommConfig *comm, const Prediction *p, int n);
/* LongAlign's Figure 5 beside the predicted speed-ups. */
void predictions_print_fig5(FILE *f, const Fig5Prediction *fig5);

/* One world size's entry of "predictions". New reference. */
json_t *predictions_world_json(int W, const CommConfig *comm, const CommCost *cc, const Prediction *p, int n);

typedef struct {
    const char *command;         /* the command line, as typed */
    const char *from;            /* the measured results file */
    const Measured *src;
    const char *len_dist;        /* the predicted distribution */
    int64_t samples;
    double len_scale;
    uint64_t seed;
    int pooled, holdout_every;
    const CommConfig *comm;
    json_t *predictions;         /* array of predictions_world_json (borrowed) */
    const Fig5Prediction *fig5;
} PredictionsDoc;

/* The whole document, atomically. 0, or -1 with err. */
int predictions_write(const char *path, const PredictionsDoc *d, char *err, size_t errlen);

#endif
