/* tessera bigr: `POST /v1/bigr/sample` for `tessera serve` — class-
 * conditional Fashion-MNIST samples from BiGR over HTTP: the samples
 * `tessera bigr sample --class C --n N --seed S` draws with the same
 * options (one tsr_bigr_sample over the n images, seeded as the CLI seeds
 * it, decoded by the BAE), as PNGs in base64; with "grid" the CLI's PNG
 * itself, byte for byte.
 *
 *   request: {"class": 0..9 | class name, "n": 1..64 (1), "seed" (1),
 *             "grid" (false), and the CLI's sampling flags with their
 *             defaults and ranges: "iters": 1..49 (10), "steps": 1..100000
 *             (25; the model's T at most, as the CLI), "cfg": 0..100 (2.5),
 *             "gumbel": 0..100 (0.05), "temp": (0, 100] (1),
 *             "order": "entropy" | "random" | "raster", "deterministic" (false)}
 *   reply:   serve_sample.h's image.sample object. */
#include "tessera/bigr.h"

#include "tessera/imgtok.h"
#include "tessera/serve_sample.h"

typedef struct {
    bool loaded;
    tsr_bigr m;
    tsr_imgtok tok;
    char name[64];
    int64_t images;
} bigr_srv;

static void bigr_unload(void *state) {
    bigr_srv *s = state;
    if (!s) return;
    if (s->loaded) {
        tsr_imgtok_free(&s->tok);
        tsr_bigr_free(&s->m);
    }
    free(s);
}

/* paths[0] the generator, paths[1] its BAE tokenizer (both as `bigr sample`) */
static tsr_status bigr_load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    bigr_srv *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    *state = s;
    if (!paths[0]) return tsr_ok(); /* off: the route answers 503 */
    if (!paths[1]) return tsr_errorf(TSR_ERR_ARG, "--bigr %s needs its BAE tokenizer (--bigr-tokenizer FILE)", paths[0]);
    tsr_status st = tsr_bigr_load(&s->m, paths[0]);
    if (st.code) return st;
    st = tsr_imgtok_load(&s->tok, paths[1]);
    if (st.code) {
        tsr_bigr_free(&s->m);
        return st;
    }
    if (s->tok.cfg.kind != TSR_IMGTOK_BAE || s->tok.cfg.bits != s->m.cfg.bits)
        st = tsr_errorf(TSR_ERR_ARG, "%s: the tokenizer is not a %d-bit BAE (--bigr-tokenizer)", paths[1], s->m.cfg.bits);
    else if (s->m.cfg.classes < 1 || s->m.cfg.classes > 10)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: %d classes, not Fashion-MNIST's 10", paths[0], s->m.cfg.classes);
    if (st.code) {
        tsr_imgtok_free(&s->tok);
        tsr_bigr_free(&s->m);
        return st;
    }
    s->loaded = true;
    tsr_serve_model_name(s->name, sizeof s->name, paths[0]);
    return tsr_ok();
}

static void bigr_metrics(void *state, FILE *out) {
    bigr_srv *s = state;
    fprintf(out, "# HELP tessera_bigr_images_total Images sampled by POST /v1/bigr/sample.\n"
                 "# TYPE tessera_bigr_images_total counter\ntessera_bigr_images_total %lld\n",
            (long long)__atomic_load_n(&s->images, __ATOMIC_RELAXED));
}

static void bigr_sample(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    bigr_srv *s = state;
    if (!s->loaded) {
        tsr_serve_fail(rp, 503, NULL, "no BiGR model is loaded (start the server with --bigr FILE)");
        return;
    }
    double t0 = tsr_time();
    static const char *const fields[] = {"iters", "steps", "cfg", "gumbel", "temp", "order", "deterministic", NULL};
    const char *orders[TSR_BIGR_ORDER_COUNT];
    for (int i = 0; i < TSR_BIGR_ORDER_COUNT; i++) orders[i] = tsr_bigr_order_name((tsr_bigr_order)i);
    tsr_serve_sample_req r;
    cJSON *j = tsr_serve_sample_parse(rq, fields, s->m.cfg.classes - 1, NULL, &r, rp);
    if (!j) return;
    /* the CLI's defaults and ranges (cmd_bigr.c, gen_check) */
    tsr_bigr_sample_opts so = tsr_bigr_default_sample_opts();
    double iters = so.iters, steps = so.steps;
    int order = so.order;
    bool ok = tsr_serve_json_int(j, "iters", 1, 49, &iters, rp) && tsr_serve_json_int(j, "steps", 1, 100000, &steps, rp) &&
              tsr_serve_json_float(j, "cfg", 0, 100, false, &so.cfg, rp) &&
              tsr_serve_json_float(j, "gumbel", 0, 100, false, &so.gumbel, rp) &&
              tsr_serve_json_float(j, "temp", 0, 100, true, &so.temp, rp) &&
              tsr_serve_json_enum(j, "order", orders, TSR_BIGR_ORDER_COUNT, &order, rp) &&
              tsr_serve_json_bool(j, "deterministic", &so.deterministic, rp);
    cJSON_Delete(j);
    if (!ok || tsr_serve_sample_late(rq, rp)) return;
    so.iters = (int)iters, so.steps = (int)steps, so.order = (tsr_bigr_order)order;
    const int B = r.n, K = s->m.cfg.bits;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)B);
    uint8_t *bits = malloc((size_t)B * TSR_BIGR_L * K);
    float *img = malloc(sizeof(float) * (size_t)B * 784);
    if (lab && bits && img) {
        for (int i = 0; i < B; i++) lab[i] = r.klass;
        tsr_rng rng;
        tsr_rng_seed(&rng, r.seed);
        so.deadline = rq->deadline;
        tsr_bigr_sample(&s->m, bits, NULL, lab, NULL, 0.0f, B, &so, &rng);
        if (!tsr_serve_sample_late(rq, rp)) {
            tsr_imgtok_decode_codes(&s->tok, bits, NULL, B, img);
            tsr_serve_sample_reply(&r, s->name, img, 128, t0, rp); /* 128: the padding of `bigr sample`'s grid */
            if (rp->status == 200) __atomic_add_fetch(&s->images, B, __ATOMIC_RELAXED);
        }
    } else {
        tsr_serve_fail(rp, 500, NULL, "out of memory");
    }
    if (rq->usage) snprintf(rq->usage->model, sizeof rq->usage->model, "%s", s->name);
    free(lab), free(bits), free(img);
}

const tsr_serve_endpoint tsr_bigr_serve_endpoint = {
    .name = "bigr",
    .summary = "BiGR: class-conditional Fashion-MNIST samples as PNGs",
    .models = {{"bigr", "FILE", "BiGR generator for POST /v1/bigr/sample", "models/bigr_fmnist.safetensors", NULL},
               {"bigr-tokenizer", "FILE", "BAE tokenizer the BiGR generator's bits decode with", "models/fmnist_bae.safetensors", NULL}},
    .load = bigr_load,
    .unload = bigr_unload,
    .metrics = bigr_metrics,
    .routes = {{"POST", "/v1/bigr/sample", bigr_sample}},
    /* Sampling is re-entrant (the model and tokenizer are read-only; each
     * call has its own contexts and rng), but the tokenizer's conv kernels
     * set OpenBLAS's process-wide thread count while they run, and each
     * request already uses every --threads core: one at a time. */
    .serialize = true,
};
