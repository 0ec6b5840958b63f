#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int path_error(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *excerpt(const char *s, char *buf)
{
    const size_t max = EXCERPT_SIZE - 8;
    size_t k = 0;
    if (!s) s = "";
    while (s[k] && k < max) k++;
    int cut = s[k] != 0;
    /* Cut on a character boundary: never inside a UTF-8 sequence. */
    if (cut)
        while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cut)
        memcpy(buf + k, "...", 4);
    else
        buf[k] = 0;
    return buf;
}
