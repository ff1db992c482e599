/* tessera CLI: `tessera higen index|train|search|eval|bench|queries` —
 * generative retrieval over the Debian catalog (src/models/higen) and the
 * shared search baselines (src/search). Results on stdout (JSON with
 * --json), progress on stderr. */
#include "cli/args.h"

#include "tessera/fileio.h"
#include "tessera/higen.h"
#include "tessera/search.h"

#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* the shipped copy of the Debian catalog (tools/pack_debian_catalog.py),
 * found from any working directory like the shipped models */
#define DEFAULT_CATALOG "models/debian-catalog"
#define CATALOG_HINT                                                                          \
    "--catalog must be the Debian catalog directory (packages.jsonl.gz, appstream.jsonl.gz, " \
    "virtual-package-names-list.yaml.gz) or a MovieLens directory (movies.csv, ratings.csv, tags.csv)"
/* BM25 parameters tuned on the validation queries of the four Debian
 * constructions (docs/higen.md, "BM25 tuning"). */
#define BM25_K1 1.2f
#define BM25_B 0.4f

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* `-k N` (the spelling) is accepted as `--k N`. */
static char **fix_short_k(int argc, char **argv) {
    char **v = malloc((size_t)(argc + 1) * sizeof *v);
    TSR_ASSERT(v);
    for (int i = 0; i < argc; i++) v[i] = strcmp(argv[i], "-k") == 0 ? "--k" : argv[i];
    v[argc] = NULL;
    return v;
}

static bool is_movielens(const char *dir) {
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/movies.csv", dir);
    return stat(p, &sb) == 0;
}

static int load_catalog(const char *dir, tsr_catalog *cat) {
    char found[4096];
    dir = cli_shipped_default(dir, DEFAULT_CATALOG, found, sizeof found);
    double t0 = now_s();
    tsr_status st = is_movielens(dir) ? tsr_catalog_load_movielens(cat, dir) : tsr_catalog_load_debian(cat, dir);
    if (st.code != TSR_OK) return cli_fail(st, CATALOG_HINT);
    fprintf(stderr, "catalog: %d items from %s (%.1f s)\n", cat->n_items, dir, now_s() - t0);
    return CLI_OK;
}

/* ------------------------------------------------------------ methods */

enum { M_BM25, M_BIENCODER, M_HIGEN, M_HIGEN_CLUSTER, M_HIGEN_NOEFF, M_HIGEN_NOCAT, M_HIGEN_CE, M_NCI, M_DSI, M_COUNT };
static const char *const k_methods[M_COUNT] = {"bm25",        "biencoder",   "higen", "higen-cluster", "higen-noeff",
                                               "higen-nocat", "higen-ce",    "nci",   "dsi"};
/* the index and generator files of each generative method: DIR/<index>.index.safetensors,
 * DIR/<gen>.generator.safetensors */
static const char *const k_index_of[M_COUNT] = {NULL, NULL, "higen", "higen", "higen-noeff", "higen-nocat", "higen", "nci", "dsi"};
static const char *const k_gen_of[M_COUNT] = {NULL, NULL, "higen", "higen", "higen-noeff", "higen-nocat", "higen-ce", "nci", "dsi"};
#define METHOD_LIST "bm25, biencoder, higen, higen-cluster, higen-noeff, higen-nocat, higen-ce, nci, dsi"
#define DEFAULT_MODEL "models/higen-debian"
#define MODEL_HINT "--model must be a directory from 'tessera higen train' / 'index' (shipped: " DEFAULT_MODEL ")"

static int method_from(const char *prog, const char *name) {
    for (int i = 0; i < M_COUNT; i++)
        if (strcmp(name, k_methods[i]) == 0) return i;
    cli_usage_error(prog, "unknown --method '%s' (" METHOD_LIST ")", name);
    return -1;
}

/* A retriever answers a query with up to k item indices, best first. */
typedef struct {
    int method;
    const tsr_catalog *cat; /* NULL: generative search without the catalog */
    tsr_bm25 bm25;
    unsigned fields;
    float *scratch;
    float *scores;
    int beam;
    /* dense and generative methods */
    tsr_bpe bpe;
    bool have_bpe;
    tsr_benc enc;
    bool have_enc;
    float *emb;   /* n_items x dim item embeddings */
    float *plain; /* the same without the efficiency term: an I2I trigger's query vector */
    tsr_higen_index ix;
    bool have_ix;
    tsr_higen_gen gen;
    bool have_gen;
    int32_t *qtok;
    char *cand_seen;
    int32_t *cand;
} retriever;

static void retriever_close(retriever *r);

static int load_model_file(const char *dir, const char *name, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, name);
    return CLI_OK;
}

/* Item embeddings of the catalog with the encoder: both kinds (with the
 * efficiency MLP, text only) of the view a query set sees. View 0 is cached
 * in MODEL/embeddings.safetensors (written by `index`), tied to the digest
 * of MODEL/encoder.safetensors: a cache written by another encoder (one
 * retrained in the same directory) is rebuilt. */
static tsr_status catalog_embeddings(const tsr_catalog *cat, const char *model_dir, const tsr_benc *enc, int view,
                                     float *with_eff, float *plain) {
    char path[1024], digest[17];
    snprintf(path, sizeof path, "%s/encoder.safetensors", model_dir);
    tsr_status st = tsr_file_fnv1a64(path, digest);
    if (st.code != TSR_OK) return st;
    snprintf(path, sizeof path, "%s/embeddings.safetensors", model_dir);
    struct stat sb;
    if (view == 0 && stat(path, &sb) == 0) {
        bool stale;
        st = tsr_higen_emb_load(path, with_eff, plain, cat->n_items, enc->cfg.dim, digest, &stale);
        if (st.code != TSR_OK) return st;
        if (!stale) {
            fprintf(stderr, "encoder: item embeddings from %s\n", path);
            return st;
        }
        fprintf(stderr, "encoder: %s was written by another encoder; embedding again\n", path);
    }
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    tsr_higen_data d;
    st = tsr_higen_data_build(&d, cat, path, 0, TSR_HIGEN_TQ, TSR_HIGEN_TI, false, 0);
    if (st.code != TSR_OK) return st;
    double t0 = now_s();
    tsr_higen_embed_items(with_eff, plain, &d, enc, view);
    fprintf(stderr, "encoder: embedded %d items (%.1f s)\n", cat->n_items, now_s() - t0);
    tsr_higen_data_free(&d);
    if (view == 0) {
        snprintf(path, sizeof path, "%s/embeddings.safetensors", model_dir);
        st = tsr_higen_emb_save(path, with_eff, plain, cat->n_items, enc->cfg.dim, digest);
    }
    return st;
}

static int embed_catalog(retriever *r, const char *model_dir, int view) {
    size_t n = (size_t)r->cat->n_items * r->enc.cfg.dim;
    r->emb = malloc(n * sizeof *r->emb);
    r->plain = malloc(n * sizeof *r->plain);
    TSR_ASSERT(r->emb && r->plain);
    tsr_status st = catalog_embeddings(r->cat, model_dir, &r->enc, view, r->emb, r->plain);
    return st.code == TSR_OK ? CLI_OK : cli_fail(st, MODEL_HINT);
}

static int retriever_open(retriever *r, int method, const tsr_catalog *cat, unsigned fields, float k1, float b,
                          const char *model_dir, int beam) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->cat = cat;
    r->fields = fields;
    r->beam = beam;
    r->scores = malloc(4096 * sizeof *r->scores);
    TSR_ASSERT(r->scores);
    if (method == M_BM25) {
        double t0 = now_s();
        tsr_bm25_build_catalog(&r->bm25, cat, fields, k1, b);
        r->scratch = calloc((size_t)cat->n_items, sizeof *r->scratch);
        TSR_ASSERT(r->scratch);
        fprintf(stderr, "bm25: %d terms over %d items (k1 %.2f, b %.2f, %.1f s)\n", r->bm25.n_terms, r->bm25.n_docs,
                (double)k1, (double)b, now_s() - t0);
        return CLI_OK;
    }
    char path[1024];
    tsr_status st;
    load_model_file(model_dir, "tokenizer.json", path, sizeof path);
    if ((st = tsr_bpe_load(&r->bpe, path)).code != TSR_OK) {
        retriever_close(r);
        return cli_fail(st, MODEL_HINT);
    }
    r->have_bpe = true;
    if (method == M_BIENCODER || method == M_HIGEN_CLUSTER) {
        if (!cat) {
            retriever_close(r);
            return cli_fail(tsr_errorf(TSR_ERR_ARG, "--method %s needs the catalog", k_methods[method]), CATALOG_HINT);
        }
        load_model_file(model_dir, "encoder.safetensors", path, sizeof path);
        if ((st = tsr_benc_load(&r->enc, path)).code != TSR_OK) {
            retriever_close(r);
            return cli_fail(st, MODEL_HINT);
        }
        r->have_enc = true;
        int rc = embed_catalog(r, model_dir, (fields & TSR_F_TAGS) ? 0 : 1);
        if (rc != CLI_OK) {
            retriever_close(r);
            return rc;
        }
    }
    if (method != M_BIENCODER) {
        snprintf(path, sizeof path, "%s/%s.index.safetensors", model_dir, k_index_of[method]);
        if ((st = tsr_higen_index_load(&r->ix, path)).code != TSR_OK) {
            retriever_close(r);
            return cli_fail(st, "build it with 'tessera higen index' (" MODEL_HINT ")");
        }
        r->have_ix = true;
        if (cat) { /* the index must describe this catalog, item for item */
            bool same = r->ix.n_items == cat->n_items;
            for (int32_t i = 0; same && i < cat->n_items; i++) same = strcmp(r->ix.ids[i], cat->items[i].id) == 0;
            if (!same) {
                retriever_close(r);
                return cli_fail(tsr_errorf(TSR_ERR_FORMAT, "%s: built for another catalog (items differ)", path),
                                "rebuild it with 'tessera higen index' over this --catalog");
            }
        }
        snprintf(path, sizeof path, "%s/%s.generator.safetensors", model_dir, k_gen_of[method]);
        if ((st = tsr_higen_gen_load(&r->gen, path)).code != TSR_OK) {
            retriever_close(r);
            return cli_fail(st, "train it with 'tessera higen train --what generator' (" MODEL_HINT ")");
        }
        r->have_gen = true;
        if (r->gen.cfg.max_depth < r->ix.trie.max_depth || r->gen.cfg.fanout < r->ix.trie.max_fanout) {
            retriever_close(r);
            return cli_fail(tsr_errorf(TSR_ERR_FORMAT, "%s: trained for docIDs of depth %d / fanout %d, the index "
                                                       "has %d / %d",
                                       path, r->gen.cfg.max_depth, r->gen.cfg.fanout, r->ix.trie.max_depth,
                                       r->ix.trie.max_fanout),
                            "train the generator on this index");
        }
        r->qtok = malloc((size_t)r->gen.cfg.max_query * sizeof *r->qtok);
        r->cand = malloc((size_t)r->ix.n_items * sizeof *r->cand);
        r->cand_seen = calloc((size_t)r->ix.n_items, 1);
        TSR_ASSERT(r->qtok && r->cand && r->cand_seen);
    }
    return CLI_OK;
}

/* top k by score (ties: lower item) among cand[0..n) with scores sc */
static int topk_dense(const float *q, const float *emb, int dim, const int32_t *cand, int n, int k, int32_t *out,
                      float *scores) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int32_t it = cand ? cand[i] : i;
        const float *e = emb + (size_t)it * dim;
        float s = 0;
        for (int j = 0; j < dim; j++) s += q[j] * e[j];
        if (m == k && !(s > scores[m - 1] || (s == scores[m - 1] && it < out[m - 1]))) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && (s > scores[j - 1] || (s == scores[j - 1] && it < out[j - 1]))) {
            scores[j] = scores[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        scores[j] = s;
        out[j] = it;
    }
    return m;
}

static int retrieve_text(retriever *r, const char *text, int32_t trigger, int k, int32_t *out);

/* the encoder and the generator read the query text, plus the user's
 * profile on a personalised catalog (tsr_higen_query_text). An item-to-item
 * query (q->trigger >= 0): every method asks for k + 1 items and drops the
 * trigger; the dense methods' query vector is the trigger's text-only item
 * embedding. out holds k + 1 items. */
static int retrieve(retriever *r, const tsr_query *q, int k, int32_t *out) {
    if (k > 4095) k = 4095;
    int kk = q->trigger >= 0 ? k + 1 : k, n;
    if (r->method == M_BM25) n = tsr_bm25_search(&r->bm25, q->text, kk, out, r->scores, r->scratch);
    else {
        bool personal = r->cat && r->cat->n_users > 0 && q->user >= 0;
        char *text = personal ? tsr_higen_query_text(r->cat, q->text, tsr_catalog_find_user(r->cat, q->user)) : NULL;
        n = retrieve_text(r, text ? text : q->text, q->trigger, kk, out);
        free(text);
    }
    if (q->trigger >= 0) { /* the trigger itself is not a related item */
        int m = 0;
        for (int i = 0; i < n; i++)
            if (out[i] != q->trigger) out[m] = out[i], r->scores[m] = r->scores[i], m++;
        n = m < k ? m : k;
    }
    return n;
}

/* the encoder's query vector: the trigger's text-only embedding, or the text's */
static const float *query_vec(retriever *r, const char *text, int32_t trigger, float *qe) {
    if (trigger >= 0 && r->plain) return r->plain + (size_t)trigger * r->enc.cfg.dim;
    tsr_higen_embed_query(qe, &r->bpe, &r->enc, text);
    return qe;
}

static int retrieve_text(retriever *r, const char *text, int32_t trigger, int k, int32_t *out) {
    if (r->method == M_BIENCODER) {
        float qe[1024];
        const float *qv = query_vec(r, text, trigger, qe);
        return topk_dense(qv, r->emb, r->enc.cfg.dim, NULL, r->cat->n_items, k, out, r->scores);
    }
    int ql = tsr_higen_encode(&r->bpe, text, r->qtok, r->gen.cfg.max_query);
    int beam = r->beam, kk = k < beam ? k : beam;
    if (r->method != M_HIGEN_CLUSTER) return tsr_higen_beam_search(&r->gen, &r->ix.trie, r->qtok, ql, beam, kk, out, r->scores);
    /* Hi-Gen-Cluster: the generator picks clusters (the parents of its best
     * leaves), the encoder ranks every item in them */
    int32_t *top = malloc((size_t)beam * sizeof *top);
    TSR_ASSERT(top);
    int n = tsr_higen_beam_search(&r->gen, &r->ix.trie, r->qtok, ql, beam, beam, top, NULL), nc = 0;
    const tsr_higen_node *nodes = r->ix.trie.nodes;
    for (int i = 0; i < n; i++) {
        const tsr_higen_node *par = &nodes[nodes[r->ix.trie.item_leaf[top[i]]].parent];
        for (int32_t ch = 0; ch < par->n_children; ch++) {
            int32_t it = nodes[par->first_child + ch].item;
            if (it >= 0 && !r->cand_seen[it]) r->cand_seen[it] = 1, r->cand[nc++] = it;
        }
    }
    for (int i = 0; i < nc; i++) r->cand_seen[r->cand[i]] = 0;
    free(top);
    float qe[1024];
    const float *qv = query_vec(r, text, trigger, qe);
    return topk_dense(qv, r->emb, r->enc.cfg.dim, r->cand, nc, k, out, r->scores);
}

static void retriever_close(retriever *r) {
    tsr_bm25_free(&r->bm25);
    free(r->scratch);
    free(r->scores);
    if (r->have_bpe) tsr_bpe_free(&r->bpe);
    if (r->have_enc) tsr_benc_free(&r->enc);
    if (r->have_ix) tsr_higen_index_free(&r->ix);
    if (r->have_gen) tsr_higen_gen_free(&r->gen);
    free(r->emb);
    free(r->plain);
    free(r->qtok);
    free(r->cand);
    free(r->cand_seen);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ queries */

/* The queries an eval or queries verb works on: a JSONL file, or one
 * construction's split. */
#define QFILE_HINT                                                                                                     \
    "each line must be {\"query\": str, \"relevant\": [item ids], \"user\": optional, \"trigger\": optional item id}"

#define CONSTRUCTION_LIST "appstream, virtual, debtags, known-item, movielens, i2i-recommends, i2i-source"

/* --construction and --split by name (before anything loads): the
 * construction in *c, the split in *sp (-1: all) and *tune (the tuning
 * subset of the train queries); CLI_USAGE after a usage error */
static int construction_split(const char *prog, const char *construction, const char *split, int *c, int *sp,
                              bool *tune) {
    *c = tsr_qc_from_name(construction);
    if (*c < 0 || *c == TSR_QC_FILE)
        return cli_usage_error(prog, "unknown --construction '%s' (" CONSTRUCTION_LIST ")", construction);
    *sp = -1;
    *tune = strcmp(split, "tune") == 0;
    if (*tune) *sp = TSR_SPLIT_TRAIN;
    else if (strcmp(split, "all") != 0 && (*sp = tsr_split_from_name(split)) < 0)
        return cli_usage_error(prog, "unknown --split '%s' (train, tune, valid, test, all)", split);
    return CLI_OK;
}

/* qf: the parsed --queries file (read before the catalog, so that a bad
 * file fails at once), or NULL for a construction. */
static int load_queries(const char *prog, const tsr_catalog *cat, const tsr_qfile *qf, const char *file,
                        const char *construction, const char *split, tsr_queryset *qs, int *qc) {
    memset(qs, 0, sizeof *qs);
    *qc = TSR_QC_FILE;
    if (qf) {
        tsr_status st = tsr_qfile_resolve(qs, qf, cat, file);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
        return CLI_OK;
    }
    int c, sp, rc;
    bool tune;
    if ((rc = construction_split(prog, construction, split, &c, &sp, &tune)) != CLI_OK) return rc;
    tsr_queryset all = {0};
    tsr_status st = tsr_queries_build(&all, cat, c);
    if (st.code != TSR_OK) {
        tsr_queryset_free(&all);
        return cli_fail(st, "the movielens construction needs --catalog ../shared/data/movielens-latest-small");
    }
    for (int32_t i = 0; i < all.n; i++)
        if ((sp < 0 || all.q[i].split == sp) && (!tune || tsr_query_is_tune(tsr_query_split_key(cat, &all.q[i])))) {
            tsr_queryset_add(qs, all.q[i].text, all.q[i].user, all.q[i].rel, all.q[i].n_rel, c, all.q[i].split);
            qs->q[qs->n - 1].trigger = all.q[i].trigger;
        }
    tsr_queryset_free(&all);
    *qc = c;
    return CLI_OK;
}

/* eval's and the position diagnostic's inputs: the --queries file (read
 * first, so that a bad file fails before the catalog loads) or one
 * construction's split, and the catalog; on failure nothing is left open. */
static int load_ranking_inputs(const char *prog, const char *queries, const char *catalog, const char *construction,
                               const char *split, tsr_catalog *cat, tsr_queryset *qs, int *qc) {
    tsr_qfile qf = {0};
    int c, sp, rc;
    bool tune;
    if (!queries && (rc = construction_split(prog, construction, split, &c, &sp, &tune)) != CLI_OK) return rc;
    if (queries) {
        tsr_status st = tsr_qfile_read(&qf, queries);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
    }
    rc = load_catalog(catalog, cat);
    if (rc == CLI_OK) {
        rc = load_queries(prog, cat, queries ? &qf : NULL, queries, construction, split, qs, qc);
        if (rc != CLI_OK) tsr_catalog_free(cat);
    }
    tsr_qfile_free(&qf);
    return rc;
}

static int cmd_queries(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *construction = NULL, *split = "all", *out = NULL;
    const arg_spec specs[] = {
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        {"construction", ARG_STR, &construction, "NAME", CONSTRUCTION_LIST " (i2i-*: item-to-item, "
                                                          "each query a trigger item)", NULL},
        {"split", ARG_STR, &split, "NAME", "train, tune, valid, test or all", NULL},
        {"out", ARG_STR, &out, "PATH", "JSONL query file to write", NULL},
    };
    int rc = args_parse(prog, "Write one construction's queries as a JSONL query file (the format eval reads).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!construction || !out) return cli_usage_error(prog, "--construction and --out are required");
    int c, sp;
    bool tune;
    if ((rc = construction_split(prog, construction, split, &c, &sp, &tune)) != CLI_OK) return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    tsr_queryset qs;
    int qc;
    rc = load_queries(prog, &cat, NULL, NULL, construction, split, &qs, &qc);
    if (rc == CLI_OK) {
        tsr_status st = tsr_queryset_write(&qs, &cat, -1, out);
        if (st.code != TSR_OK) rc = cli_fail(st, "--out must be a writable path");
        else fprintf(stderr, "wrote %d queries to %s\n", qs.n, out);
    }
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return rc;
}

/* -------------------------------------------------------------- index */

#define VARIANT_LIST "higen, higen-noeff, higen-nocat, nci, dsi"

/* docID options and whether item embeddings carry the efficiency MLP */
static int variant_opts(const char *prog, const char *v, tsr_higen_docid_opts *o, bool *use_eff) {
    *use_eff = true;
    if (strcmp(v, "higen") == 0) return CLI_OK;
    if (strcmp(v, "higen-noeff") == 0) {
        o->eff_buckets = 0;
        *use_eff = false;
    } else if (strcmp(v, "higen-nocat") == 0) {
        o->category = false;
    } else if (strcmp(v, "nci") == 0) {
        o->category = false;
        o->eff_buckets = 0;
        *use_eff = false;
    } else if (strcmp(v, "dsi") == 0) {
        o->atomic = true;
    } else {
        return cli_usage_error(prog, "unknown --variant '%s' (" VARIANT_LIST ")", v);
    }
    return CLI_OK;
}

static int cmd_index(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *model = DEFAULT_MODEL, *variant = "higen";
    tsr_higen_docid_opts o = tsr_higen_docid_default_opts();
    int eff_buckets = -1;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"model", ARG_STR, &model, "DIR", "model directory with tokenizer.json and encoder.safetensors", NULL},
        {"variant", ARG_STR, &variant, "NAME", VARIANT_LIST, NULL},
        {"k", ARG_INT, &o.k, "N", "k-means branching factor", NULL},
        {"leaf-size", ARG_INT, &o.leaf_size, "N", "largest group not split further", NULL},
        {"eff-buckets", ARG_INT, &eff_buckets, "N", "efficiency buckets after the category path (-1: the variant's; higen: 4)", NULL},
        {"iters", ARG_INT, &o.iters, "N", "k-means iterations", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_SEED(&cm),
        CLI_COMMON_JSON(&cm),
    };
    char **av = fix_short_k(argc, argv);
    int rc = args_parse(prog,
                        "Embed every item with the encoder, build the docIDs (category path, efficiency bucket, "
                        "recursive k-means) and write MODEL/<variant>.index.safetensors.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, av);
    free(av);
    if (rc != CLI_OK) return rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    bool use_eff;
    if ((rc = variant_opts(prog, variant, &o, &use_eff)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "eff-buckets", eff_buckets, -1, 64)) != CLI_OK) return rc;
    if (eff_buckets >= 0) o.eff_buckets = eff_buckets;
    if (cm.seed) o.seed = cm.seed;
    if ((rc = cli_check_int(prog, "k", o.k, 2, 4096)) != CLI_OK || (rc = cli_check_int(prog, "leaf-size", o.leaf_size, 1, 65536)) != CLI_OK ||
        (rc = cli_check_int(prog, "iters", o.iters, 0, 1000)) != CLI_OK)
        return rc;
    char path[1024], out[1024];
    snprintf(out, sizeof out, "%s/%s.index.safetensors", model, variant);
    if ((rc = cli_check_output(prog, "model", out, false)) != CLI_OK) return rc;
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    double t0 = now_s();
    float *emb = NULL;
    tsr_benc enc = {0};
    tsr_status st = tsr_ok();
    if (!o.atomic) {
        snprintf(path, sizeof path, "%s/encoder.safetensors", model);
        st = tsr_benc_load(&enc, path);
        if (st.code == TSR_OK) {
            size_t n = (size_t)cat.n_items * enc.cfg.dim;
            float *with_eff = malloc(n * sizeof *with_eff), *plain = malloc(n * sizeof *plain);
            TSR_ASSERT(with_eff && plain);
            st = catalog_embeddings(&cat, model, &enc, 0, with_eff, plain);
            if (use_eff) emb = with_eff, free(plain);
            else emb = plain, free(with_eff);
        }
    }
    tsr_higen_trie t = {0};
    double t1 = now_s();
    if (st.code == TSR_OK) st = tsr_higen_build(&t, &cat, emb, emb ? enc.cfg.dim : 0, &o);
    double t_build = now_s() - t1, t_all = now_s() - t0;
    if (st.code == TSR_OK) st = tsr_higen_index_save(&t, &cat, &o, t_all, out);
    if (st.code == TSR_OK) {
        int32_t leaves_max = 0;
        for (int32_t i = 0; i < t.n_nodes; i++)
            if (t.nodes[i].item < 0 && t.nodes[i].n_children > leaves_max) leaves_max = t.nodes[i].n_children;
        if (cm.json)
            printf("{\"variant\": \"%s\", \"items\": %d, \"nodes\": %d, \"max_depth\": %d, \"max_fanout\": %d, "
                   "\"docid_seconds\": %.2f, \"build_seconds\": %.2f, \"out\": ",
                   variant, t.n_items, t.n_nodes, t.max_depth, t.max_fanout, t_build, t_all),
                cli_json_str(stdout, out), printf("}\n");
        else
            printf("%s: %d items, %d trie nodes, docIDs up to %d tokens, fanout <= %d; docIDs %.2f s, with "
                   "embedding %.2f s -> %s\n",
                   variant, t.n_items, t.n_nodes, t.max_depth, t.max_fanout, t_build, t_all, out);
    }
    tsr_higen_trie_free(&t);
    free(emb);
    if (enc.params.n) tsr_benc_free(&enc);
    tsr_catalog_free(&cat);
    return st.code == TSR_OK ? CLI_OK : cli_fail(st, MODEL_HINT);
}

/* --------------------------------------------------------------- eval */

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *queries = NULL, *construction = NULL, *split = "valid",
               *method_name = "higen", *model = DEFAULT_MODEL;
    float k1 = BM25_K1, b = BM25_B;
    int beam = 20;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries: {\"query\", \"relevant\": [ids], \"user\"}", NULL},
        {"method", ARG_STR, &method_name, "NAME", METHOD_LIST, NULL},
        {"model", ARG_MODEL, &model, "DIR", "tokenizer, encoder, indexes and generators", NULL},
        {"beam", ARG_INT, &beam, "N", "beam width of the generative methods (they return at most N items)", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        {"construction", ARG_STR, &construction, "NAME", "instead of --queries: a built-in construction, "
                                                          CONSTRUCTION_LIST " (i2i-*: Hi-Gen-I2I, the trigger "
                                                          "removed from every method's list)", NULL},
        {"split", ARG_STR, &split, "NAME", "the construction's split: train, valid, test or all; tune: the tuning "
                                            "subset of train (held out by 'train --tune')", NULL},
        {"k1", ARG_FLOAT, &k1, "X", "BM25 term-frequency saturation", NULL},
        {"b", ARG_FLOAT, &b, "X", "BM25 length normalisation", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Rank the catalog for each query and print recall@1/10/100, mrr@10, ndcg@10 and queries/s.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    char model_buf[PATH_MAX];
    model = cli_shipped_default(model, DEFAULT_MODEL, model_buf, sizeof model_buf);
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!queries == !construction) return cli_usage_error(prog, "give exactly one of --queries and --construction");
    if ((rc = cli_check_float(prog, "k1", k1, 0, 100)) != CLI_OK || (rc = cli_check_float(prog, "b", b, 0, 1)) != CLI_OK ||
        (rc = cli_check_int(prog, "beam", beam, 1, 1000)) != CLI_OK)
        return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    tsr_catalog cat;
    tsr_queryset qs;
    int qc;
    if ((rc = load_ranking_inputs(prog, queries, catalog, construction, split, &cat, &qs, &qc)) != CLI_OK) return rc;
    retriever r;
    if ((rc = retriever_open(&r, method, &cat, TSR_F_ALL & ~tsr_qc_hidden(qc), k1, b, model, beam)) != CLI_OK) {
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
        return rc;
    }
    int32_t ranked[101];
    tsr_metric_acc acc = {0};
    double t0 = now_s();
    for (int32_t i = 0; i < qs.n; i++) {
        int n = retrieve(&r, &qs.q[i], 100, ranked);
        tsr_metric_add(&acc, ranked, n, qs.q[i].rel, qs.q[i].n_rel);
    }
    double dt = now_s() - t0;
    tsr_rank_metrics m = tsr_metric_mean(&acc);
    double qps = dt > 0 ? (double)qs.n / dt : 0;
    if (cm.json) {
        printf("{\"method\": \"%s\", \"queries\": %lld, \"recall@1\": %.4f, \"recall@10\": %.4f, \"recall@100\": %.4f, "
               "\"mrr@10\": %.4f, \"ndcg@10\": %.4f, \"qps\": %.1f, \"construction\": \"%s\", \"split\": ",
               k_methods[method], (long long)m.queries, m.recall1, m.recall10, m.recall100, m.mrr10, m.ndcg10, qps,
               tsr_qc_names[qc]);
        cli_json_str(stdout, queries ? "file" : split);
        if (method == M_BM25) printf(", \"k1\": %g, \"b\": %g", (double)k1, (double)b);
        else if (method != M_BIENCODER) printf(", \"beam\": %d", beam);
        printf("}\n");
    } else {
        printf("method %s, %lld queries (%s%s%s)\n", k_methods[method], (long long)m.queries, tsr_qc_names[qc],
               queries ? "" : ", ", queries ? "" : split);
        printf("recall@1 %.4f  recall@10 %.4f  recall@100 %.4f  mrr@10 %.4f  ndcg@10 %.4f  qps %.1f\n", m.recall1,
               m.recall10, m.recall100, m.mrr10, m.ndcg10, qps);
    }
    retriever_close(&r);
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

/* ------------------------------------------------------------- search */

static int cmd_search(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *query = NULL, *method_name = "higen", *model = DEFAULT_MODEL,
               *item = NULL;
    int k = 10, beam = 10;
    int64_t user = -1;
    bool user_set = false, catalog_set = false;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"query", ARG_STR, &query, "TEXT", "what to search for", NULL},
        {"item", ARG_STR, &item, "ID", "instead of --query: items related to this one (Hi-Gen-I2I; bm25 reads its "
                                       "name + summary, biencoder uses its item embedding)", NULL},
        {"user", ARG_I64, &user, "ID", "user id (personalised catalog only)", &user_set},
        {"k", ARG_INT, &k, "N", "results to print (also -k)", NULL},
        {"method", ARG_STR, &method_name, "NAME", METHOD_LIST, NULL},
        {"model", ARG_MODEL, &model, "DIR", "tokenizer, encoder, indexes and generators", NULL},
        {"beam", ARG_INT, &beam, "N", "beam width of the generative methods (raised to k when smaller)", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog or MovieLens directory (bm25, biencoder, "
                                              "higen-cluster; the generative methods need none)", &catalog_set},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    char **av = fix_short_k(argc, argv);
    int rc = args_parse(prog, "Print the top-k items for a query: id, name and summary.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, av);
    free(av);
    if (rc != CLI_OK) return rc;
    char model_buf[PATH_MAX];
    model = cli_shipped_default(model, DEFAULT_MODEL, model_buf, sizeof model_buf);
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!query == !item) return cli_usage_error(prog, "give exactly one of --query and --item");
    if (!query) query = item;
    bool blank = true;
    for (const char *p = query; *p; p++) blank &= (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r');
    if (blank) return cli_usage_error(prog, "--query is empty");
    if ((rc = cli_check_int(prog, "k", k, 1, 1000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "beam", beam, 1, 1000)) != CLI_OK) return rc;
    if (user_set && user < 0) return cli_usage_error(prog, "--user must be a non-negative id");
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    bool generative = method != M_BM25 && method != M_BIENCODER && method != M_HIGEN_CLUSTER;
    if (generative && k + (item != NULL) > beam) beam = k + (item != NULL);
    tsr_catalog cat;
    bool have_cat = !generative || catalog_set || user_set;
    if (have_cat && (rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    if (user_set && tsr_catalog_find_user(&cat, user) < 0) {
        tsr_status st = tsr_errorf(TSR_ERR_ARG, "unknown user %lld in %s", (long long)user, catalog);
        bool has_users = cat.n_users > 0;
        tsr_catalog_free(&cat);
        return cli_fail(st, has_users ? "--user must be a user id of the catalog" : "this catalog has no users: drop --user");
    }
    retriever r;
    double t_open = now_s();
    if ((rc = retriever_open(&r, method, have_cat ? &cat : NULL, TSR_F_ALL, BM25_K1, BM25_B, model, beam)) != CLI_OK) {
        if (have_cat) tsr_catalog_free(&cat);
        return rc;
    }
    fprintf(stderr, "loaded in %.2f s\n", now_s() - t_open);
    int32_t *top = malloc((size_t)(k + 1) * sizeof *top), trigger = -1;
    TSR_ASSERT(top);
    char *i2i = NULL;
    if (item) { /* Hi-Gen-I2I: the generator reads the item's own text, as its indexing examples taught it */
        if (have_cat) trigger = tsr_catalog_find(&cat, item);
        else
            for (int32_t i = 0; i < r.ix.n_items && trigger < 0; i++)
                if (strcmp(r.ix.ids[i], item) == 0) trigger = i;
        if (trigger < 0) {
            free(top);
            retriever_close(&r);
            if (have_cat) tsr_catalog_free(&cat);
            return cli_fail(tsr_errorf(TSR_ERR_ARG, "unknown item '%s' (not in the %s)", item,
                                       have_cat ? "catalog" : "index"),
                            "--item must be a package name of the catalog");
        }
        if (have_cat) i2i = tsr_i2i_text(&cat, trigger);
        else {
            size_t len = strlen(r.ix.ids[trigger]) + strlen(r.ix.summaries[trigger]) + 2;
            i2i = malloc(len);
            TSR_ASSERT(i2i);
            snprintf(i2i, len, "%s\n%s", r.ix.ids[trigger], r.ix.summaries[trigger]);
        }
        query = i2i;
    }
    tsr_query q = {.text = (char *)query, .user = user, .trigger = trigger};
    double t0 = now_s();
    int n = retrieve(&r, &q, k, top); /* an --item trigger is dropped from the list */
    double ms = 1e3 * (now_s() - t0);
    if (cm.json) printf("{\"query\": "), cli_json_str(stdout, query), printf(", \"method\": \"%s\", \"ms\": %.3f, \"results\": [", k_methods[method], ms);
    for (int i = 0; i < n; i++) {
        const char *id = have_cat ? cat.items[top[i]].id : r.ix.ids[top[i]];
        const char *name = have_cat ? cat.items[top[i]].title : r.ix.ids[top[i]];
        const char *summary = have_cat ? cat.items[top[i]].summary : r.ix.summaries[top[i]];
        if (cm.json) {
            printf("%s{\"id\": ", i ? ", " : "");
            cli_json_str(stdout, id);
            printf(", \"name\": ");
            cli_json_str(stdout, name);
            printf(", \"summary\": ");
            cli_json_str(stdout, summary);
            printf(", \"score\": %.4f}", (double)r.scores[i]);
        } else {
            printf("%2d. %-28s %s\n", i + 1, name, summary);
        }
    }
    if (cm.json) printf("]}\n");
    else if (n == 0) printf("(no matching items)\n");
    fprintf(stderr, "%d results in %.2f ms (%s)\n", n, ms, k_methods[method]);
    free(top);
    free(i2i);
    retriever_close(&r);
    if (have_cat) tsr_catalog_free(&cat);
    return CLI_OK;
}

/* -------------------------------------------------------------- bench */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_bench(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *model = DEFAULT_MODEL, *method_name = "higen", *queries = NULL;
    int n_q = 100;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "DIR", "tokenizer, indexes and generators", NULL},
        {"method", ARG_STR, &method_name, "NAME", "a generative method: higen, higen-noeff, higen-nocat, higen-ce, nci, dsi", NULL},
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries (default: the appstream construction's valid split)", NULL},
        {"n", ARG_INT, &n_q, "N", "queries timed per beam width", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog (for the default queries)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Time the constrained beam search at beam 10 and 50 (queries/s, p50 and p99 latency, one "
                        "query at a time) and report the index build time.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    char model_buf[PATH_MAX];
    model = cli_shipped_default(model, DEFAULT_MODEL, model_buf, sizeof model_buf);
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "n", n_q, 1, 100000)) != CLI_OK) return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    if (method == M_BM25 || method == M_BIENCODER || method == M_HIGEN_CLUSTER)
        return cli_usage_error(prog, "--method must be a generative method");
    char **texts = NULL;
    int n_text = 0;
    if (queries) {
        tsr_qfile qf;
        tsr_status st = tsr_qfile_read(&qf, queries);
        if (st.code != TSR_OK) return cli_fail(st, QFILE_HINT);
        texts = malloc((size_t)qf.n * sizeof *texts);
        TSR_ASSERT(texts);
        for (int i = 0; i < qf.n; i++) texts[n_text++] = strdup(qf.l[i].query);
        tsr_qfile_free(&qf);
    } else {
        tsr_catalog cat;
        if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
        tsr_queryset qs = {0};
        tsr_queries_build(&qs, &cat, TSR_QC_APPSTREAM);
        texts = malloc((size_t)qs.n * sizeof *texts);
        TSR_ASSERT(texts);
        for (int i = 0; i < qs.n; i++)
            if (qs.q[i].split == TSR_SPLIT_VALID) texts[n_text++] = strdup(qs.q[i].text);
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
    }
    retriever r;
    if ((rc = retriever_open(&r, method, NULL, TSR_F_ALL, BM25_K1, BM25_B, model, 10)) != CLI_OK) {
        cli_free_strings(texts, n_text);
        return rc;
    }
    double *lat = malloc((size_t)n_q * sizeof *lat);
    int32_t out[64];
    TSR_ASSERT(lat);
    static const int beams[2] = {10, 50};
    for (int bi = 0; bi < 2; bi++) {
        r.beam = beams[bi];
        tsr_query q = {.user = -1, .trigger = -1};
        q.text = texts[0];
        retrieve(&r, &q, 10, out); /* warm-up */
        double t0 = now_s();
        for (int i = 0; i < n_q; i++) {
            q.text = texts[i % n_text];
            double a = now_s();
            retrieve(&r, &q, 10, out);
            lat[i] = 1e3 * (now_s() - a);
        }
        double dt = now_s() - t0;
        qsort(lat, (size_t)n_q, sizeof *lat, cmp_double);
        double p50 = lat[n_q / 2], p99 = lat[(int)((n_q - 1) * 0.99)];
        if (cm.json)
            printf("{\"method\": \"%s\", \"beam\": %d, \"queries\": %d, \"qps\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
                   "\"threads\": %d, \"index_build_s\": %.2f}\n",
                   k_methods[method], beams[bi], n_q, n_q / dt, p50, p99, tsr_threads_get(), r.ix.build_seconds);
        else
            printf("%s beam %d: %.1f queries/s, p50 %.2f ms, p99 %.2f ms (%d queries, %d threads); index built in %.1f s\n",
                   k_methods[method], beams[bi], n_q / dt, p50, p99, n_q, tsr_threads_get(), r.ix.build_seconds);
    }
    free(lat);
    retriever_close(&r);
    cli_free_strings(texts, n_text);
    return CLI_OK;
}

/* ------------------------------------------------------------- levels */

/* Where a generator fails, position by position: teacher-forced (the true
 * docID prefix given, is the true token the generator's first choice
 * among its siblings?) and in the beam (does the best item, or any item
 * of the beam, share the first p + 1 tokens with a relevant item?). Each
 * figure is a mean over the queries with a relevant item whose docID has
 * a token at p (teacher-forced: first a mean over those items); hit_best
 * and hit_beam: the best item / any beam item is relevant. */
static int cmd_levels(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *queries = NULL, *construction = NULL, *split = "valid",
               *method_name = "higen", *model = DEFAULT_MODEL;
    int beam = 20;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"queries", ARG_STR, &queries, "FILE", "JSONL queries: {\"query\", \"relevant\": [ids], \"user\"}", NULL},
        {"method", ARG_STR, &method_name, "NAME", "a generative method: higen, higen-noeff, higen-nocat, higen-ce, nci, dsi", NULL},
        {"model", ARG_MODEL, &model, "DIR", "tokenizer, indexes and generators", NULL},
        {"beam", ARG_INT, &beam, "N", "beam width", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog or MovieLens directory", NULL},
        {"construction", ARG_STR, &construction, "NAME", "instead of --queries: a built-in construction", NULL},
        {"split", ARG_STR, &split, "NAME", "the construction's split: train, tune, valid, test or all", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Per docID position: the generator's teacher-forced accuracy among siblings (and chance), "
                        "and how often the beam's best item / any beam item shares the first p+1 tokens with a "
                        "relevant item.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    char model_buf[PATH_MAX];
    model = cli_shipped_default(model, DEFAULT_MODEL, model_buf, sizeof model_buf);
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!queries == !construction) return cli_usage_error(prog, "give exactly one of --queries and --construction");
    if ((rc = cli_check_int(prog, "beam", beam, 1, 1000)) != CLI_OK) return rc;
    int method = method_from(prog, method_name);
    if (method < 0) return CLI_USAGE;
    if (method == M_BM25 || method == M_BIENCODER || method == M_HIGEN_CLUSTER)
        return cli_usage_error(prog, "--method must be a generative method");
    tsr_catalog cat;
    tsr_queryset qs;
    int qc;
    if ((rc = load_ranking_inputs(prog, queries, catalog, construction, split, &cat, &qs, &qc)) != CLI_OK) return rc;
    retriever r;
    if ((rc = retriever_open(&r, method, &cat, TSR_F_ALL, BM25_K1, BM25_B, model, beam)) != CLI_OK) {
        tsr_queryset_free(&qs);
        tsr_catalog_free(&cat);
        return rc;
    }
    enum { NS = 6 }; /* per position: teacher-forced accuracy, chance, mean reciprocal rank, best item, any item, queries */
    int D = r.ix.trie.max_depth;
    double sum[TSR_HIGEN_MAX_DEPTH][NS] = {{0}};
    int32_t rank[TSR_HIGEN_MAX_DEPTH], fan[TSR_HIGEN_MAX_DEPTH], rd[TSR_HIGEN_MAX_DEPTH], bd[TSR_HIGEN_MAX_DEPTH];
    int32_t *top = malloc((size_t)beam * sizeof *top);
    TSR_ASSERT(top);
    int64_t n_q = 0, hit_best = 0, hit_beam = 0;
    double last[3] = {0}; /* the final token (the item inside its last group): accuracy, chance, mrr */
    for (int32_t i = 0; i < qs.n; i++) {
        const tsr_query *q = &qs.q[i];
        bool personal = cat.n_users > 0 && q->user >= 0;
        char *text = personal ? tsr_higen_query_text(&cat, q->text, tsr_catalog_find_user(&cat, q->user)) : NULL;
        int ql = tsr_higen_encode(&r.bpe, text ? text : q->text, r.qtok, r.gen.cfg.max_query);
        free(text);
        if (q->n_rel == 0) continue;
        double acc[TSR_HIGEN_MAX_DEPTH][3] = {{0}}, lq[3] = {0};
        int cnt[TSR_HIGEN_MAX_DEPTH] = {0};
        for (int j = 0; j < q->n_rel; j++) {
            int L = tsr_higen_gen_levels(&r.gen, &r.ix.trie, r.qtok, ql, q->rel[j], rank, fan);
            for (int p = 0; p < L; p++) {
                acc[p][0] += rank[p] == 0;
                acc[p][1] += 1.0 / fan[p];
                acc[p][2] += 1.0 / (rank[p] + 1);
                cnt[p]++;
            }
            lq[0] += rank[L - 1] == 0;
            lq[1] += 1.0 / fan[L - 1];
            lq[2] += 1.0 / (rank[L - 1] + 1);
        }
        for (int s = 0; s < 3; s++) last[s] += lq[s] / q->n_rel;
        int n = tsr_higen_beam_search(&r.gen, &r.ix.trie, r.qtok, ql, beam, beam, top, NULL), m = 0;
        for (int b = 0; b < n; b++) /* an item-to-item trigger is not a result */
            if (top[b] != q->trigger) top[m++] = top[b];
        n = m;
        int best[TSR_HIGEN_MAX_DEPTH] = {0}, any[TSR_HIGEN_MAX_DEPTH] = {0}, hb = 0, ha = 0;
        for (int j = 0; j < q->n_rel; j++) {
            int Lr = tsr_higen_docid(&r.ix.trie, q->rel[j], rd);
            for (int b = 0; b < n; b++) {
                if (top[b] == q->rel[j]) {
                    hb |= b == 0;
                    ha = 1;
                }
                int Lb = tsr_higen_docid(&r.ix.trie, top[b], bd);
                for (int p = 0; p < Lr && p < Lb && rd[p] == bd[p]; p++) {
                    any[p] = 1;
                    if (b == 0) best[p] = 1;
                }
            }
        }
        for (int p = 0; p < D; p++) {
            if (cnt[p] > 0) {
                for (int s = 0; s < 3; s++) sum[p][s] += acc[p][s] / cnt[p];
                sum[p][5] += 1;
            }
            sum[p][3] += best[p];
            sum[p][4] += any[p];
        }
        hit_best += hb;
        hit_beam += ha;
        n_q++;
    }
    free(top);
    if (cm.json) {
        printf("{\"method\": \"%s\", \"queries\": %lld, \"construction\": \"%s\", \"split\": ", k_methods[method],
               (long long)n_q, tsr_qc_names[qc]);
        cli_json_str(stdout, queries ? "file" : split);
        double nq = n_q > 0 ? (double)n_q : 1;
        printf(", \"beam\": %d, \"hit_best\": %.4f, \"hit_beam\": %.4f, \"last\": {\"tf_acc\": %.4f, \"chance\": "
               "%.4f, \"tf_mrr\": %.4f}, \"levels\": [",
               beam, (double)hit_best / nq, (double)hit_beam / nq, last[0] / nq, last[1] / nq, last[2] / nq);
        for (int p = 0; p < D; p++) {
            double nt = sum[p][5] > 0 ? sum[p][5] : 1;
            printf("%s{\"position\": %d, \"queries\": %d, \"tf_acc\": %.4f, \"chance\": %.4f, \"tf_mrr\": %.4f, "
                   "\"best_prefix\": %.4f, \"beam_prefix\": %.4f}",
                   p ? ", " : "", p, (int)sum[p][5], sum[p][0] / nt, sum[p][1] / nt, sum[p][2] / nt, sum[p][3] / nt,
                   sum[p][4] / nt);
        }
        printf("]}\n");
    } else {
        printf("method %s, %lld queries (%s%s%s), beam %d: best item relevant %.4f, a beam item relevant %.4f\n",
               k_methods[method], (long long)n_q, tsr_qc_names[qc], queries ? "" : ", ", queries ? "" : split, beam,
               n_q ? (double)hit_best / (double)n_q : 0, n_q ? (double)hit_beam / (double)n_q : 0);
        double nq = n_q > 0 ? (double)n_q : 1;
        printf("last token (the item inside its final group): tf_acc %.4f, chance %.4f, tf_mrr %.4f\n", last[0] / nq,
               last[1] / nq, last[2] / nq);
        printf("pos  queries  tf_acc  chance  tf_mrr  best_prefix  beam_prefix\n");
        for (int p = 0; p < D; p++) {
            double nt = sum[p][5] > 0 ? sum[p][5] : 1;
            printf("%3d  %7d  %6.4f  %6.4f  %6.4f  %11.4f  %11.4f\n", p, (int)sum[p][5], sum[p][0] / nt,
                   sum[p][1] / nt, sum[p][2] / nt, sum[p][3] / nt, sum[p][4] / nt);
        }
    }
    retriever_close(&r);
    tsr_queryset_free(&qs);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

/* ---------------------------------------------------------- tune-bm25 */

static int cmd_tune_bm25(const char *prog, int argc, char **argv) {
    const char *catalog = DEFAULT_CATALOG, *split = "valid";
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        {"split", ARG_STR, &split, "NAME", "the split to tune on (valid; never test)", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Grid over BM25's k1 and b, scored by ndcg@10 averaged over the Debian constructions' "
                        "queries of one split (each construction weighs the same).",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    int sp = tsr_split_from_name(split);
    if (sp < 0) return cli_usage_error(prog, "unknown --split '%s' (train, valid)", split);
    if (sp == TSR_SPLIT_TEST) return cli_usage_error(prog, "--split test is the evaluation split: tune on valid (or train)");
    tsr_catalog cat;
    if ((rc = load_catalog(catalog, &cat)) != CLI_OK) return rc;
    if (cat.kind != TSR_CATALOG_DEBIAN) {
        tsr_catalog_free(&cat);
        return cli_usage_error(prog, "--catalog must be the Debian catalog");
    }
    enum { NC = TSR_QC_MOVIELENS };
    tsr_queryset qs[NC];
    for (int c = 0; c < NC; c++) {
        tsr_queryset all = {0};
        memset(&qs[c], 0, sizeof qs[c]);
        tsr_queries_build(&all, &cat, c);
        for (int32_t i = 0; i < all.n; i++)
            if (all.q[i].split == sp)
                tsr_queryset_add(&qs[c], all.q[i].text, -1, all.q[i].rel, all.q[i].n_rel, c, sp);
        tsr_queryset_free(&all);
    }
    tsr_bm25 ix[2]; /* all fields; tags hidden (debtags queries) */
    tsr_bm25_build_catalog(&ix[0], &cat, TSR_F_ALL, 1, 1);
    tsr_bm25_build_catalog(&ix[1], &cat, TSR_F_ALL & ~tsr_qc_hidden(TSR_QC_DEBTAGS), 1, 1);
    float *scratch = calloc((size_t)cat.n_items, sizeof *scratch), scores[100];
    TSR_ASSERT(scratch);
    static const float k1s[] = {0.3f, 0.6f, 0.9f, 1.2f, 1.6f, 2.0f, 3.0f};
    static const float bs[] = {0.2f, 0.4f, 0.6f, 0.75f, 0.9f, 1.0f};
    float best_k1 = 0, best_b = 0;
    double best = -1;
    int32_t ranked[100];
    for (size_t a = 0; a < sizeof k1s / sizeof *k1s; a++)
        for (size_t bb = 0; bb < sizeof bs / sizeof *bs; bb++) {
            double macro = 0, per[NC];
            for (int c = 0; c < NC; c++) {
                tsr_bm25 *x = &ix[tsr_qc_hidden(c) ? 1 : 0];
                x->k1 = k1s[a];
                x->b = bs[bb];
                tsr_metric_acc acc = {0};
                for (int32_t i = 0; i < qs[c].n; i++) {
                    int n = tsr_bm25_search(x, qs[c].q[i].text, 100, ranked, scores, scratch);
                    tsr_metric_add(&acc, ranked, n, qs[c].q[i].rel, qs[c].q[i].n_rel);
                }
                per[c] = tsr_metric_mean(&acc).ndcg10;
                macro += per[c] / NC;
            }
            if (cm.json)
                printf("{\"k1\": %g, \"b\": %g, \"ndcg@10\": %.4f, \"appstream\": %.4f, \"virtual\": %.4f, "
                       "\"debtags\": %.4f, \"known-item\": %.4f}\n",
                       (double)k1s[a], (double)bs[bb], macro, per[0], per[1], per[2], per[3]);
            else
                printf("k1 %.2f b %.2f  ndcg@10 %.4f  (appstream %.4f virtual %.4f debtags %.4f known-item %.4f)\n",
                       (double)k1s[a], (double)bs[bb], macro, per[0], per[1], per[2], per[3]);
            if (macro > best) best = macro, best_k1 = k1s[a], best_b = bs[bb];
        }
    fprintf(stderr, "best on %s: k1 %.2f b %.2f ndcg@10 %.4f\n", split, (double)best_k1, (double)best_b, best);
    free(scratch);
    tsr_bm25_free(&ix[0]);
    tsr_bm25_free(&ix[1]);
    for (int c = 0; c < NC; c++) tsr_queryset_free(&qs[c]);
    tsr_catalog_free(&cat);
    return CLI_OK;
}

/* cmd_higen_train.c */
int cli_higen_train(const char *prog, int argc, char **argv);

static const cli_verb k_verbs[] = {
    {"train", "train the encoder or a docID generator", cli_higen_train},
    {"index", "embed the items, build the docIDs and their trie", cmd_index},
    {"search", "top-k items for a query", cmd_search},
    {"eval", "recall@1/10/100, mrr@10, ndcg@10, qps over a query set", cmd_eval},
    {"bench", "beam-search queries/s and p50/p99 latency at beam 10 and 50, index build time", cmd_bench},
    {"queries", "write a built-in query construction as a JSONL file", cmd_queries},
    {"tune-bm25", "grid over BM25's k1 and b on one split's queries", cmd_tune_bm25},
    {"levels", "per docID position: teacher-forced accuracy and beam prefix hits of a generator", cmd_levels},
    {NULL, NULL, NULL},
};

const cli_family cli_family_higen = {"higen", "Hi-Gen: generative retrieval over the Debian catalog, and its baselines",
                                     k_verbs};
