#include "common/input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
