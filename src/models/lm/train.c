/* tessera lm: training the Llama-style decoder (tsr_nn_llama) on a
 * BPE-tokenised code corpus, for `tessera lm train`. Random windows drawn
 * with the trainer's rng, AdamW (norms undecayed) with global-norm
 * clipping and warmup + cosine, a fixed validation window set reported in
 * nats/token and bits/byte, periodic atomic checkpoints (F32 params +
 * training state) with exact resume, and a BF16 copy with the config in
 * its metadata at the end. Conventions in include/tessera/lm_train.h. */
#include "tessera/lm_train.h"

#include "tessera/corpus.h"
#include "tessera/ops.h"
#include "tessera/optim.h"

#include <math.h>
#include <string.h>

tsr_lm_train_opts tsr_lm_train_default_opts(void) {
    tsr_lm_train_opts o;
    memset(&o, 0, sizeof o);
    o.data_dir = "/usr/lib/python3.11";
    o.out = "runs/lm.safetensors";
    o.cfg = (tsr_nn_llama_cfg){.dim = 384, .n_layers = 6, .n_heads = 6, .n_kv_heads = 0,
                               .hidden_dim = 1024, .vocab = 0, .max_seq = 512,
                               .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied = true};
    o.batch = 8;
    o.steps = 2000;
    o.warmup = 100;
    o.lr = 1e-3f;
    o.min_lr = 1e-4f;
    o.weight_decay = 0.1f;
    o.clip = 1.0f;
    o.eval_every = 250;
    o.eval_tokens = 32768;
    o.ckpt_every = 250;
    o.log_every = 10;
    o.seed = 1;
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

#define N_CFG_KEYS 12
#define N_RUN_KEYS 10
static const char *const k_cfg_keys[N_CFG_KEYS] = {
    "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "intermediate_size", "vocab_size", "max_position_embeddings",
    "rope_theta", "rms_norm_eps", "tie_word_embeddings", "tokenizer_hash"};
/* everything that changes the trajectory: a resume under other settings
 * would silently diverge, so it is refused */
static const char *const k_run_keys[N_RUN_KEYS] = {
    "train.batch", "train.steps", "train.lr", "train.min_lr", "train.weight_decay",
    "train.clip", "train.warmup", "train.seed", "train.train_tokens", "train.data_rule"};

typedef struct {
    char cfg[N_CFG_KEYS][40];
    char run[N_RUN_KEYS][40];
    char tok_name[256];
} run_meta;

static void meta_fill(run_meta *rm, const tsr_lm_train_opts *o, const tsr_nn_llama_cfg *g,
                      size_t n_train, const char *tok_name, uint64_t tok_hash) {
    snprintf(rm->cfg[0], 40, "llama");
    snprintf(rm->cfg[1], 40, "%d", g->dim);
    snprintf(rm->cfg[2], 40, "%d", g->n_layers);
    snprintf(rm->cfg[3], 40, "%d", g->n_heads);
    snprintf(rm->cfg[4], 40, "%d", g->n_kv_heads);
    snprintf(rm->cfg[5], 40, "%d", g->hidden_dim);
    snprintf(rm->cfg[6], 40, "%d", g->vocab);
    snprintf(rm->cfg[7], 40, "%d", g->max_seq);
    snprintf(rm->cfg[8], 40, "%.9g", (double)g->rope_theta);
    snprintf(rm->cfg[9], 40, "%.9g", (double)g->norm_eps);
    snprintf(rm->cfg[10], 40, "%s", g->tied ? "true" : "false");
    snprintf(rm->cfg[11], 40, "%016llx", (unsigned long long)tok_hash);
    snprintf(rm->run[0], 40, "%d", o->batch);
    snprintf(rm->run[1], 40, "%lld", (long long)o->steps);
    snprintf(rm->run[2], 40, "%.9g", (double)o->lr);
    snprintf(rm->run[3], 40, "%.9g", (double)o->min_lr);
    snprintf(rm->run[4], 40, "%.9g", (double)o->weight_decay);
    snprintf(rm->run[5], 40, "%.9g", (double)o->clip);
    snprintf(rm->run[6], 40, "%lld", (long long)o->warmup);
    snprintf(rm->run[7], 40, "%llu", (unsigned long long)o->seed);
    snprintf(rm->run[8], 40, "%llu", (unsigned long long)n_train);
    snprintf(rm->run[9], 40, "%s", o->data_rule ? o->data_rule : "uniform-windows-v1");
    snprintf(rm->tok_name, sizeof rm->tok_name, "%s", tok_name ? tok_name : "");
}

static int meta_kv(const run_meta *rm, const char **kv, const char *step, const char *val_loss,
                   const char *val_bpb) {
    int n = 0;
    for (int i = 0; i < N_CFG_KEYS; i++) kv[n++] = k_cfg_keys[i], kv[n++] = rm->cfg[i];
    kv[n++] = "tokenizer", kv[n++] = rm->tok_name;
    for (int i = 0; i < N_RUN_KEYS; i++) kv[n++] = k_run_keys[i], kv[n++] = rm->run[i];
    kv[n++] = "train.step", kv[n++] = step;
    if (val_loss) kv[n++] = "val_loss", kv[n++] = val_loss;
    if (val_bpb) kv[n++] = "val_bpb", kv[n++] = val_bpb;
    kv[n] = NULL;
    return n;
}

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

static tsr_status check_resume_meta(const char *path, const run_meta *rm, bool reschedule,
                                    int64_t *ckpt_step) {
    tsr_st_file f;
    tsr_status st = tsr_st_read(path, &f);
    if (st.code) return st;
    for (int i = 0; i < N_CFG_KEYS + N_RUN_KEYS && !st.code; i++) {
        const char *k = i < N_CFG_KEYS ? k_cfg_keys[i] : k_run_keys[i - N_CFG_KEYS];
        const char *want = i < N_CFG_KEYS ? rm->cfg[i] : rm->run[i - N_CFG_KEYS];
        const char *v = tsr_st_meta(&f, k);
        if (reschedule && strcmp(k, "train.steps") == 0) continue; /* asked for explicitly */
        if (!v || strcmp(v, want) != 0)
            st = tsr_errorf(TSR_ERR_ARG, "%s: cannot resume: it was trained with %s=%s, this run has %s",
                            path, k, v ? v : "(missing)", want);
    }
    long long s = -1;
    parse_int(tsr_st_meta(&f, "train.step"), 0, INT64_MAX, &s);
    *ckpt_step = s;
    tsr_st_free(&f);
    return st;
}

/* ---------------------------------------------------------------- the loop */

typedef struct {
    const tsr_lm_train_opts *o;
    const run_meta *rm;
    const char *path, *state_path;
} saver;

static tsr_status save_ckpt(const saver *sv, const tsr_params *p, const tsr_adamw *opt,
                            const tsr_train_meta *tm) {
    const char *kv[2 * (N_CFG_KEYS + N_RUN_KEYS + 4) + 1];
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)tm->step);
    meta_kv(sv->rm, kv, step, NULL, NULL);
    /* state first: a kill between the two writes leaves older weights with
     * newer moments, which resume detects by the step counts */
    tsr_status st = tsr_trainstate_save(sv->state_path, opt, tm);
    if (st.code) return st;
    st = tsr_params_save(p, sv->path, TSR_ST_F32, kv);
    if (!st.code && sv->o->on_note) {
        char msg[1400];
        snprintf(msg, sizeof msg, "checkpoint at step %lld: %s", (long long)tm->step, sv->path);
        sv->o->on_note(msg, sv->o->ud);
    }
    return st;
}

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

tsr_status tsr_lm_train_tokens(const tsr_lm_train_opts *o, const int32_t *train, size_t n_train,
                               const int32_t *val, size_t n_val, const tsr_bpe *bpe,
                               const char *tok_name, uint64_t tok_hash, tsr_lm_train_result *res) {
    memset(res, 0, sizeof *res);
    res->eval.step = -1;
    res->eval_first.step = -1;
    const int T = o->cfg.max_seq, B = o->batch;
    if (B < 1 || o->steps < 1 || !(o->lr > 0) || o->min_lr < 0 || o->warmup < 0 || o->clip < 0 ||
        o->weight_decay < 0 || o->eval_tokens < 0 || !o->out || T < 1)
        return tsr_errorf(TSR_ERR_ARG, "training options out of range");
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

    run_meta rm;
    meta_fill(&rm, o, &g, n_train, tok_name, tok_hash);
    char state_path[1200];
    tsr_lm_sibling_path(o->out, "state", state_path, sizeof state_path);
    tsr_lm_sibling_path(o->out, "bf16", res->bf16_path, sizeof res->bf16_path);
    saver sv = {o, &rm, o->out, state_path};

    tsr_params p;
    tsr_params_init(&p);
    tsr_nn_llama m;
    tsr_status st = tsr_nn_llama_init(&m, &p, &g);
    if (st.code) {
        tsr_params_free(&p);
        return st;
    }
    res->n_params = tsr_params_count(&p);
    tsr_adamw opt;
    tsr_adamw_init(&opt, &p, (tsr_adamw_cfg){o->lr, 0.9f, 0.95f, 1e-8f, o->weight_decay});
    tsr_train_meta tm;
    memset(&tm, 0, sizeof tm);
    tsr_rng_seed(&tm.rng, o->seed ^ 0x6C6D747261696E00ull);
    if (o->resume) {
        int64_t ckpt_step = -1;
        st = check_resume_meta(o->out, &rm, o->reschedule, &ckpt_step);
        if (!st.code) st = tsr_params_load(&p, o->out, false);
        if (!st.code) st = tsr_trainstate_resume(state_path, o->out, ckpt_step, o->steps, -1, &opt, &tm);
    } else if (o->init_from) {
        st = tsr_params_load_grow(&p, o->init_from, NULL);
    } else {
        tsr_rng wr;
        tsr_rng_seed(&wr, o->seed);
        tsr_nn_llama_init_weights(&m, &wr);
    }
    if (st.code) {
        tsr_adamw_free(&opt);
        tsr_nn_llama_free(&m);
        tsr_params_free(&p);
        return st;
    }

    /* the fixed validation windows */
    eval_set es = {0};
    const int Te = o->eval_context > 0 && o->eval_context < T ? o->eval_context : T;
    if (n_val >= (size_t)Te + 2 && o->eval_tokens > 0) {
        int64_t max_n = (int64_t)(n_val - 1) / Te; /* non-overlapping when it fits */
        es.n = o->eval_tokens / Te;
        if (es.n < 1) es.n = 1;
        if (es.n > max_n) es.n = max_n;
        es.offs = malloc(sizeof(size_t) * (size_t)es.n);
        TSR_ASSERT(es.offs);
        for (int64_t i = 0; i < es.n; i++) {
            es.offs[i] = tsr_lm_eval_offset(n_val, Te, i, es.n);
            es.bytes += tsr_lm_token_bytes(bpe, val + es.offs[i] + 1, (size_t)Te);
        }
        es.tokens = es.n * Te;
    }

    tsr_ctx c;
    tsr_ctx_init(&c, (size_t)64 << 20);
    const tsr_lr_sched sched = {TSR_LR_COSINE, o->lr, o->min_lr, o->warmup, o->steps};
    size_t *offs = malloc(sizeof(size_t) * (size_t)B);
    TSR_ASSERT(offs);
    const uint32_t span = (uint32_t)(n_train - (size_t)T - 1) + 1u; /* starts 0..n-T-1 */
    const double fl_step = 3.0 * tsr_nn_llama_flops_fwd(&g, B, T);
    tsr_lm_train_times *tt = &res->times;
    const double t0 = tsr_time();
    double t_log = t0, t_ckpt = t0, step_s = 0;
    int64_t step0 = tm.step, log_step = tm.step;
    float loss_v = 0, gn = 0;
    bool stopped = false;
    if (o->eval_first && !o->resume && es.n > 0) {
        tsr_lm_train_eval e0;
        double t1 = tsr_time();
        eval_run(&c, &m, val, &es, B, Te, &e0);
        e0.step = 0;
        tt->eval += tsr_time() - t1;
        res->eval_first = e0;
        if (o->on_eval) o->on_eval(&e0, o->ud);
    }
    while (tm.step < o->steps) {
        if (o->stop_flag && *o->stop_flag) {
            stopped = true;
            st = save_ckpt(&sv, &p, &opt, &tm);
            break;
        }
        double ta = tsr_time();
        tsr_ctx_reset(&c);
        c.grad_enabled = true;
        c.training = true;
        tsr_tensor *x = tsr_new(&c, TSR_I32, TSR_DIMS(B, T));
        tsr_tensor *y = tsr_new(&c, TSR_I32, TSR_DIMS(B, T));
        if (o->make_batch) {
            o->make_batch(o->batch_ud, tsr_i32(x), tsr_i32(y), B, T, train, n_train, &tm.rng);
        } else {
            for (int b = 0; b < B; b++) offs[b] = tsr_rng_below(&tm.rng, span);
            fill_windows(tsr_i32(x), tsr_i32(y), train, offs, B, T);
        }
        double tb = tsr_time();
        tsr_tensor *loss = tsr_nn_llama_loss(&c, &m, x, y, -100, NULL, NULL);
        loss_v = tsr_f32(loss)[0];
        double tc = tsr_time();
        tsr_params_zero_grad(&p);
        tsr_backward(&c, loss);
        double td = tsr_time();
        gn = o->clip > 0 ? tsr_clip_grad_norm(&p, o->clip) : 0.0f;
        float lr = tsr_lr_at(&sched, tm.step);
        tsr_adamw_step(&opt, lr);
        double te = tsr_time();
        tt->data += tb - ta, tt->forward += tc - tb, tt->backward += td - tc, tt->optim += te - td;
        step_s += te - ta;
        tm.step++;
        if (!isfinite(loss_v)) {
            st = tsr_errorf(TSR_ERR_ARG, "loss is %g at step %lld; lower --lr or raise --warmup",
                            (double)loss_v, (long long)tm.step);
            break;
        }
        const bool last = tm.step == o->steps;
        const bool stop = o->stop_after > 0 && tm.step >= o->stop_after;
        if (o->progress && o->log_every > 0 && (tm.step % o->log_every == 0 || last || stop)) {
            double now = tsr_time();
            double tps = (double)((tm.step - log_step) * B * T) / (now - t_log + 1e-9);
            double sps = (double)(tm.step - step0) / (now - t0 + 1e-9);
            tsr_lm_train_progress pr = {tm.step, o->steps, loss_v, lr, gn, tps,
                                        (double)(o->steps - tm.step) / (sps + 1e-12)};
            o->progress(&pr, o->ud);
            t_log = now, log_step = tm.step;
        }
        if (es.n > 0 && (last || (o->eval_every > 0 && tm.step % o->eval_every == 0))) {
            double t1 = tsr_time();
            eval_run(&c, &m, val, &es, B, Te, &res->eval);
            res->eval.step = tm.step;
            tt->eval += tsr_time() - t1;
            if (o->on_eval) o->on_eval(&res->eval, o->ud);
        }
        if (last) break; /* the final checkpoint carries the evaluation */
        double now = tsr_time();
        if ((o->ckpt_every > 0 && tm.step % o->ckpt_every == 0) || stop ||
            (o->ckpt_seconds > 0 && now - t_ckpt >= o->ckpt_seconds)) {
            st = save_ckpt(&sv, &p, &opt, &tm);
            tt->ckpt += tsr_time() - now;
            t_ckpt = tsr_time();
            if (st.code) break;
        }
        if (stop) {
            stopped = true;
            break;
        }
    }
    res->steps = tm.step;
    res->last_loss = loss_v;
    res->finished = !st.code && !stopped && tm.step == o->steps;
    res->tokens_per_s = (double)((tm.step - step0) * B * T) / (step_s + 1e-9);
    res->gflops = (double)(tm.step - step0) * fl_step / (step_s + 1e-9) * 1e-9;
    if (res->finished && es.n > 0 && res->eval.step != tm.step) {
        /* resumed a run that had already finished (e.g. stopped while it
         * wrote its final files): evaluate again so the rewrite is the same */
        eval_run(&c, &m, val, &es, B, Te, &res->eval);
        res->eval.step = tm.step;
    }
    if (res->finished) {
        double t1 = tsr_time();
        const char *kv[2 * (N_CFG_KEYS + N_RUN_KEYS + 4) + 1];
        char step[32], vl[40], vb[40];
        snprintf(step, sizeof step, "%lld", (long long)tm.step);
        snprintf(vl, sizeof vl, "%.6f", res->eval.val_loss);
        snprintf(vb, sizeof vb, "%.6f", res->eval.val_bpb);
        bool ev = res->eval.step == tm.step;
        meta_kv(&rm, kv, step, ev ? vl : NULL, ev ? vb : NULL);
        st = tsr_trainstate_save(state_path, &opt, &tm);
        if (!st.code) st = tsr_params_save(&p, o->out, TSR_ST_F32, kv);
        if (!st.code) st = tsr_params_save(&p, res->bf16_path, TSR_ST_BF16, kv);
        tt->ckpt += tsr_time() - t1;
        if (!st.code && o->on_note) {
            char msg[2600];
            snprintf(msg, sizeof msg, "saved %s (F32) and %s (BF16)", o->out, res->bf16_path);
            o->on_note(msg, o->ud);
        }
    }
    tt->total = tsr_time() - t0;
    free(offs);
    free(es.offs);
    tsr_ctx_free(&c);
    tsr_adamw_free(&opt);
    tsr_nn_llama_free(&m);
    tsr_params_free(&p);
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

static void note(const tsr_lm_train_opts *o, const char *msg) {
    if (o->on_note) o->on_note(msg, o->ud);
}

tsr_status tsr_lm_train(const tsr_lm_train_opts *o, tsr_lm_train_result *res) {
    memset(res, 0, sizeof *res);
    res->eval.step = -1;
    res->eval_first.step = -1;
    if (!o->tokenizer) return tsr_errorf(TSR_ERR_ARG, "a tokenizer.json is required");
    if (!o->out) return tsr_errorf(TSR_ERR_ARG, "an output path is required");
    tsr_bpe b;
    tsr_status st = tsr_bpe_load(&b, o->tokenizer);
    if (st.code) return st;
    int sep = tsr_bpe_special_id(&b, "<|endoftext|>");
    tsr_corpus c;
    st = tsr_corpus_list(&c, o->data_dir, ".py");
    if (st.code) {
        tsr_bpe_free(&b);
        return st;
    }
    int missing = 0;
    st = tsr_corpus_split_from_list(&c, o->val_list ? o->val_list : "data/python_val_files.txt",
                                    &missing);
    tsr_corpus_tokens tk[2];
    memset(tk, 0, sizeof tk);
    char msg[1600];
    if (!st.code) {
        uint64_t key = corpus_key(&c, b.hash);
        const char *nm[2] = {"train", "val"};
        for (int s = 0; s < 2 && !st.code; s++) {
            char base[1200], path[1300];
            size_t l = strlen(o->out), ls = strlen(".safetensors");
            if (l > ls && strcmp(o->out + l - ls, ".safetensors") == 0)
                snprintf(base, sizeof base, "%.*s", (int)(l - ls), o->out);
            else snprintf(base, sizeof base, "%s", o->out);
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
