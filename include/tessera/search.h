/* tessera search: the retrieval parts shared by the generative-retrieval
 * (higen) and relevance (ebrm) families — catalogs (the Debian archive
 * snapshot, MovieLens for the personalised set), item text, the efficiency
 * (popularity) signal, category paths, query-set constructions with a
 * split by query, JSONL query files, our BM25 and the ranking metrics.
 * src/search/catalog.c, movielens.c, queries.c, qfile.c, bm25.c,
 * metrics.c, text.c. docs/search.md documents every construction and
 * signal in prose. */
#ifndef TESSERA_SEARCH_H
#define TESSERA_SEARCH_H

#include "tessera/core.h"
#include "tessera/nn.h"

/* ------------------------------------------------------------ string map */

/* Open-addressing map from a string to an int32 (the strings are copied).
 * Used for item ids, vocabularies and query texts. */
typedef struct {
    char **keys;
    int32_t *vals;
    int64_t cap, n;
} tsr_strmap;

void tsr_strmap_init(tsr_strmap *m, int64_t expected);
void tsr_strmap_free(tsr_strmap *m);
/* value of key, or -1 */
int32_t tsr_strmap_get(const tsr_strmap *m, const char *key);
/* sets key -> val (overwrites) */
void tsr_strmap_put(tsr_strmap *m, const char *key, int32_t val);
uint64_t tsr_str_hash(const char *s);

/* ---------------------------------------------------------------- catalog */

/* Item fields that text builders may include; a query construction hides
 * the fields its labels come from (see tsr_qc_hidden). */
enum {
    TSR_F_SUMMARY = 1 << 0,
    TSR_F_DESCRIPTION = 1 << 1,
    TSR_F_SECTION = 1 << 2,
    TSR_F_TAGS = 1 << 3,     /* debtags (Debian) / genres (MovieLens) */
    TSR_F_APPSTREAM = 1 << 4, /* AppStream name, summary, description, categories */
    TSR_F_NAME = 1 << 5,     /* the package name / movie title */
    TSR_F_ALL = (1 << 6) - 1,
};

#define TSR_CAT_LEVELS 3

typedef struct {
    char *id;          /* package name / MovieLens movieId: what query files name */
    char *title;       /* package name / movie title, for display */
    char *summary;     /* one line; movie: "" */
    char *description; /* long text; may be "" */
    char *section;     /* Debian section; movie: "" */
    char *priority;    /* Debian priority; movie: "" */
    char **tags;       /* debtags facet::value / movie genres */
    int n_tags;
    char *appstream;   /* AppStream name + summary + description of the item's components; "" */
    char **as_categories; /* freedesktop categories (deduplicated) */
    int n_as_categories;
    /* label-only fields: never part of item text (query constructions use them) */
    char **keywords;   /* AppStream keywords, lower-cased */
    int n_keywords;
    char **provides;   /* virtual packages provided */
    int n_provides;
    char *source;      /* Debian source package; movie: NULL */
    char **recommends, **suggests; /* package names as listed (the I2I constructions) */
    int n_recommends, n_suggests;
    bool essential;
    /* popularity evidence (see tsr_catalog_efficiency) */
    int32_t n_rdepends, n_rrecommends, n_rsuggests, n_tasks;
    float rating_mean;  /* MovieLens */
    int32_t n_ratings;  /* MovieLens */
    float efficiency;   /* in [0,1], rank-normalised popularity */
    int32_t path[TSR_CAT_LEVELS]; /* category path: node id per level, see cat_names */
} tsr_item;

/* A user of the personalised set: their ratings in time order. */
typedef struct {
    int64_t id;
    int32_t *items; /* item indices, time order */
    float *ratings;
    int64_t *times;
    int n;
} tsr_user;

typedef struct {
    int kind; /* TSR_CATALOG_DEBIAN / TSR_CATALOG_MOVIELENS */
    tsr_item *items;
    int32_t n_items;
    tsr_strmap by_id;
    /* category path node names per level: level l node j is cat_names[l][j]
     * (the full path prefix, e.g. "web/use::browsing"); levels used: n_levels */
    char **cat_names[TSR_CAT_LEVELS];
    int32_t n_cat[TSR_CAT_LEVELS];
    int n_levels;
    /* Debian: virtual package names and descriptions from Policy's list */
    char **virt_names, **virt_desc;
    int n_virt;
    /* MovieLens: users and the tag applications (query constructions) */
    tsr_user *users;
    int32_t n_users;
    tsr_strmap user_by_id; /* decimal user id -> index */
    int32_t *tag_user, *tag_item; /* per tag application */
    char **tag_text;
    int32_t n_tag_apps;
} tsr_catalog;

enum { TSR_CATALOG_DEBIAN = 0, TSR_CATALOG_MOVIELENS = 1 };

/* Loads ../shared/data/debian-catalog-style directory `dir`:
 * packages.jsonl.gz, appstream.jsonl.gz, virtual-package-names-list.yaml.gz
 * (gzip or plain; zlib reads both). Computes the reverse-dependency
 * counts, the efficiency signal and the category paths. A missing file
 * or a malformed line is a status naming file and line. */
tsr_status tsr_catalog_load_debian(tsr_catalog *cat, const char *dir);
/* Loads a MovieLens directory (movies.csv, ratings.csv, tags.csv).
 * Items are movies (id = movieId); efficiency from the rating count and
 * mean; category path = genre set. */
tsr_status tsr_catalog_load_movielens(tsr_catalog *cat, const char *dir);
void tsr_catalog_free(tsr_catalog *cat);
/* item index of an id, or -1 */
int32_t tsr_catalog_find(const tsr_catalog *cat, const char *id);
/* user index of a user id, or -1 */
int32_t tsr_catalog_find_user(const tsr_catalog *cat, int64_t user_id);

/* The item's text with the fields in `fields` (TSR_F_*), separated by
 * newlines; malloc'd. Tags are written "facet value" with '-'/'_'/':'
 * as spaces. */
char *tsr_item_text(const tsr_catalog *cat, int32_t item, unsigned fields);

/* ----------------------------------------------------------------- tokens */

/* The search tokeniser (BM25 and query sets): ASCII lower-casing; a token
 * is a maximal run of [a-z0-9+#]; one trailing "s" is dropped from tokens
 * longer than 3 characters that do not end in "ss"; single characters
 * other than digits and "c"/"r" and a fixed English stopword list are
 * dropped. Calls fn(token, len, ud) for each kept token (token is a
 * NUL-terminated scratch copy). Returns the number of tokens kept. */
typedef void (*tsr_token_fn)(const char *tok, int len, void *ud);
int tsr_search_tokenize(const char *text, tsr_token_fn fn, void *ud);

/* ------------------------------------------------------------------- BM25 */

typedef struct {
    int32_t n_docs, n_terms;
    tsr_strmap vocab;
    int64_t *post_off;    /* (n_terms+1) CSR offsets */
    int32_t *post_doc;    /* doc of each posting */
    uint16_t *post_tf;    /* term frequency (saturated at 65535) */
    int32_t *doc_len;     /* tokens per doc */
    double avg_len;
    float k1, b;
} tsr_bm25;

/* Builds the index over texts[0..n) (document i = item i). */
void tsr_bm25_build(tsr_bm25 *ix, const char *const *texts, int32_t n, float k1, float b);
/* Index over every item's text with `fields`. */
void tsr_bm25_build_catalog(tsr_bm25 *ix, const tsr_catalog *cat, unsigned fields, float k1,
                            float b);
void tsr_bm25_free(tsr_bm25 *ix);
/* idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) (the non-negative Lucene form) */
double tsr_bm25_idf(const tsr_bm25 *ix, int64_t df);
/* Top-k documents for query text: score(d) = sum over DISTINCT query terms t
 * of idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)). Writes up to
 * k (doc, score) pairs in descending score, ties by ascending doc; returns
 * how many (documents with score 0 are never returned). scratch: NULL or
 * n_docs floats the caller keeps between calls (zeroed on return). */
int tsr_bm25_search(const tsr_bm25 *ix, const char *query, int k, int32_t *docs, float *scores,
                    float *scratch);
/* The supremum of any document's score for query: sum over its distinct
 * known terms of idf(t) (k1 + 1) (the tf -> infinity limit of a term's
 * score), 0 when no term is known. score / max_score lies in [0, 1). */
float tsr_bm25_max_score(const tsr_bm25 *ix, const char *query);
/* score of one document: the same bits tsr_bm25_search gives it (one
 * shared accumulation; the re-rankers fuse it with the first stage's) */
float tsr_bm25_score(const tsr_bm25 *ix, const char *query, int32_t doc);

/* --------------------------------------------------------------- metrics */

/* Binary relevance. ranked[0..n_ranked) are item indices, best first;
 * rel[0..n_rel) the relevant items (distinct).
 * recall@k = |rel ∩ top-k| / |rel|  (TREC's recall; 0 when n_rel == 0)
 * mrr@k    = 1 / rank of the first relevant item within the top k, else 0
 * ndcg@k   = DCG / IDCG, DCG = sum_{i<k, ranked[i] relevant} 1/log2(i+2),
 *            IDCG = sum_{i<min(k,n_rel)} 1/log2(i+2). */
double tsr_recall_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k);
double tsr_mrr_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k);
double tsr_ndcg_at(const int32_t *ranked, int n_ranked, const int32_t *rel, int n_rel, int k);
/* ROC AUC of scores against 0/1 labels with ties counted half:
 * P(s+ > s-) + 0.5 P(s+ == s-), by average ranks (Mann-Whitney U).
 * Returns NAN when there is no positive or no negative. scratch: 2n ints
 * or NULL (then it allocates). */
double tsr_auc(const float *scores, const uint8_t *labels, int n, int32_t *scratch);

/* Mean metrics over a query set, the figures `eval --json` prints. */
typedef struct {
    int64_t queries;
    double recall1, recall10, recall100, mrr10, ndcg10;
} tsr_rank_metrics;

typedef struct {
    double sum_r1, sum_r10, sum_r100, sum_mrr, sum_ndcg;
    int64_t n;
} tsr_metric_acc;

void tsr_metric_add(tsr_metric_acc *a, const int32_t *ranked, int n_ranked, const int32_t *rel,
                    int n_rel);
tsr_rank_metrics tsr_metric_mean(const tsr_metric_acc *a);

/* ----------------------------------------------------------- query sets */

/* One query with its relevant items (indices into the catalog). */
typedef struct {
    char *text;
    int64_t user;  /* -1: none */
    int32_t *rel;
    int n_rel;
    int construction; /* TSR_QC_* */
    int split;        /* TSR_SPLIT_* */
    int32_t trigger;  /* item-to-item queries: the trigger item (never a result); -1: none */
} tsr_query;

typedef struct {
    tsr_query *q;
    int32_t n, cap;
} tsr_queryset;

enum {
    TSR_QC_APPSTREAM = 0, /* AppStream keyword -> packages whose components list it */
    TSR_QC_VIRTUAL,       /* virtual-package description -> its providers */
    TSR_QC_DEBTAGS,       /* a debtags facet value phrased as a query -> tagged packages */
    TSR_QC_KNOWN_ITEM,    /* words from one package's summary -> that package */
    TSR_QC_MOVIELENS,     /* (user, tag) -> the movies that user tagged with it */
    TSR_QC_FILE,          /* read from a JSONL query file */
    /* item-to-item (Hi-Gen-I2I): the query is a trigger item (its name and
     * summary as text, split by its id), relevant = related items */
    TSR_QC_I2I_RECOMMENDS, /* the trigger's recommends + suggests, and what recommends/suggests it */
    TSR_QC_I2I_SOURCE,     /* the other binary packages of the trigger's source package */
    TSR_QC_COUNT
};
/* true for the item-to-item constructions */
bool tsr_qc_is_i2i(int construction);
/* I2I caps: an i2i-source trigger whose source package builds more than
 * TSR_I2I_MAX_FAMILY binaries is skipped; any construction's query with
 * more than TSR_QC_MAX_REL relevant items is skipped. */
enum { TSR_I2I_MAX_FAMILY = 50, TSR_QC_MAX_REL = 100 };
/* The text an item-to-item query reads: "ID\nSUMMARY" (malloc'd), what
 * `higen search --item` gives the generator. */
char *tsr_i2i_text(const tsr_catalog *cat, int32_t item);
/* The key a query's split and tuning subset hash: the trigger's id for
 * an item-to-item query, else its text. */
const char *tsr_query_split_key(const tsr_catalog *cat, const tsr_query *q);
extern const char *const tsr_qc_names[TSR_QC_COUNT];
/* Fields a construction's labels derive from, hidden from every method's
 * item text for that construction's queries (TSR_F_*). */
unsigned tsr_qc_hidden(int construction);
/* construction by name ("appstream", ...), or -1 */
int tsr_qc_from_name(const char *name);

enum { TSR_SPLIT_TRAIN = 0, TSR_SPLIT_VALID = 1, TSR_SPLIT_TEST = 2, TSR_SPLIT_COUNT };
extern const char *const tsr_split_names[TSR_SPLIT_COUNT];
int tsr_split_from_name(const char *name); /* -1 if unknown; "all" is -1 too */
/* Split by query text: FNV-1a of the normalised text (lower-case, single
 * spaces) mod 20: 0..15 train, 16..17 valid, 18..19 test. The same text
 * lands in one split whatever construction or user it comes with. */
int tsr_query_split(const char *text);
/* FNV-1a (64-bit, from offset basis `basis`) of the text lower-cased, with
 * runs of white space as one space and none at either end: what
 * tsr_query_split hashes */
uint64_t tsr_query_hash(const char *text, uint64_t basis);
/* The tuning subset: about 1/8 of the train split's query texts, by a
 * second hash of the same normalised text (offset basis
 * 0x84222325cbf29ce4, then h ^= h >> 29, h % 8 == 0), so settings can be
 * chosen without the validation queries. False for any valid/test text. */
bool tsr_query_is_tune(const char *text);

/* Appends the queries of one construction built from the catalog. Query
 * texts are distinct within a construction (a text naming several label
 * sources merges their relevant sets). */
tsr_status tsr_queries_build(tsr_queryset *qs, const tsr_catalog *cat, int construction);
void tsr_queryset_free(tsr_queryset *qs);
/* copies q (text and relevant set) into qs, with no trigger
 * (tsr_queryset_add_i2i: with one) */
void tsr_queryset_add(tsr_queryset *qs, const char *text, int64_t user, const int32_t *rel,
                      int n_rel, int construction, int split);
void tsr_queryset_add_i2i(tsr_queryset *qs, const char *text, int32_t trigger, const int32_t *rel, int n_rel,
                          int construction, int split);

/* ------------------------------------------------------ JSONL query files */

/* A parsed query file line: {"query": str, "relevant": [str|int, ...],
 * "user": int|str (optional), "trigger": str (optional: an item-to-item
 * query's trigger item id)}. Ids stay strings here. */
typedef struct {
    char *query;
    char *trigger; /* NULL when absent */
    char **relevant;
    int n_relevant;
    int64_t user; /* -1 when absent */
    int line;     /* 1-based line number in the file */
} tsr_qline;

typedef struct {
    tsr_qline *l;
    int n;
} tsr_qfile;

/* Parses a JSONL buffer. `name` is used in messages ("FILE:LINE: ...").
 * Blank lines are skipped; a line that is not such an object, an empty
 * query, an empty relevant list or a file without queries is a one-line
 * error. */
tsr_status tsr_qfile_parse(tsr_qfile *qf, const char *buf, size_t len, const char *name);
tsr_status tsr_qfile_read(tsr_qfile *qf, const char *path);
void tsr_qfile_free(tsr_qfile *qf);
/* Resolves the relevant ids against the catalog into qs (construction
 * TSR_QC_FILE, split from tsr_query_split of the trigger's id when there
 * is one, else of the text). An unknown item id or trigger, a trigger
 * among its own relevant items, or a user that the catalog does not know
 * (when it has users), is an error naming the file line. */
tsr_status tsr_qfile_resolve(tsr_queryset *qs, const tsr_qfile *qf, const tsr_catalog *cat,
                             const char *name);
/* Writes queries (one split or all when split < 0) as JSONL, atomically. */
tsr_status tsr_queryset_write(const tsr_queryset *qs, const tsr_catalog *cat, int split,
                              const char *path);

/* ------------------------------------------------------------ bi-encoder */

/* A small bidirectional transformer text encoder (the nn Llama blocks with
 * a padding mask instead of the causal one), mean-pooled over the real
 * tokens and L2-normalised; query and item share it. With eff_hidden > 0
 * an item's embedding adds an efficiency MLP before the normalisation
 * (Hi-Gen's item encoder: text + popularity):
 *   e(item) = normalize(pool(h) + W2 silu(W1 eff + b1))
 * Trained with InfoNCE (tsr_benc_infonce). src/search/biencoder.c. */
typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, hidden_dim, vocab, max_seq;
    int eff_hidden; /* 0: no efficiency MLP */
} tsr_benc_cfg;

typedef struct {
    tsr_benc_cfg cfg;
    tsr_params params;
    tsr_nn_llama enc;      /* "model.*"; its head is tied and unused */
    tsr_nn_linear eff1, eff2; /* "eff.0", "eff.2" when eff_hidden > 0 */
} tsr_benc;

/* checks the config (TSR_ERR_ARG on a bad one) and registers parameters */
tsr_status tsr_benc_init(tsr_benc *m, const tsr_benc_cfg *cfg);
void tsr_benc_init_weights(tsr_benc *m, uint64_t seed);
void tsr_benc_free(tsr_benc *m);
/* tokens i32 (B,T), row b real for its first lens[b] >= 1 tokens (the rest
 * any valid id); eff (B) f32 or NULL (no efficiency term; queries) ->
 * unit-norm embeddings (B, dim). plain (may be NULL) gets the text-only
 * embedding of the same forward (no efficiency term), e.g. for an index
 * that needs both. */
tsr_tensor *tsr_benc_encode(tsr_ctx *c, const tsr_benc *m, const tsr_tensor *tokens,
                            const int32_t *lens, const tsr_tensor *eff, tsr_tensor **plain);
/* Weights file written by a trainer whose config holds "encoder.dim",
 * "encoder.layers", "encoder.heads", "encoder.kv_heads", "encoder.hidden",
 * "encoder.vocab", "encoder.max_seq", "encoder.eff_hidden" in its metadata:
 * builds the model from them and loads every tensor. */
tsr_status tsr_benc_load(tsr_benc *m, const char *path);
/* the same keys, for a trainer's config list: 16 strings (8 key, value
 * pairs) into kv, values in buf (>= 8 * 16 bytes) */
void tsr_benc_config_kv(const tsr_benc_cfg *cfg, const char **kv, char *buf);

/* The encoder's final hidden states averaged over each row's real tokens
 * (bidirectional attention restricted to them): (B, dim). The pooling
 * tsr_benc_encode normalises; cross-encoders put a head on it. */
tsr_tensor *tsr_benc_pool(tsr_ctx *c, const tsr_nn_llama *enc, const tsr_tensor *tokens,
                          const int32_t *lens);
/* InfoNCE over in-batch and extra negatives: q (B,C), d (N,C), N >= B,
 * d[i] the positive of q[i], every other row a negative of every query:
 * mean_i CE(q_i d^T / tau + M_i, i). M (B,N) f32 or NULL: 0, or a large
 * negative number for a (query, item) that must not count as a negative
 * (another row's item that is relevant to this query too). */
tsr_tensor *tsr_benc_infonce(tsr_ctx *c, tsr_tensor *q, tsr_tensor *d, float tau, const tsr_tensor *mask);

#endif
