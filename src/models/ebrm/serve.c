/* tessera ebrm: the `POST /v1/relevance` endpoint of `tessera serve` —
 * a query and candidate packages in, p(relevant) per candidate out, with
 * one QE cache shared by every request (so repeated queries and entities
 * shared between candidates cost no QE forward). Registered in
 * src/cli/cmd_serve.c's endpoint table; off unless both the model and the
 * catalog whose packages it scores are there. */
#include "tessera/ebrm.h"
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDIDATES 1000

typedef struct {
    tsr_catalog cat;
    tsr_ebrm_entities E;
    tsr_ebrm_model m;
    tsr_ebrm_cache cache; /* the handler's alone (the endpoint is serialised) */
    tsr_bm25 ix[2];       /* a fused model's lexical match: every field / without debtags */
    bool have_ix[2];
    int64_t hits, misses; /* the cache's counters as of the last request, for /metrics (atomic) */
} relevance_state;

/* a fused model's BM25 index over the catalog's text: x = 0 every field (the
 * constructions that hide none, and request files), 1 without debtags (the
 * constructions whose labels come from them); the CLI's first-stage k1, b */
static void build_index(relevance_state *s, int x) {
    if (s->have_ix[x]) return;
    tsr_bm25_build_catalog(&s->ix[x], &s->cat, x ? TSR_F_ALL & ~TSR_F_TAGS : TSR_F_ALL, 1.2f, 0.4f);
    s->have_ix[x] = true;
}

static tsr_status load(void **state, const char *const *paths, const struct tsr_serve_opts *opts) {
    (void)opts;
    *state = NULL;
    if (!paths[0] || !paths[1]) return tsr_ok(); /* off: the route answers 503 */
    relevance_state *s = calloc(1, sizeof *s);
    TSR_ASSERT(s);
    char tok[4096];
    const char *slash = strrchr(paths[0], '/');
    if (slash) snprintf(tok, sizeof tok, "%.*s/tokenizer.json", (int)(slash - paths[0]), paths[0]);
    else snprintf(tok, sizeof tok, "tokenizer.json");
    tsr_status st = tsr_ebrm_model_load(&s->m, paths[0], tok);
    if (st.code == TSR_OK && s->m.kind != TSR_EBRM_KIND_EBRM) {
        tsr_ebrm_model_free(&s->m);
        st = tsr_errorf(TSR_ERR_FORMAT, "--ebrm %s is not an EBRM model", paths[0]);
    }
    if (st.code != TSR_OK) {
        free(s);
        return st;
    }
    st = tsr_catalog_load_debian(&s->cat, paths[1]);
    if (st.code == TSR_OK) {
        st = tsr_ebrm_entities_build(&s->E, &s->cat);
        if (st.code != TSR_OK) tsr_catalog_free(&s->cat);
    }
    if (st.code != TSR_OK) {
        tsr_ebrm_model_free(&s->m);
        free(s);
        return tsr_errorf(st.code, "--ebrm-catalog: %s", st.msg);
    }
    tsr_ebrm_model_prepare(&s->m, &s->E);
    tsr_ebrm_cache_init(&s->cache, 1 << 18);
    if (s->m.agg == TSR_EBRM_AGG_FUSE) build_index(s, 0); /* now, not in the first request */
    *state = s;
    return tsr_ok();
}

static void unload(void *state) {
    relevance_state *s = state;
    if (!s) return;
    tsr_ebrm_cache_free(&s->cache);
    for (int i = 0; i < 2; i++)
        if (s->have_ix[i]) tsr_bm25_free(&s->ix[i]);
    tsr_ebrm_model_free(&s->m);
    tsr_ebrm_entities_free(&s->E);
    tsr_catalog_free(&s->cat);
    free(s);
}

static void bad_request(tsr_serve_reply *rp, const char *param, const char *msg) {
    rp->status = 400;
    snprintf(rp->error, sizeof rp->error, "%s", msg);
    snprintf(rp->error_param, sizeof rp->error_param, "%s", param);
}

/* {"query": str, "candidates": [package, ...], "construction": optional}
 * -> {"query", "scores": [{"id", "score"}], "cache": {"hits", "misses", "hit_rate"}} */
static void relevance(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    relevance_state *s = state;
    if (!s) {
        rp->status = 503;
        snprintf(rp->error, sizeof rp->error,
                 "relevance is off: start the server with --ebrm FILE and --ebrm-catalog DIR (the Debian catalog)");
        return;
    }
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        bad_request(rp, "", "the body must be a JSON object {\"query\": str, \"candidates\": [package names]}");
        return;
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "query");
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
    const cJSON *cons_j = cJSON_GetObjectItemCaseSensitive(root, "construction");
    int cons = TSR_QC_FILE;
    /* as `ebrm score`: a blank query is refused (it would score every
     * item on its entities alone), and so is a field this route ignores */
    bool blank = true;
    for (const char *t = cJSON_IsString(q) ? q->valuestring : ""; *t && blank; t++) blank = isspace((unsigned char)*t);
    const cJSON *unknown = NULL;
    for (const cJSON *e = root->child; e && !unknown; e = e->next)
        if (strcmp(e->string, "query") && strcmp(e->string, "candidates") && strcmp(e->string, "construction")) unknown = e;
    if (unknown) {
        char msg[160], name[61];
        tsr_serve_printable(name, sizeof name, unknown->string);
        snprintf(msg, sizeof msg, "unknown field '%s' (fields: query, candidates, construction)", name);
        bad_request(rp, name, msg);
    } else if (!cJSON_IsString(q) || blank) {
        bad_request(rp, "query", "'query' must be a non-empty string");
    } else if (!cJSON_IsArray(cands) || cJSON_GetArraySize(cands) < 1 || cJSON_GetArraySize(cands) > MAX_CANDIDATES) {
        bad_request(rp, "candidates", "'candidates' must be an array of 1 to 1000 package names");
    } else if (cons_j && (!cJSON_IsString(cons_j) || (cons = tsr_qc_from_name(cons_j->valuestring)) < 0 ||
                          cons == TSR_QC_MOVIELENS || tsr_qc_is_i2i(cons))) {
        bad_request(rp, "construction", "'construction' must be appstream, virtual, debtags, known-item or file");
    }
    if (rp->status) {
        cJSON_Delete(root);
        return;
    }
    int n = cJSON_GetArraySize(cands);
    int32_t *items = malloc((size_t)n * sizeof *items);
    float *p = malloc((size_t)n * sizeof *p);
    TSR_ASSERT(items && p);
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cands) {
        int32_t it = cJSON_IsString(c) ? tsr_catalog_find(&s->cat, c->valuestring) : -1;
        if (it < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "candidates[%d] is not a package of the catalog", k);
            bad_request(rp, "candidates", msg);
            break;
        }
        items[k++] = it;
    }
    if (!rp->status) {
        int64_t h0 = s->cache.hits, m0 = s->cache.misses;
        float *lex = NULL, top = -1.f;
        if (s->m.agg == TSR_EBRM_AGG_FUSE) {
            /* the BM25 index of the construction's visible text, built on first use
             * (the same k1, b as the CLI's first stage) */
            int x = (tsr_qc_hidden(cons) & TSR_F_TAGS) ? 1 : 0;
            build_index(s, x);
            lex = malloc((size_t)n * sizeof *lex);
            TSR_ASSERT(lex);
            tsr_ebrm_lex_ex(&s->ix[x], q->valuestring, s->m.lex_norm, -1, items, NULL, n, lex);
            if (s->m.gate) top = tsr_ebrm_top_ratio(&s->ix[x], q->valuestring, -1.f);
        }
        tsr_status st = tsr_ebrm_model_score_top(&s->m, &s->cat, &s->E, q->valuestring, cons, items, n, &s->cache,
                                                 NULL, lex, top, p);
        free(lex);
        /* /metrics runs on other threads, outside this endpoint's lock */
        __atomic_store_n(&s->hits, s->cache.hits, __ATOMIC_RELAXED);
        __atomic_store_n(&s->misses, s->cache.misses, __ATOMIC_RELAXED);
        if (st.code != TSR_OK) {
            rp->status = 500;
            snprintf(rp->error, sizeof rp->error, "%s", st.msg);
        } else {
            cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "scores");
            cJSON_AddStringToObject(out, "query", q->valuestring);
            for (int i = 0; i < n; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "id", s->cat.items[items[i]].id);
                cJSON_AddNumberToObject(e, "score", p[i]);
                cJSON_AddItemToArray(arr, e);
            }
            cJSON *ch = cJSON_AddObjectToObject(out, "cache");
            int64_t h = s->cache.hits - h0, m = s->cache.misses - m0;
            cJSON_AddNumberToObject(ch, "hits", (double)h);
            cJSON_AddNumberToObject(ch, "misses", (double)m);
            cJSON_AddNumberToObject(ch, "hit_rate", h + m ? (double)h / (double)(h + m) : 0.0);
            cJSON_AddNumberToObject(ch, "total_hit_rate", tsr_ebrm_cache_hit_rate(&s->cache));
            rp->body = cJSON_PrintUnformatted(out);
            rp->status = 200;
            cJSON_Delete(out);
        }
    }
    free(items);
    free(p);
    cJSON_Delete(root);
}

static void metrics(void *state, FILE *out) {
    relevance_state *s = state;
    if (!s) return;
    fprintf(out, "# TYPE tessera_ebrm_qe_cache_hits_total counter\ntessera_ebrm_qe_cache_hits_total %lld\n",
            (long long)__atomic_load_n(&s->hits, __ATOMIC_RELAXED));
    fprintf(out, "# TYPE tessera_ebrm_qe_cache_misses_total counter\ntessera_ebrm_qe_cache_misses_total %lld\n",
            (long long)__atomic_load_n(&s->misses, __ATOMIC_RELAXED));
}

const tsr_serve_endpoint tsr_ebrm_serve_endpoint = {
    .name = "relevance",
    .summary = "EBRM query-item relevance: POST /v1/relevance",
    .models = {{"ebrm", "FILE", "EBRM weights for POST /v1/relevance",
                "models/ebrm-debian/ebrm.safetensors", NULL},
               {"ebrm-catalog", "DIR", "Debian catalog whose packages POST /v1/relevance scores",
                "models/debian-catalog", NULL}},
    .load = load,
    .unload = unload,
    .metrics = metrics,
    .routes = {{"POST", "/v1/relevance", relevance}},
    .serialize = true, /* one model scratch and one cache: one request at a time */
};
