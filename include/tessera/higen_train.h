/* tessera higen: the encoder's and the generator's training on the shared
 * loop (tessera/train.h): they give it the batch, the loss and the
 * evaluation. src/models/higen/train.c. */
#ifndef TESSERA_HIGEN_TRAIN_H
#define TESSERA_HIGEN_TRAIN_H

#include "tessera/higen.h"
#include "tessera/train.h"

/* The item/query encoder with InfoNCE over in-batch and BM25 hard
 * negatives on the train pairs; eval: InfoNCE on up to 1,024 valid pairs. */
tsr_status tsr_higen_train_encoder(tsr_higen_data *d, tsr_benc *m, float tau, int batch,
                                   const tsr_train_opts *o, tsr_train_result *res);
/* The generator on the train pairs (query -> docID of a relevant item),
 * plus, when indexing, one example per catalog item (its text's first
 * tokens -> its docID, DSI's indexing task); eval: the loss on up to 1,024
 * valid pairs. */
tsr_status tsr_higen_train_generator(tsr_higen_data *d, tsr_higen_gen *g, const tsr_higen_trie *t,
                                     const tsr_higen_loss_opts *lo, int batch, bool indexing,
                                     const tsr_train_opts *o, tsr_train_result *res);

#endif
