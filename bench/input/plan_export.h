/* Exported batches: a plan written as JSON Lines for a training job to consume
 * (`labench plan --emit-batches OUT.jsonl[.gz]`; the reader is python/labench_batches).
 *
 * Format (version 1; docs in README "Train with a labench plan"):
 *   line 1   a header object, "schema": "labench-batches", with the plan config, the source file
 *            and its checksum, the weighting rule, and "lines": how many batch lines follow;
 *   then     one object per (step, micro_step, rank) in execution order (step, then micro-step,
 *            then rank), every rank at every micro-step, idle ones with "rows": [];
 *            "rows" is a list of rows, a row a list of segments [index, tokens, target_tokens,
 *            weight], or [index, tokens, target_tokens, weight, record_tokens] when the record
 *            was truncated: a segment is always the record's LAST `tokens` tokens, and the last
 *            `target_tokens` of those are the loss targets, each weighing `weight`;
 *   last     a trailer object, "end": "labench-batches", with the batch line count and the
 *            CRC-32 of every byte before it, so a reader can refuse a truncated or altered file
 *            before it trains on any of it.
 * Weights are exact doubles (17 digits): a step's target-token weights sum to 1. */
#ifndef LABENCH_PLAN_EXPORT_H
#define LABENCH_PLAN_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "strategies/strategy.h"

#define PLAN_EXPORT_VERSION 1

/* Where the plan's samples came from, so that `index` leads back to a record. */
typedef struct {
    const char *kind;          /* "lengths": index = data line of the lengths file; "len-dist": the
                                  drawn sample's position in the drawn list */
    const char *path;          /* the source file (checksummed into the header) */
    const Sample *samples;     /* what the planner got, before truncation */
    const int64_t *record;     /* sample -> index written; NULL: the sample's own position */
    int64_t n_records;         /* indices in the source (lengths: its data lines, skipped ones too) */
    const char *commit;        /* labench's source commit, for the header */
    int progress;              /* a progress line on stderr (common/progress.h) */
} PlanExportSource;

/* Writes the plan to path (gzip when it ends in ".gz"), through a temporary name renamed on
 * success. 0, or -1 with "PATH: what went wrong" in err (nothing left at path). */
int plan_export_batches(const char *path, const Plan *p, const PlanExportSource *src, char *err, size_t errlen);

/* CRC-32 (zlib's, as Python's zlib.crc32) and size of a file, read streaming. 0, or -1 with err. */
int plan_export_file_crc(const char *path, uint32_t *crc, int64_t *bytes, char *err, size_t errlen);

#endif
