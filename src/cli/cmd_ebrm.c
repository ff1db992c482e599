/* tessera CLI: `tessera ebrm train|score|rank|explain|eval|bench` —
 * entity-based relevance re-ranking of the BM25 top-100 over the Debian
 * catalog (src/models/ebrm) and its baselines: the full-text
 * cross-encoder, the bi-encoder of the search module, BM25. Results on
 * stdout (JSON with --json), progress on stderr. */
#include "cli/args.h"

#include "tessera/ebrm.h"

#include <unistd.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the shipped copy of the Debian catalog (tools/pack_debian_catalog.py),
 * found from any working directory like the shipped models */
#define DEFAULT_CATALOG "models/debian-catalog"
#define DEFAULT_MODEL "models/ebrm-debian/ebrm.safetensors"
#define DEFAULT_CROSS "models/ebrm-debian/cross.safetensors"
#define DEFAULT_BIENC "models/higen-debian/encoder.safetensors"
#define QFILE_HINT "each line must be {\"query\": str, \"relevant\": [item ids], \"user\": optional}"
#define CATALOG_HINT "--catalog must be the Debian catalog directory (packages.jsonl.gz, appstream.jsonl.gz, virtual-package-names-list.yaml.gz)"
#define N_CAND 100

int cli_ebrm_train(const char *prog, int argc, char **argv);

enum { M_EBRM, M_CROSS, M_BIENC, M_BM25, M_COUNT };
static const char *const k_methods[M_COUNT] = {"ebrm", "cross-encoder", "bi-encoder", "bm25"};

static char **fix_short_k(int argc, char **argv) {
    char **v = malloc((size_t)(argc + 1) * sizeof *v);
    TSR_ASSERT(v);
    for (int i = 0; i < argc; i++) v[i] = strcmp(argv[i], "-k") == 0 ? "--k" : argv[i];
    v[argc] = NULL;
    return v;
}

/* ----------------------------------------------------------- the setting */

/* What every verb loads: the catalog, the entities, one BM25 index per set
 * of hidden fields (built when first needed), and the method's model. */
typedef struct {
    tsr_catalog cat;
    tsr_ebrm_entities E;
    tsr_bm25 ix[2]; /* 0: every field; 1: without debtags (the debtags construction) */
    bool have_ix[2];
    float k1, b;
    int method;
    tsr_ebrm_model m;   /* ebrm / cross-encoder */
    tsr_benc be;        /* bi-encoder */
    tsr_bpe be_bpe;
    float *be_emb;      /* n_items x dim, valid where be_have */
    uint8_t *be_have;
    bool have_m, have_be;
    bool fuse_post;     /* eval --fuse-alpha on a model without its own fusion */
    float post_alpha;
    int post_norm;      /* its TSR_EBRM_LEX_* */
    bool bi_fuse;       /* eval --fuse-bi: the bi-encoder's cosine added to the logit */
    float bi_beta;
    tsr_ebrm_cache cache;
} env;

static void env_free_models(env *v) {
    if (v->have_m) tsr_ebrm_model_free(&v->m);
    if (v->have_be) {
        tsr_benc_free(&v->be);
        tsr_bpe_free(&v->be_bpe);
        free(v->be_emb);
        free(v->be_have);
    }
    v->have_m = v->have_be = false;
}

/* tokenizer.json beside a weights file */
static void tok_beside(const char *model, char *tok, size_t n) {
    const char *slash = strrchr(model, '/');
    if (slash) snprintf(tok, n, "%.*s/tokenizer.json", (int)(slash - model), model);
    else snprintf(tok, n, "tokenizer.json");
}

/* the bi-encoder and its tokenizer into v->be (the item embeddings are
 * allocated by benc_alloc once the catalog is loaded) */
static tsr_status benc_load(env *v, const char *model) {
    char tok[1100];
    tok_beside(model, tok, sizeof tok);
    tsr_status st = tsr_benc_load(&v->be, model);
    if (st.code == TSR_OK) {
        st = tsr_bpe_load(&v->be_bpe, tok);
        if (st.code == TSR_OK && v->be_bpe.vocab_size != v->be.cfg.vocab) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s has %d tokens, %s expects %d", tok, v->be_bpe.vocab_size, model,
                            v->be.cfg.vocab);
            tsr_bpe_free(&v->be_bpe);
        }
        if (st.code != TSR_OK) tsr_benc_free(&v->be);
    }
    v->have_be = st.code == TSR_OK;
    return st;
}

static void benc_alloc(env *v) {
    v->be_emb = malloc((size_t)v->cat.n_items * v->be.cfg.dim * sizeof *v->be_emb);
    v->be_have = calloc((size_t)v->cat.n_items, 1);
    TSR_ASSERT(v->be_emb && v->be_have);
}

/* the model first (a bad model file fails before the catalog is read),
 * then the catalog and its entities */
/* flag: the one that named the model ("model", "cross", "biencoder"), for the hint */
static int env_open(env *v, const char *catalog, int method, const char *model, const char *flag, float k1, float b) {
    memset(v, 0, sizeof *v);
    v->method = method;
    v->k1 = k1;
    v->b = b;
    tsr_status st = tsr_ok();
    char tok[1100];
    tok_beside(model, tok, sizeof tok);
    if (method == M_EBRM || method == M_CROSS) {
        st = tsr_ebrm_model_load(&v->m, model, tok);
        if (st.code == TSR_OK && v->m.kind != (method == M_EBRM ? TSR_EBRM_KIND_EBRM : TSR_EBRM_KIND_CROSS)) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s is a %s model, not one for --method %s", model,
                            v->m.kind == TSR_EBRM_KIND_EBRM ? "ebrm" : "cross-encoder", k_methods[method]);
            tsr_ebrm_model_free(&v->m);
        }
        v->have_m = st.code == TSR_OK;
    } else if (method == M_BIENC) {
        st = benc_load(v, model);
    }
    if (st.code != TSR_OK) {
        char hint[200];
        snprintf(hint, sizeof hint, "--%s must be %s with tokenizer.json beside it", flag,
                 method == M_BIENC ? "a bi-encoder (tessera higen train --what encoder)"
                 : method == M_CROSS ? "a cross-encoder written by 'tessera ebrm train --stage cross'"
                                     : "a weights file written by 'tessera ebrm train'");
        return cli_fail(st, hint);
    }
    char found[4096];
    st = tsr_catalog_load_debian(&v->cat, cli_shipped_default(catalog, DEFAULT_CATALOG, found, sizeof found));
    if (st.code != TSR_OK) {
        env_free_models(v);
        return cli_fail(st, CATALOG_HINT);
    }
    st = tsr_ebrm_entities_build(&v->E, &v->cat);
    if (st.code != TSR_OK) {
        env_free_models(v);
        tsr_catalog_free(&v->cat);
        return cli_fail(st, CATALOG_HINT);
    }
    if (v->have_m && v->m.kind == TSR_EBRM_KIND_EBRM) tsr_ebrm_model_prepare(&v->m, &v->E);
    if (v->have_be) benc_alloc(v);
    tsr_ebrm_cache_init(&v->cache, 1 << 16);
    return CLI_OK;
}

static void env_close(env *v) {
    for (int i = 0; i < 2; i++)
        if (v->have_ix[i]) tsr_bm25_free(&v->ix[i]);
    env_free_models(v);
    tsr_ebrm_cache_free(&v->cache);
    tsr_ebrm_entities_free(&v->E);
    tsr_catalog_free(&v->cat);
}

static const tsr_bm25 *env_index(env *v, int construction) {
    int k = (tsr_qc_hidden(construction) & TSR_F_TAGS) ? 1 : 0;
    if (!v->have_ix[k]) {
        tsr_bm25_build_catalog(&v->ix[k], &v->cat, TSR_F_ALL & ~tsr_qc_hidden(construction), v->k1, v->b);
        v->have_ix[k] = true;
    }
    return &v->ix[k];
}

/* bi-encoder: unit-norm embeddings of texts into out (n x dim) */
static void benc_embed(env *v, const char *const *texts, int n, int max_tok, float *out) {
    int dim = v->be.cfg.dim;
    tsr_ctx c;
    tsr_ctx_init(&c, 1 << 24);
    c.grad_enabled = false;
    int32_t *tok = calloc((size_t)n * max_tok + 1, sizeof *tok), *lens = malloc(((size_t)n + 1) * sizeof *lens);
    TSR_ASSERT(tok && lens);
    int T = 1;
    for (int i = 0; i < n; i++) {
        lens[i] = tsr_ebrm_tokenize(&v->be_bpe, texts[i], tok + (size_t)i * max_tok, max_tok);
        T = lens[i] > T ? lens[i] : T;
    }
    for (int a = 0; a < n; a += 128) {
        int nb = n - a < 128 ? n - a : 128;
        tsr_ctx_reset(&c);
        tsr_tensor *t = tsr_zeros(&c, TSR_I32, TSR_DIMS(nb, T));
        for (int i = 0; i < nb; i++)
            memcpy(tsr_i32(t) + (size_t)i * T, tok + (size_t)(a + i) * max_tok, (size_t)lens[a + i] * sizeof *tok);
        tsr_tensor *e = tsr_benc_encode(&c, &v->be, t, lens + a, NULL, NULL);
        memcpy(out + (size_t)a * dim, tsr_f32(e), (size_t)nb * dim * sizeof *out);
    }
    free(tok);
    free(lens);
    tsr_ctx_free(&c);
}

/* The lexical match a fused EBRM (softlogic-fuse) or a fusion asked by
 * eval --fuse-alpha needs (NULL otherwise): bm25 the first stage's scores
 * of its own list (items in its order: bm25[0] is the query's best score),
 * or NULL for any items, their scores then computed. Caller frees. */
static float *env_lex(env *v, const char *query, int construction, const int32_t *items, const float *bm25, int n) {
    if (!v->have_m || (v->m.agg != TSR_EBRM_AGG_FUSE && !v->fuse_post)) return NULL;
    float *lex = malloc(((size_t)n + 1) * sizeof *lex);
    TSR_ASSERT(lex);
    tsr_ebrm_lex_ex(env_index(v, construction), query, v->fuse_post ? v->post_norm : v->m.lex_norm,
                    bm25 && n ? bm25[0] : -1.f, items, bm25, n, lex);
    return lex;
}

/* The query's top(q) a gated model needs (tsr_ebrm_top_ratio; bm25 as in
 * env_lex), -1 for any other model. */
static float env_top(env *v, const char *query, int construction, const float *bm25, int n) {
    if (!v->have_m || !v->m.gate) return -1.f;
    return tsr_ebrm_top_ratio(env_index(v, construction), query, bm25 && n ? bm25[0] : -1.f);
}

/* The bi-encoder's cosine of the query and each of n items (unit-norm
 * embeddings of the same item text the cross-encoder reads); use_cache
 * keeps the item embeddings across calls. */
static void benc_score(env *v, const char *query, int construction, const int32_t *items, int n, bool use_cache,
                       float *p) {
    int dim = v->be.cfg.dim;
    unsigned fields = TSR_F_ALL & ~tsr_qc_hidden(construction);
    char **texts = calloc((size_t)n + 1, sizeof *texts);
    int32_t *miss = malloc(((size_t)n + 1) * sizeof *miss);
    float *qe = malloc((size_t)dim * sizeof *qe), *tmp = malloc(((size_t)n + 1) * dim * sizeof *tmp);
    TSR_ASSERT(texts && miss && qe && tmp);
    int nm = 0;
    for (int i = 0; i < n; i++)
        if (!use_cache || !v->be_have[items[i]]) texts[nm] = tsr_item_text(&v->cat, items[i], fields), miss[nm++] = i;
    if (nm) benc_embed(v, (const char *const *)texts, nm, TSR_EBRM_TI, tmp);
    for (int j = 0; j < nm; j++) {
        memcpy(v->be_emb + (size_t)items[miss[j]] * dim, tmp + (size_t)j * dim, (size_t)dim * sizeof *tmp);
        v->be_have[items[miss[j]]] = 1;
        free(texts[j]);
    }
    benc_embed(v, &query, 1, TSR_EBRM_TQ, qe);
    for (int i = 0; i < n; i++) {
        const float *e = v->be_emb + (size_t)items[i] * dim;
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)qe[d] * e[d];
        p[i] = (float)s;
    }
    free(texts), free(miss), free(qe), free(tmp);
}

/* Scores n candidates of a query with the method; p higher is better.
 * bm25 gives its own scores (passed in; NULL: computed where a method needs
 * them). use_cache: EBRM's QE cache and the bi-encoder's item embeddings are
 * kept across calls. */
static tsr_status env_score(env *v, const char *query, int construction, const int32_t *items, const float *bm25,
                            int n, bool use_cache, const tsr_ebrm_setqe *set, float *p) {
    if (v->method == M_BM25) {
        memcpy(p, bm25, (size_t)n * sizeof *p);
        return tsr_ok();
    }
    if (v->method == M_EBRM || v->method == M_CROSS) {
        float *lex = env_lex(v, query, construction, items, bm25, n);
        tsr_status st = tsr_ebrm_model_score_top(&v->m, &v->cat, &v->E, query, construction, items, n,
                                                 use_cache ? &v->cache : NULL, set, lex,
                                                 env_top(v, query, construction, bm25, n), p);
        if (st.code == TSR_OK && v->fuse_post)
            for (int i = 0; i < n; i++) p[i] = tsr_ebrm_fuse_alpha(p[i], v->post_alpha, lex[i]);
        free(lex);
        if (st.code == TSR_OK && v->bi_fuse) { /* eval --fuse-bi: logit(p) + beta cos(q, item) */
            float *cs = malloc(((size_t)n + 1) * sizeof *cs);
            TSR_ASSERT(cs);
            benc_score(v, query, construction, items, n, use_cache, cs);
            for (int i = 0; i < n; i++) p[i] = tsr_ebrm_fuse_alpha(p[i], v->bi_beta, cs[i]);
            free(cs);
        }
        return st;
    }
    benc_score(v, query, construction, items, n, use_cache, p);
    return tsr_ok();
}

/* --set-qe "KEY=VALUE[,KEY=VALUE...]" (also repeatable through commas);
 * E NULL checks only the form and the values (before the catalog loads) */
static int parse_setqe(const char *prog, const tsr_ebrm_entities *E, const char *spec, tsr_ebrm_setqe *out) {
    memset(out, 0, sizeof *out);
    if (!spec) return CLI_OK;
    char *s = strdup(spec);
    TSR_ASSERT(s);
    int cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    out->ent = malloc((size_t)cap * sizeof *out->ent);
    out->r = malloc((size_t)cap * sizeof *out->r);
    TSR_ASSERT(out->ent && out->r);
    int rc = CLI_OK;
    for (char *tok = strtok(s, ","); tok && rc == CLI_OK; tok = strtok(NULL, ",")) {
        char *eq = strrchr(tok, '=');
        if (!eq) {
            rc = cli_usage_error(prog, "--set-qe '%s' must be KEY=VALUE, e.g. works-with-format::pdf=1", tok);
            break;
        }
        *eq = 0;
        char *end = NULL;
        double x = strtod(eq + 1, &end);
        int32_t e = E ? tsr_ebrm_entity_find(E, tok) : 0;
        if (e < 0)
            rc = cli_usage_error(prog, "--set-qe: unknown entity '%s' (keys look like works-with-format::pdf, section::graphics, "
                                       "category::Office, provides::pdf-viewer)", tok);
        else if (eq[1] == 0 || *end || !(x >= 0 && x <= 1))
            rc = cli_usage_error(prog, "--set-qe %s: the value must be a number in [0, 1], got '%s'", tok, eq + 1);
        else
            out->ent[out->n] = e, out->r[out->n++] = (float)x;
    }
    free(s);
    if (rc == CLI_OK && !out->n) /* only commas: the user meant some override */
        rc = cli_usage_error(prog, "--set-qe '%s' names no KEY=VALUE, e.g. works-with-format::pdf=1", spec);
    if (rc != CLI_OK) {
        free(out->ent), free(out->r);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

static void setqe_free(tsr_ebrm_setqe *s) {
    free(s->ent);
    free(s->r);
}

static int method_from(const char *prog, const char *name) {
    for (int i = 0; i < M_COUNT; i++)
        if (strcmp(name, k_methods[i]) == 0) return i;
    cli_usage_error(prog, "unknown --method '%s' (ebrm, cross-encoder, bi-encoder, bm25)", name);
    return -1;
}

static const char *default_model(int method, const char *model, char *buf, size_t n) {
    if (model) return model;
    const char *def = method == M_CROSS ? DEFAULT_CROSS : method == M_BIENC ? DEFAULT_BIENC : DEFAULT_MODEL;
    return cli_shipped_default(def, def, buf, n);
}

/* --construction for the single-query verbs (rank, score, explain): -1
 * after a usage error */
static int construction_from(const char *prog, const char *name) {
    int cons = tsr_qc_from_name(name);
    if (cons >= 0 && cons != TSR_QC_MOVIELENS && !tsr_qc_is_i2i(cons)) return cons;
    cli_usage_error(prog, "unknown --construction '%s' (appstream, virtual, debtags, known-item, file)", name);
    return -1;
}

/* The catalog and the method's model (the shipped one by default), then
 * the --set-qe overrides; v is closed again on failure. */
static int open_query_env(const char *prog, env *v, const char *catalog, int method, const char *model,
                          const char *setqe, tsr_ebrm_setqe *set) {
    char mb[1024];
    int rc = parse_setqe(prog, NULL, setqe, set);
    setqe_free(set);
    if (rc != CLI_OK) return rc;
    rc = env_open(v, catalog, method, default_model(method, model, mb, sizeof mb), "model", 1.2f, 0.4f);
    if (rc != CLI_OK) return rc;
    if ((rc = parse_setqe(prog, &v->E, setqe, set)) != CLI_OK) env_close(v);
    return rc;
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
    return true;
}

/* ------------------------------------------------------------- rank */

static int cmd_rank(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *query = NULL, *method_name = "ebrm", *model = NULL, *setqe = NULL,
               *cons_name = "file";
    int k = 10;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"query", ARG_STR, &query, "TEXT", "what to search for", NULL},
        {"k", ARG_INT, &k, "N", "results to print (also -k)", NULL},
        {"method", ARG_STR, &method_name, "NAME", "ebrm (default), cross-encoder, bi-encoder or bm25", NULL},
        {"model", ARG_MODEL, &model, "FILE", "weights (default: the shipped model of the method)", NULL},
        {"set-qe", ARG_STR, &setqe, "KEY=V,...", "ebrm: override the QE score r of entities, e.g. works-with-format::pdf=1", NULL},
        {"construction", ARG_STR, &cons_name, "NAME", "hide that construction's label fields (default: none)", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    char **av = fix_short_k(argc, argv);
    int rc = args_parse(prog, "Re-rank the BM25 top-100 of a query and print the best k: id, score, summary.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, av);
    free(av);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!query || blank(query)) return cli_usage_error(prog, "--query TEXT is required and must not be empty");
    if ((rc = cli_check_int(prog, "k", k, 1, N_CAND)) != CLI_OK) return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    if (method == M_BM25 && model) return cli_usage_error(prog, "--method bm25 takes no --model (it has no weights)");
    int cons = construction_from(prog, cons_name);
    if (cons < 0) return CLI_USAGE;
    if (setqe && method != M_EBRM) return cli_usage_error(prog, "--set-qe needs --method ebrm");
    env v;
    tsr_ebrm_setqe set;
    if ((rc = open_query_env(prog, &v, catalog, method, model, setqe, &set)) != CLI_OK) return rc;
    const tsr_bm25 *ix = env_index(&v, cons);
    int32_t cand[N_CAND];
    float bm[N_CAND], p[N_CAND], base[N_CAND];
    float *scratch = calloc((size_t)v.cat.n_items, sizeof *scratch);
    TSR_ASSERT(scratch);
    int n = tsr_bm25_search(ix, query, N_CAND, cand, bm, scratch);
    free(scratch);
    tsr_status st = env_score(&v, query, cons, cand, bm, n, true, &set, p);
    if (st.code == TSR_OK && set.n) st = env_score(&v, query, cons, cand, bm, n, true, NULL, base);
    if (st.code != TSR_OK) {
        setqe_free(&set);
        env_close(&v);
        return cli_fail(st, NULL);
    }
    int ord[N_CAND], base_ord[N_CAND], base_rank[N_CAND];
    tsr_ebrm_rank_order(p, n, ord);
    if (set.n) {
        tsr_ebrm_rank_order(base, n, base_ord);
        for (int i = 0; i < n; i++) base_rank[base_ord[i]] = i + 1;
    }
    if (k > n) k = n;
    if (cm.json) printf("{\"method\": \"%s\", \"query\": ", k_methods[method]), cli_json_str(stdout, query),
                 printf(", \"candidates\": %d, \"results\": [", n);
    for (int i = 0; i < k; i++) {
        int j = ord[i];
        const tsr_item *it = &v.cat.items[cand[j]];
        if (cm.json) {
            printf("%s{\"rank\": %d, \"id\": ", i ? ", " : "", i + 1);
            cli_json_str(stdout, it->id);
            printf(", \"score\": %.6g, \"bm25_rank\": %d", p[j], j + 1);
            if (set.n) printf(", \"score_before\": %.6g, \"rank_before\": %d", base[j], base_rank[j]);
            printf(", \"summary\": ");
            cli_json_str(stdout, it->summary ? it->summary : "");
            printf("}");
        } else {
            printf("%2d  %-28s %.4f", i + 1, it->id, p[j]);
            if (set.n) printf("  (was %.4f, rank %d)", base[j], base_rank[j]);
            printf("  %s\n", it->summary ? it->summary : "");
        }
    }
    if (cm.json) printf("]}\n");
    else if (n == 0) printf("(no candidates: BM25 found no item with a term of the query)\n");
    setqe_free(&set);
    env_close(&v);
    return CLI_OK;
}

/* ------------------------------------------------------------- score */

static int cmd_score(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *query = NULL, *items_arg = NULL, *method_name = "ebrm", *model = NULL,
               *setqe = NULL, *cons_name = "file";
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"query", ARG_STR, &query, "TEXT", "the query", NULL},
        {"items", ARG_STR, &items_arg, "ID,...", "package names to score (comma-separated)", NULL},
        {"method", ARG_STR, &method_name, "NAME", "ebrm (default), cross-encoder, bi-encoder", NULL},
        {"model", ARG_MODEL, &model, "FILE", "weights (default: the shipped model of the method)", NULL},
        {"set-qe", ARG_STR, &setqe, "KEY=V,...", "ebrm: override the QE score r of entities", NULL},
        {"construction", ARG_STR, &cons_name, "NAME", "hide that construction's label fields (default: none)", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Print p(relevant | query, item) for the given items.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!query || blank(query)) return cli_usage_error(prog, "--query TEXT is required and must not be empty");
    if (!items_arg || items_arg[strspn(items_arg, ", \t")] == 0) /* "," names no package */
        return cli_usage_error(prog, "--items ID,... is required");
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    if (method == M_BM25) return cli_usage_error(prog, "score needs a model: --method ebrm, cross-encoder or bi-encoder");
    int cons = construction_from(prog, cons_name);
    if (cons < 0) return CLI_USAGE;
    if (setqe && method != M_EBRM) return cli_usage_error(prog, "--set-qe needs --method ebrm");
    env v;
    tsr_ebrm_setqe set;
    if ((rc = open_query_env(prog, &v, catalog, method, model, setqe, &set)) != CLI_OK) return rc;
    char *s = strdup(items_arg);
    int cap = 1;
    for (const char *q = s; *q; q++) cap += *q == ',';
    int32_t *items = malloc((size_t)cap * sizeof *items);
    float *p = malloc((size_t)cap * sizeof *p);
    TSR_ASSERT(s && items && p);
    int n = 0;
    tsr_status st = tsr_ok();
    for (char *t = strtok(s, ","); t && st.code == TSR_OK; t = strtok(NULL, ",")) {
        int32_t it = tsr_catalog_find(&v.cat, t);
        if (it < 0) st = tsr_errorf(TSR_ERR_ARG, "--items: unknown package '%s'", t);
        else items[n++] = it;
    }
    if (st.code == TSR_OK) st = env_score(&v, query, cons, items, NULL, n, true, &set, p);
    if (st.code == TSR_OK) {
        if (cm.json) printf("{\"method\": \"%s\", \"query\": ", k_methods[method]), cli_json_str(stdout, query),
                     printf(", \"scores\": [");
        for (int i = 0; i < n; i++) {
            if (cm.json) {
                printf("%s{\"id\": ", i ? ", " : "");
                cli_json_str(stdout, v.cat.items[items[i]].id);
                printf(", \"score\": %.6g}", p[i]);
            } else {
                printf("%-28s %.6f\n", v.cat.items[items[i]].id, p[i]);
            }
        }
        if (cm.json) printf("]}\n");
    }
    free(s), free(items), free(p);
    setqe_free(&set);
    env_close(&v);
    return st.code == TSR_OK ? CLI_OK : cli_fail(st, "--items takes package names of the catalog, e.g. evince,zathura");
}

/* ----------------------------------------------------------- explain */

static int cmd_explain(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *query = NULL, *item_arg = NULL, *model = NULL, *setqe = NULL,
               *cons_name = "file";
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"query", ARG_STR, &query, "TEXT", "the query", NULL},
        {"item", ARG_STR, &item_arg, "ID", "the package to explain", NULL},
        {"model", ARG_MODEL, &model, "FILE", "EBRM weights (default: the shipped model)", NULL},
        {"set-qe", ARG_STR, &setqe, "KEY=V,...", "override the QE score r of entities, e.g. works-with-format::pdf=1", NULL},
        {"construction", ARG_STR, &cons_name, "NAME", "hide that construction's label fields (default: none)", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Show an item's entities with their QE scores (r: the query asks for it, c: it contradicts "
                        "the query), their factors in p = K * (1 - (1-leak) * prod(1 - w r)), K = prod(1 - v c), "
                        "and each entity's support and veto.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!query || blank(query)) return cli_usage_error(prog, "--query TEXT is required and must not be empty");
    if (!item_arg) return cli_usage_error(prog, "--item ID is required");
    int cons = construction_from(prog, cons_name);
    if (cons < 0) return CLI_USAGE;
    env v;
    tsr_ebrm_setqe set;
    if ((rc = open_query_env(prog, &v, catalog, M_EBRM, model, setqe, &set)) != CLI_OK) return rc;
    int32_t item = tsr_catalog_find(&v.cat, item_arg);
    if (item < 0) {
        setqe_free(&set);
        env_close(&v);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "--item: unknown package '%s'", item_arg), "give a package name, e.g. evince");
    }
    enum { CAP = 512 };
    int32_t ent[CAP];
    float r[CAP], c[CAP], sup[CAP], veto[CAP], p = 0;
    uint8_t type[CAP];
    int m = 0;
    tsr_status st = tsr_ebrm_model_item_qe(&v.m, &v.E, query, cons, item, &set, ent, r, c, CAP, &m);
    float *lexp = env_lex(&v, query, cons, &item, NULL, 1), lex = lexp ? lexp[0] : 0.f;
    free(lexp);
    bool fused = v.m.fuse != NULL;
    float alpha = fused ? tsr_f32(v.m.fuse)[0] : 0.f, top = env_top(&v, query, cons, NULL, 1), g = tsr_ebrm_gate(&v.m, top);
    if (st.code == TSR_OK)
        st = tsr_ebrm_model_score_top(&v.m, &v.cat, &v.E, query, cons, &item, 1, NULL, &set, &lex, top, &p);
    if (st.code != TSR_OK) {
        setqe_free(&set);
        env_close(&v);
        return cli_fail(st, NULL);
    }
    const float *th = tsr_f32(v.m.theta);
    bool soft = v.m.agg != TSR_EBRM_AGG_MEAN;
    for (int j = 0; j < m; j++) type[j] = v.E.type[ent[j]];
    if (soft) tsr_ebrm_agg_explain(sup, veto, r, c, type, m, th);
    double leak = 1 / (1 + exp(-(double)th[0])), prodQ = 1, K = 1;
    const tsr_item *it = &v.cat.items[item];
    if (cm.json) {
        printf("{\"query\": ");
        cli_json_str(stdout, query);
        printf(", \"item\": ");
        cli_json_str(stdout, it->id);
        printf(", \"aggregation\": \"%s\", \"score\": %.6g, \"leak\": %.6g", fused ? "softlogic-fuse" : soft ? "softlogic" : "mean",
               p, leak);
        if (fused) {
            printf(", \"fusion\": {\"lex\": %.6g, \"alpha\": %.6g, \"lex_norm\": \"%s\", \"g\": %.9g", lex, alpha,
                   tsr_ebrm_lex_names[v.m.lex_norm], g);
            if (v.m.gate)
                printf(", \"gate\": {\"feature\": \"%s\", \"top\": %.9g, \"slope\": %.9g, \"center\": %.9g}",
                       tsr_ebrm_gate_feature, top, tsr_f32(v.m.gate)[0], tsr_f32(v.m.gate)[1]);
            printf("}");
        }
        printf(", \"entities\": [");
    } else {
        printf("%s  p = %.6f  (%s aggregation%s)\n", it->id, p, fused ? "soft-logic, fused with BM25," : soft ? "soft-logic" : "mean",
               set.n ? ", with --set-qe" : "");
        printf("%-36s %-9s %8s %8s %9s %9s %9s %9s\n", "entity", "type", "r", "c", "1-w*r", "1-v*c", "support", "veto");
    }
    for (int j = 0; j < m; j++) {
        int t = type[j];
        double w = 1 / (1 + exp(-(double)th[1 + t])), vv = 1 / (1 + exp(-(double)th[1 + TSR_EBRM_TYPES + t]));
        double fs = 1 - w * r[j], fc = 1 - vv * c[j];
        prodQ *= fs;
        K *= fc;
        bool over = false;
        for (int k = 0; k < set.n; k++) over |= set.ent[k] == ent[j];
        if (cm.json) {
            printf("%s{\"entity\": ", j ? ", " : "");
            cli_json_str(stdout, v.E.key[ent[j]]);
            printf(", \"type\": \"%s\", \"r\": %.6g, \"c\": %.6g, \"support_factor\": %.6g, \"veto_factor\": %.6g",
                   tsr_ebrm_type_names[t], r[j], c[j], fs, fc);
            if (soft) printf(", \"support\": %.6g, \"veto\": %.6g", sup[j], veto[j]);
            printf(", \"overridden\": %s}", over ? "true" : "false");
        } else {
            printf("%-36s %-9s %8.4f %8.4f %9.4f %9.4f", v.E.key[ent[j]], tsr_ebrm_type_names[t], r[j], c[j], fs, fc);
            if (soft) printf(" %9.4f %9.4f", sup[j], veto[j]);
            printf("%s\n", over ? "  (set)" : "");
        }
    }
    double S = 1 - (1 - leak) * prodQ, sk = soft ? K * S : p, recon = soft ? tsr_ebrm_fuse(&v.m, (float)sk, lex, g) : p;
    if (cm.json) {
        printf("], \"support_S\": %.6g, \"veto_K\": %.6g, \"softlogic\": %.6g, \"reconstructed\": %.6g}\n", S, K, sk,
               recon);
    } else if (soft) {
        printf("S = 1 - (1 - leak %.4f) * prod(1 - w r) = %.6f;  K = prod(1 - v c) = %.6f;  S * K = %.6f\n", leak,
               S, K, sk);
        if (v.m.gate)
            printf("gate: g = sigmoid(%.4g * (top %.4f - %.4f)) = %.6f (top: the query's best BM25 / its maximum)\n",
                   tsr_f32(v.m.gate)[0], top, tsr_f32(v.m.gate)[1], g);
        if (fused)
            printf("fusion: lexical match %.4f (BM25 / %s), alpha %.4g: "
                   "sigmoid(%s%slogit(S * K) + alpha * lex) = %.6f\n", lex,
                   v.m.lex_norm == TSR_EBRM_LEX_TOP1 ? "the query's best BM25 over the catalog" : "the query's maximum",
                   alpha, v.m.gate ? "g" : "", v.m.gate ? " * " : "", recon);
        printf("support_j = K (S - S without e_j); veto_j = p without e_j's contradiction - p\n");
    }
    setqe_free(&set);
    env_close(&v);
    return CLI_OK;
}

/* -------------------------------------------------------------- eval */

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *queries = NULL, *method_name = "ebrm", *model = NULL, *cons_name = NULL,
               *split_name = "valid";
    bool split_set = false;
    float k1 = 1.2f, b = 0.4f; /* the search module's tuned values (docs/search.md) */
    float fuse_alpha = NAN, fuse_bi = NAN; /* not given (the parser refuses "nan") */
    const char *fuse_lex = NULL, *bi_model = NULL;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries: {\"query\", \"relevant\": [ids]} (higen's format)", NULL},
        {"construction", ARG_STR, &cons_name, "NAME", "without --queries: that construction's queries of --split; "
                                                      "with --queries: hide its label fields", NULL},
        {"split", ARG_STR, &split_name, "NAME", "train, valid (default) or test, with --construction alone; "
                                               "tune: the part of train that `train --tune` holds out", &split_set},
        {"method", ARG_STR, &method_name, "NAME", "ebrm (default), cross-encoder, bi-encoder or bm25", NULL},
        {"model", ARG_MODEL, &model, "FILE", "weights (default: the shipped model of the method)", NULL},
        {"fuse-alpha", ARG_FLOAT, &fuse_alpha, "X", "ebrm and cross-encoder: fuse the score with the first stage's BM25 "
                                                   "as sigmoid(logit(p) + X * lex), X in [0, 1000] (a fused model's own weight replaced) [the model's own]", NULL},
        {"fuse-lex", ARG_STR, &fuse_lex, "NAME", "with --fuse-alpha: lex = BM25 / top1 (the query's best BM25) or / max "
                                                 "(the score no item reaches) [a fused model's own, else max]", NULL},
        {"fuse-bi", ARG_FLOAT, &fuse_bi, "X", "ebrm and cross-encoder: then add X * cos(query, item) of the bi-encoder "
                                             "to the logit, sigmoid(logit(p) + X * cos), X in [0, 1000] [not fused]", NULL},
        {"bi-model", ARG_MODEL, &bi_model, "FILE", "with --fuse-bi: the bi-encoder [the shipped one]", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        {"k1", ARG_FLOAT, &k1, "X", "BM25 term-frequency saturation", NULL},
        {"b", ARG_FLOAT, &b, "X", "BM25 length normalisation", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Re-rank each query's BM25 top-100 and print method, queries, ndcg@10, auc, recall@10, mrr@10.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!queries && !cons_name) return cli_usage_error(prog, "--queries FILE (or --construction NAME) is required");
    if (queries && split_set) return cli_usage_error(prog, "--split picks a construction's queries; with --queries the file is the query set");
    if ((rc = cli_check_float(prog, "k1", k1, 0, 100)) != CLI_OK || (rc = cli_check_float(prog, "b", b, 0, 1)) != CLI_OK)
        return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    if (method == M_BM25 && model) return cli_usage_error(prog, "--method bm25 takes no --model (it has no weights)");
    bool fuse = !isnan(fuse_alpha);
    if (fuse && (rc = cli_check_float(prog, "fuse-alpha", fuse_alpha, 0, 1000)) != CLI_OK) return rc;
    if (fuse && method != M_EBRM && method != M_CROSS)
        return cli_usage_error(prog, "--fuse-alpha applies to --method ebrm or cross-encoder, not %s", method_name);
    int norm = -1;
    if (fuse_lex) {
        norm = strcmp(fuse_lex, "top1") == 0 ? TSR_EBRM_LEX_TOP1 : strcmp(fuse_lex, "max") == 0 ? TSR_EBRM_LEX_MAX : -2;
        if (norm == -2) return cli_usage_error(prog, "unknown --fuse-lex '%s' (top1, max)", fuse_lex);
        if (!fuse) return cli_usage_error(prog, "--fuse-lex needs --fuse-alpha");
    }
    bool fbi = !isnan(fuse_bi);
    if (fbi && (rc = cli_check_float(prog, "fuse-bi", fuse_bi, 0, 1000)) != CLI_OK) return rc;
    if (fbi && method != M_EBRM && method != M_CROSS)
        return cli_usage_error(prog, "--fuse-bi applies to --method ebrm or cross-encoder, not %s", method_name);
    if (bi_model && !fbi) return cli_usage_error(prog, "--bi-model needs --fuse-bi");
    int cons = TSR_QC_FILE, split = -1;
    if (cons_name) {
        cons = tsr_qc_from_name(cons_name);
        if (cons >= 0 && tsr_qc_is_i2i(cons))
            return cli_usage_error(prog, "--construction %s is an item-to-item set (higen eval); ebrm ranks items for "
                                         "text queries (appstream, virtual, debtags, known-item)", cons_name);
        if (cons < 0 || cons == TSR_QC_MOVIELENS || (!queries && cons == TSR_QC_FILE))
            return cli_usage_error(prog, "unknown --construction '%s' (appstream, virtual, debtags, known-item)", cons_name);
        split = strcmp(split_name, "tune") == 0 ? TSR_EBRM_SPLIT_TUNE : tsr_split_from_name(split_name);
        if (split < 0) return cli_usage_error(prog, "unknown --split '%s' (train, valid, test, tune)", split_name);
    }
    tsr_qfile qf = {0};
    tsr_status st;
    if (queries) {
        st = tsr_qfile_read(&qf, queries);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
        for (int i = 0; i < qf.n; i++)
            if (qf.l[i].trigger) {
                int line = qf.l[i].line;
                tsr_qfile_free(&qf);
                return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s:%d: an item-to-item query (\"trigger\")", queries, line),
                                "ebrm ranks items for text queries; evaluate item-to-item sets with higen eval");
            }
    }
    char mb[1024];
    env v;
    if ((rc = env_open(&v, catalog, method, default_model(method, model, mb, sizeof mb), "model", k1, b)) != CLI_OK) {
        tsr_qfile_free(&qf);
        return rc;
    }
    char bb[1024];
    if (fbi) {
        const char *bp = bi_model ? bi_model : cli_shipped_default(DEFAULT_BIENC, DEFAULT_BIENC, bb, sizeof bb);
        st = benc_load(&v, bp);
        if (st.code != TSR_OK) {
            tsr_qfile_free(&qf);
            env_close(&v);
            return cli_fail(st, "--bi-model must be a bi-encoder (tessera higen train --what encoder) with tokenizer.json beside it");
        }
        benc_alloc(&v);
        v.bi_fuse = true, v.bi_beta = fuse_bi;
        if (bp != bb) snprintf(bb, sizeof bb, "%s", bp);
    }
    if (fuse && v.m.fuse) {
        tsr_f32(v.m.fuse)[0] = fuse_alpha;
        if (norm >= 0) v.m.lex_norm = norm;
    } else if (fuse) {
        v.fuse_post = true, v.post_alpha = fuse_alpha, v.post_norm = norm >= 0 ? norm : TSR_EBRM_LEX_MAX;
    }
    tsr_queryset qs = {0};
    if (queries) {
        st = tsr_qfile_resolve(&qs, &qf, &v.cat, queries);
        tsr_qfile_free(&qf);
        if (st.code != TSR_OK) {
            env_close(&v);
            return cli_fail(st, QFILE_HINT);
        }
        for (int32_t i = 0; i < qs.n; i++) qs.q[i].construction = cons; /* its hidden fields apply */
        split = -1;
    } else {
        tsr_queries_build(&qs, &v.cat, cons);
        if (split == TSR_EBRM_SPLIT_TUNE) tsr_ebrm_mark_tune(&qs);
    }
    const tsr_bm25 *ixs[TSR_QC_COUNT] = {0};
    ixs[cons] = env_index(&v, cons);
    tsr_ebrm_qiset s;
    st = tsr_ebrm_qi_build(&s, &qs, split, ixs, N_CAND);
    if (st.code != TSR_OK) {
        tsr_queryset_free(&qs);
        env_close(&v);
        return cli_fail(st, NULL);
    }
    tsr_metric_acc acc = {0};
    double auc_sum = 0, t0 = tsr_time();
    int64_t auc_n = 0;
    for (int32_t i = 0; i < s.n && st.code == TSR_OK; i++) {
        const tsr_ebrm_qi *qi = &s.q[i];
        const tsr_query *q = &qs.q[qi->query];
        float p[N_CAND];
        int ord[N_CAND];
        int32_t ranked[N_CAND];
        st = env_score(&v, q->text, q->construction, qi->cand, qi->bm25, qi->n, true, NULL, p);
        if (st.code != TSR_OK) break;
        tsr_ebrm_rank_order(p, qi->n, ord);
        for (int k = 0; k < qi->n; k++) ranked[k] = qi->cand[ord[k]];
        tsr_metric_add(&acc, ranked, qi->n, q->rel, q->n_rel);
        double a = tsr_auc(p, qi->label, qi->n, NULL);
        if (!isnan(a)) auc_sum += a, auc_n++;
        if (!cm.json && isatty(2) && (i % 10 == 9 || i + 1 == s.n)) fprintf(stderr, "\r%d/%d queries", i + 1, s.n);
    }
    if (!cm.json && isatty(2)) fprintf(stderr, "\n");
    double secs = tsr_time() - t0;
    if (st.code != TSR_OK) {
        tsr_ebrm_qiset_free(&s);
        tsr_queryset_free(&qs);
        env_close(&v);
        return cli_fail(st, NULL);
    }
    tsr_rank_metrics r = tsr_metric_mean(&acc);
    double auc = auc_n ? auc_sum / (double)auc_n : NAN;
    const char *mpath = method == M_BM25 ? "" : default_model(method, model, mb, sizeof mb);
    if (cm.json) {
        /* no query with both a positive and a negative candidate: the AUC is undefined, null (not 0) */
        char auc_s[32];
        if (isnan(auc)) snprintf(auc_s, sizeof auc_s, "null");
        else snprintf(auc_s, sizeof auc_s, "%.6f", auc);
        printf("{\"method\": \"%s\", \"queries\": %lld, \"ndcg@10\": %.6f, \"auc\": %s, \"recall@10\": %.6f, "
               "\"mrr@10\": %.6f, \"auc_queries\": %lld, \"construction\": \"%s\", \"model\": ",
               k_methods[method], (long long)r.queries, r.ndcg10, auc_s, r.recall10, r.mrr10,
               (long long)auc_n, tsr_qc_names[cons]);
        cli_json_str(stdout, mpath);
        if (v.m.fuse || v.fuse_post)
            printf(", \"fuse_alpha\": %g, \"fuse_lex\": \"%s\"", v.m.fuse ? tsr_f32(v.m.fuse)[0] : v.post_alpha,
                   tsr_ebrm_lex_names[v.fuse_post ? v.post_norm : v.m.lex_norm]);
        if (v.bi_fuse) {
            printf(", \"fuse_bi\": %g, \"bi_model\": ", v.bi_beta);
            cli_json_str(stdout, bb);
        }
        if (v.have_m && v.m.gate)
            printf(", \"gate\": {\"feature\": \"%s\", \"slope\": %g, \"center\": %g}", tsr_ebrm_gate_feature,
                   tsr_f32(v.m.gate)[0], tsr_f32(v.m.gate)[1]);
        printf(", \"seconds\": %.3f}\n", secs);
    } else {
        printf("%s%s: %lld queries  ndcg@10 %.4f  auc %.4f (over %lld queries with positives and negatives among "
               "the candidates)  recall@10 %.4f  mrr@10 %.4f  (%.1f s)\n",
               k_methods[method],
               v.bi_fuse ? (v.m.fuse || v.fuse_post ? " (fused with BM25 and the bi-encoder)" : " (fused with the bi-encoder)")
                         : v.m.fuse || v.fuse_post ? " (fused with BM25)" : "",
               (long long)r.queries, r.ndcg10, auc,
               (long long)auc_n, r.recall10, r.mrr10, secs);
    }
    tsr_ebrm_qiset_free(&s);
    tsr_queryset_free(&qs);
    env_close(&v);
    return CLI_OK;
}

/* ------------------------------------------------------------- bench */

typedef struct {
    double cold_ms, warm_ms, cold_med, warm_med, hit_rate, cold_hit_rate;
} bench_row;

static double median(double *x, int n) {
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1], x[j - 1] = t;
        }
    return n ? (n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2])) : 0;
}

static double load1(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1) l = -1;
    if (f) fclose(f);
    return l;
}

/* One timed scoring of query i's candidates by method k (0 EBRM, 1 EBRM
 * without the cache, 2 bi-encoder, 3 cross-encoder); cold empties the
 * method's caches first. Returns seconds. */
static double bench_one(env *v, int k, const tsr_queryset *qs, const tsr_ebrm_qi *qi, bool cold, tsr_status *st) {
    float p[N_CAND];
    const tsr_query *q = &qs->q[qi->query];
    if (cold) {
        tsr_ebrm_cache_clear(&v->cache);
        if (v->have_be) memset(v->be_have, 0, (size_t)v->cat.n_items);
    }
    double t0 = tsr_time();
    if (k == 1) /* no cache: every candidate's every entity through the QE model */
        *st = env_score(v, q->text, q->construction, qi->cand, qi->bm25, qi->n, false, NULL, p);
    else
        *st = env_score(v, q->text, q->construction, qi->cand, qi->bm25, qi->n, true, NULL, p);
    return tsr_time() - t0;
}

/* The methods take turns query by query (the order rotating), so a change
 * of the machine's load falls on all of them alike. Per query: cold is the
 * median of `reps` scorings, each after emptying the caches; warm is the
 * median of `reps` scorings after one untimed scoring filled them. A
 * method's figure is the mean over queries of those medians (and, as
 * *_median, their median). */
static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *model = NULL, *cross = NULL, *bienc = NULL;
    int nq = 20, reps = 3;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_INT, &nq, "N", "validation appstream queries timed (default 20)", NULL},
        {"reps", ARG_INT, &reps, "N", "timings per query, method and cache state; the median counts (default 3)", NULL},
        {"model", ARG_MODEL, &model, "FILE", "EBRM weights (default: shipped)", NULL},
        {"cross", ARG_MODEL, &cross, "FILE", "cross-encoder weights (default: shipped)", NULL},
        {"biencoder", ARG_MODEL, &bienc, "FILE", "bi-encoder weights (default: " DEFAULT_BIENC ")", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Milliseconds per query to score 100 candidates, cold and warm cache, for EBRM, EBRM without "
                        "the cache, the bi-encoder and the cross-encoder, taking turns in one run; plus EBRM's cache "
                        "hit rate and the load average.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "queries", nq, 1, 240)) != CLI_OK || (rc = cli_check_int(prog, "reps", reps, 1, 99)) != CLI_OK)
        return rc;
    const char *names[4] = {"ebrm", "ebrm-nocache", "bi-encoder", "cross-encoder"};
    /* three settings: EBRM (also scored without its cache), bi-encoder, cross-encoder */
    const int meth[3] = {M_EBRM, M_BIENC, M_CROSS};
    const char *paths[3] = {model, bienc, cross}, *flags[3] = {"model", "biencoder", "cross"};
    const int env_of[4] = {0, 0, 1, 2};
    env v[3];
    char mb[1024];
    for (int e = 0; e < 3; e++)
        if ((rc = env_open(&v[e], catalog, meth[e], default_model(meth[e], paths[e], mb, sizeof mb), flags[e], 1.2f, 0.4f)) != CLI_OK) {
            while (e-- > 0) env_close(&v[e]);
            return rc;
        }
    /* the same catalog in every setting, so one candidate set serves all */
    tsr_queryset qs = {0};
    tsr_queries_build(&qs, &v[0].cat, TSR_QC_APPSTREAM);
    const tsr_bm25 *ixs[TSR_QC_COUNT] = {0};
    ixs[TSR_QC_APPSTREAM] = env_index(&v[0], TSR_QC_APPSTREAM);
    tsr_ebrm_qiset s;
    tsr_status st = tsr_ebrm_qi_build(&s, &qs, TSR_SPLIT_VALID, ixs, N_CAND);
    int n = st.code == TSR_OK ? (s.n < nq ? s.n : nq) : 0;
    double *t = calloc((size_t)4 * 2 * (n ? n : 1), sizeof *t), rep[99];
    TSR_ASSERT(t);
    const double l0 = load1();
    int64_t ch = 0, cmiss = 0;
    /* cold */
    for (int i = 0; i < n && st.code == TSR_OK; i++)
        for (int j = 0; j < 4 && st.code == TSR_OK; j++) {
            int k = (i + j) % 4;
            for (int r = 0; r < reps && st.code == TSR_OK; r++) {
                rep[r] = bench_one(&v[env_of[k]], k, &qs, &s.q[i], true, &st);
                if (k == 0) ch += v[0].cache.hits, cmiss += v[0].cache.misses;
            }
            t[(k * 2 + 0) * n + i] = median(rep, reps);
        }
    /* warm: one untimed scoring fills the caches, then the timed ones */
    v[0].cache.hits = v[0].cache.misses = 0;
    int64_t wh = 0, wm = 0;
    for (int i = 0; i < n && st.code == TSR_OK; i++)
        for (int j = 0; j < 4 && st.code == TSR_OK; j++) {
            int k = (i + j) % 4;
            bench_one(&v[env_of[k]], k, &qs, &s.q[i], false, &st);
            int64_t h0 = v[0].cache.hits, m0 = v[0].cache.misses;
            for (int r = 0; r < reps && st.code == TSR_OK; r++) rep[r] = bench_one(&v[env_of[k]], k, &qs, &s.q[i], false, &st);
            if (k == 0) wh += v[0].cache.hits - h0, wm += v[0].cache.misses - m0;
            t[(k * 2 + 1) * n + i] = median(rep, reps);
        }
    const double l1 = load1();
    bench_row rows[4] = {{0}};
    for (int k = 0; k < 4 && st.code == TSR_OK; k++) {
        double *c = t + (k * 2 + 0) * n, *w = t + (k * 2 + 1) * n;
        for (int i = 0; i < n; i++) rows[k].cold_ms += 1e3 * c[i] / n, rows[k].warm_ms += 1e3 * w[i] / n;
        rows[k].cold_med = 1e3 * median(c, n);
        rows[k].warm_med = 1e3 * median(w, n);
    }
    rows[0].cold_hit_rate = ch + cmiss ? (double)ch / (double)(ch + cmiss) : 0;
    rows[0].hit_rate = wh + wm ? (double)wh / (double)(wh + wm) : 0;
    free(t);
    tsr_ebrm_qiset_free(&s);
    tsr_queryset_free(&qs);
    for (int e = 0; e < 3; e++) env_close(&v[e]);
    if (st.code != TSR_OK) return cli_fail(st, NULL);
    char cpu[128] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n\"")] = 0;
            break;
        }
    if (f) fclose(f);
    if (cm.json) {
        for (int k = 0; k < 4; k++) {
            printf("{\"bench\": \"ebrm\", \"method\": \"%s\", \"candidates\": %d, \"queries\": %d, \"reps\": %d, "
                   "\"cold_ms\": %.4f, \"warm_ms\": %.4f, \"cold_ms_median\": %.4f, \"warm_ms_median\": %.4f, ",
                   names[k], N_CAND, n, reps, rows[k].cold_ms, rows[k].warm_ms, rows[k].cold_med, rows[k].warm_med);
            if (k == 0) printf("\"hit_rate\": %.4f, \"cold_hit_rate\": %.4f, ", rows[0].hit_rate, rows[0].cold_hit_rate);
            printf("\"cpu\": \"%s\", \"threads\": %d}\n", cpu, tsr_threads_get());
        }
        printf("{\"bench\": \"ebrm\", \"summary\": true, \"warm_speedup_vs_cross\": %.3f, \"warm_ratio_vs_biencoder\": "
               "%.3f, \"cache_speedup\": %.3f, \"cold_speedup_vs_cross\": %.3f, \"hit_rate\": %.4f, "
               "\"cold_hit_rate\": %.4f, \"warm_speedup_vs_cross_median\": %.3f, \"warm_ratio_vs_biencoder_median\": %.3f, "
               "\"cold_speedup_vs_cross_median\": %.3f, \"loadavg_start\": %.2f, \"loadavg_end\": %.2f}\n",
               rows[3].warm_ms / rows[0].warm_ms, rows[0].warm_ms / rows[2].warm_ms, rows[1].warm_ms / rows[0].warm_ms,
               rows[3].cold_ms / rows[0].cold_ms, rows[0].hit_rate, rows[0].cold_hit_rate,
               rows[3].warm_med / rows[0].warm_med, rows[0].warm_med / rows[2].warm_med,
               rows[3].cold_med / rows[0].cold_med, l0, l1);
    } else {
        printf("%-14s %12s %12s %12s %12s  (over %d queries of the median of %d; load average %.2f -> %.2f)\n",
               "method", "cold ms/q", "warm ms/q", "cold median", "warm median", n, reps, l0, l1);
        for (int k = 0; k < 4; k++)
            printf("%-14s %12.3f %12.3f %12.3f %12.3f\n", names[k], rows[k].cold_ms, rows[k].warm_ms, rows[k].cold_med,
                   rows[k].warm_med);
        printf("warm EBRM: %.1fx faster than the cross-encoder, %.2fx the bi-encoder's time (medians: %.1fx, %.2fx); "
               "cache hit rate %.3f warm, %.3f cold (entities shared by candidates of one query)\n",
               rows[3].warm_ms / rows[0].warm_ms, rows[0].warm_ms / rows[2].warm_ms, rows[3].warm_med / rows[0].warm_med,
               rows[0].warm_med / rows[2].warm_med, rows[0].hit_rate, rows[0].cold_hit_rate);
    }
    return CLI_OK;
}

static const cli_verb k_verbs[] = {
    {"train", "train the QE model (stage qe), EBRM on QI labels (qi) or the cross-encoder baseline (cross)", cli_ebrm_train},
    {"score", "p(relevant) of a query and given items", cmd_score},
    {"rank", "re-rank a query's BM25 top-100 (--set-qe overrides QE scores)", cmd_rank},
    {"explain", "an item's entities, QE scores and their contributions", cmd_explain},
    {"eval", "re-rank each query's BM25 top-100 and score it: ndcg@10, auc, recall@10, mrr@10", cmd_eval},
    {"bench", "ms per query for 100 candidates, cold and warm cache: EBRM, bi-encoder, cross-encoder", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_ebrm = {"ebrm", "EBRM: entity-based relevance re-ranking over the Debian catalog", k_verbs};
