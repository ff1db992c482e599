/* serve: the HTTP front (libmicrohttpd, one thread per connection) shared
 * by every endpoint: routing to the registered endpoints, bearer-token
 * auth, limits (body size 413, requests in flight 429, draining 503),
 * OpenAI-shaped JSON errors, server-sent event streams, /health,
 * Prometheus /metrics and one JSON access-log line per request.
 *
 * Why a thread per connection: a completion blocks its connection while
 * the batching scheduler produces tokens, and a stream's reader waits for
 * the next token; MHD allows blocking in callbacks only in this mode. The
 * number of threads is bounded by MHD's connection limit, set from
 * --max-concurrent. */
#include "tessera/serve.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void tsr_serve_default_opts(tsr_serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 1 << 20;
    o->max_tokens = 1024;
    o->max_concurrent = 64;
    o->max_batch = 32;
    o->prompt_cache = (size_t)128 << 20;
    o->timeout_s = 120;
    o->stream_interval_s = 0.01;
    o->access_log = true;
}

/* ------------------------------------------------------------ metrics */

static const double k_lat_le[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define N_LAT ((int)(sizeof k_lat_le / sizeof *k_lat_le))

typedef struct {
    uint64_t by_status[500]; /* status 100..599 */
    uint64_t lat[N_LAT + 1]; /* per bucket (not cumulative); last: +Inf */
    double lat_sum;
    uint64_t ttft[N_LAT + 1];
    double ttft_sum;
    uint64_t ttft_n;
} label_stats;

typedef struct {
    const tsr_serve_route *r;
    int ep;
} route_ref;

enum { LBL_HEALTH = 0, LBL_METRICS, LBL_OTHER, LBL_FIRST_ROUTE };

struct tsr_server {
    struct MHD_Daemon *d;
    tsr_serve_opts o;
    char api_key[256];
    const tsr_serve_endpoint *const *eps;
    void *const *states;
    int n_eps;
    pthread_mutex_t *ep_mu; /* per endpoint, for `serialize` */
    route_ref *routes;
    int n_routes;
    atomic_int in_flight;
    atomic_int begun; /* requests whose headers arrived, until their completion */
    atomic_bool draining;
    atomic_int_fast64_t served;
    pthread_mutex_t mu; /* metrics */
    label_stats *lbl;   /* LBL_FIRST_ROUTE + n_routes */
    double t_start;
};

static const char *label_name(const tsr_server *s, int l) {
    if (l == LBL_HEALTH) return "/health";
    if (l == LBL_METRICS) return "/metrics";
    if (l == LBL_OTHER) return "other";
    return s->routes[l - LBL_FIRST_ROUTE].r->path;
}

static int bucket(double v) {
    int b = 0;
    while (b < N_LAT && v > k_lat_le[b]) b++;
    return b;
}

static void hist_out(FILE *f, const char *name, const char *lbl, const uint64_t *h, double sum) {
    uint64_t cum = 0;
    for (int b = 0; b <= N_LAT; b++) {
        cum += h[b];
        if (b < N_LAT) fprintf(f, "%s_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", name, lbl, k_lat_le[b], (unsigned long long)cum);
        else fprintf(f, "%s_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", name, lbl, (unsigned long long)cum);
    }
    fprintf(f, "%s_sum{endpoint=\"%s\"} %.6f\n%s_count{endpoint=\"%s\"} %llu\n", name, lbl, sum, name, lbl,
            (unsigned long long)cum);
}

static char *metrics_text(tsr_server *s, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    int nl = LBL_FIRST_ROUTE + s->n_routes;
    pthread_mutex_lock(&s->mu);
    fprintf(f, "# HELP tessera_requests_total HTTP requests by endpoint and status.\n"
               "# TYPE tessera_requests_total counter\n");
    for (int l = 0; l < nl; l++)
        for (int c = 0; c < 500; c++)
            if (s->lbl[l].by_status[c])
                fprintf(f, "tessera_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", label_name(s, l), c + 100,
                        (unsigned long long)s->lbl[l].by_status[c]);
    fprintf(f, "# HELP tessera_request_duration_seconds Request latency, arrival to last byte.\n"
               "# TYPE tessera_request_duration_seconds histogram\n");
    for (int l = 0; l < nl; l++) hist_out(f, "tessera_request_duration_seconds", label_name(s, l), s->lbl[l].lat, s->lbl[l].lat_sum);
    fprintf(f, "# HELP tessera_time_to_first_token_seconds Arrival to the first generated token.\n"
               "# TYPE tessera_time_to_first_token_seconds histogram\n");
    for (int l = LBL_FIRST_ROUTE; l < nl; l++)
        if (s->lbl[l].ttft_n)
            hist_out(f, "tessera_time_to_first_token_seconds", label_name(s, l), s->lbl[l].ttft, s->lbl[l].ttft_sum);
    pthread_mutex_unlock(&s->mu);
    fprintf(f, "# HELP tessera_requests_in_flight Requests being served.\n# TYPE tessera_requests_in_flight gauge\n"
               "tessera_requests_in_flight %d\n", atomic_load(&s->in_flight));
    fprintf(f, "# HELP tessera_uptime_seconds Seconds since start.\n# TYPE tessera_uptime_seconds gauge\n"
               "tessera_uptime_seconds %.3f\n", tsr_time() - s->t_start);
    for (int e = 0; e < s->n_eps; e++)
        if (s->eps[e]->metrics) s->eps[e]->metrics(s->states[e], f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------ connections */

typedef struct {
    double t0;
    char *body;
    size_t len, cap;
    bool too_big;
    bool counted; /* holds a slot of in_flight */
    bool late;    /* its headers arrived after draining began */
    int status;
    int label;
    char method[8];
    char path[96];
    char remote[64];
    tsr_serve_usage usage;
} conn;

typedef struct {
    tsr_serve_reply rp;
    conn *c;
    bool done;
} stream_ctx;

static const char *default_error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static enum MHD_Result send_body(struct MHD_Connection *mc, conn *c, int status, char *body, size_t len,
                                 const char *ctype, bool close) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    if (close) MHD_add_response_header(r, "Connection", "close");
    c->status = status;
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *mc, conn *c, int status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    size_t n = strlen(s);
    char *b = realloc(s, n + 2);
    if (!b) {
        free(s);
        return MHD_NO;
    }
    b[n] = '\n';
    b[n + 1] = 0;
    return send_body(mc, c, status, b, n + 1, "application/json", false);
}

static enum MHD_Result send_error(struct MHD_Connection *mc, conn *c, int status, const char *type,
                                  const char *param, const char *code, const char *msg) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type ? type : default_error_type(status));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    return send_json(mc, c, status, j);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *x = cls;
    ssize_t n = x->rp.stream_read(x->rp.stream, buf, max);
    if (n == 0) {
        x->done = true;
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls) {
    stream_ctx *x = cls;
    x->rp.stream_free(x->rp.stream, x->done);
    free(x);
}

static bool authorized(tsr_server *s, struct MHD_Connection *mc) {
    if (!s->api_key[0]) return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t a = strlen(h), b = strlen(s->api_key);
    /* compare every byte, so the time does not tell how much matched */
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(s->api_key[i] ^ (i < a ? h[i] : 0));
    return diff == 0;
}

static enum MHD_Result dispatch(tsr_server *s, struct MHD_Connection *mc, conn *c) {
    if (strcmp(c->path, "/health") == 0) {
        c->label = LBL_HEALTH;
        bool dr = atomic_load(&s->draining);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "status", dr ? "draining" : "ok");
        return send_json(mc, c, dr ? 503 : 200, j);
    }
    if (strcmp(c->path, "/metrics") == 0) c->label = LBL_METRICS;
    else {
        c->label = LBL_OTHER;
        for (int i = 0; i < s->n_routes; i++)
            if (strcmp(s->routes[i].r->path, c->path) == 0) c->label = LBL_FIRST_ROUTE + i;
    }
    if (!authorized(s, mc))
        return send_error(mc, c, 401, NULL, NULL, "invalid_api_key",
                          "missing or wrong API key: send the header 'Authorization: Bearer <key>'");
    /* a request that arrived before the drain began is served: SIGTERM
     * lets everything already received finish */
    if (c->late) return send_error(mc, c, 503, NULL, NULL, "shutting_down", "the server is shutting down");
    if (c->too_big) {
        char m[128];
        snprintf(m, sizeof m, "the body exceeds the limit of %zu bytes (--max-body)", s->o.max_body);
        return send_error(mc, c, 413, NULL, NULL, "body_too_large", m);
    }
    if (c->label == LBL_METRICS) {
        if (strcmp(c->method, "GET") != 0) return send_error(mc, c, 405, NULL, NULL, NULL, "/metrics takes GET");
        size_t n = 0;
        char *t = metrics_text(s, &n);
        if (!t) return send_error(mc, c, 500, NULL, NULL, NULL, "out of memory");
        return send_body(mc, c, 200, t, n, "text/plain; version=0.0.4", false);
    }
    const route_ref *rr = NULL;
    bool path_known = false;
    for (int i = 0; i < s->n_routes && !rr; i++)
        if (strcmp(s->routes[i].r->path, c->path) == 0) {
            path_known = true;
            if (strcmp(s->routes[i].r->method, c->method) == 0) rr = &s->routes[i];
        }
    if (!rr) {
        char m[192];
        if (path_known) snprintf(m, sizeof m, "%s does not take %s", c->path, c->method);
        else snprintf(m, sizeof m, "no endpoint %.96s (see GET /v1/models, POST /v1/completions)", c->path);
        return send_error(mc, c, path_known ? 405 : 404, NULL, NULL, NULL, m);
    }
    char field[64];
    if (c->body && tsr_serve_body_has_nul(c->body, c->len, field)) {
        char m[160];
        if (field[0]) snprintf(m, sizeof m, "'%s' holds a NUL character (\\u0000), which no text field takes", field);
        else snprintf(m, sizeof m, "the body holds a NUL character (\\u0000 or a raw 0 byte); send text without one");
        return send_error(mc, c, 400, NULL, field[0] ? field : NULL, NULL, m);
    }
    if (atomic_fetch_add(&s->in_flight, 1) >= s->o.max_concurrent) {
        atomic_fetch_sub(&s->in_flight, 1);
        return send_error(mc, c, 429, NULL, NULL, "too_many_requests",
                          "too many requests in flight (--max-concurrent); retry later");
    }
    c->counted = true;

    tsr_serve_request rq = {c->method, c->path, c->body ? c->body : "", c->len, c->t0 + s->o.timeout_s, &c->usage};
    tsr_serve_reply rp;
    memset(&rp, 0, sizeof rp);
    const tsr_serve_endpoint *ep = s->eps[rr->ep];
    tsr_threads_adopt(); /* a connection's thread computes with --threads */
    if (ep->serialize) pthread_mutex_lock(&s->ep_mu[rr->ep]);
    rr->r->handle(s->states[rr->ep], &rq, &rp);
    if (ep->serialize) pthread_mutex_unlock(&s->ep_mu[rr->ep]);

    if (rp.stream_read) {
        stream_ctx *x = calloc(1, sizeof *x);
        struct MHD_Response *r = x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, x, stream_free) : NULL;
        if (!r) {
            rp.stream_free(rp.stream, false);
            free(x);
            return send_error(mc, c, 500, NULL, NULL, NULL, "out of memory");
        }
        x->rp = rp;
        x->c = c;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        c->status = 200;
        enum MHD_Result ok = MHD_queue_response(mc, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    if (rp.status >= 400 || !rp.body) {
        free(rp.body);
        int st = rp.status >= 400 ? rp.status : 500;
        return send_error(mc, c, st, rp.error_type, rp.error_param[0] ? rp.error_param : NULL, NULL, rp.error[0] ? rp.error : "internal error");
    }
    size_t n = strlen(rp.body);
    return send_body(mc, c, rp.status ? rp.status : 200, rp.body, n, "application/json", false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    tsr_server *s = cls;
    conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *con_cls = c;
        atomic_fetch_add(&s->begun, 1);
        c->late = atomic_load(&s->draining);
        c->t0 = tsr_time();
        c->label = LBL_OTHER;
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->path, sizeof c->path, "%s", url);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr, c->remote,
                      sizeof c->remote);
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            c->too_big = true;
            return dispatch(s, mc, c); /* 413 without reading the body */
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_big || c->len + n > s->o.max_body) {
            c->too_big = true;
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = (c->len + n + 1) * 2;
            if (cap > s->o.max_body + 1) cap = s->o.max_body + 1;
            char *b = realloc(c->body, cap);
            if (!b) return MHD_NO;
            c->body = b;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        c->body[c->len] = 0;
        return MHD_YES;
    }
    if (c->status) return MHD_YES; /* already answered */
    return dispatch(s, mc, c);
}

static void log_line(tsr_server *s, const conn *c, double dt) {
    cJSON *j = cJSON_CreateObject();
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03ldZ", now.tv_nsec / 1000000);
    cJSON_AddStringToObject(j, "time", ts);
    cJSON_AddStringToObject(j, "remote", c->remote);
    cJSON_AddStringToObject(j, "method", c->method);
    cJSON_AddStringToObject(j, "path", c->path);
    cJSON_AddNumberToObject(j, "status", c->status);
    cJSON_AddNumberToObject(j, "ms", (double)(int64_t)(dt * 1e4) / 10.0);
    cJSON_AddNumberToObject(j, "bytes_in", (double)c->len);
    if (c->usage.model[0]) cJSON_AddStringToObject(j, "model", c->usage.model);
    if (c->usage.decoder[0]) cJSON_AddStringToObject(j, "decoder", c->usage.decoder);
    if (c->usage.prompt_tokens || c->usage.completion_tokens) {
        cJSON_AddNumberToObject(j, "prompt_tokens", c->usage.prompt_tokens);
        cJSON_AddNumberToObject(j, "completion_tokens", c->usage.completion_tokens);
    }
    if (c->usage.ttft_s > 0) cJSON_AddNumberToObject(j, "ttft_ms", (double)(int64_t)(c->usage.ttft_s * 1e4) / 10.0);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    (void)s;
    if (t) {
        /* one write per line, so lines from different threads never mix */
        size_t n = strlen(t);
        t[n] = '\n';
        ssize_t w = write(STDERR_FILENO, t, n + 1);
        (void)w;
        free(t);
    }
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)mc;
    tsr_server *s = cls;
    conn *c = *con_cls;
    if (!c) return;
    *con_cls = NULL;
    double dt = tsr_time() - c->t0;
    if (!c->status) c->status = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499; /* never answered */
    pthread_mutex_lock(&s->mu);
    label_stats *ls = &s->lbl[c->label];
    if (c->status >= 100 && c->status < 600) ls->by_status[c->status - 100]++;
    ls->lat[bucket(dt)]++;
    ls->lat_sum += dt;
    if (c->usage.ttft_s > 0) {
        ls->ttft[bucket(c->usage.ttft_s)]++;
        ls->ttft_sum += c->usage.ttft_s;
        ls->ttft_n++;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->o.access_log) log_line(s, c, dt);
    if (c->counted) atomic_fetch_sub(&s->in_flight, 1);
    atomic_fetch_sub(&s->begun, 1);
    atomic_fetch_add(&s->served, 1);
    free(c->body);
    free(c);
}

/* ------------------------------------------------------------ life cycle */

tsr_status tsr_server_start(tsr_server **out, const tsr_serve_opts *o, const tsr_serve_endpoint *const *eps,
                            void *const *states, int n_eps, int *port) {
    *out = NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, o->host, &addr.sin_addr) != 1)
        return tsr_errorf(TSR_ERR_ARG, "serve: --host '%s' is not an IPv4 address", o->host);
    if (o->port < 0 || o->port > 65535) return tsr_errorf(TSR_ERR_ARG, "serve: --port %d outside 0..65535", o->port);
    if (o->api_key && strlen(o->api_key) >= 256) return tsr_errorf(TSR_ERR_ARG, "serve: the API key is longer than 255 bytes");
    tsr_server *s = calloc(1, sizeof *s);
    if (!s) return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    s->o = *o;
    if (o->api_key) snprintf(s->api_key, sizeof s->api_key, "%s", o->api_key);
    s->eps = eps;
    s->states = states;
    s->n_eps = n_eps;
    s->t_start = tsr_time();
    pthread_mutex_init(&s->mu, NULL);
    s->ep_mu = calloc((size_t)(n_eps ? n_eps : 1), sizeof *s->ep_mu);
    int nr = 0;
    for (int e = 0; e < n_eps; e++)
        for (int i = 0; i < TSR_SERVE_MAX_ROUTES && eps[e]->routes[i].method; i++) nr++;
    s->routes = calloc((size_t)(nr ? nr : 1), sizeof *s->routes);
    s->lbl = calloc((size_t)(LBL_FIRST_ROUTE + nr), sizeof *s->lbl);
    if (!s->ep_mu || !s->routes || !s->lbl) {
        tsr_server_free(s);
        return tsr_errorf(TSR_ERR_NOMEM, "serve: out of memory");
    }
    for (int e = 0; e < n_eps; e++) {
        pthread_mutex_init(&s->ep_mu[e], NULL);
        for (int i = 0; i < TSR_SERVE_MAX_ROUTES && eps[e]->routes[i].method; i++) {
            const tsr_serve_route *r = &eps[e]->routes[i];
            for (int k = 0; k < s->n_routes; k++)
                if (strcmp(s->routes[k].r->path, r->path) == 0 && strcmp(s->routes[k].r->method, r->method) == 0) {
                    tsr_server_free(s);
                    return tsr_errorf(TSR_ERR_ARG, "serve: two endpoints claim %s %s", r->method, r->path);
                }
            s->routes[s->n_routes++] = (route_ref){r, e};
        }
    }
    /* connections beyond --max-concurrent still get a clean 429, up to
     * this many; past it MHD refuses them at accept */
    unsigned limit = (unsigned)o->max_concurrent * 2u + 16u;
    /* MHD counts time spent blocked in our callbacks (a queued request
     * waiting for its first token) as idleness: the idle limit must exceed
     * the request timeout, which bounds a request's life anyway */
    unsigned idle = (unsigned)(o->timeout_s + 30.0);
    s->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, 0, NULL,
                            NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                            MHD_OPTION_END);
    if (!s->d) {
        tsr_server_free(s);
        return tsr_errorf(TSR_ERR_IO, "serve: cannot listen on %s:%d (in use, or not an address of this machine)",
                          o->host, o->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    if (port) *port = di ? di->port : o->port;
    *out = s;
    return tsr_ok();
}

int tsr_server_drain(tsr_server *s, double grace_s) {
    atomic_store(&s->draining, true);
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double t_end = tsr_time() + grace_s;
    /* wait for every request already received, not only those that have
     * reached an endpoint: one still sending its body, or whose thread
     * has not run yet, would otherwise be cut when the daemon stops */
    while (atomic_load(&s->begun) > 0 && tsr_time() < t_end) usleep(10000);
    return atomic_load(&s->begun);
}

void tsr_server_free(tsr_server *s) {
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    if (s->ep_mu)
        for (int e = 0; e < s->n_eps; e++) pthread_mutex_destroy(&s->ep_mu[e]);
    free(s->ep_mu);
    free(s->routes);
    free(s->lbl);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
