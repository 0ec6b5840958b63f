/* Error messages below the CLI: a function that fails writes "PATH: why" (or "--opt: why") into
 * the caller's err buffer and returns -1; only bench/cli/ turns that into a message and exit 2. */
#ifndef LABENCH_ERROR_H
#define LABENCH_ERROR_H

#include <stddef.h>

/* "PATH: message" into err (NULL or errlen 0: nothing); returns -1, so a reader can
 * `return path_error(err, errlen, path, "...")`. */
int path_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What an input file says, quoted in a message: s cut to its first 80 characters ("..." marks
 * the cut), control characters shown as '?'. buf holds EXCERPT_SIZE bytes; returns buf. */
#define EXCERPT_SIZE 88
const char *excerpt(const char *s, char *buf);
/* excerpt() into a buffer of its own (a compound literal, alive to the end of the enclosing
 * block): snprintf(err, errlen, "... (got '%s')", QUOTE(value)). */
#define QUOTE(s) excerpt((s), (char[EXCERPT_SIZE]){0})

#endif
