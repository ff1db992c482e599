/* tessera CLI: the LM family's data verbs, `tessera lm tokenizer-train` (a
 * byte-level BPE learned on a corpus's training split) and `tessera lm
 * tokenize` (both splits to token files, with bytes and tokens for
 * bits-per-byte). The lm command table lists them; see
 * include/tessera/bpe.h and include/tessera/corpus.h. */
#include "cli/args.h"

#include "tessera/fileio.h"
#include "tessera/bpe.h"
#include "tessera/corpus.h"

#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DATA "/usr/lib/python3.11"
#define DEFAULT_VAL_LIST "data/python_val_files.txt"
#define DATA_HINT "pass --data DIR with .py files (Debian: libpython3.11-stdlib, libpython3.11-testsuite)"
#define LIST_HINT "run from the repository root, or pass --val-list PATH (the held-out list), or --val-list none"
#define TOK_HINT "pass --tokenizer with a tokenizer.json from 'tessera lm tokenizer-train'"

int cli_lm_tokenizer_train(const char *prog, int argc, char **argv);
int cli_lm_tokenize(const char *prog, int argc, char **argv);

/* list the corpus and apply the held-out list ("none": everything trains) */
static int open_corpus(const char *prog, const char *data, const char *ext, const char *val_list,
                       tsr_corpus *c) {
    tsr_status st = tsr_corpus_list(c, data, ext);
    if (st.code) return cli_fail(st, DATA_HINT);
    if (strcmp(val_list, "none") != 0) {
        char vbuf[PATH_MAX];
        if (strcmp(val_list, DEFAULT_VAL_LIST) == 0) val_list = tsr_find_shipped_or(val_list, vbuf, sizeof vbuf);
        int missing = 0;
        st = tsr_corpus_split_from_list(c, val_list, &missing);
        if (st.code) {
            tsr_corpus_free(c);
            return cli_fail(st, LIST_HINT);
        }
        if (missing)
            fprintf(stderr, "%s: note: %d held-out files of %s are not under %s\n", prog, missing, val_list,
                    c->root);
    }
    return CLI_OK;
}

/* comma-separated special tokens, split in place: an empty entry, a
 * repeated one or more than cap are usage errors, found before the corpus
 * is read (the trainer would drop the empty ones without a word) */
static int split_specials(const char *prog, const char *arg, char *s, const char **out, int cap, int *n) {
    *n = 0;
    for (char *p = s;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (!*p) return cli_usage_error(prog, "--specials '%s' has an empty entry (names separated by single commas)", arg);
        for (int i = 0; i < *n; i++)
            if (strcmp(out[i], p) == 0) return cli_usage_error(prog, "--specials names '%s' twice", p);
        if (*n == cap) return cli_usage_error(prog, "--specials takes at most %d tokens", cap);
        out[(*n)++] = p;
        if (!c) return CLI_OK;
        p = c + 1;
    }
}

int cli_lm_tokenizer_train(const char *prog, int argc, char **argv) {
    const char *data = DEFAULT_DATA, *out = NULL, *val_list = DEFAULT_VAL_LIST, *ext = ".py";
    const char *specials_arg = "<|endoftext|>";
    int vocab = 4096;
    int64_t min_count = 2;
    bool quiet = false;
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"data", ARG_STR, &data, "DIR", "corpus root", NULL},
        {"vocab", ARG_INT, &vocab, "N", "vocab size, specials and 256 bytes included; 257..1048576", NULL},
        {"out", ARG_STR, &out, "PATH", "tokenizer.json to write (HF format)", NULL},
        {"specials", ARG_STR, &specials_arg, "A,B", "special tokens, comma-separated, ids 0..", NULL},
        {"min-count", ARG_I64, &min_count, "N", "stop when the best pair occurs fewer times", NULL},
        {"val-list", ARG_STR, &val_list, "PATH", "held-out files, left out of training ('none': train on all)", NULL},
        {"ext", ARG_STR, &ext, "SUFFIX", "file name suffix to take", NULL},
        {"quiet", ARG_BOOL, &quiet, NULL, "no progress on stderr", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Learn a byte-level BPE tokenizer on a corpus's training split.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!out) return cli_usage_error(prog, "--out is required");
    if ((rc = cli_check_int(prog, "vocab", vocab, 257, 1 << 20)) != CLI_OK ||
        (rc = cli_check_int(prog, "min-count", min_count, 1, INT64_MAX)) != CLI_OK)
        return rc;
    if ((rc = cli_check_output(prog, "out", out, false)) != CLI_OK) return rc;
    char spbuf[1024];
    if (strlen(specials_arg) >= sizeof spbuf)
        return cli_usage_error(prog, "--specials is longer than %zu bytes", sizeof spbuf - 1);
    snprintf(spbuf, sizeof spbuf, "%s", specials_arg);
    const char *specials[16];
    int n_specials;
    if ((rc = split_specials(prog, specials_arg, spbuf, specials, 16, &n_specials)) != CLI_OK) return rc;
    if (vocab < 256 + n_specials)
        return cli_usage_error(prog, "--vocab %d leaves no room: %d specials + 256 bytes need at least %d", vocab,
                               n_specials, 256 + n_specials);

    tsr_corpus c;
    if ((rc = open_corpus(prog, data, ext, val_list, &c)) != CLI_OK) return rc;
    int n_files;
    char **paths = tsr_corpus_paths(&c, TSR_SPLIT_TRAIN, &n_files);
    if (n_files == 0) {
        tsr_corpus_paths_free(paths, n_files);
        tsr_corpus_free(&c);
        return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s: every file is held out", data), LIST_HINT);
    }
    if (!quiet) fprintf(stderr, "%s: training on %d files of %s, vocab %d\n", prog, n_files, c.root, vocab);
    tsr_bpe_train_opts o = {vocab, specials, n_specials, min_count, !quiet};
    tsr_bpe b;
    double t0 = tsr_time();
    tsr_status st = tsr_bpe_train(&b, (const char *const *)paths, n_files, &o);
    double secs = tsr_time() - t0;
    tsr_corpus_paths_free(paths, n_files);
    if (st.code) {
        tsr_corpus_free(&c);
        return cli_fail(st, st.code == TSR_ERR_ARG ? "check --vocab and --specials" : DATA_HINT);
    }
    st = tsr_bpe_save(&b, out);
    if (st.code) {
        tsr_bpe_free(&b);
        tsr_corpus_free(&c);
        return cli_fail(st, "check that the directory of --out exists and is writable");
    }
    /* compression on each split: what the tokenizer is for */
    uint64_t bytes[2] = {0, 0}, tokens[2] = {0, 0};
    for (int s = 0; s < 2 && !st.code; s++) {
        tsr_corpus_tokens t;
        st = tsr_corpus_tokenize(&c, s, &b, -1, &t);
        if (st.code) break;
        bytes[s] = t.bytes;
        tokens[s] = t.n;
        tsr_corpus_tokens_free(&t);
    }
    if (st.code) {
        tsr_bpe_free(&b);
        tsr_corpus_free(&c);
        return cli_fail(st, DATA_HINT);
    }
    if (cm.json) {
        printf("{\"vocab_size\": %d, \"merges\": %d, \"train_seconds\": %.2f, \"hash\": \"%016llx\", "
               "\"train\": {\"bytes\": %llu, \"tokens\": %llu}, \"val\": {\"bytes\": %llu, \"tokens\": %llu}, "
               "\"out\": ",
               b.vocab_size, b.n_merges, secs, (unsigned long long)b.hash, (unsigned long long)bytes[0],
               (unsigned long long)tokens[0], (unsigned long long)bytes[1], (unsigned long long)tokens[1]);
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("vocab %d (%d merges) in %.2f s; saved %s\n", b.vocab_size, b.n_merges, secs, out);
        const char *nm[2] = {"train", "val"};
        for (int s = 0; s < 2; s++)
            printf("%-5s %llu bytes -> %llu tokens (%.3f bytes/token)\n", nm[s], (unsigned long long)bytes[s],
                   (unsigned long long)tokens[s], tokens[s] ? (double)bytes[s] / (double)tokens[s] : 0.0);
    }
    tsr_bpe_free(&b);
    tsr_corpus_free(&c);
    return CLI_OK;
}

int cli_lm_tokenize(const char *prog, int argc, char **argv) {
    const char *data = DEFAULT_DATA, *tok = NULL, *out_train = NULL, *out_val = NULL;
    const char *val_list = DEFAULT_VAL_LIST, *ext = ".py", *sep = "<|endoftext|>";
    cli_common cm = {0, 0, false};
    const arg_spec specs[] = {
        {"tokenizer", ARG_MODEL, &tok, "PATH", "tokenizer.json (byte-level BPE)", NULL},
        {"data", ARG_STR, &data, "DIR", "corpus root", NULL},
        {"out-train", ARG_STR, &out_train, "PATH", "token file for the training split", NULL},
        {"out-val", ARG_STR, &out_val, "PATH", "token file for the validation split", NULL},
        {"sep", ARG_STR, &sep, "TOKEN", "special token after each file ('none': no separator)", NULL},
        {"val-list", ARG_STR, &val_list, "PATH", "held-out files", NULL},
        {"ext", ARG_STR, &ext, "SUFFIX", "file name suffix to take", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog, "Tokenise a corpus's train and validation splits into token files.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!tok) return cli_usage_error(prog, "--tokenizer is required");
    if (!out_train || !out_val) return cli_usage_error(prog, "--out-train and --out-val are required");
    if (cli_same_file(out_train, out_val)) return cli_usage_error(prog, "--out-train and --out-val must differ");
    if (strcmp(val_list, "none") == 0) return cli_usage_error(prog, "tokenize needs a held-out list (--val-list)");
    if ((rc = cli_check_output(prog, "out-train", out_train, false)) != CLI_OK ||
        (rc = cli_check_output(prog, "out-val", out_val, false)) != CLI_OK)
        return rc;
    tsr_bpe b;
    tsr_status st = tsr_bpe_load(&b, tok);
    if (st.code) return cli_fail(st, TOK_HINT);
    int sep_id = -1;
    if (strcmp(sep, "none") != 0) {
        sep_id = tsr_bpe_special_id(&b, sep);
        if (sep_id < 0) {
            tsr_bpe_free(&b);
            return cli_fail(tsr_errorf(TSR_ERR_ARG, "%s: no special token '%s'", tok, sep),
                            "pass --sep with one of the tokenizer's added_tokens, or --sep none");
        }
    }
    tsr_corpus c;
    if ((rc = open_corpus(prog, data, ext, val_list, &c)) != CLI_OK) {
        tsr_bpe_free(&b);
        return rc;
    }
    const char *outs[2] = {out_train, out_val}, *nm[2] = {"train", "val"};
    uint64_t bytes[2] = {0, 0}, tokens[2] = {0, 0};
    uint32_t docs[2] = {0, 0};
    double t0 = tsr_time();
    /* both splits first, then both files: a failure leaves no new output */
    tsr_corpus_tokens t[2];
    bool have[2] = {false, false}, existed = access(outs[0], F_OK) == 0;
    for (int s = 0; s < 2 && !st.code; s++) {
        st = tsr_corpus_tokenize(&c, s, &b, sep_id, &t[s]);
        have[s] = !st.code;
    }
    for (int s = 0; s < 2 && !st.code; s++) {
        st = tsr_corpus_tokens_save(&t[s], outs[s]);
        bytes[s] = t[s].bytes;
        tokens[s] = t[s].n;
        docs[s] = t[s].n_docs;
        if (st.code && s == 1 && !existed) unlink(outs[0]);
    }
    for (int s = 0; s < 2; s++)
        if (have[s]) tsr_corpus_tokens_free(&t[s]);
    double secs = tsr_time() - t0;
    if (st.code) {
        /* a read names a corpus file, a write names an --out path */
        const char *hint = strstr(st.msg, c.root) ? DATA_HINT
                                                  : "check that the directories of --out-train/--out-val exist and are writable";
        tsr_bpe_free(&b);
        tsr_corpus_free(&c);
        return cli_fail(st, hint);
    }
    if (cm.json) {
        printf("{\"vocab_size\": %d, \"hash\": \"%016llx\", \"seconds\": %.2f", b.vocab_size,
               (unsigned long long)b.hash, secs);
        for (int s = 0; s < 2; s++) {
            printf(", \"%s\": {\"files\": %u, \"bytes\": %llu, \"tokens\": %llu, \"out\": ", nm[s], docs[s],
                   (unsigned long long)bytes[s], (unsigned long long)tokens[s]);
            cli_json_str(stdout, outs[s]);
            printf("}");
        }
        printf("}\n");
    } else {
        for (int s = 0; s < 2; s++)
            printf("%-5s %u files, %llu bytes, %llu tokens (%.3f bytes/token) -> %s\n", nm[s], docs[s],
                   (unsigned long long)bytes[s], (unsigned long long)tokens[s],
                   tokens[s] ? (double)bytes[s] / (double)tokens[s] : 0.0, outs[s]);
        printf("bits/byte = loss_nats * tokens / bytes / ln 2 (tokens include one separator per file)\n");
    }
    tsr_bpe_free(&b);
    tsr_corpus_free(&c);
    return CLI_OK;
}
