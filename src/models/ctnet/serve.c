/* tessera ctnet: the `POST /v1/ctr` endpoint of `tessera serve` (CTR
 * scoring of live traffic, the serving side of CTNet). A request holds
 * rows (user, item, timestamp, the user's recent clicked items, the
 * model's token fields); the reply holds one click probability per row, in
 * request order, scored in batches with the loaded model. The rows go
 * through the log parser (the documented TSV layout), so a row is hashed
 * and pooled exactly as `tessera ctnet predict` does it: the same row gets
 * the same probability from both. See docs/ctnet.md, Serving. */
#include "tessera/ctnet.h"

#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTR_BATCH 256          /* rows per forward */
#define CTR_MAX_ROWS 100000    /* per request (the body limit usually binds first) */

typedef struct {
    bool loaded;
    tsr_ctnet_model m;
    char name[64];             /* the model file's base name, without .safetensors */
    int64_t requests, rows;    /* scored (for /metrics) */
} ctr_state;

static tsr_status ctr_load(void **state, const char *const *paths, const struct tsr_serve_opts *o) {
    (void)o;
    ctr_state *s = calloc(1, sizeof *s);
    TSR_ASSERT(s);
    *state = s;
    if (!paths[0]) return tsr_ok(); /* off: the route answers 503 */
    tsr_status st = tsr_ctnet_model_load(&s->m, paths[0]);
    if (st.code) return st;
    s->loaded = true;
    tsr_serve_model_name(s->name, sizeof s->name, paths[0]);
    return tsr_ok();
}

static void ctr_unload(void *state) {
    ctr_state *s = state;
    if (!s) return;
    if (s->loaded) tsr_ctnet_model_free(&s->m);
    free(s);
}

static void ctr_metrics(void *state, FILE *out) {
    ctr_state *s = state;
    fprintf(out, "# HELP tessera_ctr_rows_total Rows scored by POST /v1/ctr.\n# TYPE tessera_ctr_rows_total counter\n");
    fprintf(out, "tessera_ctr_rows_total %lld\n", (long long)__atomic_load_n(&s->rows, __ATOMIC_RELAXED));
}

/* ------------------------------------------------------------ the request */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        TSR_ASSERT(b->s);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* a name the client sent, as shown in an error: at most max bytes, control
 * bytes as '?', so that the message stays one line */
static const char *shown(char *dst, size_t n, const char *s, size_t max) {
    size_t k = 0;
    for (; s && s[k] && k < max && k + 1 < n; k++) {
        unsigned char ch = (unsigned char)s[k];
        dst[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    dst[k] = 0;
    return dst;
}

/* one scalar as log text: a string without the log's separators, or an
 * integer; false (with *why) otherwise */
static bool scalar_text(const cJSON *v, bool tokens, sbuf *b, const char **why) {
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        for (const char *p = s; *p; p++)
            if (*p == '\t' || *p == '\n' || *p == '\r' || *p == '"' || (!tokens && *p == '|')) {
                *why = tokens ? "holds a tab, newline or double quote" : "holds a tab, newline, double quote or '|'";
                return false;
            }
        sb_put(b, s, strlen(s));
        return true;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d == floor(d)) || fabs(d) > 9e15) {
            *why = "is not an integer";
            return false;
        }
        char t[32];
        int l = snprintf(t, sizeof t, "%lld", (long long)d);
        sb_put(b, t, (size_t)l);
        return true;
    }
    *why = "must be a string or an integer";
    return false;
}

/* a token field or the history: a scalar (tokens '|'-separated) or an
 * array of scalars */
static bool tokens_text(const cJSON *v, sbuf *b, const char **why) {
    if (!cJSON_IsArray(v)) return scalar_text(v, true, b, why);
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next, k++) {
        if (k) sb_put(b, "|", 1);
        if (!scalar_text(e, false, b, why)) {
            if (!strcmp(*why, "must be a string or an integer")) *why = "must hold strings or integers";
            return false;
        }
    }
    return true;
}

/* the model's token fields a request may give (time and domain are derived) */
static int request_fields(const tsr_ctnet_model *m, const char **names) {
    int n = 0;
    for (int f = 0; f < m->cfg.n_fields; f++)
        if (strcmp(m->field[f], "time") && strcmp(m->field[f], "domain")) names[n++] = m->field[f];
    return n;
}

/* rows -> the log's TSV (user, item, timestamp, history, fields...) */
static bool rows_to_tsv(const tsr_ctnet_model *m, const cJSON *rows, sbuf *tsv, tsr_serve_reply *rp) {
    const char *fields[TSR_CTNET_MAX_FIELDS];
    const int nf = request_fields(m, fields);
    sb_put(tsv, "user\titem\ttimestamp\thistory", 27);
    for (int f = 0; f < nf; f++) {
        sb_put(tsv, "\t", 1);
        sb_put(tsv, fields[f], strlen(fields[f]));
    }
    sb_put(tsv, "\n", 1);
    int i = 0;
    char param[64];
    for (const cJSON *r = rows->child; r; r = r->next, i++) {
        if (!cJSON_IsObject(r)) {
            snprintf(param, sizeof param, "rows[%d]", i);
            tsr_serve_fail(rp, 400, param, "%s must be an object with user, item and timestamp", param);
            return false;
        }
        const cJSON *cell[4 + TSR_CTNET_MAX_FIELDS] = {0};
        for (const cJSON *kv = r->child; kv; kv = kv->next) {
            int c = !strcmp(kv->string, "user") ? 0 : !strcmp(kv->string, "item") ? 1
                  : !strcmp(kv->string, "timestamp") ? 2 : !strcmp(kv->string, "history") ? 3 : -1;
            for (int f = 0; c < 0 && f < nf; f++)
                if (!strcmp(kv->string, fields[f])) c = 4 + f;
            char nm[41];
            snprintf(param, sizeof param, "rows[%d].%s", i, shown(nm, sizeof nm, kv->string, 40));
            if (c < 0) {
                char known[TSR_CTNET_MAX_FIELDS * 34] = "";
                for (int f = 0; f < nf; f++) {
                    strcat(known, ", ");
                    strcat(known, fields[f]);
                }
                tsr_serve_fail(rp, 400, param, "%s: unknown field (a row has user, item, timestamp, history%s)", param, known);
                return false;
            }
            if (cell[c]) {
                tsr_serve_fail(rp, 400, param, "%s appears twice", param);
                return false;
            }
            cell[c] = kv;
        }
        static const char *const req[3] = {"user", "item", "timestamp"};
        for (int c = 0; c < 3; c++)
            if (!cell[c] || cJSON_IsNull(cell[c])) {
                snprintf(param, sizeof param, "rows[%d].%s", i, req[c]);
                tsr_serve_fail(rp, 400, param, "%s is missing", param);
                return false;
            }
        if (!cJSON_IsNumber(cell[2]) || cell[2]->valuedouble < 0 || cell[2]->valuedouble > 1099511627776.0 ||
            cell[2]->valuedouble != floor(cell[2]->valuedouble)) {
            snprintf(param, sizeof param, "rows[%d].timestamp", i);
            tsr_serve_fail(rp, 400, param, "%s must be integer unix seconds (0 .. 2^40)", param);
            return false;
        }
        for (int c = 0; c < 4 + nf; c++) {
            if (c) sb_put(tsv, "\t", 1);
            const char *why = NULL;
            bool ok = true;
            if (c == 0 || c == 1) {
                size_t at = tsv->n;
                ok = scalar_text(cell[c], true, tsv, &why);
                if (ok && tsv->n == at) ok = false, why = "is empty";
            } else if (c == 2) {
                ok = scalar_text(cell[c], true, tsv, &why);
            } else if (cell[c] && !cJSON_IsNull(cell[c])) {
                ok = tokens_text(cell[c], tsv, &why);
            }
            if (!ok) {
                char nm[41];
                snprintf(param, sizeof param, "rows[%d].%s", i, shown(nm, sizeof nm, cell[c]->string, 40));
                tsr_serve_fail(rp, 400, param, "%s %s", param, why);
                return false;
            }
        }
        sb_put(tsv, "\n", 1);
    }
    return true;
}

static void ctr_score(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp) {
    ctr_state *s = state;
    if (!s || !s->loaded) {
        tsr_serve_fail(rp, 503, NULL, "no CTR model is loaded (start the server with --ctnet FILE)");
        return;
    }
    cJSON *root = cJSON_ParseWithLength(rq->body, rq->body_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        tsr_serve_fail(rp, 400, NULL, "the body is not a JSON object ({\"rows\": [{\"user\": ..., \"item\": ..., \"timestamp\": ...}]})");
        return;
    }
    const cJSON *rows = NULL;
    for (const cJSON *kv = root->child; kv; kv = kv->next) {
        if (!strcmp(kv->string, "rows")) rows = kv;
        else if (!strcmp(kv->string, "model")) {
            if (!cJSON_IsString(kv) || strcmp(kv->valuestring, s->name)) {
                char nm[64];
                tsr_serve_fail(rp, 404, "model", "model '%s' is not served here (this server has '%s')",
                    cJSON_IsString(kv) ? shown(nm, sizeof nm, kv->valuestring, 60) : "?", s->name);
                cJSON_Delete(root);
                return;
            }
        } else {
            char param[64];
            shown(param, sizeof param, kv->string, 63);
            tsr_serve_fail(rp, 400, param, "unknown field '%s' (a request has rows and, optionally, model)", param);
            cJSON_Delete(root);
            return;
        }
    }
    int n = rows && cJSON_IsArray(rows) ? cJSON_GetArraySize(rows) : -1;
    if (n < 1 || n > CTR_MAX_ROWS) {
        cJSON_Delete(root);
        tsr_serve_fail(rp, 400, "rows", "rows must be an array of 1 to %d row objects", CTR_MAX_ROWS);
        return;
    }
    sbuf tsv = {0};
    bool ok = rows_to_tsv(&s->m, rows, &tsv, rp);
    cJSON_Delete(root);
    if (!ok) {
        free(tsv.s);
        return;
    }
    tsr_ctnet_log g;
    tsr_status st = tsr_ctnet_parse_csv(tsv.s, tsv.n, "request", "source", "target", false, &g);
    free(tsv.s);
    if (st.code) {
        tsr_serve_fail(rp, 400, "rows", "%s", st.msg);
        return;
    }
    float *p = malloc(sizeof(float) * (size_t)g.n);
    TSR_ASSERT(p);
    tsr_ctnet_model_predict(&s->m, &g, NULL, g.n, CTR_BATCH, p);
    /* the log keeps rows in time order; the reply is in request order */
    float *q = malloc(sizeof(float) * (size_t)g.n);
    TSR_ASSERT(q);
    for (int64_t i = 0; i < g.n; i++) q[g.src_row[i]] = p[i];
    sbuf out = {0};
    char t[160];
    int l = snprintf(t, sizeof t, "{\"object\": \"ctr\", \"model\": \"%s\", \"method\": \"%s\", \"probabilities\": [", s->name,
                     tsr_ctnet_method_names[s->m.method]);
    sb_put(&out, t, (size_t)l);
    for (int64_t i = 0; i < g.n; i++) {
        l = snprintf(t, sizeof t, "%s%.9g", i ? ", " : "", (double)q[i]);
        sb_put(&out, t, (size_t)l);
    }
    l = snprintf(t, sizeof t, "], \"usage\": {\"rows\": %lld}}", (long long)g.n);
    sb_put(&out, t, (size_t)l);
    __atomic_add_fetch(&s->rows, g.n, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
    free(p);
    free(q);
    tsr_ctnet_log_free(&g);
    rp->status = 200;
    rp->body = out.s;
}

const tsr_serve_endpoint tsr_ctnet_serve_endpoint = {
    .name = "ctr",
    .summary = "click probabilities of rows (CTNet), batched",
    .models = {{"ctnet", "FILE", "CTNet model for POST /v1/ctr (tessera ctnet train)",
                "models/ctnet_ml_animation.safetensors", NULL}},
    .load = ctr_load,
    .unload = ctr_unload,
    .metrics = ctr_metrics,
    .routes = {{"POST", "/v1/ctr", ctr_score}},
    .serialize = true, /* one scoring scratch per model */
};
