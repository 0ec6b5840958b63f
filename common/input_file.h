/* Reading input files: never a silent hang, never an unbounded read.
 * A regular file's size is checked before anything is read. A pipe or FIFO ("-" for stdin,
 * <(...), mkfifo) is read to its end with the same bound; while nothing has been written to it,
 * labench says once on stderr what it is waiting for instead of hanging silently. Directories,
 * devices (/dev/zero, a terminal) and sockets are refused at once. */
#ifndef LABENCH_INPUT_FILE_H
#define LABENCH_INPUT_FILE_H

#include <stddef.h>
#include <sys/stat.h>

#include <jansson.h>

/* "-" reads as stdin; messages call it "stdin". */
const char *input_name(const char *path);

/* Reads all of path into a NUL-terminated malloc'ed buffer (*data, *len bytes without the NUL).
 * 0, or -1 with "PATH: why" in err (cannot open, not a file, over max_bytes, read error). */
int read_input_file(const char *path, size_t max_bytes, char **data, size_t *len, char *err, size_t errlen);

/* read_input_file, then the text parsed as JSON: the root (the caller's to json_decref), or NULL
 * with the read error or "NAME:LINE: not valid JSON: why" in err (NAME: input_name(path)). */
json_t *read_json_file(const char *path, size_t max_bytes, char *err, size_t errlen);

/* Opens path for a reader that seeks: only a regular file will do (a FIFO is refused, not
 * waited on). Returns a blocking fd and fills *st, or -1 with err. */
int open_regular_file(const char *path, struct stat *st, char *err, size_t errlen);

#endif
