#include "common/util.h"

#include "common/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void (*die_hook)(const char *msg);

void die_set_hook(void (*hook)(const char *msg)) { die_hook = hook; }

void die_input(const char *fmt, ...)
{
    progress_abort();   /* a progress line in the making ends before the message */
    va_list ap;
    va_start(ap, fmt);
    if (die_hook) {   /* --dp real: every rank must hear of it (the hook does not return) */
        char msg[2048];
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        die_hook(msg);
    }
    fputs("labench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_BAD_INPUT);
}

int path_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

int atomic_open(AtomicFile *af, const char *path, char *err, size_t errlen)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    snprintf(af->path, sizeof af->path, "%s", path);
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (make_dirs(dir) != 0) {
            snprintf(err, errlen, "%s: cannot create folder %s: %s", path, dir, strerror(errno));
            return -1;
        }
    }
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "w");
    if (!af->f) {
        snprintf(err, errlen, "%s: cannot write: %s", af->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

int atomic_commit(AtomicFile *af, char *err, size_t errlen)
{
    int bad = ferror(af->f);
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        snprintf(err, errlen, "%s: write failed (disk full?)", af->tmp);
        unlink(af->tmp);
        return -1;
    }
    if (rename(af->tmp, af->path) != 0) {
        snprintf(err, errlen, "%s: cannot rename into place: %s", af->path, strerror(errno));
        unlink(af->tmp);
        return -1;
    }
    return 0;
}

void atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}

double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int parse_i64(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != 0 || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int parse_f64(const char *s, double min, double max, double *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end != 0 || !(v >= min && v <= max)) return -1;
    *out = v;
    return 0;
}

const char *cli_opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t len = strlen(name);
    if (strncmp(a, name, len) != 0) return NULL;
    if (a[len] == '=') return a + len + 1;
    if (a[len] != 0) return NULL;
    if (*i + 1 >= argc) die_input("%s needs a value", name);
    return argv[++*i];
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

int64_t proc_kb_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, " %lld kB", &kb) == 1) break;
    fclose(f);
    return kb >= 0 ? (int64_t)kb * 1024 : -1;
}

double median(const double *x, size_t n)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return NAN;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) c[k++] = x[i];
    qsort(c, k, sizeof *c, cmp_double);
    double m = k == 0 ? NAN : k % 2 ? c[k / 2] : 0.5 * (c[k / 2 - 1] + c[k / 2]);
    free(c);
    return m;
}

const char *excerpt(const char *s, char *buf)
{
    const size_t max = EXCERPT_SIZE - 8;
    size_t k = 0;
    if (!s) s = "";
    while (s[k] && k < max) k++;
    int cut = s[k] != 0;
    /* Cut on a character boundary: never inside a UTF-8 sequence. */
    if (cut)
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cut)
        memcpy(buf + k, "...", 4);
    else
        buf[k] = 0;
    return buf;
}

const char *input_name(const char *path) { return path && strcmp(path, "-") == 0 ? "stdin" : path; }

/* What a file that is not regular is, for "PATH: is a directory, not a file". */
static const char *not_regular(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device (like /dev/zero or a terminal)";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISFIFO(m)) return "a pipe or FIFO";
    return "not a regular file";
}

/* Opens without blocking (open(2) on a FIFO with no writer would wait forever), then looks at
 * what it opened. fd, or -1 with err. */
static int open_input(const char *path, struct stat *st, char *err, size_t errlen)
{
    const char *name = input_name(path);
    int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode) && !S_ISFIFO(st->st_mode)) {
        snprintf(err, errlen, "%s: is %s, not a file", name, not_regular(st->st_mode));
        close(fd);
        return -1;
    }
    return fd;
}

int open_regular_file(const char *path, struct stat *st, char *err, size_t errlen)
{
    int fd = open_input(path, st, err, errlen);
    if (fd < 0) return -1;
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "%s: is %s; give a regular file", input_name(path), not_regular(st->st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* Waits until fd (a pipe) has data or its writer has gone; says once, after a second, what
 * labench is waiting for (got: bytes read so far). 0, or -1 on a poll error. */
static int wait_readable(int fd, const char *name, size_t got, int *announced)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, *announced ? -1 : 1000);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r > 0) return 0;
        if (got == 0)
            fprintf(stderr, "labench: waiting for %s: a pipe with nothing written to it yet (reading until its "
                            "writer closes it; Ctrl-C stops)\n", name);
        else
            fprintf(stderr, "labench: waiting for %s: %zu bytes read, and its writer has not closed it yet "
                            "(Ctrl-C stops)\n", name, got);
        *announced = 1;
    }
}

json_t *read_json_file(const char *path, size_t max_bytes, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (read_input_file(path, max_bytes, &text, &len, err, errlen) != 0) return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root) {
        if (jerr.line > 0)
            snprintf(err, errlen, "%s:%d: not valid JSON: %s", input_name(path), jerr.line, jerr.text);
        else
            snprintf(err, errlen, "%s: not valid JSON: %s", input_name(path), jerr.text);
    }
    return root;
}

int read_input_file(const char *path, size_t max_bytes, char **data, size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    const char *name = input_name(path);
    struct stat st;
    int fd = open_input(path, &st, err, errlen);
    if (fd < 0) return -1;
    int is_pipe = S_ISFIFO(st.st_mode);
    if (!is_pipe && (uint64_t)st.st_size > max_bytes) {
        snprintf(err, errlen, "%s: %lld bytes, over the %zu MiB an input may have", name, (long long)st.st_size,
                 max_bytes >> 20);
        close(fd);
        return -1;
    }
    /* A regular file is read at its size (plus one byte, to see it did not grow); a pipe grows. */
    size_t cap = is_pipe ? (size_t)1 << 16 : (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    int announced = 0, rc = -1;
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory reading %zu bytes", name, cap);
        goto done;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) {
                snprintf(err, errlen, "%s: over the %zu MiB an input may have", name, max_bytes >> 20);
                goto done;
            }
            size_t nc = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                snprintf(err, errlen, "%s: out of memory reading %zu bytes", name, nc);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        if (is_pipe && wait_readable(fd, name, n, &announced) != 0) {
            snprintf(err, errlen, "%s: cannot read: %s", name, strerror(errno));
            goto done;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", name, strerror(errno));
            goto done;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    if (n > max_bytes) {
        snprintf(err, errlen, "%s: over the %zu MiB an input may have", name, max_bytes >> 20);
        goto done;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}
