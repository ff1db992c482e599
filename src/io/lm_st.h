/* tessera io (private): the Llama model loader over an already parsed
 * safetensors file, shared by the safetensors loaders (hf_llama.c) and the
 * GGUF loader (gguf_llama.c), which presents a GGUF file's tensors under
 * HF names. */
#ifndef TESSERA_IO_LM_ST_H
#define TESSERA_IO_LM_ST_H

#include "tessera/lm.h"
#include "tessera/safetensors.h"

/* config from f's __metadata__ (HF or short names), then the weights; name
 * labels messages. wtype/group_size as tsr_lm_load_safetensors. */
tsr_status tsr_lm_load_st_file(tsr_lm_model *m, const tsr_st_file *f, const char *name, int wtype,
                               int group_size);

#endif
