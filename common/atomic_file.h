/* All-or-nothing output: written to PATH.tmp.<pid> and renamed over PATH only on success, so a
 * failed run never leaves a half-written file. */
#ifndef LABENCH_ATOMIC_FILE_H
#define LABENCH_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} AtomicFile;
/* Creates missing parent folders. 0, or -1 with err. */
int atomic_open(AtomicFile *af, const char *path, char *err, size_t errlen);
int atomic_commit(AtomicFile *af, char *err, size_t errlen);   /* fclose + rename */
void atomic_abort(AtomicFile *af);                              /* fclose + unlink */

/* mkdir -p; 0 on success. */
int make_dirs(const char *path);

#endif
