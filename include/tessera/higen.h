/* tessera higen: Hi-Gen generative retrieval (arXiv 2404.15675) — docIDs
 * built by category-guided hierarchical clustering of item embeddings
 * (text + efficiency), the docID trie, and its baselines' docIDs
 * (NCI-style semantic ids without categories or efficiency, DSI-style
 * atomic ids). src/models/higen/. docs/higen.md says what is implemented
 * and why. */
#ifndef TESSERA_HIGEN_H
#define TESSERA_HIGEN_H

#include "tessera/lm.h"
#include "tessera/search.h"

/* ---------------------------------------------------------------- docIDs */

/* A node of the docID trie. Children are contiguous: child t of node n is
 * nodes[n.first_child + t], t in 0..n_children-1 (the docID token at that
 * depth). A leaf holds one item. */
typedef struct {
    int32_t first_child, n_children;
    int32_t item;  /* leaf: the item; internal: -1 */
    int32_t depth;  /* root 0 */
    int32_t parent; /* root: -1 */
} tsr_higen_node;

#define TSR_HIGEN_MAX_DEPTH 16

typedef struct {
    tsr_higen_node *nodes;
    int32_t n_nodes;
    int32_t n_items;
    int32_t *item_leaf;  /* leaf node of each item */
    int max_depth;       /* longest docID */
    int32_t max_fanout;  /* the docID token vocabulary per position */
} tsr_higen_trie;

typedef struct {
    bool category;    /* start with the category path (Hi-Gen); false: NCI-style */
    int eff_buckets;  /* > 0: an efficiency bucket token after the path (0: none) */
    int k;            /* k-means branching factor */
    int leaf_size;    /* a group of at most this many items is not split further */
    int iters;        /* k-means iterations */
    bool atomic;      /* DSI-style: one token per item (ignores the rest) */
    uint64_t seed;
} tsr_higen_docid_opts;

tsr_higen_docid_opts tsr_higen_docid_default_opts(void);

/* Builds the docIDs and trie of every catalog item. emb: n_items x dim
 * unit-norm item embeddings (may be NULL only when atomic). Within a
 * group of at most leaf_size items the last token orders the items by
 * efficiency (most popular first). Deterministic for fixed inputs. */
tsr_status tsr_higen_build(tsr_higen_trie *t, const tsr_catalog *cat, const float *emb, int dim,
                           const tsr_higen_docid_opts *o);
void tsr_higen_trie_free(tsr_higen_trie *t);
/* the docID of an item: tokens into out (TSR_HIGEN_MAX_DEPTH), returns its length */
int tsr_higen_docid(const tsr_higen_trie *t, int32_t item, int32_t *out);
/* Rebuilds a trie from stored docIDs (item i: lens[i] tokens at
 * docids + i * stride), as `higen index` saves them. Codes under each node
 * must be dense 0..n-1, and no docID may be a prefix of another or
 * repeat one: anything else is TSR_ERR_FORMAT naming `what`. */
tsr_status tsr_higen_trie_from_docids(tsr_higen_trie *t, const int32_t *docids, const uint8_t *lens, int stride,
                                      int32_t n_items, const char *what);
/* the node a token prefix leads to, or -1 when the prefix is not in the trie */
int32_t tsr_higen_walk(const tsr_higen_trie *t, const int32_t *tokens, int n);

/* Spherical k-means (dot product on unit vectors), k-means++ seeding from
 * a seeded rng, `iters` Lloyd steps; empty clusters are reseeded with the
 * point farthest from its centroid. assign[i] in 0..k-1. rows: the n
 * points' row indices into x (n_rows x dim). */
void tsr_kmeans(int32_t *assign, const float *x, int dim, const int32_t *rows, int n, int k, int iters,
                uint64_t seed);

/* ------------------------------------------------------------- generator */

/* The docID generator: a causal Llama decoder (the lm stack) over
 *   [pad ... pad, query tokens, SEP, d_0, ..., d_{L-2}]
 * predicting d_0 .. d_{L-1} from SEP on. Queries are left-padded to
 * max_query tokens (pads are masked out as keys), so SEP sits at a fixed
 * position. DocID token t at depth p has id doc_base + p * fanout + t: the
 * same code at different depths is a different token. */
typedef struct {
    int dim, n_layers, n_heads, n_kv_heads, hidden_dim;
    int text_vocab;  /* BPE vocabulary; pad is token 0 */
    int max_query;   /* query tokens kept (the first ones) */
    int max_depth;   /* longest docID */
    int fanout;      /* docID codes per position */
} tsr_higen_gen_cfg;

typedef struct {
    tsr_higen_gen_cfg cfg;
    tsr_params params;
    tsr_nn_llama dec;  /* training: the nn decoder over the parameters */
    tsr_lm_model lm;   /* inference: an lm view of the same weights (KV-cache forward) */
    int sep, doc_base, vocab, seq;
} tsr_higen_gen;

tsr_status tsr_higen_gen_init(tsr_higen_gen *g, const tsr_higen_gen_cfg *cfg);
void tsr_higen_gen_init_weights(tsr_higen_gen *g, uint64_t seed);
void tsr_higen_gen_free(tsr_higen_gen *g);

/* The position-aware loss (docs/higen.md): with per-position weights w_p and
 * S_p the children of the true prefix's trie node (the true token and its
 * siblings),
 *   L = sum_p w_p [ CE_V(p) + lambda CE_S(p) ] / sum_p w_p
 * CE_V: cross-entropy over the whole vocabulary (with doc_only: over the
 * docID tokens only, doc_base .. vocab-1, which skips the text tokens' rows of
 * the output layer: they are never outputs); CE_S: over S_p only.
 * Plain CE is w_p = 1, lambda = 0. */
typedef struct {
    float pos_decay;   /* w_p = 1 - pos_decay * p / max_depth (-1..1: > 0 earlier positions weigh more) */
    float sibling;     /* lambda */
    bool doc_only;     /* CE_V over the docID tokens only */
} tsr_higen_loss_opts;

/* query tokens (B rows of q_len[b] <= max_query ids each, row-major with
 * stride max_query), items (B) -> scalar loss. */
/* Load a generator saved with the "generator.*" config keys (see
 * tsr_higen_gen_config_kv) in its metadata. */
tsr_status tsr_higen_gen_load(tsr_higen_gen *g, const char *path);
/* 9 key, value pairs into kv (18 strings), values in buf (>= 9 * 16 bytes) */
void tsr_higen_gen_config_kv(const tsr_higen_gen_cfg *cfg, const char **kv, char *buf);

tsr_tensor *tsr_higen_gen_loss(tsr_ctx *c, const tsr_higen_gen *g, const tsr_higen_trie *t,
                               const int32_t *q_tok, const int32_t *q_len, const int32_t *items, int B,
                               const tsr_higen_loss_opts *o);

/* Constrained beam search over the trie: at each step every beam extends
 * only by the children of its node (log-softmax over those children), the
 * best `beam` prefixes by summed log-probability go on (ties: lower node
 * id); a prefix that reaches a leaf is a finished item. Returns up to k
 * items (k <= beam), best first, and their scores. Deterministic, and the
 * same whatever the thread count.
 * The decoder runs with a KV cache (the lm stack's forward, lm.h): the
 * query prefix [query, SEP] once, then one row per live beam per step. */
int tsr_higen_beam_search(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                          int beam, int k, int32_t *items, float *scores);
/* Tests only: the same search re-running each beam's whole row [pads,
 * query, SEP, prefix] through the nn decoder at every step (no cache), the
 * reference tsr_higen_beam_search is checked against (tests/test_higen.c). */
int tsr_higen_beam_search_uncached(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                                   int beam, int k, int32_t *items, float *scores);

/* Teacher-forced diagnosis of one (query, item): the generator reads the
 * query and the item's true docID prefix; rank[p] is the true token's rank
 * among the children of its prefix's node at position p (0: the
 * generator's first choice; ties count against it only for lower codes),
 * fanout[p] that node's number of children. Returns the docID length. */
int tsr_higen_gen_levels(const tsr_higen_gen *g, const tsr_higen_trie *t, const int32_t *q_tok, int q_len,
                         int32_t item, int32_t *rank, int32_t *fanout);

/* ------------------------------------------------------------ train data */

/* tokens kept per query and per item text (the item text's head: name,
 * summary, section, tags, AppStream, description, in that order) */
#define TSR_HIGEN_TQ 16
#define TSR_HIGEN_TI 32

#include "tessera/bpe.h"

/* the pair slot of the tuning subset of the train queries (tsr_query_is_tune) */
#define TSR_HIGEN_TUNE TSR_SPLIT_COUNT
#define TSR_HIGEN_SLOTS (TSR_SPLIT_COUNT + 1)

/* Everything the encoder and generator train and evaluate on, built from
 * the Debian catalog: the BPE tokenizer (trained on lower-cased item text),
 * token ids of every item's text (as seen by all constructions, and with
 * debtags hidden for the debtags construction), the four constructions'
 * queries with tokens, and (query, positive, BM25 hard negative) pairs per
 * split. src/models/higen/data.c. */
typedef struct {
    const tsr_catalog *cat;
    tsr_bpe bpe;
    int tq, ti;              /* tokens kept per query / item */
    int32_t *item_tok[2];    /* [view] n_items x ti; view 1 hides debtags */
    int32_t *item_len[2];
    tsr_queryset qs;         /* every construction, every split */
    int32_t *q_tok, *q_len;  /* per query, tq */
    /* pairs of one split: query, positive item, hard negative item; slot
     * TSR_HIGEN_TUNE is empty until tsr_higen_data_hold_tune fills it */
    int32_t *pair_q[TSR_HIGEN_SLOTS], *pair_pos[TSR_HIGEN_SLOTS], *pair_neg[TSR_HIGEN_SLOTS];
    int64_t n_pairs[TSR_HIGEN_SLOTS];
} tsr_higen_data;

/* bpe_path: an existing tokenizer.json to reuse, or NULL to train one
 * (vocab_size tokens, "<pad>" = 0). */
tsr_status tsr_higen_data_build(tsr_higen_data *d, const tsr_catalog *cat, const char *bpe_path, int vocab_size,
                                int tq, int ti, bool pairs, uint64_t seed);
void tsr_higen_data_free(tsr_higen_data *d);
/* Moves the train pairs whose query is in the tuning subset
 * (tsr_query_is_tune) to slot TSR_HIGEN_TUNE, keeping their order, so a
 * run can select checkpoints or settings on a loss the validation queries
 * play no part in. Returns the number of pairs moved. */
int64_t tsr_higen_data_hold_tune(tsr_higen_data *d);
/* Keeps at most max_per_query train pairs of each query (a random choice,
 * seeded, in the original order), so that queries with many relevant items
 * (debtags values) do not dominate an epoch; <= 0 keeps all. Returns how
 * many pairs were dropped. */
int64_t tsr_higen_data_cap_pairs(tsr_higen_data *d, int max_per_query, uint64_t seed);
/* the item view a construction's queries see (1: debtags hidden) */
int tsr_higen_view(int construction);
/* The generator's and encoder's input text for a query: the text itself,
 * or, for a user of a personalised catalog (user: index, -1 none), the text
 * then " |" and the user's profile: the TSR_HIGEN_PROFILE genres (item
 * tags) most frequent among the movies the user rated >= TSR_HIGEN_LIKED,
 * most frequent first (ties by name). malloc'd. */
#define TSR_HIGEN_PROFILE 3
#define TSR_HIGEN_LIKED 4.0f
char *tsr_higen_query_text(const tsr_catalog *cat, const char *text, int32_t user);
/* lower-cased BPE ids of text, at most n (returns how many, >= 1: an empty
 * text gives one pad) */
int tsr_higen_encode(tsr_bpe *bpe, const char *text, int32_t *out, int n);

/* ------------------------------------------------------------------ index */

/* Unit-norm embeddings of every catalog item (n_items x dim each) with the
 * encoder, seen through `view` (tsr_higen_view), from one forward: with_eff
 * adds the efficiency MLP (Hi-Gen's item encoder), plain is text only.
 * Either may be NULL. */
void tsr_higen_embed_items(float *with_eff, float *plain, const tsr_higen_data *d, const tsr_benc *m, int view);
/* Unit-norm query embedding of text (dim floats). */
void tsr_higen_embed_query(float *out, tsr_bpe *bpe, const tsr_benc *m, const char *text);
/* Item embeddings cache (safetensors "with_eff", "plain", n x dim f32),
 * tied to the encoder that wrote it: metadata "encoder.fnv1a64" holds the
 * encoder file's digest (tsr_file_fnv1a64). */
tsr_status tsr_higen_emb_save(const char *path, const float *with_eff, const float *plain, int32_t n, int dim,
                              const char *encoder);
/* Loads both when the file was written by the encoder of digest `encoder`;
 * otherwise (another encoder, or no digest) loads nothing, sets *stale and
 * returns TSR_OK, so that the caller re-embeds. A file of another shape
 * is TSR_ERR_FORMAT. */
tsr_status tsr_higen_emb_load(const char *path, float *with_eff, float *plain, int32_t n, int dim, const char *encoder,
                              bool *stale);

/* A saved index: the docIDs of every item plus, so that search needs no
 * catalog, each item's id and summary. */
typedef struct {
    tsr_higen_trie trie;
    int32_t n_items;
    char **ids, **summaries;
    tsr_higen_docid_opts opts;
    double build_seconds;
} tsr_higen_index;

tsr_status tsr_higen_index_save(const tsr_higen_trie *t, const tsr_catalog *cat, const tsr_higen_docid_opts *o,
                                double build_seconds, const char *path);
/* A missing file, a bad header, docIDs that do not form a trie: an error
 * naming path. */
tsr_status tsr_higen_index_load(tsr_higen_index *ix, const char *path);
void tsr_higen_index_free(tsr_higen_index *ix);

/* `POST /v1/search` for `tessera serve` (src/models/higen/serve.c) */
struct tsr_serve_endpoint;
extern const struct tsr_serve_endpoint tsr_higen_serve_endpoint;

#endif
