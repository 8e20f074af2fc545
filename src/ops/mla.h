/* Pieces of DeepSeek-V2/V3 Multi-head Latent Attention that the dense ops do not cover: YaRN RoPE
 * frequencies and attention of one absorbed query head over the latent cache
 * (shared/spec/deepseek2.md §3.3, §4). */
#ifndef TS_OPS_MLA_H
#define TS_OPS_MLA_H

#include <stddef.h>

#include "quant/types.h"

/* YaRN parameters as ggml takes them: freq_scale = 1/factor, ext_factor 1 enables the ramp between
 * interpolated and original frequencies over pair indices [corr_low, corr_high]. With ext_factor 0
 * this is plain (linearly scaled) RoPE. */
typedef struct ts_yarn {
    float freq_scale, ext_factor, corr_low, corr_high;
} ts_yarn;

/* corr_low/corr_high for n_rot dims, base, original context, beta_fast, beta_slow (ggml's
 * ggml_rope_yarn_corr_dims: floor/ceil of the correction dims, clamped to [0, n_rot-1]). */
void ts_yarn_corr_dims(int n_rot, int n_ctx_orig, float base, float beta_fast, float beta_slow, float *low, float *high);

/* cos/sin for one position, cs[2i], cs[2i+1], i < n_rot/2, with YaRN-mixed angles. The rotated
 * vectors keep unit magnitude: DeepSeek puts all YaRN magnitude correction in the softmax scale. */
void ts_rope_cache_yarn(float *cs, int pos, int n_rot, float base, const ts_yarn *y);

/* One absorbed query head against the latent cache: rows of k_width = C + Dr elements (the normed
 * latent c, then the roped shared key), positions 0..n_kv-1, rows `stride` elements apart.
 * score_t = scale * q·row_t (q is k_width long); out (C values) = Σ softmax(score)_t c_t.
 * kv_type TS_TYPE_F32, TS_TYPE_F16, TS_TYPE_BF16 or TS_TYPE_Q8_0 (scores as ts_kv_scores in ops.h; for
 * Q8_0 stride, k_width and c_width are multiples of 32). scratch: n_kv + k_width floats. */
void ts_mla_attention_head(const ts_type_traits *table, float *out, const float *q, const void *cache, int kv_type,
                           size_t stride, int n_kv, int k_width, int c_width, float scale, float *scratch);

#endif
