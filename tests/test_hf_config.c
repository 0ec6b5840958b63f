/* model/hf_config.c: a Llama config.json into a ModelConfig, and every bad file refused with its
 * file and field named. */
#include "tests/test_util.h"

#include "model/hf_config.h"

static const char LLAMA2_7B[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 4096,\n"
    " \"intermediate_size\": 11008, \"num_hidden_layers\": 32, \"num_attention_heads\": 32,\n"
    " \"num_key_value_heads\": 32, \"vocab_size\": 32000, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0,\n"
    " \"torch_dtype\": \"float16\"}\n";

static int load_text(const char *text, ModelConfig *c, char *err, size_t n, char *path, size_t pathlen)
{
    test_write_file(path, pathlen, text, strlen(text));
    int rc = hf_config_load(path, c, err, n);
    unlink(path);
    return rc;
}

static void test_7b_matches_preset(void **state)
{
    (void)state;
    ModelConfig f, p;
    char err[512], path[64];
    assert_int_equal(0, load_text(LLAMA2_7B, &f, err, sizeof err, path, sizeof path));
    assert_int_equal(0, model_preset("7b", &p));
    assert_string_equal("file", f.name);
    /* every field but the name is the preset's */
    assert_int_equal(p.vocab, f.vocab);
    assert_int_equal(p.hidden, f.hidden);
    assert_int_equal(p.intermediate, f.intermediate);
    assert_int_equal(p.layers, f.layers);
    assert_int_equal(p.heads, f.heads);
    assert_int_equal(p.kv_heads, f.kv_heads);
    assert_int_equal(p.head_dim, f.head_dim);
    assert_true(p.rms_eps == f.rms_eps);
    assert_true(p.rope_theta == f.rope_theta);
    assert_int_equal(model_param_count(&p), model_param_count(&f));
    assert_int_equal(6738415616ULL, model_param_count(&f));
}

static void test_defaults_and_gqa(void **state)
{
    (void)state;
    /* TinyLlama-1.1B's config without eps/theta/head_dim: the 1b preset's shape. */
    const char *text = "{\"model_type\": \"llama\", \"hidden_size\": 2048, \"intermediate_size\": 5632,"
                       " \"num_hidden_layers\": 22, \"num_attention_heads\": 32, \"num_key_value_heads\": 4,"
                       " \"vocab_size\": 32000}";
    ModelConfig f, p;
    char err[512], path[64];
    assert_int_equal(0, load_text(text, &f, err, sizeof err, path, sizeof path));
    assert_int_equal(0, model_preset("1b", &p));
    assert_int_equal(p.kv_heads, f.kv_heads);
    assert_int_equal(64, f.head_dim);
    assert_close(f.rms_eps, 1e-5, 0, 1e-6);
    assert_close(f.rope_theta, 10000, 0, 1e-9);
    assert_int_equal(model_param_count(&p), model_param_count(&f));
    /* architectures alone names the family; num_key_value_heads absent means MHA */
    text = "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 176,"
           " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 256}";
    assert_int_equal(0, load_text(text, &f, err, sizeof err, path, sizeof path));
    assert_int_equal(4, f.kv_heads);
}

static void expect_bad(const char *text, const char *needle)
{
    ModelConfig c;
    char err[512], path[64];
    assert_int_equal(-1, load_text(text, &c, err, sizeof err, path, sizeof path));
    if (!strstr(err, needle) || !strstr(err, path)) {
        print_error("error '%s' should name '%s' and the file %s\n", err, needle, path);
        fail();
    }
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096,", "not valid JSON");
    expect_bad("[1, 2]", "not a config.json");
    expect_bad("{\"model_type\": \"chatglm\", \"hidden_size\": 4096}", "\"model_type\" is 'chatglm'");
    expect_bad("{\"hidden_size\": 4096}", "not of the Llama family");
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 11008,"
               " \"num_hidden_layers\": 32, \"num_attention_heads\": 32}",
               "\"vocab_size\" is missing");
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 0, \"intermediate_size\": 11008}",
               "\"hidden_size\" must be a positive integer");
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": -5}",
               "\"intermediate_size\" must be a positive integer");
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 11008,"
               " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"vocab_size\": 32000,"
               " \"rms_norm_eps\": -1}",
               "\"rms_norm_eps\" must be a positive number");
    expect_bad("{\"model_type\": \"llama\", \"hidden_size\": 4096, \"intermediate_size\": 11008,"
               " \"num_hidden_layers\": 32, \"num_attention_heads\": 32, \"num_key_value_heads\": 5,"
               " \"vocab_size\": 32000}",
               "not a multiple");
}

static void test_resolve(void **state)
{
    (void)state;
    ModelConfig c;
    char err[512];
    assert_int_equal(0, model_resolve("13b", &c, err, sizeof err));
    assert_int_equal(5120, c.hidden);
    assert_int_equal(40, c.layers);
    /* ChatGLM3-6B: multi-query with 2 groups, 65024 vocab */
    assert_int_equal(0, model_resolve("chatglm3-6b", &c, err, sizeof err));
    assert_int_equal(2, c.kv_heads);
    assert_int_equal(13696, c.intermediate);
    assert_int_equal(-1, model_resolve("huge", &c, err, sizeof err));
    assert_non_null(strstr(err, "unknown preset 'huge'"));
    assert_non_null(strstr(err, "chatglm3-6b"));
    assert_int_equal(-1, model_resolve("/nonexistent/config.json", &c, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_7b_matches_preset),
        cmocka_unit_test(test_defaults_and_gqa),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
