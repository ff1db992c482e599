/* tessera elm: `POST /v1/elm/sample` for `tessera serve` — class-
 * conditional Fashion-MNIST samples from an ELM generator (AR or masked)
 * over HTTP: the samples `tessera elm sample --class C --n N --seed S`
 * draws with the same options (image i from rng(seed, i), so they do not
 * depend on the batch), decoded by the generator's tokenizer, as PNGs in
 * base64; with "grid" the CLI's --out PNG itself, byte for byte.
 *
 *   request: {"class": 0..9 | class name | 10 or "unconditional",
 *             "n": 1..64 (1), "seed" (1), "grid" (false), and the CLI's
 *             sampling flags with their defaults and ranges:
 *             "temperature": 0..100 (1), "top_k": 0..2^31-1 (64),
 *             "top_p": (0, 1] (1), "cfg": 0..100 (3),
 *             "cfg_schedule": "constant" | "linear" ("linear"),
 *             "steps": 1..1000 (10), "choice_temp": 0..100 (4.5),
 *             "no_kv_cache" (false), "batch": 1..4096 (100)}
 *   reply:   serve_sample.h's image.sample object. */
#include "tessera/elm.h"

#include "tessera/fileio.h"
#include "tessera/serve_sample.h"

typedef struct {
    bool loaded;
    tsr_elm_model m;
    tsr_imgtok tok;
    char name[64];
    int64_t images;
} elm_srv;

static void elm_unload(void *state) {
    elm_srv *s = state;
    if (!s) return;
    if (s->loaded) {
        tsr_imgtok_free(&s->tok);
        tsr_elm_free(&s->m);
    }
    free(s);
}

/* paths[0] the generator; paths[1] its tokenizer, else the one recorded in
 * the generator, found as `elm sample` finds it */
static tsr_status elm_load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    elm_srv *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    *state = s;
    if (!paths[0]) return tsr_ok(); /* off: the route answers 503 */
    tsr_status st = tsr_elm_load(&s->m, paths[0]);
    if (st.code) return st;
    char tbuf[4096];
    const char *tp = paths[1];
    if (!tp) {
        tsr_resolve_recorded(paths[0], s->m.tokenizer, tbuf, sizeof tbuf);
        tp = tbuf;
    }
    st = tsr_imgtok_load(&s->tok, tp);
    if (st.code) {
        tsr_elm_free(&s->m);
        return st;
    }
    const bool bae = s->m.cfg.tok == TSR_IMGTOK_BAE;
    if (s->tok.cfg.kind != s->m.cfg.tok || (bae && s->tok.cfg.bits != s->m.cfg.bits) ||
        (!bae && s->tok.cfg.codebook != s->m.cfg.codebook)) {
        tsr_imgtok_free(&s->tok);
        tsr_elm_free(&s->m);
        return tsr_errorf(TSR_ERR_ARG, "%s does not produce the codes of %s (--elm-tokenizer)", tp, paths[0]);
    }
    s->loaded = true;
    tsr_serve_model_name(s->name, sizeof s->name, paths[0]);
    return tsr_ok();
}

static void elm_metrics(void *state, FILE *out) {
    elm_srv *s = state;
    fprintf(out, "# HELP tessera_elm_images_total Images sampled by POST /v1/elm/sample.\n"
                 "# TYPE tessera_elm_images_total counter\ntessera_elm_images_total %lld\n",
            (long long)__atomic_load_n(&s->images, __ATOMIC_RELAXED));
}

static void elm_sample(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    elm_srv *s = state;
    if (!s->loaded) {
        tsr_serve_fail(rp, 503, NULL, "no ELM generator is loaded (start the server with --elm FILE)");
        return;
    }
    double t0 = tsr_time();
    static const char *const fields[] = {"temperature", "top_k", "top_p", "cfg", "cfg_schedule", "steps",
                                         "choice_temp", "no_kv_cache", "batch", NULL};
    static const char *const scheds[] = {"constant", "linear"}; /* tsr_elm_cfg_sched order */
    tsr_serve_sample_req r;
    cJSON *j = tsr_serve_sample_parse(rq, fields, TSR_ELM_CLASSES, "unconditional", &r, rp);
    if (!j) return;
    /* the CLI's defaults and ranges (cmd_elm_gen.c, samp_check) */
    tsr_elm_sample_opts so = tsr_elm_default_sample_opts();
    double top_k = so.top_k, steps = so.steps, batch = so.batch;
    int sched = so.cfg_sched;
    bool no_cache = !so.kv_cache;
    bool ok = tsr_serve_json_float(j, "temperature", 0, 100, false, &so.temperature, rp) &&
              tsr_serve_json_int(j, "top_k", 0, 2147483647.0, &top_k, rp) &&
              tsr_serve_json_float(j, "top_p", 0, 1, true, &so.top_p, rp) &&
              tsr_serve_json_float(j, "cfg", 0, 100, false, &so.cfg_scale, rp) &&
              tsr_serve_json_enum(j, "cfg_schedule", scheds, 2, &sched, rp) &&
              tsr_serve_json_int(j, "steps", 1, 1000, &steps, rp) &&
              tsr_serve_json_float(j, "choice_temp", 0, 100, false, &so.choice_temp, rp) &&
              tsr_serve_json_bool(j, "no_kv_cache", &no_cache, rp) && tsr_serve_json_int(j, "batch", 1, 4096, &batch, rp);
    cJSON_Delete(j);
    if (!ok || tsr_serve_sample_late(rq, rp)) return;
    so.top_k = (int)top_k, so.steps = (int)steps, so.batch = (int)batch;
    so.cfg_sched = (tsr_elm_cfg_sched)sched, so.kv_cache = !no_cache, so.seed = r.seed;
    const int64_t n = r.n, S = s->m.cfg.n_sub;
    const bool bae = s->m.cfg.tok == TSR_IMGTOK_BAE;
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    int32_t *sub = malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS * S));
    uint8_t *bits = bae ? malloc((size_t)(n * TSR_ELM_POS * s->m.cfg.bits)) : NULL;
    int32_t *ids = bae ? NULL : malloc(sizeof(int32_t) * (size_t)(n * TSR_ELM_POS));
    float *img = malloc(sizeof(float) * (size_t)(n * 784));
    if (labels && sub && (bits || ids) && img) {
        for (int64_t i = 0; i < n; i++) labels[i] = r.klass;
        so.deadline = rq->deadline;
        tsr_elm_sample(&s->m, &so, labels, n, sub);
        if (!tsr_serve_sample_late(rq, rp)) {
            tsr_elm_join_codes(&s->m, sub, n, bits, ids);
            tsr_imgtok_decode_codes(&s->tok, bits, ids, n, img);
            tsr_serve_sample_reply(&r, s->name, img, 255, t0, rp); /* 255: the padding of `elm sample`'s grid */
            if (rp->status == 200) __atomic_add_fetch(&s->images, n, __ATOMIC_RELAXED);
        }
    } else {
        tsr_serve_fail(rp, 500, NULL, "out of memory");
    }
    if (rq->usage) snprintf(rq->usage->model, sizeof rq->usage->model, "%s", s->name);
    free(labels), free(sub), free(bits), free(ids), free(img);
}

const tsr_serve_endpoint tsr_elm_serve_endpoint = {
    .name = "elm",
    .summary = "ELM: class-conditional Fashion-MNIST samples as PNGs",
    .models = {{"elm", "FILE", "ELM generator for POST /v1/elm/sample", "models/elm_best.safetensors", NULL},
               {"elm-tokenizer", "FILE", "image tokenizer the ELM generator's codes decode with", NULL,
                "the one recorded in the --elm generator"}},
    .load = elm_load,
    .unload = elm_unload,
    .metrics = elm_metrics,
    .routes = {{"POST", "/v1/elm/sample", elm_sample}},
    /* Sampling is re-entrant (the generator and tokenizer are read-only;
     * each call has its own KV caches, contexts and rngs), but the
     * tokenizer's conv kernels set OpenBLAS's process-wide thread count
     * while they run, and each request already uses every --threads core:
     * one at a time. */
    .serialize = true,
};
