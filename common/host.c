#include "common/host.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t proc_kb_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, " %lld kB", &kb) == 1) break;
    fclose(f);
    return kb >= 0 ? (int64_t)kb * 1024 : -1;
}

void host_name(char *buf, size_t n)
{
    if (gethostname(buf, n) != 0) snprintf(buf, n, "unknown");
    buf[n - 1] = 0;
}

void source_commit(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *p = popen("git rev-parse --short=12 HEAD 2>/dev/null && "
                    "(git diff --quiet HEAD -- . ':!REPORT.md' ':!plots' 2>/dev/null || echo dirty)", "r");
    if (!p) return;
    char line[128], out[160] = "";
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (!out[0])
            snprintf(out, sizeof out, "%s", line);
        else if (strcmp(line, "dirty") == 0)
            strncat(out, "-dirty", sizeof out - strlen(out) - 1);
    }
    if (pclose(p) == 0 && out[0]) snprintf(buf, n, "%s", out);
}

void utc_now_iso(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void command_line_join(int argc, char **argv, char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strncat(buf, " ", n - strlen(buf) - 1);
        strncat(buf, argv[i], n - strlen(buf) - 1);
    }
}
