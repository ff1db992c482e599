/* tessera CLI: `tessera serve`, one HTTP server for every family's
 * endpoints (src/serve). The table below lists the endpoints served; a
 * family that offers one adds its descriptor (a tsr_serve_endpoint defined
 * in its own folder) here. Each descriptor's model files become flags
 * (--lm DIR, --space DIR, ...), with its shipped defaults.
 *
 * SIGTERM and SIGINT drain: new requests get 503, those in flight finish
 * (up to --timeout), then the process exits 0. */
#include "cli/args.h"
#include "tessera/apt.h"
#include "tessera/bigr.h"
#include "tessera/ebrm.h"
#include "tessera/elm.h"
#include "tessera/higen.h"
#include "tessera/narformer.h"
#include "tessera/ovadetr.h"
#include "tessera/serve.h"
#include "tessera/ctnet.h"

#include <arpa/inet.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const tsr_serve_endpoint *const k_endpoints[] = {
    &tsr_serve_llm_endpoint,
    &tsr_ebrm_serve_endpoint,
    &tsr_higen_serve_endpoint,
    &tsr_narformer_serve_endpoint,
    &tsr_ctnet_serve_endpoint,
    &tsr_ovadetr_serve_endpoint,
    &tsr_apt_serve_endpoint,
    &tsr_bigr_serve_endpoint,
    &tsr_elm_serve_endpoint,
    /* families add their endpoint here */
    NULL,
};

#define N_EPS ((int)(sizeof k_endpoints / sizeof *k_endpoints) - 1)
#define MAX_FLAGS (N_EPS * TSR_SERVE_MAX_MODELS)

static int cmd_serve(const char *prog, int argc, char **argv) {
    tsr_serve_opts o;
    tsr_serve_default_opts(&o);
    const char *host = o.host, *api_key = NULL;
    int port = o.port, max_tokens = o.max_tokens, max_conc = o.max_concurrent, max_batch = o.max_batch;
    int64_t max_body = (int64_t)o.max_body, prompt_cache = (int64_t)(o.prompt_cache >> 20);
    float timeout = (float)o.timeout_s, stream_ms = (float)(o.stream_interval_s * 1e3);
    bool quiet = false;
    cli_common cm = {0, 0, false};
    const char *paths[MAX_FLAGS + 1];
    char helps[MAX_FLAGS + 1][256];
    memset(paths, 0, sizeof paths);

    arg_spec specs[16 + MAX_FLAGS];
    int ns = 0;
    specs[ns++] = (arg_spec){"host", ARG_STR, &host, "ADDR", "IPv4 address to bind (127.0.0.1: this machine only)", NULL};
    specs[ns++] = (arg_spec){"port", ARG_INT, &port, "N", "TCP port (0: any free one)", NULL};
    specs[ns++] = (arg_spec){"api-key", ARG_STR, &api_key, "KEY",
                             "require 'Authorization: Bearer KEY' on every endpoint but /health (default: $TESSERA_API_KEY)", NULL};
    specs[ns++] = (arg_spec){"max-body", ARG_I64, &max_body, "BYTES", "largest request body (413 beyond)", NULL};
    specs[ns++] = (arg_spec){"max-tokens", ARG_INT, &max_tokens, "N", "largest max_tokens a request may ask for (400 beyond)", NULL};
    specs[ns++] = (arg_spec){"max-concurrent", ARG_INT, &max_conc, "N", "requests in flight (429 beyond)", NULL};
    specs[ns++] = (arg_spec){"max-batch", ARG_INT, &max_batch, "N", "sequences decoded together (more wait in a queue)", NULL};
    specs[ns++] = (arg_spec){"prompt-cache", ARG_I64, &prompt_cache, "MIB",
                             "KV of finished sequences kept for requests that share a token prefix (0: off; reserved at start)", NULL};
    specs[ns++] = (arg_spec){"timeout", ARG_FLOAT, &timeout, "S", "per-request limit in seconds (503 beyond); also the drain grace", NULL};
    specs[ns++] = (arg_spec){"stream-interval", ARG_FLOAT, &stream_ms, "MS",
                             "a streamed completion's new text goes out at most this often, its first text and its end at once "
                             "(0: every token)", NULL};
    specs[ns++] = (arg_spec){"quiet", ARG_BOOL, &quiet, NULL, "no access log (one JSON line per request on stderr)", NULL};
    specs[ns++] = (arg_spec)CLI_COMMON_THREADS(&cm);
    int first_model = ns;
    for (int e = 0; e < N_EPS; e++)
        for (int i = 0; i < TSR_SERVE_MAX_MODELS && k_endpoints[e]->models[i].flag; i++) {
            const tsr_serve_model_arg *a = &k_endpoints[e]->models[i];
            int f = ns - first_model;
            if (a->default_path) snprintf(helps[f], sizeof helps[f], "%s (default: %s; 'none': off)", a->help, a->default_path);
            else snprintf(helps[f], sizeof helps[f], "%s (default: %s)", a->help, a->default_note ? a->default_note : "off");
            specs[ns++] = (arg_spec){a->flag, ARG_MODEL, &paths[f], a->metavar, helps[f], NULL};
        }
    const char *summary = "Serve every loaded model over HTTP: OpenAI-compatible POST /v1/completions and GET /v1/models "
                          "(continuous batching, bit-identical to serving each request alone), GET /health, GET /metrics "
                          "(Prometheus), and each family's endpoint. Models: every shipped default, or, once a model flag "
                          "names a file, only the endpoints whose flags are named ('--lm none' serves no language model). "
                          "Loopback only unless --host says otherwise.";
    int rc = args_parse(prog, summary, specs, ns, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!api_key) api_key = getenv("TESSERA_API_KEY");
    if (port < 0 || port > 65535) return cli_usage_error(prog, "--port must be in 0..65535");
    struct in_addr host_addr; /* before any model loads */
    if (inet_pton(AF_INET, host, &host_addr) != 1)
        return cli_usage_error(prog, "--host must be an IPv4 address such as 127.0.0.1 or 0.0.0.0, got '%s'", host);
    if (max_body < 1 || max_body > (int64_t)1 << 30) return cli_usage_error(prog, "--max-body must be in 1..1073741824");
    if (max_tokens < 1) return cli_usage_error(prog, "--max-tokens must be >= 1");
    if (max_conc < 1 || max_conc > 4096) return cli_usage_error(prog, "--max-concurrent must be in 1..4096");
    if (max_batch < 1 || max_batch > 1024) return cli_usage_error(prog, "--max-batch must be in 1..1024");
    if (prompt_cache < 0 || prompt_cache > (int64_t)1 << 20) return cli_usage_error(prog, "--prompt-cache must be in 0..1048576 (MiB)");
    if (!(timeout > 0)) return cli_usage_error(prog, "--timeout must be > 0");
    if (!(stream_ms >= 0 && stream_ms <= 1000)) return cli_usage_error(prog, "--stream-interval must be in 0..1000 (ms)");
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    tsr_step_team_tuning(true); /* one-token steps may run on fewer threads when a busy core slows the team */
    o.host = host;
    o.port = port;
    o.api_key = api_key && *api_key ? api_key : NULL;
    o.max_body = (size_t)max_body;
    o.max_tokens = max_tokens;
    o.max_concurrent = max_conc;
    o.max_batch = max_batch;
    o.prompt_cache = (size_t)prompt_cache << 20;
    o.timeout_s = timeout;
    o.stream_interval_s = stream_ms * 1e-3;
    o.access_log = !quiet;

    /* every thread started from here on inherits this mask: the signals
     * are taken by sigwait below, never by a worker */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Which models load: when a model flag names a file, only the
     * endpoints whose flags were named are on (each with its other shipped
     * defaults); when none does, every endpoint with its shipped defaults.
     * Within an endpoint the first model is the main one: when it is off
     * ('none', or its shipped file is missing), the other models load only
     * when named. */
    bool any_named = false, named[N_EPS + 1];
    for (int e = 0, f = 0; e < N_EPS; e++) {
        named[e] = false;
        for (int i = 0; i < TSR_SERVE_MAX_MODELS && k_endpoints[e]->models[i].flag; i++, f++)
            if (paths[f] && strcmp(paths[f], "none") != 0) named[e] = any_named = true;
    }
    void *states[N_EPS + 1] = {0};
    char found[MAX_FLAGS + 1][4096];
    int loaded = 0, f = 0;
    tsr_status st = tsr_ok();
    for (int e = 0; e < N_EPS && !st.code; e++) {
        const tsr_serve_endpoint *ep = k_endpoints[e];
        const char *p[TSR_SERVE_MAX_MODELS] = {0};
        bool defaults = !any_named || named[e];
        char what[512] = "";
        for (int i = 0; i < TSR_SERVE_MAX_MODELS && ep->models[i].flag; i++, f++) {
            const tsr_serve_model_arg *a = &ep->models[i];
            if (paths[f] && strcmp(paths[f], "none") == 0) continue;
            if (paths[f]) p[i] = paths[f];
            else if (!defaults || !a->default_path || (i > 0 && !p[0])) continue;
            else if (cli_find_shipped(a->default_path, found[f], sizeof found[f])) p[i] = found[f];
            else fprintf(stderr, "%s: note: the shipped %s was not found; --%s is off\n", prog, a->default_path, a->flag);
            if (p[i]) {
                size_t l = strlen(what);
                snprintf(what + l, sizeof what - l, "%s%s", l ? ", " : "", p[i]);
            }
        }
        fprintf(stderr, "%s: %s: %s\n", prog, ep->name, what[0] ? what : "off");
        st = ep->load(&states[e], p, &o);
        if (!st.code) loaded++;
    }
    if (st.code) {
        /* the loaded ones and the one that failed (its state: NULL or one its unload frees) */
        for (int e = 0; e <= loaded && e < N_EPS; e++) k_endpoints[e]->unload(states[e]);
        return cli_fail(st, "name the model files with the flags in 'tessera serve --help'");
    }

    tsr_server *srv = NULL;
    int bound = 0;
    st = tsr_server_start(&srv, &o, k_endpoints, states, N_EPS, &bound);
    if (st.code) {
        for (int e = 0; e < N_EPS; e++) k_endpoints[e]->unload(states[e]);
        return cli_fail(st, "pick another --port (0: any free one)");
    }
    printf("{\"listening\": \"http://%s:%d\", \"port\": %d, \"auth\": %s}\n", host, bound, bound,
           o.api_key ? "true" : "false");
    fflush(stdout);
    fprintf(stderr, "%s: listening on http://%s:%d (SIGTERM or Ctrl-C drains and exits)\n", prog, host, bound);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "%s: %s: draining requests in flight\n", prog, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    int left = tsr_server_drain(srv, o.timeout_s);
    tsr_server_free(srv);
    for (int e = 0; e < N_EPS; e++) k_endpoints[e]->unload(states[e]);
    if (left) fprintf(stderr, "%s: %d requests were still running after %.0f s and were cut\n", prog, left, o.timeout_s);
    fprintf(stderr, "%s: stopped\n", prog);
    return CLI_OK;
}

const cli_command cli_command_serve = {"serve", "HTTP server: OpenAI-compatible completions and every family's endpoints",
                                       cmd_serve};
