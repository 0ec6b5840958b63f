#include "common/json_out.h"

#include <math.h>
#include <stdio.h>

#include "common/atomic_file.h"

json_t *json_real_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

int json_write_atomic(const char *path, const json_t *root, const char *what, char *err, size_t errlen)
{
    AtomicFile af;
    if (atomic_open(&af, path, err, errlen) != 0) return -1;
    int rc = json_dumpf(root, af.f, JSON_OUT_FLAGS);
    fputc('\n', af.f);
    if (rc != 0) {
        atomic_abort(&af);
        snprintf(err, errlen, "%s: could not serialize %s", path, what);
        return -1;
    }
    return atomic_commit(&af, err, errlen);
}
