/* .hist and lengths-list parsing, and .hist writing. The format is described in
 * docs/hist-format.md; the tests in tests/test_hist.c pin every error message's line. */
#include "bench/input/hist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/input_file.h"

/* Files are read whole; a length distribution (or a lengths list of millions of samples) is far
 * below this, and the cap keeps line numbers within int. */
#define HIST_MAX_FILE_BYTES ((size_t)1 << 30)

/* Spliced into printf formats, hence the doubled percent signs. */
#define TARGET_FORMS "T, T1-T2, P%% or P1%%-P2%%"

typedef struct {
    const char *path;
    int line;                 /* current line, 1-based */
    char *err;
    size_t errlen;
    TargetSpec deflt;         /* set by @target; TGT_DEFAULT until then */
    int deflt_line;           /* where that @target was, 0 if none */
} Parser;

/* "path:line: message". Always returns -1 so callers can `return fail(...)`. */
static int fail(Parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- reading the file ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not one. Comments may
 * hold any text, but random binary almost never decodes as UTF-8. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) { len = 2; cp = s[0] & 0x1f; min = 0x80; }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) { len = 3; cp = s[0] & 0x0f; min = 0x800; }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) { len = 4; cp = s[0] & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Rejects anything that is not text: NUL and other control bytes, or invalid UTF-8. */
static int check_text(const char *path, const char *buf, size_t len, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)buf;
    int line = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        const char *why = NULL;
        if (c == '\n') { line++; continue; }
        if (c == 0) why = "NUL byte";
        else if ((c < 0x20 && c != '\t' && c != '\r' && c != '\v' && c != '\f') || c == 0x7f)
            why = "control byte";
        else if (c >= 0x80) {
            size_t k = utf8_seq(s + i, len - i);
            if (k == 0) why = "invalid UTF-8";
            else i += k - 1;
        }
        if (why) {
            snprintf(err, errlen, "%s: not a text file (%s 0x%02x on line %d)", path, why, c, line);
            return -1;
        }
    }
    return 0;
}

/* Reads the whole file into a NUL-terminated buffer (caller frees), checking it is text. Pipes
 * ("-", <(...)) and FIFOs are read to their end; devices and folders are refused at once. */
static char *read_text_file(const char *path, size_t *len_out, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (read_input_file(path, HIST_MAX_FILE_BYTES, &buf, &len, err, errlen) != 0) return NULL;
    if (len == 0) {
        snprintf(err, errlen, "%s: empty file", input_name(path));
        free(buf);
        return NULL;
    }
    if (check_text(input_name(path), buf, len, err, errlen) != 0) {
        free(buf);
        return NULL;
    }
    *len_out = len;
    return buf;
}

/* ---- numbers ------------------------------------------------------------------------------- */

enum { NUM_OK = 0, NUM_JUNK = -1, NUM_BIG = -2, NUM_NEG = -3 };

/* A whole number, digits only with an optional leading '-': NUM_OK, NUM_NEG (parsed a negative
 * number), NUM_BIG (past `max`), or NUM_JUNK. */
static int parse_whole(const char *s, int64_t max, int64_t *out)
{
    int neg = (*s == '-');
    if (neg) s++;
    if (!*s) return NUM_JUNK;
    int64_t v = 0;
    int big = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return NUM_JUNK;
        if (!big) {
            v = v * 10 + (*s - '0');
            if (v > max) big = 1;   /* stop accumulating before int64 could overflow */
        }
    }
    if (neg && (v != 0 || big)) return NUM_NEG;
    if (big) return NUM_BIG;
    *out = v;
    return NUM_OK;
}

/* A decimal like 60 or 62.5 (no sign, exponent, hex or inf) in [0, 100]. */
static int parse_percent(const char *s, double *out)
{
    int digits = 0, dots = 0;
    for (const char *c = s; *c; c++) {
        if (*c >= '0' && *c <= '9') digits++;
        else if (*c == '.') dots++;
        else return -1;
    }
    if (digits == 0 || dots > 1) return -1;
    double v = strtod(s, NULL);
    if (!(v >= 0.0 && v <= 100.0)) return -1;
    *out = v;
    return 0;
}

/* A length (tokens): 0 .. HIST_MAX_LEN (0: an empty record, dropped by the loaders). `field` is
 * the whole field s came from (a bin), so the message can quote what the user wrote. */
static int parse_len(Parser *p, const char *s, const char *field, int64_t *out)
{
    char in[160] = "";
    if (s != field) snprintf(in, sizeof in, " in bin '%s'", QUOTE(field));
    int64_t v = 0;
    int r = parse_whole(s, HIST_MAX_LEN, &v);
    if (r == NUM_JUNK) return fail(p, "bad length '%s'%s (want a whole number of tokens)", QUOTE(s), in);
    if (r == NUM_BIG) return fail(p, "length '%s'%s over the limit %lld", QUOTE(s), in, (long long)HIST_MAX_LEN);
    if (r == NUM_NEG) return fail(p, "length must be 0 or more (got '%s'%s)", QUOTE(s), in);
    *out = v;
    return 0;
}

/* LEN or LO-HI. The dash search starts at the second character so "-5" reads as a negative
 * length rather than an empty LO. */
static int parse_len_field(Parser *p, char *tok, int allow_range, int64_t *lo, int64_t *hi)
{
    char *dash = tok[0] ? strchr(tok + 1, '-') : NULL;
    if (!dash) {
        if (parse_len(p, tok, tok, lo) != 0) return -1;
        *hi = *lo;
        return 0;
    }
    if (!allow_range)
        return fail(p, "'%s' is a range; a lengths list holds one exact length per line", QUOTE(tok));
    /* Copy the halves out so the field stays intact for messages. */
    char part[2][64];
    size_t nlo = (size_t)(dash - tok);
    if (nlo >= sizeof part[0] || strlen(dash + 1) >= sizeof part[1])
        return fail(p, "bad length '%s' (want LEN or LO-HI)", QUOTE(tok));
    memcpy(part[0], tok, nlo);
    part[0][nlo] = 0;
    strcpy(part[1], dash + 1);
    if (parse_len(p, part[0], tok, lo) != 0 || parse_len(p, part[1], tok, hi) != 0) return -1;
    if (*lo > *hi)
        return fail(p, "bin '%s' has LO above HI (%lld > %lld)", QUOTE(tok), (long long)*lo, (long long)*hi);
    return 0;
}

static int parse_count(Parser *p, const char *tok, int64_t *out)
{
    int64_t v = 0;
    int r = parse_whole(tok, HIST_MAX_COUNT, &v);
    if (r == NUM_JUNK) return fail(p, "count must be a whole number (got '%s')", QUOTE(tok));
    if (r == NUM_BIG) return fail(p, "count '%s' over the limit 10^12", QUOTE(tok));
    if (r == NUM_NEG || v == 0) return fail(p, "count must be at least 1 (got '%s')", QUOTE(tok));
    *out = v;
    return 0;
}

/* TARGET: T | T1-T2 | P% | P1%-P2%. */
static int parse_target(Parser *p, char *tok, TargetSpec *t)
{
    size_t n = strlen(tok);
    if (n > 0 && tok[n - 1] == '%') {
        char body[128];
        if (n >= sizeof body) return fail(p, "bad target '%s' (want " TARGET_FORMS ")", QUOTE(tok));
        memcpy(body, tok, n - 1);
        body[n - 1] = 0;
        char *sep = strstr(body, "%-");
        if (sep) *sep = 0;
        t->kind = TGT_PERCENT;
        if (parse_percent(body, &t->lo) != 0 || (sep && parse_percent(sep + 2, &t->hi) != 0))
            return fail(p, "bad target '%s' (percent must be a number in [0, 100]; want " TARGET_FORMS ")", QUOTE(tok));
        if (!sep) t->hi = t->lo;
    } else {
        char *dash = tok[0] ? strchr(tok + 1, '-') : NULL;
        if (dash) *dash = 0;
        int64_t a = 0, b = 0;
        int ra = parse_whole(tok, HIST_MAX_LEN, &a);
        int rb = dash ? parse_whole(dash + 1, HIST_MAX_LEN, &b) : NUM_OK;
        if (dash) *dash = '-';
        if (!dash) b = a;
        if (ra == NUM_JUNK || rb == NUM_JUNK)
            return fail(p, "bad target '%s' (want " TARGET_FORMS ")", QUOTE(tok));
        if (ra == NUM_BIG || rb == NUM_BIG)
            return fail(p, "target '%s' over the limit %lld tokens", QUOTE(tok), (long long)HIST_MAX_LEN);
        if (ra == NUM_NEG || rb == NUM_NEG || a == 0 || b == 0)
            return fail(p, "bad target '%s': target tokens must be at least 1", QUOTE(tok));
        t->kind = TGT_TOKENS;
        t->lo = (double)a;
        t->hi = (double)b;
    }
    if (t->lo > t->hi) return fail(p, "bad target '%s': low end above high end", QUOTE(tok));
    return 0;
}

/* A fixed token target must leave room for at least one prompt token in the bin's shortest
 * sample; larger draws from a range are clamped instead. A bin from 0 draws from 1. */
static int check_target_fits(Parser *p, const TargetSpec *t, int64_t lo, int64_t hi, int from_directive)
{
    if (lo < 1) lo = 1;
    if (t->kind != TGT_TOKENS || t->lo <= (double)(lo - 1)) return 0;
    char where[64] = "";
    if (from_directive) snprintf(where, sizeof where, " (target set by @target on line %d)", p->deflt_line);
    if (lo == hi)
        return fail(p, "target %.0f tokens over the length: a %lld-token sample has at most %lld targets%s",
                    t->lo, (long long)lo, (long long)(lo - 1), where);
    return fail(p, "target %.0f tokens over the length: the shortest sample here has %lld tokens, so at most %lld can be targets%s",
                t->lo, (long long)lo, (long long)(lo - 1), where);
}

/* ---- lines --------------------------------------------------------------------------------- */

typedef int (*LineFn)(Parser *p, char **f, int nf, void *ctx);

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits text into lines (LF or CRLF), drops comments and blank lines, handles @ directives,
 * and hands each data line's fields to fn. Returns the number of data lines, or -1. */
static int64_t each_line(Parser *p, char *text, int max_fields, const char *line_form, LineFn fn, void *ctx)
{
    int64_t data_lines = 0;
    char *s = text;
    /* A UTF-8 byte order mark, as some editors write, is not part of the first line. */
    if ((unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb && (unsigned char)s[2] == 0xbf) s += 3;
    p->line = 0;
    while (*s) {
        char *end = strchr(s, '\n');
        char *next = end ? end + 1 : s + strlen(s);
        if (end) *end = 0;
        p->line++;
        char *hash = strchr(s, '#');
        if (hash) *hash = 0;

        char *f[8];
        int nf = 0;
        char *junk = NULL;
        for (char *c = s; *c;) {
            while (is_space(*c)) *c++ = 0;
            if (!*c) break;
            if (nf < max_fields) f[nf++] = c;
            else if (!junk) junk = c;
            while (*c && !is_space(*c)) c++;
        }
        s = next;
        if (nf == 0) continue;

        if (f[0][0] == '@') {
            if (strcmp(f[0], "@target") != 0)
                return fail(p, "unknown directive '%s' (the only one is @target SPEC)", QUOTE(f[0]));
            if (nf != 2 || junk)
                return fail(p, "@target wants exactly one target spec (" TARGET_FORMS ")");
            if (parse_target(p, f[1], &p->deflt) != 0) return -1;
            p->deflt_line = p->line;
            continue;
        }
        if (junk) return fail(p, "unexpected '%s' at the end of the line (a line is %s)", QUOTE(junk), line_form);
        if (fn(p, f, nf, ctx) != 0) return -1;
        data_lines++;
    }
    return data_lines;
}

static int push_bin(Parser *p, Hist *h, int *cap, const HistBin *b)
{
    if (h->n_bins == *cap) {
        if (*cap >= INT_MAX / 2) return fail(p, "too many bins");
        int nc = *cap ? 2 * *cap : 64;
        HistBin *nb = realloc(h->bins, (size_t)nc * sizeof *nb);
        if (!nb) return fail(p, "out of memory");
        h->bins = nb;
        *cap = nc;
    }
    h->bins[h->n_bins++] = *b;
    return 0;
}

/* Reads the target field if present, else takes the @target default; checks it fits. */
static int line_target(Parser *p, char **f, int nf, int idx, int64_t lo, int64_t hi, TargetSpec *t)
{
    if (nf > idx) {
        if (parse_target(p, f[idx], t) != 0) return -1;
        return check_target_fits(p, t, lo, hi, 0);
    }
    *t = p->deflt;
    return check_target_fits(p, t, lo, hi, 1);
}

/* Samples of length 0 on this line: counted, never kept. Their TARGET (if any) is still read,
 * so a typo is reported; "0" is fine there, an empty record has no response either. */
static int note_zero(Parser *p, Hist *h, int64_t count, char **f, int nf, int idx)
{
    if (nf > idx && strcmp(f[idx], "0") != 0) {
        TargetSpec t;
        if (parse_target(p, f[idx], &t) != 0) return -1;
    }
    if (count > HIST_MAX_COUNT - h->total - h->zero_count)
        return fail(p, "total count over the limit 10^12 (reached on this line)");
    h->zero_count += count;
    if (h->zero_lines++ == 0) h->zero_first_line = p->line;
    return 0;
}

typedef struct { Hist *h; int cap; } HistCtx;

static int on_hist_line(Parser *p, char **f, int nf, void *vctx)
{
    HistCtx *c = vctx;
    HistBin b = {0};
    b.line = p->line;
    if (parse_len_field(p, f[0], 1, &b.lo, &b.hi) != 0) return -1;
    if (nf < 2) return fail(p, "missing COUNT after '%s' (a line is LEN COUNT [TARGET] or LO-HI COUNT [TARGET])", QUOTE(f[0]));
    if (parse_count(p, f[1], &b.count) != 0) return -1;
    if (b.hi == 0) return note_zero(p, c->h, b.count, f, nf, 2);
    if (line_target(p, f, nf, 2, b.lo, b.hi, &b.target) != 0) return -1;
    if (b.count > HIST_MAX_COUNT - c->h->total - c->h->zero_count)
        return fail(p, "total count over the limit 10^12 (reached on this line)");
    c->h->total += b.count;
    return push_bin(p, c->h, &c->cap, &b);
}

/* Shared front half of both loaders: read, check, walk the lines. */
static int load_common(const char *path, Hist *h, char *err, size_t errlen, int max_fields,
                       const char *line_form, LineFn fn, void *ctx)
{
    memset(h, 0, sizeof *h);
    snprintf(h->path, sizeof h->path, "%s", input_name(path));
    size_t len = 0;
    char *text = read_text_file(path, &len, err, errlen);
    if (!text) return -1;
    Parser p = { .path = input_name(path), .err = err, .errlen = errlen };
    int64_t n = each_line(&p, text, max_fields, line_form, fn, ctx);
    free(text);
    if (n == 0) {
        snprintf(err, errlen, "%s: no data lines (only comments, directives and blank lines)", input_name(path));
        return -1;
    }
    return n < 0 ? -1 : 0;
}

/* A file whose every sample has length 0 leaves nothing to plan. */
static int check_something_left(const Hist *h, char *err, size_t errlen)
{
    if (h->total > 0) return 0;
    snprintf(err, errlen, "%s: nothing left: all %lld samples have length 0 (%d line%s from line %d); "
             "a sample needs at least 1 token", h->path, (long long)h->zero_count, h->zero_lines,
             h->zero_lines == 1 ? "" : "s", h->zero_first_line);
    return -1;
}

int hist_zero_note(const Hist *h, char *buf, size_t buflen)
{
    if (h->zero_count <= 0) return 0;
    snprintf(buf, buflen, "%s: dropped %lld sample%s of length 0 (%d line%s from line %d); %lld left",
             h->path, (long long)h->zero_count, h->zero_count == 1 ? "" : "s", h->zero_lines,
             h->zero_lines == 1 ? "" : "s", h->zero_first_line, (long long)h->total);
    return 1;
}

int hist_load(const char *path, Hist *h, char *err, size_t errlen)
{
    HistCtx c = { .h = h };
    if (load_common(path, h, err, errlen, 3, "LEN COUNT [TARGET] or LO-HI COUNT [TARGET]", on_hist_line, &c) != 0 ||
        check_something_left(h, err, errlen) != 0) {
        hist_free(h);
        return -1;
    }
    return 0;
}

/* ---- lengths lists ------------------------------------------------------------------------- */

typedef struct { int64_t len; TargetSpec t; int line; int64_t record; } LenEntry;
typedef struct { LenEntry *e; size_t n, cap; Hist *h; int64_t records; } LenCtx;

static int on_len_line(Parser *p, char **f, int nf, void *vctx)
{
    LenCtx *c = vctx;
    LenEntry e = { .line = p->line, .record = c->records++ };
    int64_t hi;
    if (parse_len_field(p, f[0], 0, &e.len, &hi) != 0) return -1;
    if (e.len == 0) return note_zero(p, c->h, 1, f, nf, 1);
    if (line_target(p, f, nf, 1, e.len, e.len, &e.t) != 0) return -1;
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 1024;
        LenEntry *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne) return fail(p, "out of memory");
        c->e = ne;
        c->cap = nc;
    }
    c->e[c->n++] = e;
    return 0;
}

static int cmp_num(double a, double b) { return (a > b) - (a < b); }

/* Orders by length, then target, then line: equal pairs end up adjacent, the first-seen first. */
static int cmp_len_entry(const void *va, const void *vb)
{
    const LenEntry *a = va, *b = vb;
    int r;
    if ((r = cmp_num((double)a->len, (double)b->len))) return r;
    if ((r = cmp_num(a->t.kind, b->t.kind))) return r;
    if ((r = cmp_num(a->t.lo, b->t.lo))) return r;
    if ((r = cmp_num(a->t.hi, b->t.hi))) return r;
    return cmp_num(a->line, b->line);
}

static int same_pair(const LenEntry *a, const LenEntry *b)
{
    return a->len == b->len && a->t.kind == b->t.kind && a->t.lo == b->t.lo && a->t.hi == b->t.hi;
}

int hist_load_lengths(const char *path, Hist *h, char *err, size_t errlen)
{
    LenCtx c = { .h = h };
    if (load_common(path, h, err, errlen, 2, "LEN [TARGET]", on_len_line, &c) != 0) {
        free(c.e);
        hist_free(h);
        return -1;
    }
    if (c.n > 1) qsort(c.e, c.n, sizeof *c.e, cmp_len_entry);   /* none at all when every line is 0 */
    Parser p = { .path = input_name(path), .err = err, .errlen = errlen };
    int cap = 0;
    for (size_t i = 0; i < c.n;) {
        size_t j = i + 1;
        while (j < c.n && same_pair(&c.e[i], &c.e[j])) j++;
        HistBin b = { .lo = c.e[i].len, .hi = c.e[i].len, .count = (int64_t)(j - i),
                      .target = c.e[i].t, .line = c.e[i].line };
        p.line = b.line;
        if (push_bin(&p, h, &cap, &b) != 0) {
            free(c.e);
            hist_free(h);
            return -1;
        }
        h->total += b.count;
        i = j;
    }
    free(c.e);
    if (check_something_left(h, err, errlen) != 0) {
        hist_free(h);
        return -1;
    }
    return 0;
}

int hist_load_lengths_ordered(const char *path, Sample **out, int64_t **record, int64_t *n, int64_t *n_records,
                              char *err, size_t errlen)
{
    Hist h;
    LenCtx c = { .h = &h };
    *out = NULL;
    *record = NULL;
    if (load_common(path, &h, err, errlen, 2, "LEN [TARGET]", on_len_line, &c) != 0) goto fail;
    if (c.n == 0) {
        snprintf(err, errlen, "%s: nothing left: every line has length 0", input_name(path));
        goto fail;
    }
    *out = malloc(c.n * sizeof **out);
    *record = malloc(c.n * sizeof **record);
    if (!*out || !*record) {
        snprintf(err, errlen, "%s: out of memory for %zu samples", input_name(path), c.n);
        goto fail;
    }
    for (size_t i = 0; i < c.n; i++) {
        const LenEntry *e = &c.e[i];
        int64_t t = e->len - 1;
        if (e->t.kind == TGT_TOKENS && e->t.lo == e->t.hi) t = (int64_t)e->t.lo;
        else if (e->t.kind != TGT_DEFAULT) {
            snprintf(err, errlen, "%s:%d: a plan whose batches lead back to their lines needs each line's exact "
                     "target token count (`LEN TARGET`), not a range or a percentage", input_name(path), e->line);
            goto fail;
        }
        /* the sampler's clamp, so the same line plans the same with and without its order */
        (*out)[i] = (Sample){ (int32_t)e->len, sample_target_clamp(e->len, t) };
        (*record)[i] = e->record;
    }
    *n = (int64_t)c.n;
    *n_records = c.records;
    free(c.e);
    hist_free(&h);
    return 0;
fail:
    free(c.e);
    free(*out);
    free(*record);
    *out = NULL;
    *record = NULL;
    hist_free(&h);
    return -1;
}

/* ---- writing ------------------------------------------------------------------------------- */

/* The shortest spelling that reads back as the same double, so written files round-trip: %g when
 * that has no exponent (the parser takes plain decimals only), else the fewest decimals of %f
 * (a share of 9e-05% is written 0.00009%). buf holds HIST_NUM_CHARS. */
#define HIST_NUM_CHARS 400
static void fmt_num(double v, char *buf, size_t n)
{
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
    if (!strchr(buf, 'e')) return;
    for (int decimals = 0; decimals <= 340; decimals++) {
        snprintf(buf, n, "%.*f", decimals, v);
        if (strtod(buf, NULL) == v) return;
    }
}

void hist_target_str(const TargetSpec *t, char *buf, size_t buflen)
{
    char a[HIST_NUM_CHARS], b[HIST_NUM_CHARS];
    fmt_num(t->lo, a, sizeof a);
    fmt_num(t->hi, b, sizeof b);
    switch (t->kind) {
    case TGT_TOKENS:
        if (t->lo == t->hi) snprintf(buf, buflen, "%s", a);
        else snprintf(buf, buflen, "%s-%s", a, b);
        break;
    case TGT_PERCENT:
        if (t->lo == t->hi) snprintf(buf, buflen, "%s%%", a);
        else snprintf(buf, buflen, "%s%%-%s%%", a, b);
        break;
    default:
        if (buflen) buf[0] = 0;
    }
}

int hist_write(FILE *f, const Hist *h, const char *header_comment)
{
    /* Every header line becomes a comment line, however many newlines it holds. */
    for (const char *s = header_comment; s && *s;) {
        const char *nl = strchr(s, '\n');
        int n = nl ? (int)(nl - s) : (int)strlen(s);
        if (n) fprintf(f, "# %.*s\n", n, s);
        else fputs("#\n", f);
        s = nl ? nl + 1 : s + n;
    }
    for (int i = 0; i < h->n_bins; i++) {
        const HistBin *b = &h->bins[i];
        char tgt[2 * HIST_NUM_CHARS + 4];
        hist_target_str(&b->target, tgt, sizeof tgt);
        if (b->lo == b->hi) fprintf(f, "%lld %lld", (long long)b->lo, (long long)b->count);
        else fprintf(f, "%lld-%lld %lld", (long long)b->lo, (long long)b->hi, (long long)b->count);
        if (tgt[0]) fprintf(f, " %s", tgt);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

void hist_free(Hist *h)
{
    if (!h) return;
    free(h->bins);
    h->bins = NULL;
    h->n_bins = 0;
    h->total = 0;
    h->zero_count = 0;
    h->zero_lines = h->zero_first_line = 0;
}
