/* tessera higen: the encoder's and the generator's training on the shared
 * loop (tessera/train.h): they give it the batch, the loss and the
 * evaluation. src/models/higen/train.c. */
#ifndef TESSERA_HIGEN_TRAIN_H
#define TESSERA_HIGEN_TRAIN_H

#include "tessera/higen.h"
#include "tessera/train.h"

/* DSI's indexing task: one example per catalog item, its text -> its
 * docID. Each time an item is drawn, with probability span it shows a
 * random contiguous window of its first TSR_HIGEN_TI text tokens (2 up to
 * max_query tokens long) instead of its head, and then each token is
 * dropped with probability drop (one always stays): many partial views of
 * one item, as NCI's and DSI-QG's document-as-query examples, so that a
 * query naming only some of an item's words still leads to its docID. */
typedef struct {
    bool on;
    float span; /* 0: always the head (the first max_query tokens) */
    float drop;
} tsr_higen_indexing;

/* One indexing view of an item's tokens src[0..len) into out: the first
 * min(len, Q) tokens, or (with probability ix->span, when len > 2 and
 * Q >= 2) a window of 2..min(len, Q) consecutive tokens at a random place,
 * each then dropped with probability ix->drop (at least one stays).
 * Returns the number of tokens written (1..Q). Randomness: rng. */
int tsr_higen_index_view(tsr_rng *rng, const tsr_higen_indexing *ix, const int32_t *src, int len, int Q,
                         int32_t *out);

/* The item/query encoder with InfoNCE over in-batch and BM25 hard
 * negatives on the train pairs, plus (ix->on) one unsupervised indexing
 * pair per catalog item: a view of its text (tsr_higen_index_view, up to
 * d->tq tokens) as the query, the item as the positive and a random item as
 * the extra negative (inverse-cloze / document-as-query pre-training, over
 * the whole catalog rather than the items that train queries name).
 * random_neg: a train pair's extra negative is a uniformly drawn
 * non-relevant item instead of its BM25 hard negative.
 * eval: "val_loss", InfoNCE on up to 1,024 valid pairs, and, when the data
 * holds tune pairs (tsr_higen_data_hold_tune), "tune_loss" on up to 4,096. */
tsr_status tsr_higen_train_encoder(tsr_higen_data *d, tsr_benc *m, float tau, int batch,
                                   const tsr_higen_indexing *ix, bool random_neg, const tsr_train_opts *o,
                                   tsr_train_result *res);

/* The generator on the train pairs (query -> docID of a relevant item),
 * plus the indexing examples (ix->on); eval: "val_loss", the loss on up to
 * 1,024 valid pairs (no indexing examples), and, when the data holds tune
 * pairs (tsr_higen_data_hold_tune), "tune_loss" on up to 4,096 of them.
 * keep_best (needs tune pairs): every save that follows an evaluation
 * keeps the weights with the lowest tune_loss so far in X.best.safetensors
 * beside o->out = X.safetensors (metadata higen.tune_loss, higen.best_step;
 * on resume the file on disk is the best so far); the end of the run
 * writes the last weights to X.last.safetensors and copies the best to
 * o->out. Checkpoints should follow every evaluation (ckpt_every =
 * eval_every) so that no evaluated step is passed over. */
tsr_status tsr_higen_train_generator(tsr_higen_data *d, tsr_higen_gen *g, const tsr_higen_trie *t,
                                     const tsr_higen_loss_opts *lo, int batch, const tsr_higen_indexing *ix,
                                     bool keep_best, const tsr_train_opts *o, tsr_train_result *res);

#endif
