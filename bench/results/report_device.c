/* REPORT.md's "Predicted on WxDEVICE" section: the device model's prediction of each
 * strategy's plan (`labench plan --device`), with LongAlign's published training hours beside it
 * when the file predicts LongAlign's models. Files without plan.device_prediction get nothing. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/analysis/predict.h"
#include "bench/results/report.h"

/* LongAlign's published hours of a strategy (NAN for the strategies the paper did not run). */
static double paper_hours(const LongAlignHours *h, const char *strategy)
{
    if (strcmp(strategy, "naive") == 0) return h->naive_h;
    if (strcmp(strategy, "packing") == 0) return h->packing_h;
    if (strcmp(strategy, "sorted") == 0) return h->sorted_h;
    return NAN;
}

void md_device_prediction(FILE *f, const ResultsFile *rf)
{
    const RepStrategy *first = NULL;
    double naive = NAN;
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        if (!s->dev.device) continue;
        if (!first) first = s;
        if (strcmp(s->name, "naive") == 0) naive = s->dev.wall_seconds;
    }
    if (!first) return;
    const LongAlignHours *paper = NULL;   /* the paper's row when the file predicts its setup */
    for (int k = 0; k < N_LONGALIGN_FIG5; k++)
        if (strcmp(first->dev.model, LONGALIGN_FIG5[k].preset) == 0 && strcmp(first->dev.device, "a800") == 0 &&
            first->world_size == 8)
            paper = &LONGALIGN_FIG5[k];
    fprintf(f, "### Predicted on %dx%s\n\n", first->world_size, first->dev.device);
    fprintf(f, "The device model's prediction (docs/device-model.md) for model `%s`, computed on the machine "
               "that made this file: a prediction, not a measurement.%s\n\n",
            first->dev.model, paper ? " LongAlign's published hours (8x A800, ZeRO-3 + CPU offload) beside it." : "");
    fputs("| strategy | predicted wall h | vs naive | tokens/s | MFU | DP bubble | comm s |", f);
    fputs(paper ? " LongAlign h | error |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
                     : "\n|---|---:|---:|---:|---:|---:|---:|\n",
          f);
    for (int i = 0; i < rf->n_strategies; i++) {
        const RepStrategy *s = &rf->strategies[i];
        if (!s->dev.device) continue;
        double h = s->dev.wall_seconds / 3600;
        fprintf(f, "| %s | %.1f | ", s->name, h);
        if (isfinite(naive) && s->dev.wall_seconds > 0) fprintf(f, "%.2fx", naive / s->dev.wall_seconds);
        else fputs("n/a", f);
        fprintf(f, " | %.0f | %.1f%% | %.1f%% | %.0f |", s->dev.tokens_per_s, 100 * s->dev.mfu,
                100 * s->dev.bubble_fraction, s->dev.comm_seconds);
        if (paper) {
            double p = paper_hours(paper, s->name);
            if (isfinite(p)) fprintf(f, " %.1f (%s) | %+.0f%% |", p, paper->model, 100 * (h / p - 1));
            else fputs(" - | - |", f);
        }
        fputs("\n", f);
    }
    fputs("\n", f);
}
