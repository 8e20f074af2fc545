/* Model introspection (ts_model_get_info, ts_model_describe) and the token functions, which
 * forward to the vocabulary. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "model/model.h"

static const char *dominant_weight_type(const ts_model *m) {
    /* The type of most 2-D weight matrices; "mixed" if no type holds a majority. */
    int64_t counts[TS_TYPE_COUNT] = {0}, total = 0;
    for (int64_t i = 0; i < gguf_n_tensors(m->file); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->file, i);
        if (t->n_dims < 2 || t->type < 0 || t->type >= TS_TYPE_COUNT) continue;
        counts[t->type]++;
        total++;
    }
    int best = -1;
    for (int i = 0; i < TS_TYPE_COUNT; i++)
        if (counts[i] && (best < 0 || counts[i] > counts[best])) best = i;
    if (best < 0) return "none";
    if (counts[best] == total) return ts_type_name(best);
    return counts[best] * 2 > total ? ts_type_name(best) : "mixed";
}

void ts_model_get_info(const ts_model *m, ts_model_info *info) {
    memset(info, 0, sizeof *info);
    const ts_hparams *hp = &m->hp;
    info->arch = m->arch->name;
    info->name = m->name;
    info->n_layer = hp->n_layer;
    info->n_embd = hp->n_embd;
    info->n_head = hp->n_head;
    info->n_head_kv = hp->n_head_kv;
    info->head_dim = hp->head_dim;
    info->n_ff = hp->n_ff;
    info->n_vocab = hp->n_vocab;
    info->n_ctx_train = hp->n_ctx_train;
    info->rope_freq_base = hp->rope_freq_base;
    info->rope_freq_scale = hp->rope_freq_scale;
    info->norm_eps = hp->norm_eps;
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    info->weight_type = dominant_weight_type(m);
    info->kernels = ts_isa_name(m->isa);
    info->bos = m->vocab ? ts_vocab_bos(m->vocab) : -1;
    info->eos = m->vocab ? ts_vocab_eos(m->vocab) : -1;
    info->add_bos = m->vocab ? ts_vocab_add_bos(m->vocab) : false;
}

/* KV cache bytes per position of one sequence, all layers, for elements of type kv_type (a row of a
 * block type takes whole blocks: Q8_0 34 bytes per 32 values). The widths come from the arch, so
 * deepseek2 counts its latent rows (kv_lora_rank + qk_rope_head_dim per layer), not dense K/V heads. */
uint64_t ts_model_kv_bytes_per_token(const ts_model *m, int kv_type) {
    uint64_t total = 0;
    for (int l = 0; l < m->hp.n_layer; l++) {
        int kw = 0, vw = 0;
        m->arch->kv_widths(m, l, &kw, &vw);
        total += (uint64_t)ts_row_size(kv_type, kw) + (uint64_t)ts_row_size(kv_type, vw);
    }
    return total;
}

static void human_bytes(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, cap, "%.2f MiB", (double)b / (1ull << 20));
    else snprintf(buf, cap, "%.2f KiB", (double)b / 1024.0);
}

void ts_model_describe(const ts_model *m, void (*write)(void *user, const char *line), void *user) {
    char line[1400], a[64], b[64];
    const ts_hparams *hp = &m->hp;
    snprintf(line, sizeof line, "file:            %s (%d part%s)", m->path, gguf_n_parts(m->file),
             gguf_n_parts(m->file) == 1 ? "" : "s");
    write(user, line);
    snprintf(line, sizeof line, "name:            %s", m->name);
    write(user, line);
    snprintf(line, sizeof line, "arch:            %s", m->arch->name);
    write(user, line);
    snprintf(line, sizeof line, "n_layer:         %d", hp->n_layer);
    write(user, line);
    snprintf(line, sizeof line, "n_embd:          %d", hp->n_embd);
    write(user, line);
    snprintf(line, sizeof line, "n_head:          %d", hp->n_head);
    write(user, line);
    snprintf(line, sizeof line, "n_head_kv:       %d", hp->n_head_kv);
    write(user, line);
    snprintf(line, sizeof line, "head_dim:        %d (value %d)", hp->head_dim, hp->head_dim_v);
    write(user, line);
    snprintf(line, sizeof line, "n_ff:            %d", hp->n_ff);
    write(user, line);
    snprintf(line, sizeof line, "n_vocab:         %d", hp->n_vocab);
    write(user, line);
    snprintf(line, sizeof line, "n_ctx_train:     %d", hp->n_ctx_train);
    write(user, line);
    snprintf(line, sizeof line, "norm_eps:        %g", (double)hp->norm_eps);
    write(user, line);
    snprintf(line, sizeof line, "rope:            %s, n_rot %d, freq_base %g, freq_scale %g, scaling %s",
             hp->rope_mode == TS_ROPE_NEOX ? "neox" : "norm", hp->n_rot, (double)hp->rope_freq_base,
             (double)hp->rope_freq_scale, hp->rope_scaling);
    write(user, line);
    snprintf(line, sizeof line, "output:          %s", m->output_tied ? "tied to token_embd" : "output.weight");
    write(user, line);
    size_t used = (size_t)snprintf(line, sizeof line, "tensor types:   ");
    for (int t = 0; t < TS_TYPE_COUNT && used < sizeof line; t++)
        if (m->type_counts[t])
            used += (size_t)snprintf(line + used, sizeof line - used, " %s:%" PRId64, ts_type_name(t), m->type_counts[t]);
    write(user, line);
    human_bytes(a, sizeof a, m->weight_bytes);
    snprintf(line, sizeof line, "params:          %" PRIu64 " (%.3f B), weights %s", m->n_params,
             (double)m->n_params / 1e9, a);
    write(user, line);
    human_bytes(a, sizeof a, gguf_total_size(m->file));
    snprintf(line, sizeof line, "file size:       %s", a);
    write(user, line);
    const uint64_t kv_tok = ts_model_kv_bytes_per_token(m, TS_TYPE_F16);
    snprintf(line, sizeof line,
             "KV per token:    %" PRIu64 " bytes f16 cache (f32 %" PRIu64 ", bf16 %" PRIu64 ", q8_0 %" PRIu64
             "), one sequence, all layers",
             kv_tok, ts_model_kv_bytes_per_token(m, TS_TYPE_F32), ts_model_kv_bytes_per_token(m, TS_TYPE_BF16),
             ts_model_kv_bytes_per_token(m, TS_TYPE_Q8_0));
    write(user, line);
    const int ctx_short = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    human_bytes(a, sizeof a, gguf_total_size(m->file) + kv_tok * (uint64_t)ctx_short);
    human_bytes(b, sizeof b, gguf_total_size(m->file) + kv_tok * (uint64_t)hp->n_ctx_train);
    snprintf(line, sizeof line, "memory per run:  %s at n_ctx %d, %s at n_ctx %d (weights + F16 KV, one sequence)", a,
             ctx_short, b, hp->n_ctx_train);
    write(user, line);
}

int ts_tokenize(const ts_model *m, const char *text, size_t len, bool add_bos, ts_token *out, int out_cap) {
    return ts_vocab_encode(m->vocab, text, len, add_bos, out, out_cap);
}

int ts_token_bytes(const ts_model *m, ts_token t, char *buf, int cap) {
    return ts_vocab_token_bytes(m->vocab, t, buf, cap);
}

bool ts_token_is_eog(const ts_model *m, ts_token t) { return ts_vocab_is_eog(m->vocab, t); }
