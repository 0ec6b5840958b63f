/* The CLI's option layer: the one place that turns an error into a message and exit 2, and the
 * helpers every command parses its options with. */
#include "bench/cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/parse.h"
#include "common/progress.h"

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

long long cli_int(const char *name, const char *v, long long min, long long max)
{
    long long x;
    if (parse_i64(v, min, max, &x) != 0)
        die_input("--%s must be an integer from %lld to %lld (got '%s')", name, min, max, QUOTE(v));
    return x;
}

double cli_real(const char *name, const char *v, double min, double max)
{
    double x, num, den;
    const char *slash = strchr(v, '/');
    if (slash) {   /* fractions such as 1/16 */
        char a[64];
        snprintf(a, sizeof a, "%.*s", (int)(slash - v), v);
        if (parse_f64(a, -1e300, 1e300, &num) == 0 && parse_f64(slash + 1, -1e300, 1e300, &den) == 0 && den != 0) {
            x = num / den;
            if (x >= min && x <= max) return x;
        }
    } else if (parse_f64(v, min, max, &x) == 0) {
        return x;
    }
    die_input("--%s must be a number from %g to %g (got '%s')", name, min, max, QUOTE(v));
}

int cli_world_sizes(const char *v, int max_w, int out[CLI_MAX_WORLD_SIZES])
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long w;
        if (parse_i64(tok, 1, max_w, &w) != 0)
            die_input("--world-size: '%s' is not an integer from 1 to %d", QUOTE(tok), max_w);
        if (n == CLI_MAX_WORLD_SIZES) die_input("--world-size: at most %d sizes", CLI_MAX_WORLD_SIZES);
        out[n++] = (int)w;
    }
    if (n == 0) die_input("--world-size: empty list");
    return n;
}
