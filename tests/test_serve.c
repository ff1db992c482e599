/* tests for src/serve: the completions request parser (every kind of bad
 * input gets a message naming the field), the batched forward over
 * several sequences (each row's logits bit-identical to its sequence's
 * forward alone), and continuous batching end to end through the
 * /v1/completions handler: concurrent requests, greedy and seeded
 * sampling, joining and leaving between steps, give exactly the text each
 * gets alone and exactly what `tessera lm generate` (tsr_lm_generate_bpe)
 * prints. Also the image samplers' shared request parser
 * (tessera/serve_sample.h). */
#include "testutil.h"
#include "tessera/bpe.h"
#include "tessera/fileio.h"
#include "tessera/lm.h"
#include "tessera/serve.h"
#include "tessera/serve_sample.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ parser */

static void expect_bad(const char *body, const char *param) {
    tsr_serve_completion c;
    char p[64];
    tsr_status st = tsr_serve_parse_completion(&c, body, strlen(body), p);
    TU_CHECK(st.code == TSR_ERR_ARG && st.msg[0], "parser accepted %s", body);
    TU_CHECK(strcmp(p, param) == 0, "%s: param '%s', want '%s' (%s)", body, p, param, st.msg);
}

static void test_parser(void) {
    const char *ok = "{\"prompt\":\"def f(\",\"model\":\"pycode\",\"decoder\":\"bita\",\"max_tokens\":7,"
                     "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"stop\":[\"\\n\\n\",\"x\"],\"seed\":12,"
                     "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"n\":1,\"echo\":false,"
                     "\"logprobs\":null,\"user\":\"u\"}";
    tsr_serve_completion c;
    char p[64];
    tsr_status st = tsr_serve_parse_completion(&c, ok, strlen(ok), p);
    TU_CHECK(!st.code, "valid body rejected: %s", st.msg);
    if (!st.code) {
        TU_CHECK(strcmp(c.prompt, "def f(") == 0 && strcmp(c.model, "pycode") == 0 && c.decoder == TSR_DEC_BITA,
                 "prompt/model/decoder");
        TU_CHECK(c.max_tokens == 7 && c.temperature == 0.5f && c.top_p == 0.9f && c.top_k == 40, "numbers");
        TU_CHECK(c.n_stop == 2 && strcmp(c.stop[0], "\n\n") == 0 && c.has_seed && c.seed == 12, "stop/seed");
        TU_CHECK(c.stream && c.include_usage, "stream");
        tsr_serve_completion_free(&c);
    }
    st = tsr_serve_parse_completion(&c, "{}", 2, p);
    TU_CHECK(!st.code && c.prompt && !c.prompt[0] && c.max_tokens == 16 && c.temperature == 1.0f && c.decoder == -1,
             "defaults");
    if (!st.code) tsr_serve_completion_free(&c);
    st = tsr_serve_parse_completion(&c, "{\"prompt\":[\"a\"]}", 16, p);
    TU_CHECK(!st.code && strcmp(c.prompt, "a") == 0, "prompt as an array of one string");
    if (!st.code) tsr_serve_completion_free(&c);

    expect_bad("", "");
    expect_bad("{\"prompt\":", "");
    expect_bad("[1,2]", "");
    expect_bad("{\"prompt\":\"a\"} trailing", "");
    expect_bad("{\"prompt\":1}", "prompt");
    expect_bad("{\"prompt\":[\"a\",\"b\"]}", "prompt");
    expect_bad("{\"max_tokens\":\"5\"}", "max_tokens");
    expect_bad("{\"max_tokens\":1.5}", "max_tokens");
    expect_bad("{\"max_tokens\":0}", "max_tokens");
    expect_bad("{\"temperature\":-1}", "temperature");
    expect_bad("{\"temperature\":true}", "temperature");
    expect_bad("{\"top_p\":0}", "top_p");
    expect_bad("{\"top_k\":-2}", "top_k");
    expect_bad("{\"seed\":-1}", "seed");
    expect_bad("{\"seed\":1e300}", "seed");
    expect_bad("{\"stream\":1}", "stream");
    expect_bad("{\"stream_options\":{\"x\":1}}", "stream_options");
    expect_bad("{\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop");
    expect_bad("{\"stop\":[\"\"]}", "stop");
    expect_bad("{\"stop\":5}", "stop");
    expect_bad("{\"decoder\":\"beam\"}", "decoder");
    expect_bad("{\"n\":2}", "n");
    expect_bad("{\"echo\":true}", "echo");
    expect_bad("{\"prompt\":\"a\",\"prompt\":\"b\"}", "prompt");
    expect_bad("{\"prompt\":\"a\",\"frobnicate\":1}", "frobnicate");
    expect_bad("{\"model\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", "model");
    /* the length bounds what is read: a valid prefix is not enough */
    const char *cut = "{\"prompt\":\"ab\"}";
    st = tsr_serve_parse_completion(&c, cut, 10, p);
    TU_CHECK(st.code == TSR_ERR_ARG, "a truncated body is rejected");
}

/* ------------------------------------------------------------ batched forward */

static void test_forward_batch(tsr_lm_wtype wt) {
    tsr_lm_config cfg = {64, 96, 2, 4, 2, 97, 48, 10000.0f, 1e-5f, true, TSR_LM_ROPE_HALF};
    tsr_lm_model f32, m;
    tsr_status st = tsr_lm_model_alloc(&f32, &cfg);
    TU_CHECK(!st.code, "alloc: %s", st.msg);
    tsr_lm_model_randomize(&f32, 7, 0.08f);
    st = tsr_lm_model_convert(&m, &f32, wt, 32);
    TU_CHECK(!st.code, "convert: %s", st.msg);
    const int V = cfg.vocab_size, S = 3, L = 30;
    int toks[3][30];
    tsr_rng rng;
    tsr_rng_seed(&rng, 11);
    for (int s = 0; s < S; s++)
        for (int t = 0; t < L; t++) toks[s][t] = (int)(tsr_rng_u64(&rng) % (uint64_t)V);
    /* alone: each sequence fed one token at a time */
    float *alone = malloc(sizeof(float) * (size_t)S * L * V), *got = malloc(sizeof(float) * (size_t)64 * V);
    for (int s = 0; s < S; s++) {
        tsr_lm_cache c;
        tsr_lm_cache_init(&c, &cfg, 0);
        for (int t = 0; t < L; t++) tsr_lm_forward(&m, &c, &toks[s][t], 1, t, alone + ((size_t)s * L + t) * V);
        tsr_lm_cache_free(&c);
    }
    /* batched: each step every sequence feeds a chunk of its own size
     * (sequence s takes s + 1 tokens), sequences starting at different steps */
    tsr_lm_cache cs[3], ws, *rc[64];
    for (int s = 0; s < S; s++) tsr_lm_cache_init(&cs[s], &cfg, s == 1 ? 40 : 0); /* caches of different lengths */
    tsr_lm_cache_init(&ws, &cfg, 8);
    int fed[3] = {0, 0, 0}, tokens[64], pos[64], who[64], at[64];
    uint8_t want[64];
    bool same = true;
    for (int step = 0; step < 40; step++) {
        int n = 0;
        for (int s = 0; s < S; s++) {
            if (step < 2 * s) continue; /* joins later */
            for (int j = 0; j <= s && fed[s] < L; j++, fed[s]++) {
                tokens[n] = toks[s][fed[s]];
                pos[n] = fed[s];
                rc[n] = &cs[s];
                want[n] = (uint8_t)((fed[s] + step) % 2 == 0 || j == s); /* only some rows' logits */
                who[n] = s;
                at[n] = fed[s];
                n++;
            }
        }
        if (!n) break;
        st = tsr_lm_forward_batch(&m, &ws, rc, tokens, pos, n, want, got);
        TU_CHECK(!st.code, "forward_batch: %s", st.msg);
        int k = 0;
        for (int r = 0; r < n; r++)
            if (want[r]) {
                if (memcmp(got + (size_t)k * V, alone + ((size_t)who[r] * L + at[r]) * V, sizeof(float) * V) != 0)
                    same = false;
                k++;
            }
    }
    TU_CHECK(same, "%s: batched rows of several sequences differ from each sequence alone", tsr_lm_wtype_name(wt));
    /* rows of one sequence must be adjacent and consecutive */
    int bt[3] = {1, 2, 3}, bp[3] = {0, 0, 1};
    tsr_lm_cache *brc[3] = {&cs[0], &cs[1], &cs[0]};
    st = tsr_lm_forward_batch(&m, &ws, brc, bt, bp, 3, NULL, NULL);
    TU_CHECK(st.code == TSR_ERR_ARG, "rows of one sequence split by another are rejected");
    int bp2[2] = {0, 2};
    st = tsr_lm_forward_batch(&m, &ws, brc, bt, bp2, 2, NULL, NULL);
    TU_CHECK(!st.code, "two sequences, one row each");
    brc[1] = &cs[0];
    st = tsr_lm_forward_batch(&m, &ws, brc, bt, bp2, 2, NULL, NULL);
    TU_CHECK(st.code == TSR_ERR_ARG, "a gap in a sequence's positions is rejected");
    for (int s = 0; s < S; s++) tsr_lm_cache_free(&cs[s]);
    tsr_lm_cache_free(&ws);
    free(alone);
    free(got);
    tsr_lm_model_free(&m);
    tsr_lm_model_free(&f32);
}

/* ------------------------------------------------------------ continuous batching */

#define MODEL "models/pycode"

typedef struct {
    const char *prompt;
    int max_tokens;
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    const char *stop;
} job;

static const job k_jobs[] = {
    {"def add(a, b):", 24, 0.0f, 1.0f, 0, 0, NULL},
    {"import os\n", 16, 0.8f, 0.9f, 0, 5, NULL},
    {"class Stack:\n    def __init__(self):", 30, 0.0f, 1.0f, 0, 0, "\n\n"},
    {"for i in range(", 8, 1.0f, 1.0f, 20, 77, NULL},
    {"", 20, 0.7f, 0.95f, 0, 3, NULL},
    {"def fib(n):\n    if n < 2:\n        return n\n", 30, 0.0f, 1.0f, 0, 0, "return"},
    {"x = [", 20, 1.2f, 1.0f, 0, 9, NULL},
};
#define N_JOBS ((int)(sizeof k_jobs / sizeof *k_jobs))

typedef struct {
    void *state;
    int i;
    char *text; /* NULL: failed */
} call;

static char *body_of(const job *j) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "prompt", j->prompt);
    cJSON_AddNumberToObject(b, "max_tokens", j->max_tokens);
    cJSON_AddNumberToObject(b, "temperature", j->temperature);
    cJSON_AddNumberToObject(b, "top_p", j->top_p);
    cJSON_AddNumberToObject(b, "top_k", j->top_k);
    cJSON_AddNumberToObject(b, "seed", (double)j->seed);
    if (j->stop) cJSON_AddStringToObject(b, "stop", j->stop);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

static void *do_call(void *arg) {
    call *c = arg;
    char *body = body_of(&k_jobs[c->i]);
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {"POST", "/v1/completions", body, strlen(body), tsr_time() + 60, &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_serve_llm_endpoint.routes[0].handle(c->state, &rq, &rp);
    free(body);
    c->text = NULL;
    if (rp.status == 200 && rp.body) {
        cJSON *j = cJSON_Parse(rp.body);
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "text");
        const cJSON *us = cJSON_GetObjectItem(j, "usage");
        if (cJSON_IsString(t) && cJSON_IsObject(us)) c->text = strdup(t->valuestring);
        cJSON_Delete(j);
    } else {
        fprintf(stderr, "request %d: status %d: %s\n", c->i, rp.status, rp.error);
    }
    free(rp.body);
    return NULL;
}

static int emit_cat(void *ud, const char *s, size_t n) {
    char **buf = ud;
    size_t l = *buf ? strlen(*buf) : 0;
    char *b = realloc(*buf, l + n + 1);
    memcpy(b + l, s, n);
    b[l + n] = 0;
    *buf = b;
    return 0;
}

static void test_batching(void) {
    tsr_serve_opts o;
    tsr_serve_default_opts(&o);
    o.max_batch = 3; /* fewer slots than requests: some wait, join as others leave */
    const char *paths[3] = {MODEL, NULL, NULL};
    void *state = NULL;
    tsr_status st = tsr_serve_llm_endpoint.load(&state, paths, &o);
    TU_CHECK(!st.code, "load %s: %s", MODEL, st.msg);
    if (st.code) return;

    /* what `tessera lm generate` prints: the prompt, then the completion */
    tsr_lm_model m;
    tsr_bpe bpe;
    st = tsr_lm_load(&m, MODEL, -1, 0);
    if (!st.code) st = tsr_bpe_load(&bpe, MODEL "/tokenizer.json");
    TU_CHECK(!st.code, "load: %s", st.msg);
    char *want[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        const job *j = &k_jobs[i];
        tsr_lm_sampler_opts so;
        tsr_lm_sampler_defaults(&so);
        so.temperature = j->temperature;
        so.top_p = j->top_p;
        so.top_k = j->top_k;
        so.seed = j->seed;
        tsr_lm_sampler smp;
        tsr_lm_sampler_init(&smp, &so, m.cfg.vocab_size);
        const char *stops[1] = {j->stop};
        tsr_lm_gen_opts go = {.max_new_tokens = j->max_tokens, .stop = stops, .n_stop = j->stop ? 1 : 0};
        want[i] = NULL;
        emit_cat(&want[i], "", 0);
        st = tsr_lm_generate_bpe(&m, &bpe, &smp, j->prompt, &go, emit_cat, &want[i], NULL);
        TU_CHECK(!st.code, "generate: %s", st.msg);
        tsr_lm_sampler_free(&smp);
    }

    /* alone, one after another */
    call solo[N_JOBS], conc[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) {
        solo[i] = (call){state, i, NULL};
        do_call(&solo[i]);
        size_t pl = strlen(k_jobs[i].prompt);
        TU_CHECK(solo[i].text && strncmp(want[i], k_jobs[i].prompt, pl) == 0 && strcmp(want[i] + pl, solo[i].text) == 0,
                 "job %d served alone differs from lm generate:\n  served  '%s'\n  generate '%s'", i,
                 solo[i].text ? solo[i].text : "(failed)", want[i] + (strlen(want[i]) >= pl ? pl : 0));
    }
    /* all at once: they join and leave the batch at different steps */
    for (int round = 0; round < 1; round++) {
        pthread_t th[N_JOBS];
        for (int i = 0; i < N_JOBS; i++) {
            conc[i] = (call){state, i, NULL};
            pthread_create(&th[i], NULL, do_call, &conc[i]);
        }
        for (int i = 0; i < N_JOBS; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < N_JOBS; i++) {
            TU_CHECK(conc[i].text && solo[i].text && strcmp(conc[i].text, solo[i].text) == 0,
                     "round %d job %d (temperature %g): batched text differs from the text served alone", round, i,
                     k_jobs[i].temperature);
            free(conc[i].text);
        }
    }
    for (int i = 0; i < N_JOBS; i++) {
        free(solo[i].text);
        free(want[i]);
    }
    tsr_bpe_free(&bpe);
    tsr_lm_model_free(&m);
    tsr_serve_llm_endpoint.unload(state);
}

/* ------------------------------------------------------------ prompt cache */

/* a counter of the endpoint's /metrics lines */
static double metric(void *state, const char *name) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tsr_serve_llm_endpoint.metrics(state, f);
    fclose(f);
    double v = -1;
    size_t nl = strlen(name);
    for (const char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ') v = atof(p + nl + 1);
    free(buf);
    return v;
}

static char *serve_text(void *state, const job *j) {
    call c = {state, 0, NULL};
    char *body = body_of(j);
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    tsr_serve_request rq = {"POST", "/v1/completions", body, strlen(body), tsr_time() + 60, &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_serve_llm_endpoint.routes[0].handle(state, &rq, &rp);
    free(body);
    if (rp.status == 200 && rp.body) {
        cJSON *js = cJSON_Parse(rp.body);
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "choices"), 0), "text");
        if (cJSON_IsString(t)) c.text = strdup(t->valuestring);
        cJSON_Delete(js);
    }
    free(rp.body);
    return c.text;
}

/* A request whose prompt shares a prefix with a finished sequence reuses
 * that sequence's K/V, and its text is the one a server without the cache
 * gives (greedy and seeded; a repeated prompt, a prompt extending an
 * earlier prompt and its completion); a tiny cache evicts and stays within
 * its bound; --prompt-cache 0 reuses nothing. */
static void test_prompt_cache(void) {
    tsr_serve_opts o;
    tsr_serve_default_opts(&o);
    const char *paths[3] = {MODEL, NULL, NULL};
    void *on = NULL, *off = NULL, *tiny = NULL;
    tsr_status st = tsr_serve_llm_endpoint.load(&on, paths, &o);
    TU_CHECK(!st.code, "load: %s", st.msg);
    o.prompt_cache = 0;
    if (!st.code) st = tsr_serve_llm_endpoint.load(&off, paths, &o);
    o.prompt_cache = 400 << 10; /* ~50 positions of this model */
    if (!st.code) st = tsr_serve_llm_endpoint.load(&tiny, paths, &o);
    TU_CHECK(!st.code, "load: %s", st.msg);
    if (st.code) return;
    const job *base[2] = {&k_jobs[5], &k_jobs[1]}; /* greedy with a stop string; seeded */
    for (int b = 0; b < 2; b++) {
        job j = *base[b];
        char *ref = serve_text(off, &j);
        TU_CHECK(ref != NULL, "job %d without the cache failed", b);
        double hits0 = metric(on, "tessera_llm_prompt_cache_hits_total");
        double reused0 = metric(on, "tessera_llm_prompt_cache_reused_tokens_total");
        char *first = serve_text(on, &j), *again = serve_text(on, &j);
        TU_CHECK(first && again && ref && !strcmp(first, ref) && !strcmp(again, ref),
                 "job %d: cached texts differ from the uncached one:\n  '%s'\n  '%s'\n  '%s'", b, ref ? ref : "",
                 first ? first : "", again ? again : "");
        TU_CHECK(metric(on, "tessera_llm_prompt_cache_hits_total") >= hits0 + 1 &&
                     metric(on, "tessera_llm_prompt_cache_reused_tokens_total") >= reused0 + 4,
                 "job %d: the repeated prompt did not reuse the cache", b);
        /* the prompt and its completion, continued: most of it is cached */
        size_t pl = strlen(j.prompt), cl = ref ? strlen(ref) : 0;
        char *ext = malloc(pl + cl + 8);
        memcpy(ext, j.prompt, pl);
        memcpy(ext + pl, ref ? ref : "", cl);
        memcpy(ext + pl + cl, "\n    x", 7);
        job je = j;
        je.prompt = ext;
        char *eref = serve_text(off, &je);
        reused0 = metric(on, "tessera_llm_prompt_cache_reused_tokens_total");
        char *eon = serve_text(on, &je);
        TU_CHECK(eref && eon && !strcmp(eref, eon), "job %d extended: cached text differs from the uncached one", b);
        TU_CHECK(metric(on, "tessera_llm_prompt_cache_reused_tokens_total") >= reused0 + 4,
                 "job %d extended: no prefix reused", b);
        free(ext), free(eref), free(eon), free(ref), free(first), free(again);
    }
    /* every job twice through a cache of ~50 positions */
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N_JOBS; i++) {
            char *a = serve_text(off, &k_jobs[i]), *t = serve_text(tiny, &k_jobs[i]);
            TU_CHECK(a && t && !strcmp(a, t), "job %d through the tiny cache: text differs", i);
            free(a), free(t);
        }
    TU_CHECK(metric(off, "tessera_llm_prompt_cache_reused_tokens_total") == 0 &&
                 metric(off, "tessera_llm_prompt_cache_entries") == 0,
             "--prompt-cache 0 reused or kept something");
    TU_CHECK(metric(tiny, "tessera_llm_prompt_cache_bytes") <= 400 << 10 &&
                 metric(tiny, "tessera_llm_prompt_cache_evictions_total") >= 1,
             "the tiny cache did not evict within its bound (%g bytes, %g evictions)",
             metric(tiny, "tessera_llm_prompt_cache_bytes"), metric(tiny, "tessera_llm_prompt_cache_evictions_total"));
    tsr_serve_llm_endpoint.unload(on);
    tsr_serve_llm_endpoint.unload(off);
    tsr_serve_llm_endpoint.unload(tiny);
}

/* ------------------------------------------------------------ streaming */

/* One streamed completion of j, read as the HTTP front reads it: the texts
 * of its events concatenated into *text, the events that carried text in
 * *events, the seconds it took in *secs. Returns false on a failure. */
static bool stream_job(void *state, const job *j, char **text, int *events, double *secs) {
    char *b0 = body_of(j);
    size_t bl = strlen(b0);
    char *body = malloc(bl + 32);
    snprintf(body, bl + 32, "%.*s,\"stream\":true}", (int)bl - 1, b0);
    free(b0);
    tsr_serve_usage u;
    memset(&u, 0, sizeof u);
    double t0 = tsr_time();
    tsr_serve_request rq = {"POST", "/v1/completions", body, strlen(body), t0 + 60, &u};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    tsr_serve_llm_endpoint.routes[0].handle(state, &rq, &rp);
    free(body);
    *text = NULL;
    *events = 0;
    emit_cat(text, "", 0);
    if (!rp.stream_read) return false;
    char *all = NULL, buf[256];
    emit_cat(&all, "", 0);
    ssize_t n;
    while ((n = rp.stream_read(rp.stream, buf, sizeof buf)) > 0) emit_cat(&all, buf, (size_t)n);
    rp.stream_free(rp.stream, n == 0);
    *secs = tsr_time() - t0;
    bool done = false;
    for (char *l = strtok(all, "\n"); l; l = strtok(NULL, "\n")) {
        if (strcmp(l, "data: [DONE]") == 0) {
            done = true;
            continue;
        }
        cJSON *js = strncmp(l, "data: ", 6) == 0 ? cJSON_Parse(l + 6) : NULL;
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(js, "choices"), 0), "text");
        if (cJSON_IsString(t) && t->valuestring[0]) {
            emit_cat(text, t->valuestring, strlen(t->valuestring));
            (*events)++;
        }
        cJSON_Delete(js);
    }
    free(all);
    return n == 0 && done;
}

/* --stream-interval: a streamed completion's text is the whole reply's
 * whatever the interval; with 0 each token's text goes out as it comes,
 * with a long interval the first text goes out at once and the rest with
 * the end (or when the reply's thread wakes by itself, once a second). */
static void test_stream_interval(void) {
    const job j = {"def add(a, b):", 40, 0.0f, 1.0f, 0, 0, NULL};
    char *whole = NULL;
    for (int mode = 0; mode < 2; mode++) {
        tsr_serve_opts o;
        tsr_serve_default_opts(&o);
        o.stream_interval_s = mode ? 3600.0 : 0.0;
        const char *paths[3] = {MODEL, NULL, NULL};
        void *state = NULL;
        tsr_status st = tsr_serve_llm_endpoint.load(&state, paths, &o);
        TU_CHECK(!st.code, "load: %s", st.msg);
        if (st.code) return;
        if (!whole) whole = serve_text(state, &j);
        char *text = NULL;
        int events = 0;
        double secs = 0;
        bool ok = stream_job(state, &j, &text, &events, &secs);
        TU_CHECK(ok && whole && strcmp(text, whole) == 0,
                 "interval %g s: streamed text differs from the whole reply:\n  stream '%s'\n  whole  '%s'",
                 o.stream_interval_s, text, whole ? whole : "(failed)");
        if (mode == 0)
            TU_CHECK(events >= 10, "interval 0: %d text events for %zu bytes of text", events, strlen(text));
        else
            TU_CHECK(events <= 2 + (int)secs, "interval 1 h: %d text events in %.1f s", events, secs);
        free(text);
        tsr_serve_llm_endpoint.unload(state);
    }
    free(whole);
}

/* ------------------------------------------------------------ image samplers' request */

/* parses body with the ELM-like setting (classes 0..10, 10 "unconditional",
 * one family field "steps"); returns the reply's status (0: parsed) */
static int sample_parse(const char *body, tsr_serve_sample_req *r, char param[64]) {
    static const char *const fields[] = {"steps", NULL};
    tsr_serve_request rq = {.method = "POST", .path = "/v1/x/sample", .body = body, .body_len = strlen(body)};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    cJSON *j = tsr_serve_sample_parse(&rq, fields, 10, "unconditional", r, &rp);
    TU_CHECK(!j == (rp.status != 0), "%s: object %p with status %d", body, (void *)j, rp.status);
    TU_CHECK(!j || rp.status == 0, "%s: parsed with status %d", body, rp.status);
    TU_CHECK(j || (rp.error[0] && !strchr(rp.error, '\n')), "%s: no one-line message", body);
    snprintf(param, 64, "%s", rp.error_param);
    cJSON_Delete(j);
    return rp.status;
}

static void test_sample_parse(void) {
    tsr_serve_sample_req r;
    char p[64];
    TU_CHECK(sample_parse("{\"class\": \"SNEAKER\"}", &r, p) == 0 && r.klass == 7 && r.n == 1 && r.seed == 1 && !r.grid &&
                 strcmp(r.class_name, "Sneaker") == 0, "sneaker");
    TU_CHECK(sample_parse("{\"class\": \"t-shirt/top\", \"n\": 64, \"seed\": 0, \"grid\": true, \"steps\": 3}", &r, p) == 0 &&
                 r.klass == 0 && r.n == 64 && r.seed == 0 && r.grid && strcmp(r.class_name, "T-shirt/top") == 0, "t-shirt/top");
    TU_CHECK(sample_parse("{\"class\": \"Unconditional\", \"seed\": 9007199254740991}", &r, p) == 0 && r.klass == 10 &&
                 r.seed == 9007199254740991ull && strcmp(r.class_name, "unconditional") == 0, "unconditional");
    TU_CHECK(sample_parse("{\"class\": 9}", &r, p) == 0 && strcmp(r.class_name, "Ankle boot") == 0, "class 9");
    static const struct { const char *body, *param; } bad[] = {
        {"{}", "class"}, {"{\"class\": \"boot\"}", "class"}, {"{\"class\": 11}", "class"}, {"{\"class\": -1}", "class"},
        {"{\"class\": 2.5}", "class"}, {"{\"class\": null}", "class"}, {"{\"class\": 1, \"n\": 65}", "n"},
        {"{\"class\": 1, \"n\": 0}", "n"}, {"{\"class\": 1, \"seed\": 9007199254740992}", "seed"},
        {"{\"class\": 1, \"seed\": 1.5}", "seed"}, {"{\"class\": 1, \"grid\": \"yes\"}", "grid"},
        {"{\"class\": 1, \"iters\": 3}", "iters"}, {"[1]", ""}, {"{\"class\": 1", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st = sample_parse(bad[i].body, &r, p);
        TU_CHECK(st == 400 && strcmp(p, bad[i].param) == 0, "%s: status %d param '%s', want 400 '%s'", bad[i].body, st, p,
                 bad[i].param);
    }
    /* the class names are the data set's, matched in any case */
    for (int c = 0; c < 10; c++) TU_CHECK(tsr_fmnist_class_find(tsr_fmnist_class_name(c)) == c, "class %d", c);
    TU_CHECK(tsr_fmnist_class_find("ANKLE BOOT") == 9 && tsr_fmnist_class_find("ankle") == -1 &&
                 tsr_fmnist_class_name(10) == NULL, "class names");
}

/* the server's NUL scan of a body (every endpoint): n bytes of b, whether
 * it holds a NUL and, if so, the member named */
static void nul_case(const char *b, size_t n, bool want, const char *field) {
    char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees a read past them */
    memcpy(copy, b, n);
    char f[64] = "unset";
    bool got = tsr_serve_body_has_nul(copy, n, f);
    TU_CHECK(got == want, "NUL scan of %zu bytes '%.40s': %d, want %d", n, b, got, want);
    if (got && want) TU_CHECK(strcmp(f, field) == 0, "NUL scan of '%.40s' names '%s', want '%s'", b, f, field);
    free(copy);
}

#define NUL_CASE(lit, want, field) nul_case(lit, sizeof lit - 1, want, field)
static void test_body_nul(void) {
    NUL_CASE("{\"query\": \"pdf\\u0000 viewer\"}", true, "query");
    NUL_CASE("{\"a\\u0000b\": 1}", true, "a");
    NUL_CASE("{\"q\": \"\\\\u0000\"}", false, ""); /* an escaped backslash: text */
    NUL_CASE("{\"q\": \"x\0y\"}", true, "q");        /* a raw NUL in a string */
    NUL_CASE("[1, \0]", true, "");                    /* outside any string */
    NUL_CASE("{\"q\": \"x\\\0\"}", true, "q");      /* a raw NUL escaped by a backslash */
    NUL_CASE("{\"q\": \"x\\\0", true, "q");          /* the same at the end of the body */
    NUL_CASE("{\"q\": \"\\u000", false, "");      /* a cut escape, no NUL */
    NUL_CASE("{\"q\": \"\\u0000", true, "q");      /* the escape ends the body */
    NUL_CASE("PK\0\0", false, "");                    /* not JSON (/v1/latency's ONNX bytes) */
    NUL_CASE("", false, "");
}

/* `tessera serve` with one endpoint's model missing: exit 1 before it
 * listens, and nothing left allocated (ovadetr, apt, ctnet, bigr and elm
 * kept the failing endpoint's state, which nobody freed; LeakSanitizer's
 * report in the sanitizer build, where the child gets its own exit code
 * for a leak). */
static void test_load_failure(void) {
    static const char *const flags[] = {"lm", "ebrm", "higen", "narformer-latency", "ctnet", "ovadetr", "apt", "bigr", "elm"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        char args[256], *text;
        snprintf(args, sizeof args, "serve --port 0 --quiet --%s /nonexistent/tsr_none", flags[i]);
        int rc = tu_run_cli(args, &text);
        TU_CHECK(rc == 1 && text && strstr(text, "/nonexistent/tsr_none") && !strstr(text, "Sanitizer"),
                 "serve --%s with a missing file: exit %d, stderr: %.400s", flags[i], rc, text ? text : "");
        free(text);
    }
}

int main(void) {
    test_body_nul();
    test_load_failure();
    test_parser();
    test_sample_parse();
    test_forward_batch(TSR_LM_W_F32);
    test_forward_batch(TSR_LM_W_BF16);
    test_forward_batch(TSR_LM_W_Q8);
    test_batching();
    test_prompt_cache();
    test_stream_interval();
    return tu_finish("serve");
}
