/* tessera serve: one HTTP server (src/serve, on libmicrohttpd) for every
 * family, and the descriptor through which a family offers endpoints.
 *
 * The server knows no family by name. A family that serves defines, in its
 * own folder, a `const tsr_serve_endpoint` (its routes, the model files it
 * loads and the command-line flags naming them, a load/unload pair and one
 * handler per route); `tessera serve` lists it in its table
 * (src/cli/cmd_serve.c). This header holds only plain types, so a family
 * includes it without linking the server or libmicrohttpd.
 *
 * Contracts
 * - A handler is called with the whole request body (at most --max-body
 *   bytes) and fills a tsr_serve_reply: either a JSON body (malloc'd; the
 *   server frees it) with a status, or an error (status 4xx/5xx plus a
 *   one-line message, sent in OpenAI's {"error": {...}} shape), or a stream
 *   (server-sent events): the server calls stream_read until it returns 0
 *   (done) or < 0 (abort), then stream_free exactly once, also when the
 *   client went away mid-stream.
 * - Handlers run on the connection's thread, several at once unless the
 *   endpoint sets `serialize` (then one at a time per endpoint).
 * - A handler never crashes on bad input: it answers 400 with a message.
 * - The request parser of the completions API (tsr_serve_parse_completion)
 *   is a pure function: bytes in, a request or a message out.
 */
#ifndef TESSERA_SERVE_H
#define TESSERA_SERVE_H

#include "tessera/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* ------------------------------------------------------------ endpoints */

/* What the server tells the access log and metrics about one request;
 * handlers fill what applies (streams may update it while they run). */
typedef struct {
    int prompt_tokens, completion_tokens;
    char model[64];
    char decoder[16];
    double ttft_s; /* time to first token (0: none) */
} tsr_serve_usage;

typedef struct {
    const char *method;  /* "GET", "POST" */
    const char *path;    /* "/v1/completions" */
    const char *body;    /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    double deadline;     /* tsr_time() by which the reply should be complete */
    tsr_serve_usage *usage;
} tsr_serve_request;

typedef struct {
    int status;          /* HTTP status (200 when left 0 with a body) */
    char *body;          /* malloc'd JSON, freed by the server */
    /* error: status >= 400 and a message; type defaults from the status */
    char error[256];
    const char *error_type;  /* "invalid_request_error", ... (NULL: from the status) */
    char error_param[64];    /* the offending field, or "" */
    /* stream (text/event-stream): read fills buf with up to cap bytes,
     * blocking until some are ready; returns bytes, 0 at the end, < 0 to
     * abort. free is called once, completed false when the client left. */
    ssize_t (*stream_read)(void *stream, char *buf, size_t cap);
    void (*stream_free)(void *stream, bool completed);
    void *stream;
} tsr_serve_reply;

struct tsr_serve_opts;

typedef void (*tsr_serve_handler)(void *state, const tsr_serve_request *rq, tsr_serve_reply *rp);

/* A model file an endpoint loads: `--<flag> PATH`, default_path (relative
 * to the working directory or the checkout, like the other shipped models)
 * when not given; NULL default: optional, absent unless given (the
 * endpoint may then find it itself: default_note says how, for --help). */
typedef struct {
    const char *flag;
    const char *metavar;
    const char *help;
    const char *default_path;
    const char *default_note; /* NULL: "off" */
} tsr_serve_model_arg;

#define TSR_SERVE_MAX_ROUTES 8
#define TSR_SERVE_MAX_MODELS 6

typedef struct {
    const char *method, *path;
    tsr_serve_handler handle;
} tsr_serve_route;

typedef struct tsr_serve_endpoint {
    const char *name;    /* "llm", "ctr", ...: labels in logs and metrics */
    const char *summary;
    tsr_serve_model_arg models[TSR_SERVE_MAX_MODELS]; /* flag NULL ends the list */
    /* paths[i] is the file for models[i] (NULL when optional and absent);
     * opts: the server's options (limits the endpoint should honour). On
     * failure *state is NULL or a state that unload frees: the caller
     * unloads it either way. unload takes NULL. */
    tsr_status (*load)(void **state, const char *const *paths, const struct tsr_serve_opts *opts);
    void (*unload)(void *state);
    /* optional: more Prometheus lines (cache hit rates, ...) */
    void (*metrics)(void *state, FILE *out);
    tsr_serve_route routes[TSR_SERVE_MAX_ROUTES]; /* method NULL ends the list */
    bool serialize;
} tsr_serve_endpoint;

/* ------------------------------------------------------------ server */

typedef struct tsr_serve_opts {
    const char *host;      /* "127.0.0.1" */
    int port;              /* 8080; 0 picks a free one */
    const char *api_key;   /* NULL or "": no auth */
    size_t max_body;       /* bytes (413 beyond) */
    int max_tokens;        /* largest max_tokens a request may ask for */
    int max_concurrent;    /* requests in flight (429 beyond) */
    int max_batch;         /* sequences decoded together */
    size_t prompt_cache;   /* bytes of finished sequences' KV kept for reuse by
                              requests sharing a token prefix; 0: off */
    double timeout_s;      /* per request (503 when exceeded) */
    double stream_interval_s; /* a streamed completion's new text is sent at
                              most this often (its first text and its end at
                              once); 0: every token as it comes */
    bool access_log;       /* one JSON line per request on stderr */
} tsr_serve_opts;

void tsr_serve_default_opts(tsr_serve_opts *o);

typedef struct tsr_server tsr_server;

/* Starts listening (threads of its own) with the endpoints' loaded states
 * (states[i] for eps[i]). *port gets the bound port. */
tsr_status tsr_server_start(tsr_server **out, const tsr_serve_opts *o, const tsr_serve_endpoint *const *eps,
                            void *const *states, int n_eps, int *port);
/* Stops taking requests (new ones get 503), waits up to grace_s for those
 * in flight, then stops. Returns the number still in flight at the end. */
int tsr_server_drain(tsr_server *s, double grace_s);
void tsr_server_free(tsr_server *s);

/* ------------------------------------------------------------ completions API */

#define TSR_SERVE_MAX_STOP 4

typedef enum {
    TSR_DEC_PLAIN = 0,
    TSR_DEC_SPACE,
    TSR_DEC_BITA,
    TSR_DEC_NGRAM,
    TSR_DEC_COUNT
} tsr_serve_decoder;

const char *tsr_serve_decoder_name(tsr_serve_decoder d);

typedef struct {
    char *prompt;            /* malloc'd */
    char model[64];          /* "" when absent */
    int decoder;             /* tsr_serve_decoder, -1 when absent */
    int max_tokens;          /* 16 when absent (OpenAI's default) */
    float temperature;       /* 1 */
    float top_p;             /* 1 */
    int top_k;               /* 0: off */
    uint64_t seed;
    bool has_seed;
    bool stream;
    bool include_usage;      /* stream_options.include_usage */
    int n_stop;
    char *stop[TSR_SERVE_MAX_STOP]; /* malloc'd, non-empty */
} tsr_serve_completion;

/* Parses a /v1/completions body. On failure returns TSR_ERR_ARG with a
 * one-line message and writes the offending field to param ("" when the
 * body as a whole is wrong; at most 63 bytes). Never
 * reads past len; accepts OpenAI's optional fields that do not change the
 * result here (user, n = 1, echo = false, logprobs = null, ...) and rejects
 * unknown ones. */
tsr_status tsr_serve_parse_completion(tsr_serve_completion *c, const char *body, size_t len, char param[64]);
void tsr_serve_completion_free(tsr_serve_completion *c);

/* Whether a JSON body holds a NUL character in a string, escaped (\u0000)
 * or raw: every endpoint reads its text members as C strings (cJSON's),
 * which would end there, so "a\u0000b" would be served as "a". field gets
 * the member it is in (a string value: the last member name before it; a
 * member name: that name up to the NUL), printable and cut to 63 bytes;
 * "" for a raw NUL outside any string. Only a JSON body (an object or an
 * array) is read: /v1/latency takes an ONNX file's bytes. The server
 * answers 400 before any handler when it is true; never reads past n
 * (fuzz/fuzz_serve_nul.c). */
bool tsr_serve_body_has_nul(const char *body, size_t n, char field[64]);

/* A client-given name (e.g. an unknown JSON field) for a one-line message:
 * copied into out (at most cap - 1 bytes, always terminated) with every
 * control byte (< 0x20 and 0x7f; JSON's "\n" escape reaches a key as a raw
 * newline) shown as '?'. Header-only, so model endpoints below the server
 * library share it. */
static inline void tsr_serve_printable(char *out, size_t cap, const char *s) {
    size_t n = 0;
    if (cap == 0) return;
    for (; s && *s && n < cap - 1; s++) out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    out[n] = '\0';
}

/* A served model's name in replies and metrics: the file name of path
 * without its folder and extension ("models/ovadetr.safetensors" ->
 * "ovadetr"), at most cap - 1 bytes. Header-only, as above. */
static inline void tsr_serve_model_name(char *out, size_t cap, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%.*s", (int)strcspn(b, "."), b);
}

/* An error reply: status, the offending parameter (NULL: none) and a
 * printf-style one-line message. Header-only, as above. */
static inline void tsr_serve_fail(tsr_serve_reply *rp, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void tsr_serve_fail(tsr_serve_reply *rp, int status, const char *param, const char *fmt, ...) {
    rp->status = status;
    snprintf(rp->error_param, sizeof rp->error_param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp->error, sizeof rp->error, fmt, ap);
    va_end(ap);
}

/* The LLM endpoints (/v1/completions, /v1/models): src/serve/llm.c. */
extern const tsr_serve_endpoint tsr_serve_llm_endpoint;

#endif
