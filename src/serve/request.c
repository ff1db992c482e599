/* serve: the /v1/completions request parser, a pure function (bytes in, a
 * request or a one-line message naming the field out) so that it can be
 * fuzzed on its own (fuzz/fuzz_serve_request.c). Field names and meanings
 * follow OpenAI's completions API; `top_k` and `decoder` are ours. Unknown
 * fields and wrong types are errors rather than silently ignored, so a
 * typo never changes what is generated without a word. */
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static const char *const k_decoders[TSR_DEC_COUNT] = {"plain", "space", "bita", "ngram"};
_Static_assert(sizeof k_decoders / sizeof *k_decoders == TSR_DEC_COUNT, "decoder names");

const char *tsr_serve_decoder_name(tsr_serve_decoder d) {
    return d >= 0 && d < TSR_DEC_COUNT ? k_decoders[d] : "?";
}

void tsr_serve_completion_free(tsr_serve_completion *c) {
    free(c->prompt);
    for (int i = 0; i < c->n_stop; i++) free(c->stop[i]);
    memset(c, 0, sizeof *c);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* an integer-valued JSON number within [lo, hi] */
static bool get_int(const cJSON *v, double lo, double hi, double *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) return false;
    *out = d;
    return true;
}

#define FAIL(p, ...)                                   \
    do {                                               \
        snprintf(param, 64, "%s", (p) ? (p) : "");     \
        st = tsr_errorf(TSR_ERR_ARG, __VA_ARGS__);     \
        goto done;                                     \
    } while (0)

tsr_status tsr_serve_parse_completion(tsr_serve_completion *c, const char *body, size_t len, char param[64]) {
    memset(c, 0, sizeof *c);
    c->decoder = -1;
    c->max_tokens = 16;
    c->temperature = 1.0f;
    c->top_p = 1.0f;
    param[0] = 0;
    tsr_status st = tsr_ok();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) return tsr_errorf(TSR_ERR_ARG, "the body is not valid JSON");
    /* one JSON value and nothing after it but white space */
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') FAIL(NULL, "the body holds more than one JSON value");
    if (!cJSON_IsObject(root)) FAIL(NULL, "the body must be a JSON object");
    for (const cJSON *f = root->child; f; f = f->next) {
        const char *k = f->string ? f->string : "";
        for (const cJSON *g = root->child; g != f; g = g->next)
            if (g->string && strcmp(g->string, k) == 0) FAIL(k, "field '%.64s' is given twice", k);
        bool null = cJSON_IsNull(f);
        double d;
        if (strcmp(k, "prompt") == 0) {
            const cJSON *s = f;
            if (cJSON_IsArray(f)) {
                if (cJSON_GetArraySize(f) != 1) FAIL(k, "prompt: one prompt per request (a string, or an array of one string)");
                s = f->child;
            }
            if (!cJSON_IsString(s)) FAIL(k, "prompt must be a string");
            c->prompt = dup_str(s->valuestring);
            if (!c->prompt) FAIL(k, "out of memory");
        } else if (strcmp(k, "model") == 0) {
            if (!cJSON_IsString(f)) FAIL(k, "model must be a string");
            if (strlen(f->valuestring) >= sizeof c->model) FAIL(k, "model: name too long");
            strcpy(c->model, f->valuestring);
        } else if (strcmp(k, "decoder") == 0) {
            if (null) continue;
            if (!cJSON_IsString(f)) FAIL(k, "decoder must be a string: plain, space, bita or ngram");
            for (int i = 0; i < TSR_DEC_COUNT; i++)
                if (strcmp(f->valuestring, k_decoders[i]) == 0) c->decoder = i;
            if (c->decoder < 0) FAIL(k, "unknown decoder '%.32s' (plain, space, bita or ngram)", f->valuestring);
        } else if (strcmp(k, "max_tokens") == 0) {
            if (null) continue;
            if (!get_int(f, 1, 1e9, &d)) FAIL(k, "max_tokens must be an integer >= 1");
            c->max_tokens = (int)d;
        } else if (strcmp(k, "temperature") == 0) {
            if (null) continue;
            if (!cJSON_IsNumber(f) || !(f->valuedouble >= 0 && f->valuedouble <= 2))
                FAIL(k, "temperature must be a number in [0, 2]");
            c->temperature = (float)f->valuedouble;
        } else if (strcmp(k, "top_p") == 0) {
            if (null) continue;
            if (!cJSON_IsNumber(f) || !(f->valuedouble > 0 && f->valuedouble <= 1))
                FAIL(k, "top_p must be a number in (0, 1]");
            c->top_p = (float)f->valuedouble;
        } else if (strcmp(k, "top_k") == 0) {
            if (null) continue;
            if (!get_int(f, 0, 1e9, &d)) FAIL(k, "top_k must be an integer >= 0");
            c->top_k = (int)d;
        } else if (strcmp(k, "seed") == 0) {
            if (null) continue;
            /* exactly representable integers only, so a seed means one thing */
            if (!get_int(f, 0, 9007199254740992.0, &d)) FAIL(k, "seed must be an integer in [0, 2^53]");
            c->seed = (uint64_t)d;
            c->has_seed = true;
        } else if (strcmp(k, "stream") == 0) {
            if (null) continue;
            if (!cJSON_IsBool(f)) FAIL(k, "stream must be true or false");
            c->stream = cJSON_IsTrue(f);
        } else if (strcmp(k, "stream_options") == 0) {
            if (null) continue;
            if (!cJSON_IsObject(f)) FAIL(k, "stream_options must be an object");
            for (const cJSON *g = f->child; g; g = g->next) {
                if (!g->string || strcmp(g->string, "include_usage") != 0)
                    FAIL(k, "stream_options: unknown field '%.64s'", g->string ? g->string : "");
                if (!cJSON_IsBool(g)) FAIL(k, "stream_options.include_usage must be true or false");
                c->include_usage = cJSON_IsTrue(g);
            }
        } else if (strcmp(k, "stop") == 0) {
            if (null) continue;
            const cJSON *one = cJSON_IsString(f) ? f : NULL;
            if (!one && !cJSON_IsArray(f)) FAIL(k, "stop must be a string or an array of strings");
            int n = one ? 1 : cJSON_GetArraySize(f);
            if (n > TSR_SERVE_MAX_STOP) FAIL(k, "stop: at most %d strings", TSR_SERVE_MAX_STOP);
            const cJSON *s = one ? one : f->child;
            for (int i = 0; i < n; i++, s = s->next) {
                if (!cJSON_IsString(s) || !s->valuestring[0]) FAIL(k, "stop: each entry must be a non-empty string");
                c->stop[c->n_stop] = dup_str(s->valuestring);
                if (!c->stop[c->n_stop]) FAIL(k, "out of memory");
                c->n_stop++;
            }
        } else if (strcmp(k, "n") == 0 || strcmp(k, "best_of") == 0) {
            if (!null && !(cJSON_IsNumber(f) && f->valuedouble == 1)) FAIL(k, "%s: only 1 is supported", k);
        } else if (strcmp(k, "echo") == 0) {
            if (!null && !cJSON_IsFalse(f)) FAIL(k, "echo: only false is supported");
        } else if (strcmp(k, "logprobs") == 0 || strcmp(k, "suffix") == 0) {
            if (!null) FAIL(k, "%s is not supported", k);
        } else if (strcmp(k, "presence_penalty") == 0 || strcmp(k, "frequency_penalty") == 0) {
            if (!null && !(cJSON_IsNumber(f) && f->valuedouble == 0)) FAIL(k, "%s: only 0 is supported", k);
        } else if (strcmp(k, "logit_bias") == 0) {
            if (!null && !(cJSON_IsObject(f) && !f->child)) FAIL(k, "logit_bias is not supported");
        } else if (strcmp(k, "user") == 0) {
            if (!null && !cJSON_IsString(f)) FAIL(k, "user must be a string");
        } else {
            FAIL(k, "unknown field '%.64s'", k);
        }
    }
    if (!c->prompt) {
        c->prompt = dup_str("");
        if (!c->prompt) FAIL(NULL, "out of memory");
    }
done:
    if (st.code) {
        tsr_serve_completion_free(c);
    }
    cJSON_Delete(root);
    return st;
}

/* the server's scan of a JSON body for NULs (serve.h) */
bool tsr_serve_body_has_nul(const char *b, size_t n, char field[64]) {
    const size_t cap = 64;
    const char *key = NULL;
    size_t key_len = 0, i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    if (i == n || (b[i] != '{' && b[i] != '[')) return false;
    for (; i < n; i++) {
        if (b[i] == 0) {
            field[0] = 0;
            return true;
        }
        if (b[i] != '"') continue;
        size_t start = ++i;
        bool nul = false;
        size_t nul_at = 0;
        for (; i < n && b[i] != '"'; i++) {
            if (b[i] == 0 && !nul) nul = true, nul_at = i;
            if (b[i] != '\\' || i + 1 >= n) continue;
            /* \u0000, or a raw NUL escaped (skipped below, so seen here) */
            if (!nul && (b[i + 1] == 0 || (b[i + 1] == 'u' && i + 5 < n && !memcmp(b + i + 2, "0000", 4))))
                nul = true, nul_at = i;
            i++; /* the escaped character; the rest of a \uXXXX is plain text */
        }
        size_t end = i, j = i + 1;
        while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r')) j++;
        bool is_key = j < n && b[j] == ':';
        if (nul) {
            const char *f = is_key ? b + start : key;
            size_t fl = is_key ? nul_at - start : key_len, k = 0;
            for (; f && k < fl && k + 1 < cap; k++) field[k] = f[k] >= 0x20 && f[k] < 0x7f ? f[k] : '?';
            field[k] = 0;
            return true;
        }
        if (is_key) key = b + start, key_len = end - start;
    }
    return false;
}
