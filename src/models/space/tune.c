/* tessera space: semi-autoregressive (SAR) fine-tuning of a Llama-style
 * code model (SPACE, Yi et al. 2024, sec. 3.2): the example builder and the
 * driver that turns a base HF directory into an SAR model directory, on
 * top of the lm trainer (include/tessera/lm_train.h). Rules in space.h. */
#include "tessera/space.h"

#include "tessera/bpe.h"
#include "tessera/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tsr_space_sar_batch(void *ud, int32_t *x, int32_t *y, int B, int T, const int32_t *train, size_t n_train,
                         tsr_rng *rng) {
    const tsr_space_sar *s = ud;
    const uint32_t span = (uint32_t)(n_train - (size_t)T - 1) + 1u; /* window starts 0..n-T-1 */
    const int k = s->k;
    const int lo = s->min_prefix, hi = T - k - 1; /* cut p in [lo, hi] */
    for (int b = 0; b < B; b++) {
        const int32_t *w = train + tsr_rng_below(rng, span);
        int32_t *xb = x + (size_t)b * T, *yb = y + (size_t)b * T;
        memcpy(xb, w, sizeof(int32_t) * (size_t)T);
        memcpy(yb, w + 1, sizeof(int32_t) * (size_t)T);
        /* one uniform draw decides the kind, a second the cut: the stream
         * of draws is the same whatever the outcome */
        const bool sar = tsr_rng_uniform(rng) < s->prob;
        const int p = lo + (int)tsr_rng_below(rng, (uint32_t)(hi - lo + 1));
        if (!sar) continue;
        for (int i = 0; i <= k; i++) xb[p + i] = s->mask_id;
        /* yb[p - 1] = w[p] already (the last real token's own target) */
        for (int i = 0; i < k; i++) yb[p + i] = w[p + 1 + i];
        for (int t = p + k; t < T; t++) yb[t] = -100; /* the last mask and the padding */
    }
}

tsr_space_tune_opts tsr_space_tune_default_opts(void) {
    tsr_space_tune_opts o;
    memset(&o, 0, sizeof o);
    static char base[4096]; /* the shipped base, from any working directory */
    o.base = tsr_find_model_or("models/pycode", base, sizeof base);
    o.out = "runs/space";
    o.sar = (tsr_space_sar){.k = 5, .prob = 0.5f, .mask_id = -1, .min_prefix = 16};
    o.lm = tsr_lm_train_default_opts();
    o.lm.cfg.max_seq = 384;
    o.lm.batch = 10;
    o.lm.train.steps = 600;
    o.lm.train.warmup = 30;
    o.lm.train.lr = 6e-4f;
    o.lm.train.min_lr = 6e-5f;
    o.lm.train.eval_every = 100;
    o.lm.train.ckpt_every = 50;
    return o;
}

/* *created: whether this call made it (a failed run then removes it) */
static tsr_status make_dir(const char *path, bool *created) {
    *created = mkdir(path, 0755) == 0;
    if (*created || errno == EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return tsr_ok();
        return tsr_errorf(TSR_ERR_IO, "%s: exists and is not a directory", path);
    }
    return tsr_errorf(TSR_ERR_IO, "%s: cannot create the directory (%s)", path, strerror(errno));
}

tsr_status tsr_space_tune(const tsr_space_tune_opts *o, tsr_lm_train_result *r) {
    memset(r, 0, sizeof *r);
    r->eval.step = r->eval_first.step = -1;
    char cpath[1100], mpath[1100], tpath[1100], out_tok[1100], ckpt[1100], out_model[1100], out_cfg[1100];
    snprintf(cpath, sizeof cpath, "%s/config.json", o->base);
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", o->base);
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->base);
    snprintf(ckpt, sizeof ckpt, "%s/train.safetensors", o->out);
    snprintf(out_tok, sizeof out_tok, "%s/tokenizer.json", o->out);
    snprintf(out_model, sizeof out_model, "%s/model.safetensors", o->out);
    snprintf(out_cfg, sizeof out_cfg, "%s/config.json", o->out);

    /* the base's architecture */
    tsr_lm_model base;
    tsr_status st = tsr_lm_load_hf_dir(&base, o->base, TSR_LM_W_F32, 0);
    if (st.code) return st;
    tsr_lm_config bc = base.cfg;
    tsr_lm_model_free(&base);
    tsr_bpe bpe;
    if ((st = tsr_bpe_load(&bpe, tpath)).code) return st;
    if (bpe.vocab_size != bc.vocab_size) {
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: %d tokens, the model has %d", tpath, bpe.vocab_size, bc.vocab_size);
        tsr_bpe_free(&bpe);
        return st;
    }
    if (tsr_bpe_special_id(&bpe, TSR_SPACE_MASK) >= 0) {
        tsr_bpe_free(&bpe);
        return tsr_errorf(TSR_ERR_ARG, "%s already has %s: tune a base model, not an SAR one", tpath, TSR_SPACE_MASK);
    }
    tsr_space_sar sar = o->sar;
    sar.mask_id = bc.vocab_size;
    tsr_lm_train_opts t = o->lm;
    const int T = t.cfg.max_seq > 0 ? t.cfg.max_seq : bc.seq_len;
    if (sar.k < 1 || sar.k > 15 || !(sar.prob >= 0 && sar.prob <= 1) || sar.min_prefix < 1 ||
        sar.min_prefix > T - sar.k - 1) {
        tsr_bpe_free(&bpe);
        return tsr_errorf(TSR_ERR_ARG, "SAR settings out of range (k %d in 1..15, prob %g in [0,1], "
                          "min prefix %d in 1..%d for context %d)", sar.k, (double)sar.prob, sar.min_prefix,
                          T - sar.k - 1, T);
    }
    bool created;
    if ((st = make_dir(o->out, &created)).code) {
        tsr_bpe_free(&bpe);
        return st;
    }
    t.cfg = (tsr_nn_llama_cfg){.dim = bc.dim, .n_layers = bc.n_layers, .n_heads = bc.n_heads,
                               .n_kv_heads = bc.n_kv_heads, .hidden_dim = bc.hidden_dim,
                               .vocab = bc.vocab_size + 1, .max_seq = T, .norm_eps = bc.norm_eps,
                               .rope_theta = bc.rope_theta, .tied = bc.shared_classifier};
    t.tokenizer = tpath;
    t.train.out = ckpt;
    t.init_from = mpath;
    t.extra_vocab = 1;
    t.make_batch = tsr_space_sar_batch;
    t.batch_ud = &sar;
    char rule[64];
    snprintf(rule, sizeof rule, "space-sar-k%d-p%.3g-m%d-v1", sar.k, (double)sar.prob, sar.min_prefix);
    t.data_rule = rule;
    t.eval_context = bc.seq_len < T ? bc.seq_len : T;
    t.train.eval_first = true;
    st = tsr_lm_train(&t, r);
    if (st.code && created) rmdir(o->out); /* a run that failed before writing anything leaves no directory */
    if (!st.code && r->finished) {
        /* the shipping directory: BF16 weights, config, tokenizer + mask */
        int id = -1;
        st = tsr_bpe_add_special(&bpe, TSR_SPACE_MASK, &id);
        TSR_ASSERT(st.code || id == sar.mask_id);
        if (!st.code) st = tsr_bpe_save(&bpe, out_tok);
        if (!st.code && rename(r->bf16_path, out_model) != 0)
            st = tsr_errorf(TSR_ERR_IO, "%s: cannot rename to %s (%s)", r->bf16_path, out_model, strerror(errno));
        if (!st.code) {
            snprintf(r->bf16_path, sizeof r->bf16_path, "%s", out_model);
            tsr_lm_config sc = bc;
            sc.vocab_size = bc.vocab_size + 1;
            sc.seq_len = T;
            char extra[256];
            snprintf(extra, sizeof extra,
                     "\"space_k\": %d,\n  \"space_mask_token\": \"%s\",\n  \"space_mask_token_id\": %d", sar.k,
                     TSR_SPACE_MASK, sar.mask_id);
            st = tsr_lm_save_hf_config(&sc, "bfloat16", extra, out_cfg);
        }
    }
    tsr_bpe_free(&bpe);
    return st;
}
