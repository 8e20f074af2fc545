/* Hugging Face config.json -> synth_model, for `tiefsee synth --hf-config`. Reads the fields the GGUF
 * converters read (dense.md §2-§4, deepseek2.md §1); every required field is checked for presence,
 * JSON type and range, and errors name the file and the field. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "synth/synth_model.h"

/* Largest value accepted for any size field: far above every real model, small enough that all
 * products the writer forms (rows x columns x experts) stay far inside int64. */
#define HF_MAX_DIM 1000000

typedef struct hf_reader {
    const char *path;
    json_t *root;
    ts_err *err;
} hf_reader;

/* Integer field. Returns 0 (found), 1 (absent or null, *out = def), -1 (error). */
static int hf_int(hf_reader *r, const json_t *obj, const char *key, bool required, long long def, long long lo,
                  long long hi, int *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return ts_fail(r->err, "%s: missing required field \"%s\"", r->path, key);
        *out = (int)def;
        return 1;
    }
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 1e15) {
        x = (long long)json_real_value(v); /* some configs write 4096.0 */
    } else {
        return ts_fail(r->err, "%s: field \"%s\" must be an integer", r->path, key);
    }
    if (x < lo || x > hi) return ts_fail(r->err, "%s: field \"%s\" = %lld is out of range [%lld, %lld]", r->path, key, x, lo, hi);
    *out = (int)x;
    return 0;
}

static int hf_float(hf_reader *r, const json_t *obj, const char *key, bool required, double def, double lo, double hi,
                    float *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return ts_fail(r->err, "%s: missing required field \"%s\"", r->path, key);
        *out = (float)def;
        return 1;
    }
    if (!json_is_number(v)) return ts_fail(r->err, "%s: field \"%s\" must be a number", r->path, key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return ts_fail(r->err, "%s: field \"%s\" = %g is out of range [%g, %g]", r->path, key, x, lo, hi);
    *out = (float)x;
    return 0;
}

static int hf_bool(hf_reader *r, const json_t *obj, const char *key, bool def, bool *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 1;
    }
    if (!json_is_boolean(v)) return ts_fail(r->err, "%s: field \"%s\" must be true or false", r->path, key);
    *out = json_is_true(v);
    return 0;
}

/* String field or NULL if absent; error if present with another type. */
static int hf_str(hf_reader *r, const json_t *obj, const char *key, const char **out) {
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 1;
    if (!json_is_string(v)) return ts_fail(r->err, "%s: field \"%s\" must be a string", r->path, key);
    *out = json_string_value(v);
    return 0;
}

#define TRY(x)                                                                                          \
    do {                                                                                                \
        if ((x) < 0) return -1;                                                                         \
    } while (0)

/* rope_scaling (or transformers 5.x "rope_parameters", which also carries rope_theta). */
static int hf_rope(hf_reader *r, synth_model *m) {
    const json_t *rs = json_object_get(r->root, "rope_scaling");
    const char *field = "rope_scaling";
    if (!rs || json_is_null(rs)) {
        rs = json_object_get(r->root, "rope_parameters");
        field = "rope_parameters";
    }
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) return ts_fail(r->err, "%s: field \"%s\" must be an object or null", r->path, field);
    if (json_object_get(rs, "rope_theta"))
        TRY(hf_float(r, rs, "rope_theta", false, 10000.0, 1.0, 1e12, &m->rope_theta));
    const char *type = NULL;
    TRY(hf_str(r, rs, "rope_type", &type));
    if (!type) TRY(hf_str(r, rs, "type", &type));
    if (!type || strcmp(type, "default") == 0 || strcmp(type, "none") == 0) return 0;
    if (strcmp(type, "linear") == 0) {
        m->rope_scaling = SYNTH_ROPE_LINEAR;
        TRY(hf_float(r, rs, "factor", true, 1.0, 1e-3, 1e6, &m->rope_factor));
    } else if (strcmp(type, "llama3") == 0) {
        m->rope_scaling = SYNTH_ROPE_LLAMA3;
        TRY(hf_float(r, rs, "factor", true, 1.0, 1e-3, 1e6, &m->rope_factor));
        TRY(hf_float(r, rs, "low_freq_factor", false, 1.0, 1e-3, 1e6, &m->llama3_low_freq));
        TRY(hf_float(r, rs, "high_freq_factor", false, 4.0, 1e-3, 1e6, &m->llama3_high_freq));
        if (m->llama3_high_freq <= m->llama3_low_freq)
            return ts_fail(r->err, "%s: %s.high_freq_factor must be greater than low_freq_factor", r->path, field);
        /* The GGUF converter reads original_max_position_embeddings from the top level of the
         * config and defaults to 8192 (dense.md §1.1), not from rope_scaling: do the same so the
         * rope_freqs tensor matches a converted file. */
        TRY(hf_int(r, r->root, "original_max_position_embeddings", false, 8192, 1, 1 << 30, &m->rope_orig_ctx));
    } else if (strcmp(type, "yarn") == 0) {
        m->rope_scaling = SYNTH_ROPE_YARN;
        TRY(hf_float(r, rs, "factor", true, 1.0, 1e-3, 1e6, &m->rope_factor));
        TRY(hf_int(r, rs, "original_max_position_embeddings", true, 4096, 1, 1 << 30, &m->rope_orig_ctx));
        TRY(hf_float(r, rs, "mscale_all_dim", false, 0.0, 0.0, 1e3, &m->yarn_mscale_all_dim));
    } else {
        return ts_fail(r->err, "%s: unsupported %s type \"%s\" (supported: linear, llama3, yarn)", r->path, field, type);
    }
    return 0;
}

/* Tokenizer family from the model type and vocabulary size (the families' real sizes, tokenizers
 * file §1); falls back to DeepSeek-LLM style for llama-type models of other sizes. */
static enum synth_vocab_family guess_vocab(const synth_model *m) {
    if (m->arch == SYNTH_ARCH_QWEN2) return SYNTH_VOCAB_QWEN2;
    if (m->n_vocab == 32256) return SYNTH_VOCAB_DEEPSEEK_CODER;
    if (m->n_vocab == 128256 || m->rope_scaling == SYNTH_ROPE_LLAMA3) return SYNTH_VOCAB_LLAMA3;
    if (m->n_vocab == 129280) return SYNTH_VOCAB_DEEPSEEK_V3;
    return SYNTH_VOCAB_DEEPSEEK_LLM;
}

static int hf_moe(hf_reader *r, synth_model *m, bool v2) {
    const json_t *root = r->root;
    TRY(hf_int(r, root, "n_routed_experts", true, 0, 1, 4096, &m->n_expert));
    TRY(hf_int(r, root, "num_experts_per_tok", true, 0, 1, 4096, &m->n_expert_used));
    TRY(hf_int(r, root, "n_shared_experts", false, 0, 0, 4096, &m->n_expert_shared));
    TRY(hf_int(r, root, "moe_intermediate_size", true, 0, 1, HF_MAX_DIM, &m->n_ff_exp));
    TRY(hf_int(r, root, "first_k_dense_replace", false, 0, 0, HF_MAX_DIM, &m->n_leading_dense));
    TRY(hf_float(r, root, "routed_scaling_factor", false, 1.0, 0.0, 1e6, &m->expert_weights_scale));
    TRY(hf_bool(r, root, "norm_topk_prob", false, &m->expert_weights_norm));
    m->expert_gating_func = 1;
    if (v2) {
        const char *scoring = NULL, *topk_method = NULL;
        TRY(hf_str(r, root, "scoring_func", &scoring));
        if (scoring && strcmp(scoring, "sigmoid") == 0) m->expert_gating_func = 2;
        else if (scoring && strcmp(scoring, "softmax") != 0)
            return ts_fail(r->err, "%s: unsupported scoring_func \"%s\"", r->path, scoring);
        TRY(hf_int(r, root, "n_group", false, 1, 1, 4096, &m->n_expert_groups));
        TRY(hf_int(r, root, "topk_group", false, 1, 1, 4096, &m->n_expert_groups_used));
        TRY(hf_str(r, root, "topk_method", &topk_method));
        m->expert_probs_bias = topk_method && strcmp(topk_method, "noaux_tc") == 0;
    }
    if (m->n_expert_used > m->n_expert)
        return ts_fail(r->err, "%s: num_experts_per_tok %d exceeds n_routed_experts %d", r->path, m->n_expert_used, m->n_expert);
    return 0;
}

static int hf_parse(hf_reader *r, synth_model *m) {
    const json_t *root = r->root;
    if (!json_is_object(root)) return ts_fail(r->err, "%s: not a JSON object", r->path);
    const char *model_type = NULL;
    TRY(hf_str(r, root, "model_type", &model_type));
    if (!model_type) return ts_fail(r->err, "%s: missing required field \"model_type\"", r->path);

    memset(m, 0, sizeof *m);
    bool is_v2 = false;
    if (strcmp(model_type, "llama") == 0) m->arch = SYNTH_ARCH_LLAMA;
    else if (strcmp(model_type, "qwen2") == 0) m->arch = SYNTH_ARCH_QWEN2, m->qkv_bias = true;
    else if (strcmp(model_type, "deepseek") == 0) m->arch = SYNTH_ARCH_DEEPSEEK;
    else if (strcmp(model_type, "deepseek_v2") == 0 || strcmp(model_type, "deepseek_v3") == 0)
        m->arch = SYNTH_ARCH_DEEPSEEK2, is_v2 = true;
    else
        return ts_fail(r->err, "%s: unsupported model_type \"%s\" (supported: llama, qwen2, deepseek, deepseek_v2, deepseek_v3)",
                       r->path, model_type);

    TRY(hf_int(r, root, "num_hidden_layers", true, 0, 1, 4096, &m->n_layer));
    TRY(hf_int(r, root, "hidden_size", true, 0, 1, HF_MAX_DIM, &m->n_embd));
    TRY(hf_int(r, root, "num_attention_heads", true, 0, 1, 65536, &m->n_head));
    TRY(hf_int(r, root, "num_key_value_heads", false, m->n_head, 1, 65536, &m->n_head_kv));
    TRY(hf_int(r, root, "intermediate_size", true, 0, 1, HF_MAX_DIM, &m->n_ff));
    TRY(hf_int(r, root, "vocab_size", true, 0, 1, 16 * HF_MAX_DIM, &m->n_vocab));
    TRY(hf_int(r, root, "max_position_embeddings", true, 0, 1, 1 << 30, &m->n_ctx_train));
    TRY(hf_float(r, root, "rms_norm_eps", true, 1e-6, 1e-12, 1.0, &m->norm_eps));
    TRY(hf_float(r, root, "rope_theta", false, 10000.0, 1.0, 1e12, &m->rope_theta));
    TRY(hf_bool(r, root, "tie_word_embeddings", false, &m->tied_embeddings));
    if (m->n_embd % m->n_head != 0 && !json_object_get(root, "head_dim"))
        return ts_fail(r->err, "%s: hidden_size %d is not a multiple of num_attention_heads %d", r->path, m->n_embd, m->n_head);
    TRY(hf_int(r, root, "head_dim", false, m->n_embd / m->n_head, 1, 65536, &m->head_dim));
    if (m->n_head % m->n_head_kv != 0)
        return ts_fail(r->err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", r->path,
                       m->n_head, m->n_head_kv);
    TRY(hf_rope(r, m));

    if (m->arch == SYNTH_ARCH_DEEPSEEK) {
        TRY(hf_moe(r, m, false));
        int freq = 1;
        TRY(hf_int(r, root, "moe_layer_freq", false, 1, 1, 4096, &freq));
        if (freq != 1) return ts_fail(r->err, "%s: moe_layer_freq %d is not supported (GGUF assumes 1)", r->path, freq);
    } else if (is_v2) {
        TRY(hf_moe(r, m, true));
        TRY(hf_int(r, root, "q_lora_rank", false, 0, 0, HF_MAX_DIM, &m->q_lora_rank));
        TRY(hf_int(r, root, "kv_lora_rank", true, 0, 1, HF_MAX_DIM, &m->kv_lora_rank));
        TRY(hf_int(r, root, "qk_nope_head_dim", true, 0, 1, 65536, &m->qk_nope_dim));
        TRY(hf_int(r, root, "qk_rope_head_dim", true, 0, 2, 65536, &m->qk_rope_dim));
        TRY(hf_int(r, root, "v_head_dim", true, 0, 1, 65536, &m->v_head_dim));
        if (m->qk_rope_dim % 2) return ts_fail(r->err, "%s: qk_rope_head_dim must be even", r->path);
        m->n_head_kv = m->n_head;
        m->head_dim = m->qk_nope_dim + m->qk_rope_dim;
    }
    if (m->n_expert > 0 && m->n_leading_dense > m->n_layer)
        return ts_fail(r->err, "%s: first_k_dense_replace %d exceeds num_hidden_layers %d", r->path, m->n_leading_dense, m->n_layer);
    if (m->head_dim % 2) return ts_fail(r->err, "%s: head dimension %d must be even for RoPE", r->path, m->head_dim);
    m->vocab = guess_vocab(m);
    if (strcmp(model_type, "deepseek_v3") == 0) m->vocab = SYNTH_VOCAB_DEEPSEEK_V3;

    const char *name = NULL;
    TRY(hf_str(r, root, "_name_or_path", &name));
    if (name && *name) snprintf(m->name, sizeof m->name, "%s (synthetic)", name);
    else snprintf(m->name, sizeof m->name, "synthetic %s", model_type);
    return 0;
}

int synth_model_from_hf_config(const char *path, synth_model *m, ts_err *err) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return ts_fail(err, "%s: cannot read JSON: %s (line %d)", path, jerr.text, jerr.line);
    hf_reader r = {.path = path, .root = root, .err = err};
    int rc = hf_parse(&r, m);
    json_decref(root);
    if (rc == 0) rc = synth_model_validate(m, err);
    return rc;
}

int synth_model_validate(const synth_model *m, ts_err *err) {
    if (m->n_layer < 1 || m->n_layer > 4096) return ts_fail(err, "n_layer %d out of range", m->n_layer);
    if (m->n_embd < 1 || m->n_embd > HF_MAX_DIM) return ts_fail(err, "n_embd %d out of range", m->n_embd);
    if (m->n_head < 1 || m->n_head_kv < 1 || m->n_head % m->n_head_kv)
        return ts_fail(err, "head counts %d/%d invalid (heads must be a multiple of KV heads)", m->n_head, m->n_head_kv);
    if (m->head_dim < 2 || m->head_dim % 2 || m->head_dim > 65536) return ts_fail(err, "head_dim %d invalid", m->head_dim);
    if ((long long)m->n_head * m->head_dim > HF_MAX_DIM) return ts_fail(err, "n_head x head_dim too large");
    if (m->n_ff < 1 || m->n_ff > HF_MAX_DIM) return ts_fail(err, "n_ff %d out of range", m->n_ff);
    if (m->n_vocab < 512 || m->n_vocab > 16 * HF_MAX_DIM)
        return ts_fail(err, "vocab size %d out of range (at least 512: 256 byte tokens plus specials)", m->n_vocab);
    if (m->n_ctx_train < 1) return ts_fail(err, "context length %d invalid", m->n_ctx_train);
    if (!(m->norm_eps > 0) || !(m->rope_theta > 0)) return ts_fail(err, "norm eps and rope theta must be positive");
    if (m->rope_scaling != SYNTH_ROPE_NONE && !(m->rope_factor > 0)) return ts_fail(err, "rope scaling factor must be positive");
    if (m->arch == SYNTH_ARCH_DEEPSEEK || m->arch == SYNTH_ARCH_DEEPSEEK2) {
        if (m->n_expert < 1 || m->n_expert > 4096 || m->n_expert_used < 1 || m->n_expert_used > m->n_expert)
            return ts_fail(err, "expert counts %d/%d invalid", m->n_expert, m->n_expert_used);
        if (m->n_ff_exp < 1 || m->n_ff_exp > HF_MAX_DIM) return ts_fail(err, "expert FFN width %d invalid", m->n_ff_exp);
        if (m->n_expert_shared < 0 || m->n_expert_shared > 4096) return ts_fail(err, "shared expert count invalid");
        if (m->n_leading_dense < 0 || m->n_leading_dense > m->n_layer) return ts_fail(err, "leading dense count invalid");
    }
    if (m->arch == SYNTH_ARCH_DEEPSEEK2) {
        if (m->kv_lora_rank < 1 || m->qk_nope_dim < 1 || m->qk_rope_dim < 2 || m->qk_rope_dim % 2 || m->v_head_dim < 1 ||
            m->q_lora_rank < 0)
            return ts_fail(err, "MLA dimensions invalid");
        if (m->kv_lora_rank > HF_MAX_DIM || m->q_lora_rank > HF_MAX_DIM || m->qk_nope_dim > 65536 ||
            m->qk_rope_dim > 65536 || m->v_head_dim > 65536)
            return ts_fail(err, "MLA dimensions too large");
        if (m->n_expert_groups > 1 && (m->n_expert % m->n_expert_groups || m->n_expert_groups_used > m->n_expert_groups))
            return ts_fail(err, "expert groups %d/%d do not divide %d experts", m->n_expert_groups, m->n_expert_groups_used,
                           m->n_expert);
    }
    return 0;
}
