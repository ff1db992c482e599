/* tessera higen: `POST /v1/search` for `tessera serve` — Hi-Gen's real-time
 * recall over HTTP. The request names a query (or, for Hi-Gen-I2I, a
 * catalog item); the reply lists the top-k items of the constrained beam
 * search, exactly what `tessera higen search --json` prints for the same
 * model, query, k and beam. The model directory holds the tokenizer, the
 * index (item ids and summaries: no catalog is needed) and the generator.
 *
 *   request:  {"query": str | "item": str, "k": 1..100 (10), "beam": k..1000 (max(10, k))}
 *   reply:    {"query": str, "method": "higen", "ms": x, "results": [{"id", "summary", "score"}, ...]}
 */
#include "tessera/higen.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tsr_bpe bpe;
    tsr_higen_index ix;
    tsr_higen_gen gen;
    int32_t *qtok;
} higen_srv;

static void srv_free(higen_srv *s) {
    if (!s) return;
    tsr_bpe_free(&s->bpe);
    tsr_higen_index_free(&s->ix);
    tsr_higen_gen_free(&s->gen);
    free(s->qtok);
    free(s);
}

static tsr_status load(void **state, const char *const *paths, const tsr_serve_opts *o) {
    (void)o;
    *state = NULL;
    if (!paths[0]) return tsr_ok(); /* off: /v1/search answers 404 */
    higen_srv *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    char p[4096];
    snprintf(p, sizeof p, "%s/tokenizer.json", paths[0]);
    tsr_status st = tsr_bpe_load(&s->bpe, p);
    if (!st.code) {
        snprintf(p, sizeof p, "%s/higen.index.safetensors", paths[0]);
        st = tsr_higen_index_load(&s->ix, p);
    }
    if (!st.code) {
        snprintf(p, sizeof p, "%s/higen.generator.safetensors", paths[0]);
        st = tsr_higen_gen_load(&s->gen, p);
    }
    if (!st.code && (s->gen.cfg.max_depth < s->ix.trie.max_depth || s->gen.cfg.fanout < s->ix.trie.max_fanout))
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: trained for docIDs of depth %d / fanout %d, the index has %d / %d", p,
                        s->gen.cfg.max_depth, s->gen.cfg.fanout, s->ix.trie.max_depth, s->ix.trie.max_fanout);
    if (!st.code && !(s->qtok = malloc((size_t)s->gen.cfg.max_query * sizeof *s->qtok)))
        st = tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    if (st.code) {
        srv_free(s);
        return st;
    }
    *state = s;
    return tsr_ok();
}

static void unload(void *state) { srv_free(state); }

static void bad(tsr_serve_reply *rp, int status, const char *param, const char *msg) {
    rp->status = status;
    snprintf(rp->error_param, sizeof rp->error_param, "%s", param);
    snprintf(rp->error, sizeof rp->error, "%s", msg);
}

static bool blank(const char *t) {
    for (; *t; t++)
        if (*t != ' ' && *t != '\t' && *t != '\n' && *t != '\r') return false;
    return true;
}

static void on_search(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    higen_srv *s = state;
    if (!s) {
        bad(rp, 404, "", "no Hi-Gen model is loaded (start the server with --higen DIR)");
        return;
    }
    cJSON *in = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!in || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        bad(rp, 400, "", "the body must be a JSON object: {\"query\": str, \"k\": int, \"beam\": int}");
        return;
    }
    const char *query = NULL, *item = NULL;
    int k = 10, beam = -1;
    for (cJSON *f = in->child; f; f = f->next) {
        const char *n = f->string;
        char msg[200];
        if (strcmp(n, "query") == 0 || strcmp(n, "item") == 0) {
            if (!cJSON_IsString(f)) {
                snprintf(msg, sizeof msg, "'%s' must be a string", n);
                bad(rp, 400, n, msg);
                goto done;
            }
            if (n[0] == 'q') query = f->valuestring;
            else item = f->valuestring;
        } else if (strcmp(n, "k") == 0 || strcmp(n, "beam") == 0) {
            double v = f->valuedouble;
            int hi = n[0] == 'k' ? 100 : 1000;
            /* range first: (int)v of a 1e20 is undefined */
            if (!cJSON_IsNumber(f) || !(v >= 1 && v <= hi) || v != (double)(int)v) {
                snprintf(msg, sizeof msg, "'%s' must be an integer in 1..%d", n, hi);
                bad(rp, 400, n, msg);
                goto done;
            }
            if (n[0] == 'k') k = (int)v;
            else beam = (int)v;
        } else {
            char name[61];
            tsr_serve_printable(name, sizeof name, n);
            snprintf(msg, sizeof msg, "unknown field '%s' (query, item, k, beam)", name);
            bad(rp, 400, n, msg);
            goto done;
        }
    }
    if (!query == !item) {
        bad(rp, 400, "query", "give exactly one of 'query' and 'item'");
        goto done;
    }
    if (query && blank(query)) {
        bad(rp, 400, "query", "'query' is empty");
        goto done;
    }
    int32_t trigger = -1;
    char *text = NULL;
    if (item) { /* Hi-Gen-I2I, as `higen search --item`: the item's own name and summary */
        for (int32_t i = 0; i < s->ix.n_items && trigger < 0; i++)
            if (strcmp(s->ix.ids[i], item) == 0) trigger = i;
        if (trigger < 0) {
            bad(rp, 400, "item", "unknown 'item' (not a package name of the index)");
            goto done;
        }
        size_t len = strlen(s->ix.ids[trigger]) + strlen(s->ix.summaries[trigger]) + 2;
        text = malloc(len);
        if (text) snprintf(text, len, "%s\n%s", s->ix.ids[trigger], s->ix.summaries[trigger]);
    }
    int want = k + (trigger >= 0);
    if (beam < 0) beam = want > 10 ? want : 10;
    if (beam < want) {
        free(text);
        bad(rp, 400, "beam", trigger >= 0 ? "'beam' must be > k for an item" : "'beam' must be >= k");
        goto done;
    }
    int32_t *top = malloc((size_t)want * sizeof *top);
    float *sc = malloc((size_t)want * sizeof *sc);
    if (!top || !sc || (item && !text)) {
        free(top), free(sc), free(text);
        bad(rp, 500, "", "out of memory");
        goto done;
    }
    double t0 = tsr_time();
    int ql = tsr_higen_encode(&s->bpe, text ? text : query, s->qtok, s->gen.cfg.max_query);
    int n = tsr_higen_beam_search(&s->gen, &s->ix.trie, s->qtok, ql, beam, want, top, sc);
    double ms = 1e3 * (tsr_time() - t0);
    cJSON *out = cJSON_CreateObject(), *res = cJSON_CreateArray();
    cJSON_AddStringToObject(out, "query", text ? text : query);
    cJSON_AddStringToObject(out, "method", item ? "higen-i2i" : "higen");
    cJSON_AddNumberToObject(out, "ms", ms);
    for (int i = 0, m = 0; i < n && m < k; i++) {
        if (top[i] == trigger) continue;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", s->ix.ids[top[i]]);
        cJSON_AddStringToObject(r, "summary", s->ix.summaries[top[i]]);
        cJSON_AddNumberToObject(r, "score", (double)sc[i]);
        cJSON_AddItemToArray(res, r);
        m++;
    }
    cJSON_AddItemToObject(out, "results", res);
    rp->body = cJSON_PrintUnformatted(out);
    rp->status = rp->body ? 200 : 500;
    if (!rp->body) snprintf(rp->error, sizeof rp->error, "out of memory");
    cJSON_Delete(out);
    free(top), free(sc), free(text);
    if (rq->usage) snprintf(rq->usage->model, sizeof rq->usage->model, "higen");
done:
    cJSON_Delete(in);
}

const tsr_serve_endpoint tsr_higen_serve_endpoint = {
    .name = "search",
    .summary = "Hi-Gen generative retrieval: query (or item) -> top-k catalog items",
    .models = {{"higen", "DIR", "Hi-Gen model directory (tokenizer, higen index and generator)", "models/higen-debian", NULL}},
    .load = load,
    .unload = unload,
    .routes = {{"POST", "/v1/search", on_search}},
    .serialize = true, /* one query buffer per model */
};
