/* libFuzzer target for the per-family checkpoint loaders: each reads a
 * parsed safetensors file and checks its metadata (configs, vocabularies,
 * tries, priors) and tensor shapes against it. The input's first byte
 * picks the loader; the rest is the file's JSON header, and the file the
 * loader reads is that header followed by the data section of the shipped
 * checkpoint it was cut from (read once, found like every shipped default),
 * so mutations land on the metadata and shapes rather than on weights. Any
 * input loads or gives a one-line status naming the file, with nothing left
 * allocated (LeakSanitizer). Seeds: the shipped checkpoints' headers
 * (scripts/fuzz.sh). Build: see fuzz/README.md. */
#include "tessera/bigr.h"
#include "tessera/bita.h"
#include "tessera/classify.h"
#include "tessera/ctnet.h"
#include "tessera/ebrm.h"
#include "tessera/elm.h"
#include "tessera/fileio.h"
#include "tessera/higen.h"
#include "tessera/imgtok.h"
#include "tessera/narformer.h"
#include "tessera/ovadetr.h"
#include "tessera/sam.h"
#include "tessera/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const SHIPPED[] = {
    "fmnist_cnn.safetensors",           "fmnist_bae.safetensors",
    "elm_best.safetensors",             "bigr_fmnist.safetensors",
    "bita_pycode.safetensors",          "ctnet_ml_animation.safetensors",
    "narformer-nb201-cifar10.safetensors", "narformer-latency-cpu-1t.safetensors",
    "ovadetr.safetensors",              "apt_small.safetensors",
    "higen-debian/higen.index.safetensors", "higen-debian/higen.generator.safetensors",
    "higen-debian/encoder.safetensors", "ebrm-debian/ebrm.safetensors",
    "fmnist_vq.safetensors",
};
enum { N_LOADERS = sizeof SHIPPED / sizeof SHIPPED[0] };

/* the data section (everything after the header) of shipped checkpoint k */
static const uint8_t *data_section(int k, size_t *n) {
    static uint8_t *sec[N_LOADERS];
    static size_t len[N_LOADERS];
    if (!sec[k]) {
        char path[4096];
        if (!tsr_find_model(SHIPPED[k], path, sizeof path)) {
            fprintf(stderr, "fuzz_checkpoints: shipped model %s not found\n", SHIPPED[k]);
            abort();
        }
        FILE *f = fopen(path, "rb");
        uint64_t h = 0;
        if (!f || fread(&h, 8, 1, f) != 1 || fseek(f, 0, SEEK_END)) abort();
        const long at = 8 + (long)h, end = ftell(f);
        if (end < at || fseek(f, at, SEEK_SET)) abort();
        len[k] = (size_t)(end - at);
        sec[k] = malloc(len[k] ? len[k] : 1);
        if (!sec[k] || fread(sec[k], 1, len[k], f) != len[k]) abort();
        fclose(f);
    }
    *n = len[k];
    return sec[k];
}

static tsr_status load(int k, const char *path) {
    tsr_status st;
    switch (k) {
    case 0: { tsr_classifier m; if (!(st = tsr_classify_load(&m, path)).code) tsr_classify_free(&m); break; }
    case 1:
    case 14: { tsr_imgtok m; if (!(st = tsr_imgtok_load(&m, path)).code) tsr_imgtok_free(&m); break; }
    case 2: { tsr_elm_model m; if (!(st = tsr_elm_load(&m, path)).code) tsr_elm_free(&m); break; }
    case 3: { tsr_bigr m; if (!(st = tsr_bigr_load(&m, path)).code) tsr_bigr_free(&m); break; }
    case 4: { tsr_bita_adapter a; if (!(st = tsr_bita_adapter_load(&a, path)).code) tsr_bita_adapter_free(&a); break; }
    case 5: { tsr_ctnet_model m; if (!(st = tsr_ctnet_model_load(&m, path)).code) tsr_ctnet_model_free(&m); break; }
    case 6: { tsr_nf_model m; if (!(st = tsr_nf_model_load(&m, path)).code) tsr_nf_model_free(&m); break; }
    case 7: { tsr_nf_lat_pred p; if (!(st = tsr_nf_lat_load(&p, path)).code) tsr_nf_lat_pred_free(&p); break; }
    case 8: {
        tsr_ovd_model m;
        if ((st = tsr_ovd_load(&m, path)).code) break;
        tsr_ovd_free(&m);
        tsr_ovd_vocab v;
        if (!(st = tsr_ovd_vocab_load(&v, path)).code) tsr_ovd_vocab_free(&v);
        break;
    }
    case 9: { tsr_sam m; if (!(st = tsr_sam_load(&m, path)).code) tsr_sam_free(&m); break; }
    case 10: { tsr_higen_index ix; if (!(st = tsr_higen_index_load(&ix, path)).code) tsr_higen_index_free(&ix); break; }
    case 11: { tsr_higen_gen g; if (!(st = tsr_higen_gen_load(&g, path)).code) tsr_higen_gen_free(&g); break; }
    case 12: { tsr_benc m; if (!(st = tsr_benc_load(&m, path)).code) tsr_benc_free(&m); break; }
    case 13: {
        static char tok[4096];
        if (!tok[0] && !tsr_find_model("ebrm-debian/tokenizer.json", tok, sizeof tok)) abort();
        tsr_ebrm_model m;
        if (!(st = tsr_ebrm_model_load(&m, path, tok)).code) tsr_ebrm_model_free(&m);
        break;
    }
    default: abort();
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "%s/tsr_fuzz_ckpt.%d.safetensors", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
                 (int)getpid());
    if (size < 1) return 0;
    const int k = data[0] % N_LOADERS;
    size_t n;
    const uint8_t *sec = data_section(k, &n);
    uint64_t h = size - 1;
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(&h, 8, 1, f);
    fwrite(data + 1, 1, size - 1, f);
    fwrite(sec, 1, n, f);
    fclose(f);
    tsr_status st = load(k, path);
    if (st.code != TSR_OK && (!strstr(st.msg, path) || strchr(st.msg, '\n'))) {
        fprintf(stderr, "loader %d (%s): %s\n", k, SHIPPED[k], st.msg);
        __builtin_trap();
    }
    return 0;
}
