/* Exported batches (format in plan_export.h). The hot path is one line per (step, micro-step,
 * rank) with a few numbers per segment: 10^7 segments must cost about what planning them does,
 * so lines are formatted by hand into one buffer (no JSON library per line, no printf for the
 * integers) and written in 1 MiB blocks, to a FILE or to a gzip stream. */
#include "bench/input/plan_export.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "common/progress.h"
#include "common/atomic_file.h"
#include "common/error.h"

#define BUF_SIZE (1 << 20)
#define SEG_MAX 128   /* longest segment text: 5 numbers, the weight 24 characters at most */

typedef struct {
    AtomicFile af;
    gzFile gz;              /* NULL: plain file through af.f */
    char *buf;
    size_t n;
    uLong crc;              /* of every byte written so far */
    int failed;
} Out;

static void out_flush(Out *o)
{
    if (o->n == 0 || o->failed) {
        o->n = 0;
        return;
    }
    o->crc = crc32(o->crc, (const Bytef *)o->buf, (uInt)o->n);
    if (o->gz ? gzwrite(o->gz, o->buf, (unsigned)o->n) != (int)o->n : fwrite(o->buf, 1, o->n, o->af.f) != o->n)
        o->failed = 1;
    o->n = 0;
}

static void out_room(Out *o, size_t need)
{
    if (o->n + need > BUF_SIZE) out_flush(o);
}

static void out_str(Out *o, const char *s)
{
    size_t k = strlen(s);
    if (k > BUF_SIZE) k = BUF_SIZE;   /* never: the header is a few hundred bytes */
    out_room(o, k);
    memcpy(o->buf + o->n, s, k);
    o->n += k;
}

static void out_char(Out *o, char c) { o->buf[o->n++] = c; }

static void out_i64(Out *o, int64_t v)
{
    char t[24];
    int k = 0;
    uint64_t u = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do t[k++] = (char)('0' + u % 10); while ((u /= 10) != 0);
    if (v < 0) out_char(o, '-');
    while (k > 0) out_char(o, t[--k]);
}

/* The weight with 17 significant digits, which always reads back as the same double (a search
 * for the shortest spelling cost more than the rest of the line), cached: the segments of a
 * micro-batch share it under the per-micro-batch rule. */
static void out_weight(Out *o, double w, double *last, char *last_text)
{
    if (w != *last) {
        snprintf(last_text, 32, "%.17g", w);
        *last = w;
    }
    for (const char *c = last_text; *c; c++) out_char(o, *c);
}

int plan_export_file_crc(const char *path, uint32_t *crc, int64_t *bytes, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) return path_error(err, errlen, path, "cannot open: %s", strerror(errno));
    char *b = malloc(BUF_SIZE);
    if (!b) {
        fclose(f);
        return path_error(err, errlen, path, "out of memory");
    }
    uLong c = crc32(0L, Z_NULL, 0);
    int64_t total = 0;
    size_t k;
    while ((k = fread(b, 1, BUF_SIZE, f)) > 0) {
        c = crc32(c, (const Bytef *)b, (uInt)k);
        total += (int64_t)k;
    }
    int bad = ferror(f);
    free(b);
    fclose(f);
    if (bad) return path_error(err, errlen, path, "read error");
    *crc = (uint32_t)c;
    *bytes = total;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* The first optimizer step of each epoch: every strategy deals an epoch from a fresh step, so
 * epoch e starts where e * n_samples segments have gone before. -1 if a step straddles two. */
static int epoch_first_steps(const Plan *p, int *first)
{
    int e = 0;
    int64_t segs = 0;
    for (int s = 0; s < p->n_steps; s++) {
        if (segs == e * p->n_samples && e < p->cfg.epochs) first[e++] = s;
        else if (segs > e * p->n_samples && e < p->cfg.epochs) return -1;
        for (int m = 0; m < p->micro_steps; m++)
            for (int r = 0; r < p->cfg.world_size; r++) {
                const MicroBatch *mb = plan_mb(p, s, m, r);
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++) segs += p->rows[i].n_segments;
            }
    }
    return e == p->cfg.epochs && segs == p->n_samples * p->cfg.epochs ? 0 : -1;
}

static json_t *header_json(const Plan *p, const PlanExportSource *src, const int *first, uint32_t crc, int64_t bytes)
{
    const PlanConfig *c = &p->cfg;
    int64_t lines = (int64_t)p->n_steps * p->micro_steps * c->world_size;
    json_t *epochs = json_array();
    for (int e = 0; e < c->epochs; e++) json_array_append_new(epochs, json_integer(first[e]));
    const char *rule = p->weights_per_sequence ? "per-sequence" : "per-micro-batch";
    const char *words = p->weights_per_sequence
        ? "each target token of sequence i weighs 1/(M*N_i): M sequences with a target in the optimizer step "
          "(all ranks, all micro-steps), N_i the sequence's target tokens; every sequence counts the same in "
          "its step (LongAlign Eq. 2)"
        : "each target token weighs 1/(K*T_mb): K micro-batches with a target in the optimizer step, T_mb "
          "the target tokens of its micro-batch (each micro-batch's mean loss, averaged over the K)";
    json_t *h = json_pack(
        "{s:s, s:i, s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:o, "
        "s:{s:s, s:s, s:I, s:s}, s:s, s:s, s:{s:s, s:s}, s:{s:s}}",
        "schema", "labench-batches", "version", PLAN_EXPORT_VERSION, "strategy", p->strategy,
        "world_size", c->world_size, "grad_accum", p->micro_steps, "micro_batch", c->micro_batch,
        "max_tokens", c->max_tokens, "epochs", c->epochs, "sync", c->sync == SYNC_MICRO ? "micro" : "step",
        "seed", (json_int_t)c->seed, "steps", p->n_steps, "lines", (json_int_t)lines,
        "samples", (json_int_t)p->n_samples, "records", (json_int_t)src->n_records,
        "skipped", (json_int_t)(src->n_records - p->n_samples), "truncated", (json_int_t)p->n_truncated,
        "epoch_first_step", epochs,
        "source", "kind", src->kind, "path", src->path, "bytes", (json_int_t)bytes, "crc32", "",
        "index", strcmp(src->kind, "lengths") == 0
                     ? "the 0-based data line of the lengths file (blank and comment lines not counted): the "
                       "dataset record, for a list from scripts/lengths.py; lines of length 0 are records "
                       "that get no segment (\"skipped\")"
                     : "the 0-based position of the sample in the list labench drew from the distribution",
        "segment", "[index, tokens, target_tokens, weight] or, when the record is longer than max_tokens, "
                   "[index, tokens, target_tokens, weight, record_tokens]: the segment is the record's LAST "
                   "`tokens` tokens, of which the last `target_tokens` are loss targets, each weighing `weight`",
        "weighting", "rule", rule, "text", words, "labench", "commit", src->commit ? src->commit : "unknown");
    if (!h) return NULL;
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", crc);
    json_object_set_new(json_object_get(h, "source"), "crc32", json_string(hex));
    return h;
}

int plan_export_batches(const char *path, const Plan *p, const PlanExportSource *src, char *err, size_t errlen)
{
    const PlanConfig *c = &p->cfg;
    uint32_t src_crc;
    int64_t src_bytes;
    if (plan_export_file_crc(src->path, &src_crc, &src_bytes, err, errlen) != 0) return -1;
    int *first = malloc((size_t)c->epochs * sizeof *first);
    if (!first) return path_error(err, errlen, path, "out of memory");
    if (epoch_first_steps(p, first) != 0) {
        free(first);
        return path_error(err, errlen, path, "internal error: an optimizer step holds two epochs");
    }
    json_t *h = header_json(p, src, first, src_crc, src_bytes);
    free(first);
    char *head = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    Out o = { .crc = crc32(0L, Z_NULL, 0) };
    o.buf = malloc(BUF_SIZE);
    if (!head || !o.buf) {
        free(head);
        free(o.buf);
        return path_error(err, errlen, path, "out of memory");
    }
    if (atomic_open(&o.af, path, err, errlen) != 0) {
        free(head);
        free(o.buf);
        return -1;
    }
    if (ends_with(path, ".gz")) {
        /* zlib writes through its own descriptor; af keeps the temporary name and the rename */
        int fd = dup(fileno(o.af.f));
        o.gz = fd >= 0 ? gzdopen(fd, "wb1") : NULL;   /* level 1: the writer keeps up with the planner */
        if (!o.gz) {
            if (fd >= 0) close(fd);
            atomic_abort(&o.af);
            free(head);
            free(o.buf);
            return path_error(err, errlen, path, "cannot start a gzip stream");
        }
        gzbuffer(o.gz, BUF_SIZE);
    }
    out_str(&o, head);
    out_str(&o, "\n");
    free(head);

    int64_t lines = 0, segments = 0;
    double last_w = NAN;
    char last_text[32] = "";
    progress_begin(src->progress, "writing %s's batches to %s", p->strategy, path);
    for (int s = 0; s < p->n_steps && !o.failed; s++) {
        int64_t M, K;
        plan_step_weight_counts(p, s, &M, &K);
        for (int m = 0; m < p->micro_steps; m++)
            for (int r = 0; r < c->world_size; r++) {
                const MicroBatch *mb = plan_mb(p, s, m, r);
                int64_t T = plan_mb_targets(p, mb);
                out_room(&o, 96);
                out_str(&o, "{\"step\":");
                out_i64(&o, s);
                out_str(&o, ",\"micro_step\":");
                out_i64(&o, m);
                out_str(&o, ",\"rank\":");
                out_i64(&o, r);
                out_str(&o, ",\"rows\":[");
                for (int32_t i = mb->first_row; i < mb->first_row + mb->n_rows; i++) {
                    const Row *row = &p->rows[i];
                    out_room(&o, 4);
                    if (i > mb->first_row) out_char(&o, ',');
                    out_char(&o, '[');
                    for (int32_t g = row->first_segment; g < row->first_segment + row->n_segments; g++) {
                        const Segment *seg = &p->segs[g];
                        /* only a segment of L tokens can be truncated: spare the others a cache miss */
                        int32_t full = seg->len < c->max_tokens ? seg->len : src->samples[seg->sample].len;
                        out_room(&o, SEG_MAX);
                        if (g > row->first_segment) out_char(&o, ',');
                        out_char(&o, '[');
                        out_i64(&o, src->record ? src->record[seg->sample] : seg->sample);
                        out_char(&o, ',');
                        out_i64(&o, seg->len);
                        out_char(&o, ',');
                        out_i64(&o, seg->target);
                        out_char(&o, ',');
                        out_weight(&o, plan_weight(p->weights_per_sequence, M, K, T, seg->target), &last_w,
                                   last_text);
                        if (full > seg->len) {
                            out_char(&o, ',');
                            out_i64(&o, full);
                        }
                        out_char(&o, ']');
                    }
                    out_char(&o, ']');
                    segments += row->n_segments;
                }
                out_room(&o, 4);
                out_str(&o, "]}\n");
                lines++;
            }
        if ((s & 1023) == 0) progress_update(s, p->n_steps);
    }
    out_flush(&o);
    char tail[256];
    snprintf(tail, sizeof tail,
             "{\"end\":\"labench-batches\",\"lines\":%lld,\"segments\":%lld,\"crc32\":\"%08lx\"}\n",
             (long long)lines, (long long)segments, (unsigned long)o.crc);
    out_str(&o, tail);
    out_flush(&o);
    free(o.buf);
    if (o.gz && gzclose(o.gz) != Z_OK) o.failed = 1;
    if (o.failed) {
        progress_abort();
        atomic_abort(&o.af);
        return path_error(err, errlen, path, "write error (disk full?)");
    }
    progress_end();
    return atomic_commit(&o.af, err, errlen);
}
