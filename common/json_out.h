/* Writing JSON: numbers JSON can hold, and whole documents written all or nothing. */
#ifndef LABENCH_JSON_OUT_H
#define LABENCH_JSON_OUT_H

#include <stddef.h>

#include <jansson.h>

/* The flags of every JSON file labench writes: one-space indent, 10 significant digits. */
#define JSON_OUT_FLAGS (JSON_INDENT(1) | JSON_REAL_PRECISION(10))

/* x as a JSON number; JSON has no NaN or infinity, so such a value is written as null ("not
 * available"). For every writer of results fields. */
json_t *json_real_or_null(double x);

/* root (JSON_OUT_FLAGS, a final newline) to path through an AtomicFile: 0, or -1 with err and no
 * file left behind. `what` names the document in the error ("results", "predictions"). */
int json_write_atomic(const char *path, const json_t *root, const char *what, char *err, size_t errlen);

#endif
