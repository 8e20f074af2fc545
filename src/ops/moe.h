/* Mixture-of-experts FFN shared by the `deepseek` (DeepSeekMoE) and `deepseek2` (V2, V2-Lite, V3/R1)
 * archs: routing (which experts, with which weights) and the expert FFN over a batch, computing only
 * the selected experts. Formulas: shared/spec/deepseek2.md §5 and dense.md §4. */
#ifndef TS_OPS_MOE_H
#define TS_OPS_MOE_H

#include <stdbool.h>

#include "ops/ops.h"
#include "util/error.h"

/* Upper bound on experts per layer (V3 has 256), so routing can use fixed stack buffers. */
#define TS_MOE_MAX_EXPERTS 1024

enum ts_moe_gating { TS_MOE_SOFTMAX = 1, TS_MOE_SIGMOID = 2 }; /* GGUF expert_gating_func ids */
enum ts_moe_group_score { TS_MOE_GROUP_MAX, TS_MOE_GROUP_TOP2_SUM };

/* How a token's router logits become expert choices and weights. */
typedef struct ts_moe_router {
    int n_expert, n_used;
    enum ts_moe_gating gating;
    /* Group-limited routing: experts split into n_group equal groups, only the n_group_used best
     * groups compete. n_group <= 1 or n_group_used >= n_group: no group limit. V2 scores a group by
     * its best expert, V3 (noaux_tc) by the sum of its two best. */
    int n_group, n_group_used;
    enum ts_moe_group_score group_score;
    bool normalize; /* divide the chosen weights by their sum (+1e-20), V3 norm_topk_prob */
    float scale;    /* routed_scaling_factor, applied last */
} ts_moe_router;

/* Routes one token. logits: n_expert router outputs; bias: n_expert selection biases (V3
 * exp_probs_b) or NULL, used only to choose experts, never in the weights. Writes n_used expert ids
 * (best first; ties to the lower id) to idx and their weights to weights. scratch: 2*n_expert floats. */
void ts_moe_route(const ts_moe_router *r, const float *logits, const float *bias, int *idx, float *weights,
                  float *scratch);

/* A stack of n_expert matrices of n_out rows of n_in values (GGUF [n_in, n_out, n_expert]). */
typedef struct ts_expert_stack {
    ts_matrix first;       /* expert 0's matrix */
    size_t expert_bytes;   /* distance between consecutive experts' matrices */
} ts_expert_stack;

static inline ts_matrix ts_expert_matrix(const ts_expert_stack *s, int e) {
    ts_matrix w = s->first;
    w.data = (const char *)w.data + (size_t)e * s->expert_bytes;
    return w;
}

/* Weights of one MoE layer. The shared-expert matrices have data == NULL when absent. */
typedef struct ts_moe_weights {
    ts_matrix gate_inp;        /* router [n_embd -> n_expert] */
    const float *probs_bias;   /* exp_probs_b or NULL */
    ts_expert_stack gate, up, down;
    ts_matrix gate_shexp, up_shexp, down_shexp;
} ts_moe_weights;

/* Visits a MoE layer's matrices for ts_arch.each_matrix (arch/arch.h): the router, the three
 * expert stacks (with their expert count and stride) and the shared experts' matrices. */
static inline void ts_moe_each_matrix(ts_moe_weights *w, int n_expert,
                                      void (*fn)(void *user, ts_matrix *m, int n_experts, size_t *expert_bytes),
                                      void *user) {
    fn(user, &w->gate_inp, 1, NULL);
    fn(user, &w->gate.first, n_expert, &w->gate.expert_bytes);
    fn(user, &w->up.first, n_expert, &w->up.expert_bytes);
    fn(user, &w->down.first, n_expert, &w->down.expert_bytes);
    fn(user, &w->gate_shexp, 1, NULL);
    fn(user, &w->up_shexp, 1, NULL);
    fn(user, &w->down_shexp, 1, NULL);
}

/* Scratch for ts_moe_forward, sized for batches of up to n_batch tokens. */
typedef struct ts_moe_scratch {
    enum ts_isa isa; /* the model's: which SwiGLU kernel runs */
    int n_batch, n_embd, n_ff_exp, n_ff_shexp, n_expert, n_used;
    float *logits;    /* [n_batch][n_expert] */
    float *route_tmp; /* [2*n_expert] */
    int *idx;         /* [n_batch][n_used] */
    float *weights;   /* [n_batch][n_used] */
    int *count;       /* [n_expert] tokens routed to each expert */
    int *slot_of;     /* [n_batch*n_used]: (token*n_used + slot) entries grouped by expert */
    float *rows;      /* [n_batch][n_embd] gathered inputs of one expert */
    float *gate_out, *up_out; /* [n_batch][max(n_ff_exp, n_ff_shexp)] */
    float *down_out;  /* [n_batch][n_embd] */
    void *act;        /* activation rows converted to a weight's vec_dot_type */
    void *xact;       /* [n_batch] the FFN inputs converted once for the router/gate/up products */
    size_t act_row_bytes;
    /* Small batches (up to TS_MOE_FUSED_TOKENS tokens) run all chosen experts' gate and up products
     * in one pass through the thread pool, and all their down products in another; rows are the
     * (token, expert) pairs grouped by expert: [fused_rows] each. */
    int fused_rows;
    void *fused_in, *fused_hidden;      /* converted inputs of gate/up, and of down */
    float *fused_gate, *fused_up;       /* [fused_rows][n_ff_exp] */
    float *fused_down;                  /* [fused_rows][n_embd] */
    ts_matrix *fused_mats;              /* [3 * fused_rows] the chosen experts' matrices */
    ts_matmul_item *fused_items;        /* [2 * fused_rows] */
} ts_moe_scratch;

/* Largest batch whose experts run in the fused passes: decoding and serving steps. Bigger
 * batches (prefill) give each expert enough rows to run as its own products. */
#define TS_MOE_FUSED_TOKENS 16

/* Allocates scratch for the given shapes (isa: the model's, for the elementwise kernels); act_row_bytes must cover every matrix the FFN multiplies
 * (ts_act_row_bytes of each). Returns 0 or -1 with err. */
int ts_moe_scratch_init(ts_moe_scratch *s, enum ts_isa isa, int n_batch, int n_embd, int n_ff_exp, int n_ff_shexp,
                        int n_expert, int n_used, size_t act_row_bytes, ts_err *err);
void ts_moe_scratch_free(ts_moe_scratch *s);

/* Bytes one activation row needs in w's vec_dot_type. */
size_t ts_act_row_bytes(const ts_type_traits *table, const ts_matrix *w);
/* out[i*out_stride + r] = W row r · src row i (src rows src_stride floats apart), converting src to
 * W's vec_dot_type in act (rows act_row_bytes apart) when that is not f32. */
void ts_project_rows(ts_threadpool *pool, const ts_type_traits *table, const ts_matrix *w, const float *src,
                     int src_stride, int n_rows, void *act, size_t act_row_bytes, float *out, int out_stride);

/* out[n][n_embd] = Σ_k w_k · Expert_{idx_k}(xn) + SharedExperts(xn) for each of n tokens. Each
 * expert's matrices are multiplied once with the batch rows routed to it; each token sums its experts
 * in ascending id, so a token's result does not depend on what else is in the batch. */
void ts_moe_forward(ts_threadpool *pool, const ts_type_traits *table, const ts_moe_router *r, const ts_moe_weights *w,
                    ts_moe_scratch *s, const float *xn, int n, float *out);

/* Bytes of weights (file layout) the last ts_moe_forward of n tokens read: the router, each expert
 * chosen by any token once, and the shared experts. For the step profile (engine/profile.h). */
uint64_t ts_moe_weight_bytes(const ts_moe_weights *w, const ts_moe_scratch *s, int n);

/* ---- Loading (shared by the deepseek and deepseek2 loaders) ---------------------------------- */

struct ts_model;

/* MoE hyperparameters of a model. */
typedef struct ts_moe_hparams {
    int n_leading_dense; /* layers before this one use the dense FFN */
    int n_ff_exp;        /* width of one routed expert */
    int n_shared;        /* shared experts, fused into one FFN of width n_ff_exp * n_shared */
    ts_moe_router router;
} ts_moe_hparams;

/* Reads <arch>.expert_* keys. raw_softmax_weights (DeepSeekMoE): weights are the plain softmax
 * probabilities whatever expert_weights_scale / _norm say (dense.md §4.2). */
int ts_moe_load_hparams(struct ts_model *m, bool raw_softmax_weights, ts_moe_hparams *hp, ts_err *err);
/* Tensors of MoE layer `layer` (router, exp_probs_b, stacked experts, shared experts). A layer with
 * exp_probs_b switches group scoring to the V3 top-2 sum (deepseek2.md §5.1). */
int ts_moe_load_layer(struct ts_model *m, int layer, ts_moe_hparams *hp, ts_moe_weights *w, ts_err *err);

#endif
