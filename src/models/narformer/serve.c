/* narformer: the `tessera serve` endpoint POST /v1/latency — an ONNX file
 * in (the request body, raw bytes), its predicted latency on tessera's CPU
 * kernels out, with the figures predict prints:
 *   {"latency_ms", "platform", "n_tokens", "batch", "gflops", "mparams", "gmem"}
 * The model is the shipped latency predictor (--narformer-latency FILE). */
#include "tessera/narformer.h"
#include "tessera/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tsr_status load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    *state = NULL;
    if (!paths[0]) return tsr_ok();
    tsr_nf_lat_pred *p = calloc(1, sizeof *p);
    TSR_ASSERT(p);
    tsr_status st = tsr_nf_lat_load(p, paths[0]);
    if (st.code) {
        free(p);
        return st;
    }
    *state = p;
    return tsr_ok();
}

static void unload(void *state) {
    if (!state) return;
    tsr_nf_lat_pred_free(state);
    free(state);
}

static void bad(tsr_serve_reply *rp, int status, const char *msg) {
    rp->status = status;
    snprintf(rp->error, sizeof rp->error, "%s", msg);
}

static void latency(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    const tsr_nf_lat_pred *p = state;
    if (!p) return bad(rp, 404, "no latency predictor loaded (--narformer-latency FILE)");
    if (rq->body_len == 0) return bad(rp, 400, "send the ONNX model file as the request body");
    if (rq->body[0] == '{' || rq->body[0] == '[')
        return bad(rp, 400, "the body must be an ONNX file's bytes (Content-Type: application/octet-stream), not JSON");
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_parse(&m, (const uint8_t *)rq->body, rq->body_len);
    if (st.code) return bad(rp, 400, st.msg);
    tsr_nf_graph g;
    st = tsr_nf_graph_from_onnx(&g, &m, 0);
    tsr_onnx_free(&m);
    if (st.code) return bad(rp, 400, st.msg);
    float ms = tsr_nf_lat_predict_graph(p, &g, NULL);
    char *out = malloc(512);
    TSR_ASSERT(out);
    snprintf(out, 512,
             "{\"latency_ms\": %.4f, \"platform\": \"%s\", \"n_tokens\": %d, \"batch\": %d, \"gflops\": %.6f, "
             "\"mparams\": %.4f, \"gmem\": %.6f}",
             ms, tsr_nf_platform_name(p->platform), g.n, g.batch, g.flops / 1e9, g.params / 1e6, g.mem / 1e9);
    tsr_nf_graph_free(&g);
    rp->status = 200;
    rp->body = out;
}

const tsr_serve_endpoint tsr_narformer_serve_endpoint = {
    .name = "latency",
    .summary = "NAR-Former V2: predicted latency (ms) of an ONNX network on tessera's CPU kernels",
    .models = {{"narformer-latency", "FILE", "narformer latency predictor for POST /v1/latency",
                "models/narformer-latency-cpu-1t.safetensors", NULL}},
    .load = load,
    .unload = unload,
    .routes = {{"POST", "/v1/latency", latency}},
    .serialize = false, /* the predictor is read-only; each request has its own context */
};
