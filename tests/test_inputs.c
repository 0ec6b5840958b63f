/* Inputs that are not plain files, through the labench binary (issue 16): a pipe is read (stdin
 * as "-", <(...), a FIFO), and while nothing has been written to it labench says what it waits
 * for instead of hanging silently; what cannot be read as a stream (a checkpoint is read with
 * seeks) or is a device is refused at once. And the out-of-memory path: a micro-batch too large
 * for the backend's memory exits 2 with the bytes needed and the option to try, tested with the
 * CPU backend's allocator limit (LABENCH_ARENA_LIMIT). */
#include "tests/test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/host.h"
#include "model/safetensors.h"

static const char *labench(void)
{
    const char *p = getenv("LABENCH");
    return p ? p : "./labench";
}

/* Starts `sh -c "<env> exec labench ARGS"` with stdout and stderr into outpath. */
static pid_t spawn(const char *env, const char *args, const char *outpath)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s exec %s %s", env ? env : "", labench(), args);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0) _exit(99);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void slurp(const char *path, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t k = fread(out, 1, n - 1, f);
    out[k] = 0;
    fclose(f);
}

/* Waits up to `seconds` for needle to appear in the file; 1 when it did. */
static int wait_for_text(const char *path, const char *needle, double seconds, char *out, size_t n)
{
    for (double t0 = wall_seconds(); wall_seconds() - t0 < seconds;) {
        slurp(path, out, n);
        if (strstr(out, needle)) return 1;
        usleep(20000);
    }
    return 0;
}

/* The child's exit status, or -1 when it had not exited after `seconds` (it is then killed). */
static int wait_exit(pid_t pid, double seconds)
{
    int st;
    for (double t0 = wall_seconds(); wall_seconds() - t0 < seconds; usleep(20000))
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void temp_name(char *buf, size_t n, const char *what)
{
    static int k;
    snprintf(buf, n, "/tmp/labench-inputs-%ld-%d-%s", (long)getpid(), k++, what);
}

/* Runs `<env> labench ARGS` to its end (killed after `seconds`), output into out. The status,
 * -1 when it did not finish in time. */
static int run_with(const char *env, const char *args, double seconds, char *out, size_t n)
{
    char outp[128];
    temp_name(outp, sizeof outp, "out");
    int rc = wait_exit(spawn(env, args, outp), seconds);
    slurp(outp, out, n);
    unlink(outp);
    return rc;
}

/* One FIFO input: labench must say it is waiting (within 10 s), then read what is written and
 * finish with `want_status`, its output holding `want`. */
static void fifo_case(const char *args_fmt, const char *content, int want_status, const char *want)
{
    char fifo[128], outp[128], args[1024], out[16384];
    temp_name(fifo, sizeof fifo, "fifo");
    temp_name(outp, sizeof outp, "out");
    assert_int_equal(0, mkfifo(fifo, 0600));
    snprintf(args, sizeof args, args_fmt, fifo);
    pid_t pid = spawn(NULL, args, outp);
    char waiting[256];
    snprintf(waiting, sizeof waiting, "waiting for %s", fifo);
    if (!wait_for_text(outp, waiting, 10, out, sizeof out)) {
        wait_exit(pid, 0);
        print_error("labench %s: no word after 10 s while nothing was written; output:\n%s\n", args, out);
        unlink(fifo);
        unlink(outp);
        fail();
    }
    int fd = open(fifo, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal((ssize_t)strlen(content), write(fd, content, strlen(content)));
    close(fd);
    int rc = wait_exit(pid, 60);
    slurp(outp, out, sizeof out);
    if (rc != want_status || !strstr(out, want)) {
        print_error("labench %s: exit %d, output:\n%s\n  expected exit %d and '%s'\n", args, rc, out, want_status, want);
        fail();
    }
    unlink(fifo);
    unlink(outp);
}

/* Writes an all-zero tiny checkpoint. */
static void tiny_checkpoint(char *path, size_t n)
{
    ModelConfig c;
    assert_int_equal(0, model_preset("tiny", &c));
    float *p = calloc(model_param_count(&c), sizeof *p);
    assert_non_null(p);
    temp_name(path, n, "model.safetensors");
    char err[512];
    assert_int_equal(0, safetensors_save_model(path, &c, p, err, sizeof err));
    free(p);
}

/* Issue 16, defect 6: a FIFO that nothing writes to hung labench in open(2), silently. */
static void test_fifo_waits_with_a_word_then_reads(void **state)
{
    (void)state;
    fifo_case("plan --strategy packing --len-dist %s --samples 50", "# a histogram\n100-2000 40\n", 0, "packing");
    fifo_case("plan --strategy packing --lengths %s", "100\n200 20\n300\n", 0, "packing");
    fifo_case("plan --len-dist %s", "100 5\n200-100 3\n", 2, ":2: bin '200-100' has LO above HI");
    char model[128], args[512];
    tiny_checkpoint(model, sizeof model);
    snprintf(args, sizeof args, "grad --load-model %s --batch %%s --out /tmp/labench-inputs-never.safetensors", model);
    fifo_case(args, "{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[1,1,0]}", 0, "loss ");
    unlink("/tmp/labench-inputs-never.safetensors");
    fifo_case(args, "{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[1,1,1]}", 2, "must be 0");
    unlink(model);
}

/* A checkpoint is read with seeks: a FIFO is refused at once, not waited on. */
static void test_fifo_checkpoint_refused(void **state)
{
    (void)state;
    char fifo[128], args[512], out[4096];
    temp_name(fifo, sizeof fifo, "fifo");
    assert_int_equal(0, mkfifo(fifo, 0600));
    const char *forms[] = {"grad --load-model %s --batch x.json --out /tmp/labench-inputs-never.st",
                           "train --steps 1 --samples 20 --load-model %s --out /tmp/labench-inputs-never.json"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(args, sizeof args, forms[i], fifo);
        int rc = run_with(NULL, args, 10, out, sizeof out);
        if (rc != 2 || !strstr(out, fifo) || !strstr(out, "pipe or FIFO")) {
            print_error("labench %s: exit %d, output:\n%s\n", args, rc, out);
            fail();
        }
    }
    unlink(fifo);
}

/* Reading a pipe is a feature: stdin as "-" and bash's <(...). */
static void test_pipes_read(void **state)
{
    (void)state;
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "printf '100\\n200 50\\n300\\n' | %s plan --strategy sorted --lengths -", labench());
    if (test_run_capture(cmd, out, sizeof out) != 0 || !strstr(out, "sorted")) {
        print_error("%s\n%s\n", cmd, out);
        fail();
    }
    if (access("/bin/bash", X_OK) != 0) return;   /* <(...) is bash's */
    snprintf(cmd, sizeof cmd, "/bin/bash -c \"%s plan --strategy sorted --len-dist <(printf '100 7\\n' )\"", labench());
    if (test_run_capture(cmd, out, sizeof out) != 0 || !strstr(out, "sorted")) {
        print_error("%s\n%s\n", cmd, out);
        fail();
    }
    /* An error in a pipe names it: stdin by that word. */
    snprintf(cmd, sizeof cmd, "printf '100\\nabc\\n' | %s plan --lengths -", labench());
    assert_int_equal(2, test_run_capture(cmd, out, sizeof out));
    assert_non_null(strstr(out, "stdin:2: bad length 'abc'"));
}

/* Defect 6: /dev/zero as --len-dist was refused only after reading 1 GiB into memory. */
static void test_devices_refused_at_once(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"plan --len-dist /dev/zero", "/dev/zero: is a character device"},
        {"plan --lengths /dev/urandom", "/dev/urandom: is a character device"},
        {"report /dev/zero -o /tmp/labench-inputs-never.md", "/dev/zero: is a character device"},
        {"predict --from /dev/zero", "/dev/zero: is a character device"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[4096];
        double t0 = wall_seconds();
        int rc = run_with(NULL, cases[i][0], 20, out, sizeof out);
        double took = wall_seconds() - t0;
        if (rc != 2 || !strstr(out, cases[i][1]) || took > 5) {
            print_error("labench %s: exit %d after %.1f s, output:\n%s\n", cases[i][0], rc, took, out);
            fail();
        }
    }
}

/* The out-of-memory path, covered on the CPU backend by its allocator limit: exit 2, the bytes
 * needed, the option to try, no results written. A limit that fits changes nothing. */
static void test_out_of_memory_says_what_to_do(void **state)
{
    (void)state;
    char res[128], args[512], out[16384];
    temp_name(res, sizeof res, "results.json");
    snprintf(args, sizeof args, "train --strategy packing --steps 1 --samples 30 --backend cpu --out %s", res);
    int rc = run_with("LABENCH_ARENA_LIMIT=1M", args, 120, out, sizeof out);
    if (rc != 2 || !strstr(out, "packing: out of memory on") || !strstr(out, "limited to 1048576 bytes") ||
        !strstr(out, "with micro-batches of") || !strstr(out, " bytes (") || !strstr(out, "try --recompute, --max-tokens ")) {
        print_error("LABENCH_ARENA_LIMIT=1M labench %s: exit %d, output:\n%s\n", args, rc, out);
        fail();
    }
    assert_int_equal(-1, access(res, F_OK));

    rc = run_with("LABENCH_ARENA_LIMIT=1G", args, 120, out, sizeof out);
    if (rc != 0) print_error("LABENCH_ARENA_LIMIT=1G labench %s: exit %d, output:\n%s\n", args, rc, out);
    assert_int_equal(0, rc);
    assert_int_equal(0, access(res, F_OK));
    unlink(res);

    assert_int_equal(2, run_with("LABENCH_ARENA_LIMIT=lots", args, 60, out, sizeof out));
    assert_non_null(strstr(out, "LABENCH_ARENA_LIMIT=lots: want a number of bytes"));

    /* grad sizes its activations for the batch: the same words. */
    char model[128], batch[128];
    tiny_checkpoint(model, sizeof model);
    temp_name(batch, sizeof batch, "batch.json");
    FILE *f = fopen(batch, "w");
    assert_non_null(f);
    fputs("{\"tokens\":[1,2,3],\"cu_seqlens\":[0,3],\"weights\":[1,1,0]}", f);
    fclose(f);
    snprintf(args, sizeof args, "grad --load-model %s --batch %s --out %s", model, batch, res);
    rc = run_with("LABENCH_ARENA_LIMIT=100K", args, 60, out, sizeof out);
    if (rc != 2 || !strstr(out, "out of memory on") || !strstr(out, "bytes (")) {
        print_error("LABENCH_ARENA_LIMIT=100K labench %s: exit %d, output:\n%s\n", args, rc, out);
        fail();
    }
    assert_int_equal(-1, access(res, F_OK));
    unlink(model);
    unlink(batch);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_waits_with_a_word_then_reads),
        cmocka_unit_test(test_fifo_checkpoint_refused),
        cmocka_unit_test(test_pipes_read),
        cmocka_unit_test(test_devices_refused_at_once),
        cmocka_unit_test(test_out_of_memory_says_what_to_do),
    };
    return cmocka_run_group_tests_name("inputs", tests, NULL, NULL);
}
