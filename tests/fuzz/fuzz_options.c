/* libFuzzer harness: the parsers of option values (parse_i64, parse_f64, parse_tolerance,
 * comm_option). The input is a bound selector byte and the value text. On success the value is
 * inside the bounds asked for; on failure the output is untouched (and comm_option says which
 * option is wrong). */
#include "tests/fuzz/fuzz_common.h"

#include <math.h>

#include "bench/comm/comm_model.h"
#include "bench/results/report.h"
#include "common/parse.h"

static const long long I_BOUNDS[][2] = {{1, 1 << 20}, {0, 1000000}, {0, INT64_MAX}, {INT64_MIN, INT64_MAX}, {-5, 5}};
static const double F_BOUNDS[][2] = {{0, 1}, {1e-9, 1e9}, {0, 10}, {-INFINITY, INFINITY}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 512) return 0;
    char s[513];
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    unsigned sel = data[0];

    const long long *ib = I_BOUNDS[sel % (sizeof I_BOUNDS / sizeof I_BOUNDS[0])];
    long long iv = 12345;
    if (parse_i64(s, ib[0], ib[1], &iv) == 0)
        CONTRACT(iv >= ib[0] && iv <= ib[1], "parse_i64(\"%s\") = %lld outside [%lld, %lld]", s, iv, ib[0], ib[1]);
    else
        CONTRACT(iv == 12345, "parse_i64 changed its output on failure");

    const double *fb = F_BOUNDS[sel % (sizeof F_BOUNDS / sizeof F_BOUNDS[0])];
    double fv = 0.5;
    if (parse_f64(s, fb[0], fb[1], &fv) == 0)
        CONTRACT(fv >= fb[0] && fv <= fb[1], "parse_f64(\"%s\") = %g outside [%g, %g]", s, fv, fb[0], fb[1]);
    else
        CONTRACT(fv == 0.5, "parse_f64 changed its output on failure");

    double tol = -1;
    if (parse_tolerance(s, &tol) == 0)
        CONTRACT(tol >= 0 && tol <= 1, "parse_tolerance(\"%s\") = %g", s, tol);
    else
        CONTRACT(tol == -1, "parse_tolerance changed its output on failure");

    CommOptions o;
    memset(&o, 0, sizeof o);
    size_t n_names = 0;
    while (COMM_OPTION_NAMES[n_names]) n_names++;
    const char *name = COMM_OPTION_NAMES[sel % n_names];
    char err[512] = "";
    int rc = comm_option(&o, name, s, err, sizeof err);
    if (rc < 0) CONTRACT(err[0] && strlen(err) < 600, "comm_option --%s \"%s\": message \"%s\"", name, s, err);
    return 0;
}
