/* Shared by the libFuzzer harnesses in tests/fuzz/ (README.md there): each input is handed to the
 * parser as a real file (a memfd, named /proc/self/fd/N), and the parser's contract is checked,
 * not only its survival. A broken contract aborts, which libFuzzer reports as a crash. */
#ifndef LABENCH_FUZZ_COMMON_H
#define LABENCH_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memfd that holds the current input; its path is what the parser is given. */
typedef struct {
    int fd;
    char path[64];
} FuzzFile;

static inline void fuzz_file_put(FuzzFile *f, const uint8_t *data, size_t size)
{
    if (f->fd <= 0) {
        f->fd = memfd_create("labench-fuzz", 0);
        if (f->fd < 0) abort();
        snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    }
    if (ftruncate(f->fd, 0) != 0 || pwrite(f->fd, data, size, 0) != (ssize_t)size) abort();
}

#define CONTRACT(cond, ...) do { \
    if (!(cond)) { fprintf(stderr, "contract broken: %s\n  ", #cond); fprintf(stderr, __VA_ARGS__); \
                   fputc('\n', stderr); abort(); } } while (0)

/* Lines a message may name: 1 .. the number of lines (a last line without '\n' counts). */
static inline long fuzz_lines(const uint8_t *data, size_t size)
{
    long n = 1;
    for (size_t i = 0; i < size; i++) n += data[i] == '\n';
    return n;
}

/* A failure message starts with the path, then ": " or ":LINE: " with LINE within the file. */
static inline void fuzz_check_message(const char *err, const char *path, const uint8_t *data, size_t size)
{
    size_t n = strlen(path);
    CONTRACT(strncmp(err, path, n) == 0, "message does not start with the path %s: %s", path, err);
    CONTRACT(err[n] == ':', "no ':' after the path: %s", err);
    if (err[n + 1] >= '0' && err[n + 1] <= '9') {
        char *end;
        long line = strtol(err + n + 1, &end, 10);
        CONTRACT(*end == ':' && line >= 1 && line <= fuzz_lines(data, size),
                 "line %ld outside 1..%ld: %s", line, fuzz_lines(data, size), err);
    } else {
        CONTRACT(err[n + 1] == ' ', "message: %s", err);
    }
    CONTRACT(strlen(err) < 600, "message of %zu characters", strlen(err));
}

#endif
