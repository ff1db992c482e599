/* tessera bench: a load generator for `tessera serve` (bench/bench_serve.sh
 * drives it). N client threads share R numbered requests; request i sends
 * prompt i mod P (the first --prompt-bytes bytes of a JSONL "prompt"),
 * greedy when i is even, seeded sampling (seed i, temperature 0.8, top_p
 * 0.95) when odd, always streamed, so that the time to the first token is
 * seen. --extra adds members to every body (llama.cpp's server gets
 * top_k 0 and min_p 0 so that it samples as tessera does). The reply may
 * be chunked (llama.cpp's server); reading stops at [DONE]. Loopback only:
 * the host is fixed to 127.0.0.1. Each request has a socket timeout; the
 * run is bounded by R.
 *
 * A 429 or 503 reply (the server's overload answers) must carry OpenAI's
 * error body; with --retry-ms M the request is sent again after M ms (at
 * most 200 times), as clients do, and the rejections are counted.
 *
 * Output: one line per request to --out (index, status, FNV-1a hash of the
 * completion text, completion tokens), so runs at different concurrency
 * can be compared request by request, and one JSON summary line on stdout:
 * requests/s, aggregate tokens/s, latency p50/p99, time to first token
 * p50/p99, errors by final status, rejections retried, and error replies
 * without the error body ("unclean"). */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int status; /* HTTP status; 0: connection failed */
    double latency, ttft;
    int tokens;
    uint64_t hash;
    int rejected;  /* 429/503 replies before this one (--retry-ms) */
    bool unclean;  /* an error reply whose body was not OpenAI's {"error": {"message": ...}} */
} result;

static int g_port, g_clients, g_requests, g_max_tokens, g_prompt_bytes, g_retry_ms = -1;
static char **g_prompts;
static cJSON *g_extra; /* --extra: members added to every body */
static int g_n_prompts;
static atomic_int g_next;
static result *g_res;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* the first "\n\n" in s[0..n) */
static char *find_blank(char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '\n' && s[i + 1] == '\n') return s + i;
    return NULL;
}

/* HTTP/1.1 chunked transfer coding, decoded in place as bytes arrive
 * (llama.cpp's server answers chunked even to HTTP/1.0 and keeps the
 * connection open, so a reader stops at [DONE] rather than at EOF) */
typedef struct {
    size_t left;  /* payload bytes left in the current chunk */
    int state;    /* 0: size line, 1: payload, 2: CRLF after the payload, 3: end, 4: extension */
    size_t hex;   /* the size being read */
} chunk_state;

/* p[0..n) raw bytes; returns the payload length, written to p */
static size_t dechunk(chunk_state *c, char *p, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char ch = p[i];
        if (c->state == 0 || c->state == 4) {
            i++;
            if (ch == ';') c->state = 4; /* a chunk extension, up to the line's end */
            if (ch == '\n') {
                c->left = c->hex;
                c->hex = 0;
                c->state = c->left ? 1 : 3;
            } else if (c->state == 0 && isxdigit((unsigned char)ch)) {
                c->hex = c->hex * 16 + (size_t)(isdigit((unsigned char)ch) ? ch - '0' : tolower((unsigned char)ch) - 'a' + 10);
            }
        } else if (c->state == 1) {
            size_t k = n - i < c->left ? n - i : c->left;
            memmove(p + o, p + i, k);
            o += k, i += k, c->left -= k;
            if (!c->left) c->state = 2;
        } else if (c->state == 2) {
            i++;
            if (ch == '\n') c->state = 0;
        } else {
            break;
        }
    }
    return o;
}

/* handles the SSE events in buf[0..*len), keeps an unfinished tail */
static void take_events(char *buf, size_t *len, result *r, double t0, bool *done) {
    size_t start = 0;
    for (;;) {
        char *e = find_blank(buf + start, *len - start);
        if (!e) break;
        *e = 0;
        const char *line = buf + start;
        if (strncmp(line, "data: ", 6) == 0) {
            const char *d = line + 6;
            if (strcmp(d, "[DONE]") == 0) *done = true;
            else {
                cJSON *j = cJSON_Parse(d);
                const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
                const cJSON *t = cJSON_GetObjectItem(ch, "text");
                if (cJSON_IsString(t) && t->valuestring[0]) {
                    if (r->ttft == 0) r->ttft = now_s() - t0;
                    r->hash = fnv(r->hash, t->valuestring, strlen(t->valuestring));
                }
                const cJSON *u = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "completion_tokens");
                if (cJSON_IsNumber(u)) r->tokens = u->valueint;
                if (cJSON_GetObjectItem(j, "error")) r->status = 599; /* an error event mid-stream */
                cJSON_Delete(j);
            }
        }
        start = (size_t)(e - buf) + 2;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

static void one_request(int i, result *r) {
    int rejected = r->rejected;
    memset(r, 0, sizeof *r);
    r->rejected = rejected;
    r->hash = 1469598103934665603ull;
    cJSON *b = cJSON_CreateObject();
    const char *p = g_prompts[i % g_n_prompts];
    char *pr = strndup(p, (size_t)g_prompt_bytes);
    cJSON_AddStringToObject(b, "prompt", pr);
    free(pr);
    cJSON_AddNumberToObject(b, "max_tokens", g_max_tokens);
    cJSON_AddBoolToObject(b, "stream", 1);
    if (i % 2 == 0) cJSON_AddNumberToObject(b, "temperature", 0);
    else {
        cJSON_AddNumberToObject(b, "temperature", 0.8);
        cJSON_AddNumberToObject(b, "top_p", 0.95);
        cJSON_AddNumberToObject(b, "seed", i);
    }
    for (const cJSON *e = g_extra ? g_extra->child : NULL; e; e = e->next)
        cJSON_AddItemToObject(b, e->string, cJSON_Duplicate(e, 1));
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    size_t blen = strlen(body);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      blen);
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {120, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, head, (size_t)hl) != hl ||
        write(fd, body, blen) != (ssize_t)blen) {
        if (fd >= 0) close(fd);
        free(body);
        r->latency = now_s() - t0;
        return;
    }
    free(body);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    bool in_body = false, done = false, chunked = false;
    chunk_state cs = {0, 0, 0};
    /* raw bytes land at buf + len; a chunked body is decoded in place */
    while (!done) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, 4096);
        if (n <= 0) break;
        size_t got = (size_t)n;
        if (!in_body) {
            len += got;
            buf[len] = 0;
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            *e = 0;
            sscanf(buf, "HTTP/%*s %d", &r->status);
            for (char *h = buf; *h; h++) *h = (char)tolower((unsigned char)*h);
            chunked = strstr(buf, "transfer-encoding: chunked") != NULL;
            size_t hdr = (size_t)(e - buf) + 4;
            got = len - hdr;
            memmove(buf, buf + hdr, got);
            len = 0;
            in_body = true;
        }
        len += chunked ? dechunk(&cs, buf + len, got) : got;
        buf[len] = 0;
        if (r->status == 200) take_events(buf, &len, r, t0, &done);
    }
    close(fd);
    if (r->status != 200 && in_body) {
        /* an error reply: {"error": {"message": str, ...}} */
        cJSON *j = cJSON_ParseWithLength(buf, len);
        const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message");
        r->unclean = !cJSON_IsString(m);
        cJSON_Delete(j);
    } else if (r->status != 200) {
        r->unclean = true;
    }
    free(buf);
    if (r->status == 200 && !done) r->status = 598; /* cut short */
    r->latency = now_s() - t0;
}

static void *client(void *arg) {
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&g_next, 1);
        if (i >= g_requests) break;
        result *r = &g_res[i];
        bool unclean = false;
        for (;;) {
            one_request(i, r);
            unclean |= r->unclean;
            if (g_retry_ms < 0 || (r->status != 429 && r->status != 503) || r->rejected >= 200) break;
            r->rejected++;
            struct timespec ts = {g_retry_ms / 1000, (long)(g_retry_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        r->unclean = unclean;
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int k = (int)(q * (n - 1) + 0.5);
    return v[k];
}

int main(int argc, char **argv) {
    const char *prompts = "bench/prompts_pyval.jsonl", *out = NULL;
    g_clients = 1;
    g_requests = 16;
    g_max_tokens = 64;
    g_prompt_bytes = 200;
    for (int i = 1; i < argc; i += 2) { /* --flag value pairs */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_serve_client: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--port")) g_port = atoi(v);
        else if (!strcmp(argv[i], "--clients")) g_clients = atoi(v);
        else if (!strcmp(argv[i], "--requests")) g_requests = atoi(v);
        else if (!strcmp(argv[i], "--max-tokens")) g_max_tokens = atoi(v);
        else if (!strcmp(argv[i], "--prompt-bytes")) g_prompt_bytes = atoi(v);
        else if (!strcmp(argv[i], "--prompts")) prompts = v;
        else if (!strcmp(argv[i], "--retry-ms")) g_retry_ms = atoi(v);
        else if (!strcmp(argv[i], "--out")) out = v;
        else if (!strcmp(argv[i], "--extra")) {
            cJSON_Delete(g_extra);
            g_extra = cJSON_Parse(v);
            if (!cJSON_IsObject(g_extra)) {
                fprintf(stderr, "bench_serve_client: --extra must be a JSON object\n");
                return 2;
            }
        }
        else {
            fprintf(stderr, "usage: bench_serve_client --port N [--clients N] [--requests N] [--max-tokens N] "
                            "[--prompt-bytes N] [--prompts FILE.jsonl] [--out FILE] [--extra JSON] [--retry-ms M]\n");
            return 2;
        }
    }
    if (g_port <= 0 || g_port > 65535 || g_clients < 1 || g_clients > 1024 || g_requests < 1 ||
        g_requests > 100000 || g_max_tokens < 1 || g_prompt_bytes < 1) {
        fprintf(stderr, "bench_serve_client: bad --port/--clients/--requests/--max-tokens/--prompt-bytes\n");
        return 2;
    }
    FILE *f = fopen(prompts, "r");
    if (!f) {
        fprintf(stderr, "bench_serve_client: %s: %s\n", prompts, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *p = cJSON_GetObjectItem(j, "prompt");
        if (cJSON_IsString(p)) {
            g_prompts = realloc(g_prompts, sizeof(char *) * (size_t)(g_n_prompts + 1));
            g_prompts[g_n_prompts++] = strdup(p->valuestring);
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    if (!g_n_prompts) {
        fprintf(stderr, "bench_serve_client: %s holds no {\"prompt\": ...} lines\n", prompts);
        return 1;
    }
    g_res = calloc((size_t)g_requests, sizeof *g_res);
    pthread_t *th = malloc(sizeof(pthread_t) * (size_t)g_clients);
    double t0 = now_s();
    for (int c = 0; c < g_clients; c++) pthread_create(&th[c], NULL, client, NULL);
    for (int c = 0; c < g_clients; c++) pthread_join(th[c], NULL);
    double wall = now_s() - t0;

    double *lat = malloc(sizeof(double) * (size_t)g_requests), *ttft = malloc(sizeof(double) * (size_t)g_requests);
    int nok = 0, n429 = 0, n503 = 0, nother = 0, nrej = 0, nunclean = 0;
    long tokens = 0;
    FILE *o = out ? fopen(out, "w") : NULL;
    for (int i = 0; i < g_requests; i++) {
        result *r = &g_res[i];
        if (o) fprintf(o, "%d\t%d\t%016llx\t%d\n", i, r->status, (unsigned long long)r->hash, r->tokens);
        nrej += r->rejected;
        nunclean += r->unclean;
        if (r->status == 200) {
            lat[nok] = r->latency;
            ttft[nok] = r->ttft;
            nok++;
            tokens += r->tokens;
        } else if (r->status == 429) n429++;
        else if (r->status == 503) n503++;
        else nother++;
    }
    if (o) fclose(o);
    printf("{\"clients\": %d, \"requests\": %d, \"ok\": %d, \"err_429\": %d, \"err_503\": %d, \"err_other\": %d, "
           "\"wall_s\": %.3f, \"req_per_s\": %.2f, \"tokens\": %ld, \"tok_per_s\": %.1f, \"lat_p50_ms\": %.1f, "
           "\"lat_p99_ms\": %.1f, ",
           g_clients, g_requests, nok, n429, n503, nother, wall, nok / wall, tokens, (double)tokens / wall,
           1e3 * pct(lat, nok, 0.5), 1e3 * pct(lat, nok, 0.99));
    printf("\"ttft_p50_ms\": %.1f, \"ttft_p99_ms\": %.1f, \"rejected_retried\": %d, \"unclean_errors\": %d, "
           "\"max_tokens\": %d}\n",
           1e3 * pct(ttft, nok, 0.5), 1e3 * pct(ttft, nok, 0.99), nrej, nunclean, g_max_tokens);
    return 0;
}
