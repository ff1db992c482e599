/* tessera ebrm: entity-based relevance (EBRM, arXiv 2307.00370) over the
 * Debian catalog. An item is decomposed into the entities the catalog
 * states about it; a query-entity (QE) model scores each (query, entity)
 * pair; a soft-logic aggregation turns an item's QE scores into the
 * query-item (QI) relevance; a bounded LRU cache shares QE scores between
 * every item that holds the entity. src/models/ebrm/: entities.c (entities,
 * leakage rule, QI candidate sets, QE pretraining pairs), softlogic.c
 * (aggregation forward/backward), qe.c (QE cross-encoder), cache.c (QE
 * cache). docs/ebrm.md. */
#ifndef TESSERA_EBRM_H
#define TESSERA_EBRM_H

#include "tessera/core.h"
#include "tessera/search.h"

/* ------------------------------------------------------------- entities */

/* Entity types. Keys are "facet::value" strings: a debtag is its own key
 * ("works-with::pdf"); the others are prefixed so no key collides with a
 * debtag ("section::graphics", "category::Office", "provides::pdf-viewer"). */
enum {
    TSR_EBRM_TAG = 0,  /* debtags */
    TSR_EBRM_SECTION,  /* Debian section */
    TSR_EBRM_CATEGORY, /* AppStream (freedesktop) categories */
    TSR_EBRM_PROVIDES, /* virtual packages provided: those Policy lists or
                        * that two or more packages provide */
    TSR_EBRM_TYPES
};
extern const char *const tsr_ebrm_type_names[TSR_EBRM_TYPES];

typedef struct {
    int32_t n;          /* distinct entities */
    char **key;         /* unique key, see above */
    char **text;        /* short text the QE model reads */
    uint8_t *type;      /* TSR_EBRM_* */
    tsr_strmap by_key;
    int32_t n_items;
    int64_t *item_off;  /* (n_items+1) CSR offsets into item_ent */
    int32_t *item_ent;  /* entities of each item, ascending entity id */
} tsr_ebrm_entities;

/* Entities of every catalog item (a Debian catalog). Entity ids follow
 * first appearance in item order, so they are deterministic. */
tsr_status tsr_ebrm_entities_build(tsr_ebrm_entities *E, const tsr_catalog *cat);
void tsr_ebrm_entities_free(tsr_ebrm_entities *E);
/* entity id of a key, or -1 */
int32_t tsr_ebrm_entity_find(const tsr_ebrm_entities *E, const char *key);

/* The leakage rule: the entity types a construction's queries must not
 * see, as a bit set (1 << TSR_EBRM_*). A construction that derives its
 * labels from a field hides that field: virtual -> provides; debtags ->
 * tags; plus every type whose item field tsr_qc_hidden hides (tags,
 * section, AppStream categories). AppStream keywords are never entities. */
unsigned tsr_ebrm_hidden_types(int construction);
/* Writes the entities of `item` visible to `construction` into out (up to
 * cap) and returns how many there are (may exceed cap). */
int tsr_ebrm_item_entities(const tsr_ebrm_entities *E, int32_t item, int construction,
                           int32_t *out, int cap);

/* ----------------------------------------------- QI label sets (re-rank) */

/* One query's candidates: the first-stage (BM25) top-k with 0/1 labels.
 * Relevant items the retriever missed are not candidates; metrics still
 * count them (rel/n_rel of the query). */
typedef struct {
    int32_t query;   /* index into the query set */
    int32_t *cand;   /* candidate items, BM25 order */
    float *bm25;     /* their BM25 scores */
    float bm25_max;  /* tsr_bm25_max_score of the query: bm25 / bm25_max in [0, 1) */
    uint8_t *label;  /* 1: relevant */
    int n, n_pos;
} tsr_ebrm_qi;

typedef struct {
    tsr_ebrm_qi *q;
    int32_t n;
} tsr_ebrm_qiset;

/* Candidates for every query of qs in `split` (< 0: all): the top-k of
 * index ix[q.construction] (one BM25 index per construction, built over
 * the item text with that construction's hidden fields removed; the
 * caller may pass the same index for several). Queries whose candidates
 * hold no relevant item are kept (their metrics are 0). */
tsr_status tsr_ebrm_qi_build(tsr_ebrm_qiset *out, const tsr_queryset *qs, int split,
                             const tsr_bm25 *const *ix, int k);

/* The tuning split: about 1/8 of the train split's query texts, chosen by a
 * second hash of the same normalised text (case and runs of white space do
 * not matter), so training settings can be chosen without the validation
 * queries the results are reported on. tsr_ebrm_mark_tune moves those
 * train queries of qs to TSR_EBRM_SPLIT_TUNE (then a TSR_SPLIT_TRAIN
 * build leaves them out and a TSR_EBRM_SPLIT_TUNE build takes only them). */
#define TSR_EBRM_SPLIT_TUNE TSR_SPLIT_COUNT
bool tsr_ebrm_is_tune(const char *text);
int32_t tsr_ebrm_mark_tune(tsr_queryset *qs);
void tsr_ebrm_qiset_free(tsr_ebrm_qiset *s);

/* -------------------------------------------- QE pretraining pairs */

/* Weak query-entity pairs generated from the catalog, standing in for the
 * paper's user logs: for each AppStream keyword w whose text falls in the
 * train split (tsr_query_split, so no pair's query is a validation or test
 * query text of any construction), with P(w) the packages listing it:
 *   positive (w, e), target = |{p in P(w): e in p}| / |P(w)|, for every
 *     tag, section or category entity e of some p in P(w) (provides is
 *     left out: the virtual construction's labels come from it);
 *   one negative (w, e') per positive, target 0, e' drawn uniformly from
 *     the entities of the same type held by no package of P(w).
 * Keywords listed by fewer than min_pkgs packages are skipped. */
typedef struct {
    int32_t query;   /* index into queries */
    int32_t entity;
    float target;    /* weak p(relevant) in [0,1] */
} tsr_ebrm_qe_pair;

typedef struct {
    char **queries;
    int32_t n_queries;
    tsr_ebrm_qe_pair *pairs;
    int64_t n;
} tsr_ebrm_qe_data;

tsr_status tsr_ebrm_qe_pairs(tsr_ebrm_qe_data *out, const tsr_catalog *cat,
                             const tsr_ebrm_entities *E, int min_pkgs, uint64_t seed);
/* The same, without the keywords of the tuning split (tsr_ebrm_is_tune)
 * when hold_tune is set, and with a choice of positive target:
 *   TSR_EBRM_QE_SHARE  s = |{p in P(w): e in p}| / |P(w)| (as above);
 *   TSR_EBRM_QE_LIFT   max(0, (s - b_e) / (1 - b_e)), b_e the share of all
 *                      keyword-listing packages that hold e: how much more
 *                      often w's packages hold e than packages at large,
 *                      so an entity nearly every package holds
 *                      (role::program) is no evidence for any keyword. */
enum { TSR_EBRM_QE_SHARE = 0, TSR_EBRM_QE_LIFT = 1 };
tsr_status tsr_ebrm_qe_pairs_ex(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                int min_pkgs, uint64_t seed, bool hold_tune, int target);
/* Appends to out (empty or from tsr_ebrm_qe_pairs*) the pairs of the
 * virtual construction's train-split queries (tsr_queries_build: Policy's
 * description of a virtual package, relevant = its providers), without
 * the tuning split's when hold_tune is set: with P(v) the providers,
 *   positive (desc, e), target |{p in P(v): e in p}| / |P(v)|, for every
 *     entity e of some p in P(v) that the virtual construction's queries
 *     may see (tags, sections, categories: the leakage rule hides
 *     provides, the field the labels come from);
 *   one negative per positive, target 0, drawn as for the keyword pairs.
 * Only the description text and entity texts enter a pair (no package's
 * name, summary or description), and no validation or test query text:
 * the split is a function of the query text. */
tsr_status tsr_ebrm_qe_pairs_virtual(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                     uint64_t seed, bool hold_tune);
/* Appends to out (empty, {0}, or from tsr_ebrm_qe_pairs*) pairs from the
 * catalog's own item text, read by no query
 * construction: of the packages whose summary falls in the train split
 * (tsr_query_split of the summary; without the tuning split's when
 * hold_tune is set) and that hold at least one tag or category, n_pkgs
 * drawn with the seed (all when fewer), each gives
 *   positive (summary, e), target 1, for each of its tag, section and
 *     category entities (never provides: the virtual construction's label);
 *   one negative per positive, target 0, an entity of the same type the
 *     package does not hold: drawn uniformly from the type's entities
 *     (TSR_EBRM_NEG_UNIFORM), or as often as packages hold it
 *     (TSR_EBRM_NEG_FREQ: a random entity of that type of another drawn
 *     eligible package), so that a common entity (role::program) is a
 *     negative about as often as a positive and only the text can tell.
 * No query set and no label is read; no pair query is a validation or
 * test query text of any construction. */
enum { TSR_EBRM_NEG_UNIFORM = 0, TSR_EBRM_NEG_FREQ = 1 };
tsr_status tsr_ebrm_qe_pairs_items(tsr_ebrm_qe_data *out, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                   int32_t n_pkgs, uint64_t seed, bool hold_tune, int neg);
void tsr_ebrm_qe_data_free(tsr_ebrm_qe_data *d);

/* ------------------------------------------------- soft-logic aggregation */

/* The QE model gives two probabilities per (query, entity e):
 *   r_e = p(the query asks for e),   c_e = p(e contradicts the query).
 * An item with entities e_1..e_m of types t_j is relevant with
 *   S = 1 - (1 - leak) * prod_j (1 - w[t_j] r_j)     noisy-OR "some entity
 *                                                    the query asks for"
 *   K = prod_j (1 - v[t_j] c_j)                      product t-norm over
 *                                                    "e_j does not contradict"
 *   p(QI) = S * K
 * with leak = sigmoid(theta[0]), w[t] = sigmoid(theta[1+t]) and
 * v[t] = sigmoid(theta[1+T+t]), T = TSR_EBRM_TYPES: 2T+1 learned logits.
 * Noisy-OR is monotone in each r_j, treats entities as independent
 * causes and saturates (many weak matches do not beat one sure match);
 * the t-norm lets any one confident contradiction veto the item. */
#define TSR_EBRM_THETA (2 * TSR_EBRM_TYPES + 1)

/* Items i in [0,n_items): slots off[i]..off[i+1] of r, c, type.
 * p[i] = p(QI) of item i. */
void tsr_ebrm_agg_forward(float *p, const float *r, const float *c, const uint8_t *type,
                          const int64_t *off, int32_t n_items, const float *theta);
/* Given dp = dL/dp: writes dr, dc (per slot) and ADDS dL/dtheta into
 * dtheta. No division: the leave-one-out products come from prefix and
 * suffix products, so r_j = 1 or c_j = 1 is fine. */
void tsr_ebrm_agg_backward(float *dr, float *dc, float *dtheta, const float *dp, const float *r,
                           const float *c, const uint8_t *type, const int64_t *off,
                           int32_t n_items, const float *theta);
/* Per-entity explanation of one item (slots 0..m): with
 * S_{-j} the noisy-OR without e_j, support[j] = K * (S - S_{-j}) is how
 * much e_j adds to p, and veto[j] = p_{-j} - p (>= 0) what its
 * contradiction term removes. */
void tsr_ebrm_agg_explain(float *support, float *veto, const float *r, const float *c,
                          const uint8_t *type, int m, const float *theta);

/* ------------------------------------------------------- QE cross-encoder */

/* A small bidirectional transformer over the tokens of [query ; entity
 * text] (the nn Llama blocks, padding mask and masked mean pooling of the
 * search bi-encoder, tsr_benc_pool), then a linear head to two logits:
 * column 0 -> r = sigmoid (the query asks for e), column 1 -> c = sigmoid
 * (e contradicts the query). cfg.eff_hidden must be 0. src/models/ebrm/qe.c. */
typedef struct {
    tsr_benc_cfg cfg;
    tsr_params params;
    tsr_nn_llama enc; /* "model.*" */
    tsr_nn_linear head; /* "head": dim -> 2, with bias */
} tsr_ebrm_qe;

tsr_status tsr_ebrm_qe_init(tsr_ebrm_qe *m, const tsr_benc_cfg *cfg);
void tsr_ebrm_qe_init_weights(tsr_ebrm_qe *m, uint64_t seed);
void tsr_ebrm_qe_free(tsr_ebrm_qe *m);
/* tokens i32 (B,T), row b real for its first lens[b] >= 1 tokens -> (B,2) logits */
tsr_tensor *tsr_ebrm_qe_logits(tsr_ctx *c, const tsr_ebrm_qe *m, const tsr_tensor *tokens,
                               const int32_t *lens);

/* --------------------------------------------------------------- QE cache */

/* Bounded LRU map (query text, entity) -> the QE pair (r, c). The query
 * is keyed by two independent 64-bit hashes of its text (a false hit
 * needs both to collide). Hits and misses are counted. */
typedef struct {
    uint64_t h1, h2;
    int32_t entity;
    float r, c;
    int32_t prev, next;  /* LRU list, -1 ends */
    int32_t chain;       /* hash bucket chain, -1 ends */
    bool used;
} tsr_ebrm_cache_slot;

typedef struct {
    tsr_ebrm_cache_slot *slot;
    int32_t cap, n;
    int32_t *bucket;     /* n_buckets heads */
    int32_t n_buckets;
    int32_t head, tail;  /* most / least recently used */
    int64_t hits, misses;
} tsr_ebrm_cache;

/* cap >= 1 entries */
void tsr_ebrm_cache_init(tsr_ebrm_cache *k, int32_t cap);
void tsr_ebrm_cache_free(tsr_ebrm_cache *k);
void tsr_ebrm_cache_clear(tsr_ebrm_cache *k); /* drops entries and counters */
/* true and (r,c) on a hit (the entry becomes most recent); counts it */
bool tsr_ebrm_cache_get(tsr_ebrm_cache *k, const char *query, int32_t entity, float *r, float *c);
/* inserts or overwrites, evicting the least recently used when full */
void tsr_ebrm_cache_put(tsr_ebrm_cache *k, const char *query, int32_t entity, float r, float c);
double tsr_ebrm_cache_hit_rate(const tsr_ebrm_cache *k); /* 0 before any lookup */

/* A QE scorer: writes r[i], c[i] for entities ent[0..n) under one query.
 * A pair's score must not depend on the other pairs of the call (the
 * cache relies on it for bit-identical scores). */
typedef tsr_status (*tsr_ebrm_qe_fn)(void *ud, const char *query, const int32_t *ent, int n,
                                     float *r, float *c);

/* Scores items[0..n) for a query: their entities visible to construction
 * (tsr_ebrm_item_entities), QE scores from the cache (NULL: no cache,
 * every slot scored), misses scored in ONE call to qe for the distinct
 * missing entities, then the aggregation. p[i] = p(QI). */
tsr_status tsr_ebrm_score_items(float *p, const tsr_ebrm_entities *E, const int32_t *items,
                                int32_t n, int construction, const char *query,
                                tsr_ebrm_qe_fn qe, void *qe_ud, tsr_ebrm_cache *cache,
                                const float *theta);

/* ------------------------------------------------------ the trained model */

/* Tokens kept per query, per entity text and per item text (the full-text
 * cross-encoder baseline reads the head of the item text). A pair is
 * [query ; SEP ; second text], SEP being the id after the tokenizer's. */
#define TSR_EBRM_TQ 16
#define TSR_EBRM_TE 16
#define TSR_EBRM_TI 48

enum {
    TSR_EBRM_KIND_EBRM = 0,  /* QE cross-encoder + aggregation */
    TSR_EBRM_KIND_CROSS = 1, /* baseline: the same encoder over (query, full item text) */
};
enum {
    TSR_EBRM_AGG_SOFTLOGIC = 0, /* tsr_ebrm_agg_forward */
    TSR_EBRM_AGG_MEAN = 1,      /* ablation: p = mean_j r_j (leak when no entity) */
    TSR_EBRM_AGG_FUSE = 2,      /* soft logic, then late fusion with the item's lexical
                                 * match: p' = sigmoid(logit(p) + alpha * lex), lex the
                                 * item's BM25 score / the query's maximum score,
                                 * alpha = "agg.fuse" (tsr_ebrm_model_score) */
};

#include "tessera/bpe.h"

/* A trained EBRM (or cross-encoder baseline) with its tokenizer. For the
 * EBRM kind, theta ("agg.theta", TSR_EBRM_THETA logits) is a parameter
 * beside the QE encoder's, and prepare() tokenises every entity text. */
typedef struct {
    tsr_ebrm_qe qe;        /* cfg.vocab = tokenizer vocab + 1 */
    tsr_tensor *theta;     /* EBRM kind only */
    tsr_tensor *fuse;      /* TSR_EBRM_AGG_FUSE only: alpha, shape (1) */
    int lex_norm;          /* TSR_EBRM_AGG_FUSE: the lexical match's normaliser
                            * (TSR_EBRM_LEX_*, weights metadata "fuse.lex") */
    tsr_tensor *gate;      /* gated fusion only (tsr_ebrm_model_set_gate): (slope,
                            * center), shape (2); weights metadata "fuse.gate" */
    int kind, agg, sep;
    tsr_bpe bpe;
    bool have_bpe;
    int32_t n_ent;         /* prepared entities */
    int32_t *ent_tok;      /* n_ent x TSR_EBRM_TE */
    int32_t *ent_len;
    tsr_ctx ctx;           /* inference scratch */
} tsr_ebrm_model;

/* cfg.vocab must be the tokenizer's vocabulary + 1 */
tsr_status tsr_ebrm_model_init(tsr_ebrm_model *m, const tsr_benc_cfg *cfg, int kind, int agg);
void tsr_ebrm_model_init_weights(tsr_ebrm_model *m, uint64_t seed);
void tsr_ebrm_model_free(tsr_ebrm_model *m);
/* Changes a loaded EBRM model's aggregation (softlogic <-> mean for QI
 * training from QE pretraining). TSR_EBRM_AGG_FUSE adds "agg.fuse" = alpha
 * (>= 0) to a soft-logic model; a fused model cannot change its aggregation. */
tsr_status tsr_ebrm_model_set_agg(tsr_ebrm_model *m, int agg, float alpha);
/* the model's config as key, value pairs (11 pairs: 22 strings into kv,
 * values in buf >= 11 * 16 bytes) for its metadata and the trainer */
#define TSR_EBRM_CFG_KV 11
void tsr_ebrm_model_config_kv(const tsr_ebrm_model *m, const char **kv, char *buf);
/* weights file (safetensors, the config in its metadata plus meta) */
tsr_status tsr_ebrm_model_save(const tsr_ebrm_model *m, const char *path, const char *const *meta);
/* Reads a weights file and the tokenizer (tokenizer.json); a file of the
 * wrong kind, a bad config, a vocabulary that does not match, a missing or
 * non-finite tensor is an error naming the file. */
tsr_status tsr_ebrm_model_load(tsr_ebrm_model *m, const char *path, const char *tokenizer);
/* tokenises every entity text (EBRM kind) */
void tsr_ebrm_model_prepare(tsr_ebrm_model *m, const tsr_ebrm_entities *E);
/* lower-cased BPE ids of text, at most n (>= 1: an empty text gives id 0) */
int tsr_ebrm_tokenize(tsr_bpe *bpe, const char *text, int32_t *out, int n);
/* One pair's tokens: q (qn) ; SEP ; b (bn) into out, returns the length. */
int tsr_ebrm_pair(const tsr_ebrm_model *m, const int32_t *q, int qn, const int32_t *b, int bn, int32_t *out);
/* Builds the (n, T) token tensor of n pairs (the second texts b[i] of
 * blen[i] tokens), T the longest pair. lens gets each pair's length. */
tsr_tensor *tsr_ebrm_pairs_tensor(tsr_ctx *c, const tsr_ebrm_model *m, const int32_t *q, int qn,
                                  const int32_t *const *b, const int *blen, int n, int32_t *lens);
/* The QE scorer over the model (a tsr_ebrm_qe_fn; ud = the model): one
 * forward per block of pairs, each pair padded to TSR_EBRM_TQ + 1 +
 * TSR_EBRM_TE tokens so that its score never depends on the others. */
tsr_status tsr_ebrm_model_qe(void *ud, const char *query, const int32_t *ent, int n, float *r, float *c);
/* Cross-encoder kind: p(relevant) of (query, texts[i]) for i < n. */
tsr_status tsr_ebrm_model_cross(tsr_ebrm_model *m, const char *query, const char *const *texts, int n, float *p);
/* Mean aggregation (the ablation): p[i] = mean of r over item i's slots,
 * sigmoid(theta[0]) for an item without slots; backward writes dr and adds
 * dtheta. */
void tsr_ebrm_mean_forward(float *p, const float *r, const int64_t *off, int32_t n_items, const float *theta);
void tsr_ebrm_mean_backward(float *dr, float *dtheta, const float *dp, const int64_t *off, int32_t n_items,
                            const float *theta);

/* The re-ranked order of n candidates: p descending, ties kept in the
 * first-stage order (index order). ord gets n indices. */
void tsr_ebrm_rank_order(const float *p, int n, int *ord);

/* ------------------------------------------------------------- training */

#include "tessera/train.h"

/* QE pretraining (EBRM kind): BCE on the weak targets of d's pairs
 * (column r only; c learns on QI labels). eval: the loss on up to 2,048
 * pairs held out of training (every 16th pair). */
tsr_status tsr_ebrm_train_qe(tsr_ebrm_model *m, const tsr_ebrm_entities *E, const tsr_ebrm_qe_data *d, int batch,
                             const tsr_train_opts *o, tsr_train_result *res);

/* QI training on candidate sets: each step takes `batch` queries of tr,
 * per query its relevant candidates (up to 8) and n_neg non-relevant ones
 * drawn from c->rng, and minimises the BCE of p(QI) against the labels.
 * EBRM kind: through the aggregation (QE encoder and theta); cross kind:
 * over (query, item text). Item text and entities follow the query's
 * construction (leakage rule). eval: NDCG@10 (and auc) of the re-ranked
 * candidates of va (at most 64 queries). */
typedef struct {
    const tsr_catalog *cat;
    const tsr_ebrm_entities *E;
    const tsr_queryset *qs;
    const tsr_ebrm_qiset *tr, *va;
    int batch, n_neg;
    /* Optional auxiliary QE loss (EBRM kind): each step also draws
     * aux_batch pairs of aux from c->rng (after the items) and adds
     * aux_weight x their mean BCE (the QE pretraining loss) to the QI loss,
     * so that QI training keeps what the pairs teach. NULL or weight 0:
     * none, and the step is unchanged. */
    const tsr_ebrm_qe_data *aux;
    float aux_weight;
    int aux_batch;
} tsr_ebrm_qi_train;
/* One EBRM training step's loss on training queries qids (indices into
 * t->tr; items drawn from c->rng); backward: gradients into the model's
 * parameters (theta's grad must exist: zeroed params). Model prepared. */
void tsr_ebrm_qi_loss(tsr_ctx *c, tsr_ebrm_model *m, const tsr_ebrm_qi_train *t, const int32_t *qids, int B,
                      bool backward, float *loss);
/* The second half of a step's loss: from the logits of np (query, entity)
 * pairs (np x 2, on the tape; NULL when np is 0) through r, c = sigmoid,
 * the model's aggregation over items' slots (slot j of item i, j in
 * off[i]..off[i+1], reads pair pair_of[j] and has entity type type[j]),
 * the BCE against labels y (mean over the ni items), plus aux_weight * al
 * when al is given. backward: gradients into theta and, through the tape,
 * the QE model. p_out (optional) receives the ni items' p. Returns the loss. */
float tsr_ebrm_qi_agg_loss(tsr_ctx *c, const tsr_ebrm_model *m, tsr_tensor *logits, int np, const int32_t *pair_of,
                           const uint8_t *type, const int64_t *off, int32_t ni, const uint8_t *y, tsr_tensor *al,
                           float aux_weight, bool backward, float *p_out);
tsr_status tsr_ebrm_train_qi(tsr_ebrm_model *m, const tsr_ebrm_qi_train *t, const tsr_train_opts *o,
                             tsr_train_result *res);

/* QE overrides (`--set-qe KEY=VALUE`): entity ent[i] gets r = r[i] for
 * every query, after the QE model and before the aggregation. */
typedef struct {
    int n;
    int32_t *ent;
    float *r;
} tsr_ebrm_setqe;

/* Scores one query's candidates with the model: EBRM kind through
 * tsr_ebrm_score_items (cache may be NULL; with overrides the cache is
 * bypassed so that overridden scores never enter it), cross kind over the
 * item texts of the construction. lex[i]: item i's lexical match in [0, 1]
 * (tsr_ebrm_lex), needed by a TSR_EBRM_AGG_FUSE model (else ignored; NULL
 * then is an error): p[i] = sigmoid(logit(p_softlogic) + alpha * lex[i]),
 * the logit taken of p clamped to [1e-7, 1 - 1e-7]. */
tsr_status tsr_ebrm_model_score(tsr_ebrm_model *m, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                const char *query, int construction, const int32_t *items, int n,
                                tsr_ebrm_cache *cache, const tsr_ebrm_setqe *set, const float *lex, float *p);
/* The lexical match of items for a query: BM25 score / tsr_bm25_max_score
 * over index ix (the construction's visible text), in [0, 1). bm25: the
 * items' scores from the first stage, or NULL to compute them. */
void tsr_ebrm_lex(const tsr_bm25 *ix, const char *query, const int32_t *items, const float *bm25, int n, float *lex);
/* What a query's BM25 scores are divided by: MAX, tsr_bm25_max_score (no
 * item reaches it; weights metadata "fuse.lex" = "bm25/max_bm25", and files
 * without the key); TOP1, the best score of any item of the index for the
 * query (the first stage's first candidate; "bm25/top1_bm25"). */
enum { TSR_EBRM_LEX_MAX = 0, TSR_EBRM_LEX_TOP1 = 1 };
extern const char *const tsr_ebrm_lex_names[2];
/* tsr_ebrm_lex with either normaliser, clamped to [0, 1]. top1: the query's
 * best BM25 score over ix when the caller has it (the first entry of the
 * first stage's list), < 0 to search for it (TOP1 only). */
void tsr_ebrm_lex_ex(const tsr_bm25 *ix, const char *query, int norm, float top1, const int32_t *items,
                     const float *bm25, int n, float *lex);
/* Late fusion of a TSR_EBRM_AGG_FUSE model: sigmoid(g * logit(p) + alpha *
 * lex) (p clamped as above), g the query's gate (tsr_ebrm_gate; 1 for a
 * model without one); p itself for other models. */
float tsr_ebrm_fuse(const tsr_ebrm_model *m, float p, float lex, float g);
/* The fusion with explicit weights: sigmoid(g * logit(p) + alpha * lex),
 * computed in double; g = 1 gives tsr_ebrm_fuse_alpha's bits. */
float tsr_ebrm_fuse_gated(float p, float g, float alpha, float lex);

/* Gated fusion: how much the soft-logic logit counts depends on the query,
 *   g(q) = sigmoid(slope * (top(q) - center)),
 * top(q) = the query's best BM25 score over the construction's index (the
 * first stage's first candidate) / tsr_bm25_max_score, in [0, 1]: how much
 * of the query the best lexical match covers. A query-level number from
 * BM25 alone (no QE score, no other candidate), so the QE cache and the
 * per-item scores are untouched and any subset of items scores the same.
 * set_gate adds "agg.gate" = (slope, center) to a fused model; the feature
 * is named in the weights metadata "fuse.gate" (tsr_ebrm_gate_feature). */
extern const char *const tsr_ebrm_gate_feature;
tsr_status tsr_ebrm_model_set_gate(tsr_ebrm_model *m, float slope, float center);
/* top(q): top1 = the query's best BM25 score when the caller has it (the
 * first entry of the first stage's list), < 0 to search for it */
float tsr_ebrm_top_ratio(const tsr_bm25 *ix, const char *query, float top1);
/* g(q) of a gated model for top(q); 1 for a model without a gate */
float tsr_ebrm_gate(const tsr_ebrm_model *m, float top);
/* tsr_ebrm_model_score with the query's top(q) (tsr_ebrm_top_ratio), which a
 * gated model needs (top < 0 is then an error) and other models ignore.
 * tsr_ebrm_model_score is this with top = -1. */
tsr_status tsr_ebrm_model_score_top(tsr_ebrm_model *m, const tsr_catalog *cat, const tsr_ebrm_entities *E,
                                    const char *query, int construction, const int32_t *items, int n,
                                    tsr_ebrm_cache *cache, const tsr_ebrm_setqe *set, const float *lex, float top,
                                    float *p);
/* The same fusion with an explicit weight, for any score p in [0, 1] (the
 * evaluation of a fused cross-encoder or of an ablation, eval --fuse-alpha). */
float tsr_ebrm_fuse_alpha(float p, float alpha, float lex);
/* The QE scores of one item's visible entities (EBRM kind), overrides
 * applied: ent/r/c up to cap, returns the count. */
tsr_status tsr_ebrm_model_item_qe(tsr_ebrm_model *m, const tsr_ebrm_entities *E, const char *query,
                                  int construction, int32_t item, const tsr_ebrm_setqe *set, int32_t *ent,
                                  float *r, float *c, int cap, int *count);

/* ---------------------------------------------------------------- serving */

/* POST /v1/relevance for `tessera serve` (src/models/ebrm/serve.c):
 * {"query", "candidates": [package names], "construction"?} -> scores,
 * one QE cache shared by every request. */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_ebrm_serve_endpoint;

#endif
