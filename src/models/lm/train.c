/* tessera lm: training the Llama-style decoder (tsr_nn_llama) on a
 * BPE-tokenised code corpus, for `tessera lm train`. Random windows drawn
 * with the trainer's rng, AdamW (norms undecayed) with global-norm
 * clipping and warmup + cosine, a fixed validation window set reported in
 * nats/token and bits/byte, periodic atomic checkpoints (F32 params +
 * training state) with exact resume, and a BF16 copy with the config in
 * its metadata at the end. Conventions in include/tessera/lm_train.h. */
#include "tessera/lm_train.h"

#include "tessera/corpus.h"
#include "tessera/fileio.h"
#include "tessera/ops.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

tsr_lm_train_opts tsr_lm_train_default_opts(void) {
    tsr_lm_train_opts o;
    memset(&o, 0, sizeof o);
    o.data_dir = "/usr/lib/python3.11";
    o.cfg = (tsr_nn_llama_cfg){.dim = 384, .n_layers = 6, .n_heads = 6, .n_kv_heads = 0,
                               .hidden_dim = 1024, .vocab = 0, .max_seq = 512,
                               .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = true};
    o.batch = 8;
    o.eval_tokens = 32768;
    o.train = tsr_train_default_opts();
    o.train.out = "runs/lm.safetensors";
    o.train.steps = 2000;
    o.train.warmup = 100;
    o.train.lr = 1e-3f;
    o.train.min_lr = 1e-4f;
    o.train.weight_decay = 0.1f;
    o.train.beta2 = 0.95f;
    o.train.clip = 1.0f;
    o.train.eval_every = 250;
    o.train.ckpt_every = 250;
    o.train.log_every = 10;
    o.train.seed = 1;
    return o;
}

double tsr_lm_bpb(double mean_loss_nats, int64_t n_tokens, int64_t n_bytes) {
    if (n_bytes <= 0) return 0.0;
    return mean_loss_nats * (double)n_tokens / (double)n_bytes / log(2.0);
}

int64_t tsr_lm_token_bytes(const tsr_bpe *bpe, const int32_t *ids, size_t n) {
    if (!bpe) return (int64_t)n;
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= bpe->vocab_size || bpe->special[id]) continue;
        s += bpe->piece_len[id];
    }
    return s;
}

size_t tsr_lm_eval_offset(size_t N, int T, int64_t i, int64_t n) {
    size_t span = N - (size_t)T - 1; /* last valid start */
    if (n <= 1) return 0;
    return (size_t)((double)span * (double)i / (double)(n - 1));
}

void tsr_lm_sibling_path(const char *ckpt, const char *tag, char *buf, size_t n) {
    const char *suf = ".safetensors";
    size_t l = strlen(ckpt), ls = strlen(suf);
    if (l > ls && strcmp(ckpt + l - ls, suf) == 0)
        snprintf(buf, n, "%.*s.%s%s", (int)(l - ls), ckpt, tag, suf);
    else snprintf(buf, n, "%s.%s", ckpt, tag);
}

/* ---------------------------------------------------------------- metadata */

/* the model config under its HF config.json names (the weights file's
 * metadata, read back by tsr_lm_ckpt_config) */
#define N_CFG_KEYS 12
static const char *const k_cfg_keys[N_CFG_KEYS] = {
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings",
    "rope_theta", "rms_norm_eps", "tie_word_embeddings", "tokenizer_hash"};

static int parse_int(const char *s, long long lo, long long hi, long long *v) {
    if (!s || !*s) return 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (*end || x < lo || x > hi) return 0;
    *v = x;
    return 1;
}

tsr_status tsr_lm_ckpt_config(const tsr_st_file *f, tsr_nn_llama_cfg *g) {
    memset(g, 0, sizeof *g);
    const char *mt = tsr_st_meta(f, "model_type");
    if (!mt || strcmp(mt, "llama") != 0)
        return tsr_errorf(TSR_ERR_FORMAT, "checkpoint metadata: model_type is %s, want llama",
                          mt ? mt : "missing");
    int *dst[7] = {&g->dim, &g->n_layers, &g->n_heads, &g->n_kv_heads, &g->hidden_dim, &g->vocab,
                   &g->max_seq};
    for (int i = 0; i < 7; i++) {
        long long v;
        const char *s = tsr_st_meta(f, k_cfg_keys[1 + i]);
        if (!parse_int(s, 1, 1 << 24, &v))
            return tsr_errorf(TSR_ERR_FORMAT, "checkpoint metadata: %s is %s", k_cfg_keys[1 + i],
                              s ? s : "missing");
        *dst[i] = (int)v;
    }
    const char *rt = tsr_st_meta(f, "rope_theta"), *ne = tsr_st_meta(f, "rms_norm_eps");
    const char *ti = tsr_st_meta(f, "tie_word_embeddings");
    if (!rt || !ne || !ti)
        return tsr_errorf(TSR_ERR_FORMAT, "checkpoint metadata: rope_theta, rms_norm_eps or "
                                          "tie_word_embeddings missing");
    g->rope_theta = strtof(rt, NULL);
    g->norm_eps = strtof(ne, NULL);
    g->tied = strcmp(ti, "true") == 0;
    if (!(g->rope_theta > 0) || !(g->norm_eps > 0))
        return tsr_errorf(TSR_ERR_FORMAT, "checkpoint metadata: bad rope_theta or rms_norm_eps");
    return tsr_ok();
}

/* ---------------------------------------------------------------- the run */

/* (B,T) inputs and targets from windows starting at offs[b] */
static void fill_windows(int32_t *x, int32_t *y, const int32_t *src, const size_t *offs, int B,
                         int T) {
    for (int b = 0; b < B; b++) {
        const int32_t *w = src + offs[b];
        memcpy(x + (size_t)b * T, w, sizeof(int32_t) * (size_t)T);
        memcpy(y + (size_t)b * T, w + 1, sizeof(int32_t) * (size_t)T);
    }
}

typedef struct {
    size_t *offs;
    int64_t n;
    int64_t tokens, bytes;
} eval_set;

static void eval_run(tsr_ctx *c, const tsr_nn_llama *m, const int32_t *val, const eval_set *es,
                     int B, int T, tsr_lm_train_eval *out) {
    double sum = 0.0;
    for (int64_t i = 0; i < es->n; i += B) {
        int nb = (int)(es->n - i < B ? es->n - i : B);
        tsr_ctx_reset(c);
        c->grad_enabled = false;
        c->training = false;
        tsr_tensor *x = tsr_new(c, TSR_I32, TSR_DIMS(nb, T));
        tsr_tensor *y = tsr_new(c, TSR_I32, TSR_DIMS(nb, T));
        fill_windows(tsr_i32(x), tsr_i32(y), val, es->offs + i, nb, T);
        tsr_tensor *loss = tsr_nn_llama_loss(c, m, x, y, -100, NULL, NULL);
        sum += (double)tsr_f32(loss)[0] * (double)nb * T;
    }
    tsr_ctx_reset(c);
    out->tokens = es->tokens;
    out->bytes = es->bytes;
    out->val_loss = es->tokens ? sum / (double)es->tokens : 0.0;
    out->val_bpb = tsr_lm_bpb(out->val_loss, es->tokens, es->bytes);
}

typedef struct {
    const tsr_lm_train_opts *o;
    tsr_params p;
    tsr_nn_llama m;
    const int32_t *train, *val;
    size_t n_train;
    size_t *offs;
    uint32_t span;
    eval_set es;
    int Te;
    tsr_ctx ec; /* evaluation arena */
    int64_t steps_run;
    tsr_lm_train_result *res;
} run;

/* windows at uniform random offsets (or the family's make_batch), from the step rng */
static tsr_status step(void *ud, tsr_ctx *c, const int32_t *ids, int64_t n, float *loss_v) {
    (void)ids, (void)n;
    run *r = ud;
    const tsr_lm_train_opts *o = r->o;
    const int B = o->batch, T = o->cfg.max_seq;
    tsr_lm_train_times *tt = &r->res->times;
    double ta = tsr_time();
    tsr_tensor *x = tsr_new(c, TSR_I32, TSR_DIMS(B, T));
    tsr_tensor *y = tsr_new(c, TSR_I32, TSR_DIMS(B, T));
    if (o->make_batch) {
        o->make_batch(o->batch_ud, tsr_i32(x), tsr_i32(y), B, T, r->train, r->n_train, &c->rng);
    } else {
        for (int b = 0; b < B; b++) r->offs[b] = tsr_rng_below(&c->rng, r->span);
        fill_windows(tsr_i32(x), tsr_i32(y), r->train, r->offs, B, T);
    }
    double tb = tsr_time();
    tsr_tensor *loss = tsr_nn_llama_loss(c, &r->m, x, y, -100, NULL, NULL);
    *loss_v = tsr_f32(loss)[0];
    double tc = tsr_time();
    tsr_backward(c, loss);
    tt->data += tb - ta, tt->forward += tc - tb, tt->backward += tsr_time() - tc;
    r->steps_run++;
    return tsr_ok();
}

/* the fixed validation windows: mean loss (nats/token) and bits per byte */
static tsr_status eval(void *ud, tsr_train_metrics *mt) {
    run *r = ud;
    tsr_lm_train_eval e;
    eval_run(&r->ec, &r->m, r->val, &r->es, r->o->batch, r->Te, &e);
    e.step = mt->step;
    tsr_train_metric(mt, "val_loss", e.val_loss);
    tsr_train_metric(mt, "val_bpb", e.val_bpb);
    if (e.step == 0 && !r->steps_run) r->res->eval_first = e;
    else r->res->eval = e;
    if (r->o->on_eval) r->o->on_eval(&e, r->o->ud);
    return tsr_ok();
}

static void note(const tsr_lm_train_opts *o, const char *msg) {
    if (o->on_note) o->on_note(msg, o->ud);
}

static tsr_status save(void *ud, const char *path, const char *const *meta, const tsr_train_metrics *ev,
                       bool final) {
    run *r = ud;
    const char *kv[160];
    int n = 0;
    for (; meta[n] && n < 150; n++) kv[n] = meta[n];
    char vl[40], vb[40];
    if (ev) {
        snprintf(vl, sizeof vl, "%.6f", tsr_train_metric_get(ev, "val_loss"));
        snprintf(vb, sizeof vb, "%.6f", tsr_train_metric_get(ev, "val_bpb"));
        kv[n++] = "val_loss", kv[n++] = vl;
        kv[n++] = "val_bpb", kv[n++] = vb;
    }
    kv[n] = NULL;
    tsr_status st = tsr_params_save(&r->p, path, TSR_ST_F32, kv);
    char msg[2600];
    if (!st.code && final) {
        st = tsr_params_save(&r->p, r->res->bf16_path, TSR_ST_BF16, kv);
        snprintf(msg, sizeof msg, "saved %s (F32) and %s (BF16)", path, r->res->bf16_path);
    } else {
        const char *s = NULL;
        for (int i = 0; meta[i]; i += 2)
            if (strcmp(meta[i], "train.step") == 0) s = meta[i + 1];
        snprintf(msg, sizeof msg, "checkpoint at step %s: %s", s ? s : "?", path);
    }
    if (!st.code) note(r->o, msg);
    return st;
}

tsr_status tsr_lm_train_tokens(const tsr_lm_train_opts *o, const int32_t *train, size_t n_train,
                               const int32_t *val, size_t n_val, const tsr_bpe *bpe,
                               const char *tok_name, uint64_t tok_hash, tsr_lm_train_result *res) {
    memset(res, 0, sizeof *res);
    res->eval.step = -1;
    res->eval_first.step = -1;
    const int T = o->cfg.max_seq, B = o->batch;
    if (B < 1 || o->eval_tokens < 0 || T < 1)
        return tsr_errorf(TSR_ERR_ARG, "lm train: options out of range");
    if (n_train < (size_t)T + 2)
        return tsr_errorf(TSR_ERR_ARG, "the training split has %zu tokens, fewer than the context %d + 2",
                          n_train, T);
    if (n_train - (size_t)T - 1 > UINT32_MAX)
        return tsr_errorf(TSR_ERR_ARG, "training split too large (%zu tokens)", n_train);
    tsr_nn_llama_cfg g = o->cfg;
    if (o->extra_vocab < 0 || o->extra_vocab > 1024)
        return tsr_errorf(TSR_ERR_ARG, "extra vocab %d out of range", o->extra_vocab);
    if (bpe && g.vocab == 0) g.vocab = bpe->vocab_size + o->extra_vocab;
    if (g.n_kv_heads == 0) g.n_kv_heads = g.n_heads;
    if (bpe && g.vocab != bpe->vocab_size + o->extra_vocab)
        return tsr_errorf(TSR_ERR_ARG, "model vocab %d differs from the tokenizer's %d + %d added", g.vocab,
                          bpe->vocab_size, o->extra_vocab);
    for (size_t i = 0; i < n_train; i++)
        if (train[i] < 0 || train[i] >= g.vocab)
            return tsr_errorf(TSR_ERR_ARG, "training token %d at %zu outside the vocab %d", train[i], i,
                              g.vocab);
    for (size_t i = 0; i < n_val; i++)
        if (val[i] < 0 || val[i] >= g.vocab)
            return tsr_errorf(TSR_ERR_ARG, "validation token %d at %zu outside the vocab %d", val[i], i,
                              g.vocab);
    tsr_lm_sibling_path(o->train.out, "bf16", res->bf16_path, sizeof res->bf16_path);
    tsr_status st = tsr_output_check(res->bf16_path);
    if (st.code) return st;

    run r;
    memset(&r, 0, sizeof r);
    r.o = o, r.res = res, r.train = train, r.val = val, r.n_train = n_train;
    tsr_params_init(&r.p);
    st = tsr_nn_llama_init(&r.m, &r.p, &g);
    if (st.code) {
        tsr_params_free(&r.p);
        return st;
    }
    res->n_params = tsr_params_count(&r.p);
    if (!o->train.resume && o->init_from) {
        st = tsr_params_load_grow(&r.p, o->init_from, NULL);
    } else if (!o->train.resume) {
        tsr_rng wr;
        tsr_rng_seed(&wr, o->train.seed);
        tsr_nn_llama_init_weights(&r.m, &wr);
    }
    /* the fixed validation windows */
    r.Te = o->eval_context > 0 && o->eval_context < T ? o->eval_context : T;
    if (!st.code && n_val >= (size_t)r.Te + 2 && o->eval_tokens > 0) {
        eval_set *es = &r.es;
        int64_t max_n = (int64_t)(n_val - 1) / r.Te; /* non-overlapping when it fits */
        es->n = o->eval_tokens / r.Te;
        if (es->n < 1) es->n = 1;
        if (es->n > max_n) es->n = max_n;
        es->offs = malloc(sizeof(size_t) * (size_t)es->n);
        TSR_ASSERT(es->offs);
        for (int64_t i = 0; i < es->n; i++) {
            es->offs[i] = tsr_lm_eval_offset(n_val, r.Te, i, es->n);
            es->bytes += tsr_lm_token_bytes(bpe, val + es->offs[i] + 1, (size_t)r.Te);
        }
        es->tokens = es->n * r.Te;
    }
    char cfgv[N_CFG_KEYS][40], run_v[3][40], tokn[256];
    snprintf(cfgv[0], 40, "llama");
    snprintf(cfgv[1], 40, "%d", g.dim);
    snprintf(cfgv[2], 40, "%d", g.n_layers);
    snprintf(cfgv[3], 40, "%d", g.n_heads);
    snprintf(cfgv[4], 40, "%d", g.n_kv_heads);
    snprintf(cfgv[5], 40, "%d", g.hidden_dim);
    snprintf(cfgv[6], 40, "%d", g.vocab);
    snprintf(cfgv[7], 40, "%d", g.max_seq);
    snprintf(cfgv[8], 40, "%.9g", (double)g.rope_theta);
    snprintf(cfgv[9], 40, "%.9g", (double)g.norm_eps);
    snprintf(cfgv[10], 40, "%s", g.tied ? "true" : "false");
    snprintf(cfgv[11], 40, "%016llx", (unsigned long long)tok_hash);
    snprintf(run_v[0], 40, "%d", B);
    snprintf(run_v[1], 40, "%llu", (unsigned long long)n_train);
    snprintf(run_v[2], 40, "%s", o->data_rule ? o->data_rule : "uniform-windows-v1");
    snprintf(tokn, sizeof tokn, "%s", tok_name ? tok_name : "");
    const char *cfg[2 * (N_CFG_KEYS + 4) + 1];
    int nc = 0;
    for (int i = 0; i < N_CFG_KEYS; i++) cfg[nc++] = k_cfg_keys[i], cfg[nc++] = cfgv[i];
    cfg[nc++] = "tokenizer", cfg[nc++] = tokn;
    cfg[nc++] = "train.batch", cfg[nc++] = run_v[0];
    cfg[nc++] = "train.train_tokens", cfg[nc++] = run_v[1];
    cfg[nc++] = "train.data_rule", cfg[nc++] = run_v[2];
    cfg[nc] = NULL;
    if (st.code) goto out;

    r.offs = malloc(sizeof(size_t) * (size_t)B);
    TSR_ASSERT(r.offs);
    r.span = (uint32_t)(n_train - (size_t)T - 1) + 1u; /* starts 0..n-T-1 */
    tsr_ctx_init(&r.ec, (size_t)64 << 20);
    tsr_train_family f = {.name = "lm", .params = &r.p, .config = cfg, .items_per_step = (int64_t)B * T,
                          .unit = "tok", .rng_salt = 0x6C6D747261696E00ull, .ud = &r, .step = step,
                          .eval = r.es.n > 0 ? eval : NULL, .save = save};
    tsr_train_opts to = o->train;
    to.eval_first = to.eval_first && r.es.n > 0;
    tsr_train_result tr;
    st = tsr_train_run(&f, &to, &tr);
    res->steps = tr.step, res->total = tr.total;
    res->last_loss = tr.last_loss;
    res->finished = !st.code && tr.finished;
    res->interrupted = tr.interrupted;
    const double step_s = tr.step_s + tr.optim_s;
    const double fl_step = 3.0 * tsr_nn_llama_flops_fwd(&g, B, T);
    res->tokens_per_s = (double)(r.steps_run * B * T) / (step_s + 1e-9);
    res->gflops = (double)r.steps_run * fl_step / (step_s + 1e-9) * 1e-9;
    res->times.optim = tr.optim_s, res->times.eval = tr.eval_s, res->times.ckpt = tr.ckpt_s;
    res->times.total = tr.seconds;
    free(r.offs);
    tsr_ctx_free(&r.ec);
out:
    free(r.es.offs);
    tsr_nn_llama_free(&r.m);
    tsr_params_free(&r.p);
    return st;
}

/* ---------------------------------------------------------------- corpus */

/* identity of (tokenizer, file list with sizes and split): names the caches */
static uint64_t corpus_key(const tsr_corpus *c, uint64_t tok_hash) {
    uint64_t h = 0xcbf29ce484222325ull;
#define MIX(byte) (h = (h ^ (uint8_t)(byte)) * 0x100000001b3ull)
    for (int i = 0; i < 8; i++) MIX(tok_hash >> (8 * i));
    for (int f = 0; f < c->n_files; f++) {
        for (const char *s = c->rel[f]; *s; s++) MIX(*s);
        MIX(0);
        for (int i = 0; i < 8; i++) MIX((uint64_t)c->size[f] >> (8 * i));
        MIX(c->split[f]);
    }
#undef MIX
    return h;
}

tsr_status tsr_lm_train(const tsr_lm_train_opts *o, tsr_lm_train_result *res) {
    memset(res, 0, sizeof *res);
    res->eval.step = -1;
    res->eval_first.step = -1;
    if (!o->tokenizer) return tsr_errorf(TSR_ERR_ARG, "a tokenizer.json is required");
    if (!o->train.out) return tsr_errorf(TSR_ERR_ARG, "an output path is required");
    tsr_status st0 = tsr_output_check(o->train.out); /* before tokenising */
    if (st0.code) return st0;
    tsr_bpe b;
    tsr_status st = tsr_bpe_load(&b, o->tokenizer);
    if (st.code) return st;
    /* what can only fail is refused before the corpus is tokenised and its
     * caches are written: the model config, and a resume without a state */
    tsr_nn_llama_cfg g = o->cfg;
    if (g.vocab == 0) g.vocab = b.vocab_size + o->extra_vocab;
    if (g.n_kv_heads == 0) g.n_kv_heads = g.n_heads;
    if (g.vocab != b.vocab_size + o->extra_vocab)
        st = tsr_errorf(TSR_ERR_ARG, "model vocab %d differs from the tokenizer's %d + %d added", g.vocab,
                        b.vocab_size, o->extra_vocab);
    else st = tsr_nn_llama_cfg_check(&g);
    if (!st.code && o->train.resume) {
        char sp[PATH_MAX];
        tsr_train_state_path(o->train.out, sp, sizeof sp);
        if (access(sp, F_OK) != 0) st = tsr_errorf(TSR_ERR_IO, "%s: cannot open: %s", sp, strerror(errno));
    }
    if (st.code) {
        tsr_bpe_free(&b);
        return st;
    }
    int sep = tsr_bpe_special_id(&b, "<|endoftext|>");
    tsr_corpus c;
    st = tsr_corpus_list(&c, o->data_dir, ".py");
    if (st.code) {
        tsr_bpe_free(&b);
        return st;
    }
    int missing = 0;
    /* "none": no held-out files (no validation) */
    char vbuf[PATH_MAX];
    if (!o->val_list || strcmp(o->val_list, "none") != 0)
        st = tsr_corpus_split_from_list(
            &c, o->val_list ? o->val_list : tsr_find_shipped_or("data/python_val_files.txt", vbuf, sizeof vbuf),
            &missing);
    tsr_corpus_tokens tk[2];
    memset(tk, 0, sizeof tk);
    char msg[1600];
    if (!st.code) {
        uint64_t key = corpus_key(&c, b.hash);
        const char *nm[2] = {"train", "val"};
        for (int s = 0; s < 2 && !st.code; s++) {
            char base[1200], path[1300];
            size_t l = strlen(o->train.out), ls = strlen(".safetensors");
            if (l > ls && strcmp(o->train.out + l - ls, ".safetensors") == 0)
                snprintf(base, sizeof base, "%.*s", (int)(l - ls), o->train.out);
            else snprintf(base, sizeof base, "%s", o->train.out);
            snprintf(path, sizeof path, "%s.%016llx.%s.tok", base, (unsigned long long)key, nm[s]);
            double t1 = tsr_time();
            st = tsr_corpus_tokens_cached(&c, s, &b, sep, path, &tk[s]);
            if (!st.code) {
                snprintf(msg, sizeof msg, "%s split: %u files, %llu bytes, %zu tokens (%.3f bytes/token), %s in %.1f s",
                         nm[s], tk[s].n_docs, (unsigned long long)tk[s].bytes, tk[s].n,
                         tk[s].n ? (double)tk[s].bytes / (double)tk[s].n : 0.0, path, tsr_time() - t1);
                note(o, msg);
            }
        }
        if (!st.code && missing) {
            snprintf(msg, sizeof msg, "note: %d held-out files are not under %s", missing, c.root);
            note(o, msg);
        }
    }
    if (!st.code) {
        const char *slash = strrchr(o->tokenizer, '/');
        st = tsr_lm_train_tokens(o, tk[0].ids, tk[0].n, tk[1].ids, tk[1].n, &b,
                                 slash ? slash + 1 : o->tokenizer, b.hash, res);
        res->train_tokens = tk[0].n;
        res->val_tokens = tk[1].n;
    }
    tsr_corpus_tokens_free(&tk[0]);
    tsr_corpus_tokens_free(&tk[1]);
    tsr_corpus_free(&c);
    tsr_bpe_free(&b);
    return st;
}
