/* Shared helpers for labench's cmocka tests. */
#ifndef LABENCH_TEST_UTIL_H
#define LABENCH_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Writes text to a fresh temporary file and returns its path (static buffer per call site). */
static inline void test_write_file(char *path, size_t pathlen, const char *text, size_t len)
{
    snprintf(path, pathlen, "/tmp/labench-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)len, write(fd, text, len));
    close(fd);
}

/* f32 values rounded in place to the nearest bf16 value, ties to even (finite inputs): what the
 * GPU stores, for the tests that simulate or check it. */
static inline void test_bf16_round(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
        memcpy(&x[i], &u, sizeof u);
    }
}

/* Runs a shell command, its stdout and stderr captured into out (NUL-terminated); returns its
 * exit status (-1 if it did not exit). */
static inline int test_run_capture(const char *cmd, char *out, size_t n)
{
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Asserts |a - b| <= atol + rtol * |b|, printing both on failure. */
#define assert_close(a, b, atol, rtol) do { \
    double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) { \
        print_error("%s = %.10g, %s = %.10g (atol %g, rtol %g)\n", #a, a_, #b, b_, (double)(atol), (double)(rtol)); \
        fail(); \
    } } while (0)

#endif
