/* Length distributions: the .hist text format (docs/hist-format.md) and plain lengths lists.
 *
 * A Hist is a list of bins; each bin says how many samples have a length in [lo, hi] and how
 * many of each sample's tokens are loss targets (the response, the sample's last tokens).
 * The loaders never exit: on bad input they return -1 with "FILE:LINE: what is wrong" (or
 * "FILE: ..." for whole-file problems) in err. */
#ifndef LABENCH_HIST_H
#define LABENCH_HIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strategies/strategy.h"

/* Limits the format enforces (see docs/hist-format.md). */
#define HIST_MAX_LEN   INT64_C(2147483647)      /* 2^31 - 1 tokens: fits Sample.len */
#define HIST_MAX_COUNT INT64_C(1000000000000)   /* 10^12, for one line and for the file */

/* How a bin's target tokens are drawn. TGT_DEFAULT: len - 1 (all but the first token).
 * TGT_TOKENS: uniform integer in [lo, hi] tokens. TGT_PERCENT: uniform in [lo, hi] percent
 * of the sample's length. Every drawn target is clamped to [1, len - 1]. */
typedef enum { TGT_DEFAULT, TGT_TOKENS, TGT_PERCENT } TargetKind;
typedef struct { TargetKind kind; double lo, hi; } TargetSpec;   /* TGT_DEFAULT: len-1 */

/* Lengths uniform in [lo, hi] (lo == hi: an exact length); `line` is where it was read. A bin
 * may start at 0 (numpy's first edge): the sampler draws its lengths from [max(1, lo), hi]. */
typedef struct { int64_t lo, hi, count; TargetSpec target; int line; } HistBin;

/* `total` counts the samples kept. Samples of length 0 (a `0 COUNT` line, a `0-0` bin, a `0`
 * line of a lengths list: empty records exist in real data) are not kept: they are counted in
 * `zero_count`, on `zero_lines` lines, the first being `zero_first_line` (hist_zero_note says
 * so in one line). A file with nothing left is refused. */
typedef struct {
    HistBin *bins;
    int n_bins;
    int64_t total;
    int64_t zero_count;
    int zero_lines, zero_first_line;
    char path[1024];
} Hist;

/* Reads a .hist file. 0 on success (caller frees with hist_free), -1 with err set (and *h
 * left empty). */
int hist_load(const char *path, Hist *h, char *err, size_t errlen);

/* Reads a plain list, one sample per line: `LEN` or `LEN TARGET` (TARGET as in .hist; usually
 * the sample's exact target token count). Equal (LEN, TARGET) pairs become one exact bin;
 * bins come out sorted by length. Same errors and comments as hist_load. */
int hist_load_lengths(const char *path, Hist *h, char *err, size_t errlen);

/* The same list, one sample per line in the file's order, for plans whose batches must lead back
 * to their line (labench plan --emit-batches): *out[i] and its record[i], the 0-based data line it
 * came from (blank and comment-only lines are not counted; a line of length 0 is a record that
 * gets no sample). TARGET must be absent (LEN - 1) or an exact token count; it is clamped as the
 * sampler clamps it. *n samples of *n_records records; the caller frees *out and *record.
 * 0, or -1 with FILE:LINE in err. */
int hist_load_lengths_ordered(const char *path, Sample **out, int64_t **record, int64_t *n, int64_t *n_records,
                              char *err, size_t errlen);

/* Writes h as a valid .hist: header_comment (may be NULL or hold several lines) as # lines,
 * then one line per bin. Returns 0, or -1 if the stream reports a write error. */
int hist_write(FILE *f, const Hist *h, const char *header_comment);

void hist_free(Hist *h);

/* "FILE: dropped N samples of length 0 (...)" into buf when the file held any; returns 1 then,
 * 0 (buf untouched) when it held none. */
int hist_zero_note(const Hist *h, char *buf, size_t buflen);

/* Formats a target spec the way .hist spells it ("" for TGT_DEFAULT) into buf. */
void hist_target_str(const TargetSpec *t, char *buf, size_t buflen);


#endif
