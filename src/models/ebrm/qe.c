/* tessera ebrm: the QE cross-encoder — the search module's bidirectional
 * encoder read over [query ; entity text], pooled, and a two-logit head
 * (asks-for, contradicts). */
#include "tessera/ebrm.h"

#include <string.h>

tsr_status tsr_ebrm_qe_init(tsr_ebrm_qe *m, const tsr_benc_cfg *cfg) {
    memset(m, 0, sizeof *m);
    if (cfg->eff_hidden != 0)
        return tsr_errorf(TSR_ERR_ARG, "ebrm QE encoder: eff_hidden must be 0, got %d", cfg->eff_hidden);
    m->cfg = *cfg;
    tsr_params_init(&m->params);
    tsr_nn_llama_cfg lc = {.dim = cfg->dim, .n_layers = cfg->n_layers, .n_heads = cfg->n_heads,
                           .n_kv_heads = cfg->n_kv_heads, .hidden_dim = cfg->hidden_dim,
                           .vocab = cfg->vocab, .max_seq = cfg->max_seq, .norm_eps = 1e-5f,
                           .rope_theta = 10000.f, .tied = true};
    tsr_status st = tsr_nn_llama_init(&m->enc, &m->params, &lc);
    if (st.code != TSR_OK) {
        tsr_params_free(&m->params);
        return st;
    }
    tsr_nn_linear_init(&m->head, &m->params, "head", cfg->dim, 2, true);
    return tsr_ok();
}

void tsr_ebrm_qe_init_weights(tsr_ebrm_qe *m, uint64_t seed) {
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    tsr_nn_llama_init_weights(&m->enc, &r);
    tsr_init_normal(m->head.weight, &r, 0.02f);
    tsr_init_const(m->head.bias, 0.f);
    tsr_f32(m->head.bias)[1] = -3.f; /* contradictions start rare: c ~ 0.05 */
}

void tsr_ebrm_qe_free(tsr_ebrm_qe *m) {
    tsr_nn_llama_free(&m->enc);
    tsr_params_free(&m->params);
    memset(m, 0, sizeof *m);
}

tsr_tensor *tsr_ebrm_qe_logits(tsr_ctx *c, const tsr_ebrm_qe *m, const tsr_tensor *tokens,
                               const int32_t *lens) {
    return tsr_nn_linear_forward(c, &m->head, tsr_benc_pool(c, &m->enc, tokens, lens));
}
