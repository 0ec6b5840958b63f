/* libFuzzer harness: the checkpoint loader (safetensors_load_model, --load-model). On failure:
 * no parameters returned, the config untouched, a message naming the file. On success: the
 * parameters fill exactly the data the file holds, and a checkpoint saved from them loads back
 * bit for bit with the same config. */
#include "tests/fuzz/fuzz_common.h"

#include <sys/stat.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FuzzFile in;
    static char saved[64];
    if (!saved[0]) snprintf(saved, sizeof saved, "/tmp/labench-fuzz-st-%ld.safetensors", (long)getpid());
    fuzz_file_put(&in, data, size);
    ModelConfig c, before;
    memset(&c, 0x5a, sizeof c);
    before = c;
    float *params = (float *)&c;
    char err[2048] = "";
    if (safetensors_load_model(in.path, &c, &params, err, sizeof err) != 0) {
        CONTRACT(params == NULL, "a refused file returned parameters");
        CONTRACT(memcmp(&c, &before, sizeof c) == 0, "a refused file changed the config");
        fuzz_check_message(err, in.path, data, size);
        return 0;
    }
    size_t n = model_param_count(&c);
    uint64_t header = 0;
    for (int b = 7; b >= 0; b--) header = header << 8 | data[b];
    CONTRACT(8 + header + 4 * (uint64_t)n == size, "%zu parameters from a %zu-byte file with a %llu-byte header", n,
             size, (unsigned long long)header);
    CONTRACT(safetensors_save_model(saved, &c, params, err, sizeof err) == 0, "cannot save what was loaded: %s", err);
    ModelConfig c2;
    float *p2 = NULL;
    CONTRACT(safetensors_load_model(saved, &c2, &p2, err, sizeof err) == 0, "saved checkpoint refused: %s", err);
    CONTRACT(c2.vocab == c.vocab && c2.hidden == c.hidden && c2.intermediate == c.intermediate &&
                 c2.layers == c.layers && c2.heads == c.heads && c2.kv_heads == c.kv_heads &&
                 c2.rms_eps == c.rms_eps && c2.rope_theta == c.rope_theta,
             "config changed in a round trip");
    CONTRACT(memcmp(params, p2, n * sizeof *params) == 0, "parameters changed in a round trip");
    free(p2);
    free(params);
    unlink(saved);
    return 0;
}
