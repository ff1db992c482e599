/* tessera CLI: `tessera higen train` — the encoder (InfoNCE) and the docID
 * generators (position-aware loss) of src/models/higen on the shared
 * training loop, with the shared train flags (src/cli/train_flags.c). */
#include "cli/train_flags.h"

#include "tessera/higen_train.h"
#include "tessera/safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MODEL_HINT "--model must be a writable directory; the generator needs MODEL/tokenizer.json and the index " \
                   "from 'tessera higen index'"

int cli_higen_train(const char *prog, int argc, char **argv);

int cli_higen_train(const char *prog, int argc, char **argv) {
    const char *what = "encoder", *model = "models/higen-debian", *variant = "higen",
               *catalog = "../shared/data/debian-catalog";
    tsr_benc_cfg ec = {.dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 256, .vocab = 4096,
                       .max_seq = 64, .eff_hidden = 16};
    tsr_higen_gen_cfg gc = {.dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 256,
                            .max_query = 16};
    float tau = 0.05f, pos_decay = 0.5f, sibling = 0.5f;
    bool no_indexing = false, no_profile = false, tune = false, keep_best = false, index_pairs = false, random_neg = false,
         doc_only = false;
    float index_span = 0.f, index_drop = 0.f;
    int max_per_query = 0;
    tsr_train_opts def = tsr_train_default_opts();
    def.steps = 400;
    def.lr = 1e-3f;
    def.min_lr = 1e-4f;
    def.warmup = 40;
    def.eval_every = 200;
    def.log_every = 20;
    def.clip = 1.0f;
    def.weight_decay = 0.01f;
    cli_train t = cli_train_init(def, 64, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH | CLI_TF_EVAL);
    const arg_spec specs[] = {
        {"what", ARG_STR, &what, "NAME", "encoder or generator", NULL},
        {"model", ARG_STR, &model, "DIR", "model directory (created): tokenizer.json, encoder.safetensors, "
                                          "<variant>.index/.generator.safetensors", NULL},
        {"variant", ARG_STR, &variant, "NAME", "generator: higen, higen-noeff, higen-nocat, higen-ce, nci, dsi", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog, or MovieLens (personalised: query + user profile)", NULL},
        {"dim", ARG_INT, &ec.dim, "N", "model width (encoder and generator)", NULL},
        {"layers", ARG_INT, &ec.n_layers, "N", "transformer blocks", NULL},
        {"heads", ARG_INT, &ec.n_heads, "N", "attention heads", NULL},
        {"hidden", ARG_INT, &ec.hidden_dim, "N", "MLP width", NULL},
        {"vocab", ARG_INT, &ec.vocab, "N", "BPE vocabulary when the tokenizer is trained here", NULL},
        {"eff-hidden", ARG_INT, &ec.eff_hidden, "N", "encoder: efficiency MLP width (0: none)", NULL},
        {"tau", ARG_FLOAT, &tau, "X", "encoder: InfoNCE temperature", NULL},
        {"pos-decay", ARG_FLOAT, &pos_decay, "X", "generator: w_p = 1 - decay * p / depth (-1..1; below 0 the later "
                                                 "positions weigh more)", NULL},
        {"sibling", ARG_FLOAT, &sibling, "X", "generator: weight of the sibling cross-entropy", NULL},
        {"doc-only", ARG_BOOL, &doc_only, NULL, "generator: the full cross-entropy over the docID tokens only (text "
                                                 "tokens are never outputs; a cheaper step)", NULL},
        {"index-pairs", ARG_BOOL, &index_pairs, NULL, "encoder: add one pair per catalog item, a view of its text "
                                                       "(--index-span, --index-drop) -> the item", NULL},
        {"random-neg", ARG_BOOL, &random_neg, NULL, "encoder: a random non-relevant item as each train pair's extra "
                                                   "negative instead of a BM25 hard negative", NULL},
        {"no-indexing", ARG_BOOL, &no_indexing, NULL, "generator: no item-text -> docID examples", NULL},
        {"no-profile", ARG_BOOL, &no_profile, NULL, "personalised catalog: the queries without the user's profile "
                                                   "(to measure its share; evaluate with a queries file without users)", NULL},
        {"index-span", ARG_FLOAT, &index_span, "P", "chance that an indexing example shows a random "
                                                     "window of the item's text instead of its head", NULL},
        {"index-drop", ARG_FLOAT, &index_drop, "P", "chance to drop each token of such a window", NULL},
        {"max-per-query", ARG_INT, &max_per_query, "N", "keep at most N train pairs per query (a seeded random "
                                                         "choice; 0: all)", NULL},
        {"tune", ARG_BOOL, &tune, NULL, "hold the tuning subset of the train queries out of training "
                                        "and report its loss (tune_loss)", NULL},
        {"keep-best", ARG_BOOL, &keep_best, NULL, "generator (implies --tune, needs --eval-every): the model file "
                                                  "ends as the evaluated step with the lowest tune_loss (the last "
                                                  "weights go to <variant>.generator.last.safetensors)", NULL},
    };
    int rc = cli_train_parse(prog,
                             "Train the item/query encoder (InfoNCE, in-batch + BM25 hard negatives) or a docID "
                             "generator (position-aware loss) on the catalog's train queries.",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    bool enc = strcmp(what, "encoder") == 0;
    if (!enc && strcmp(what, "generator") != 0) return cli_usage_error(prog, "--what must be encoder or generator");
    if (keep_best) tune = true;
    if (enc && keep_best) return cli_usage_error(prog, "--keep-best is for --what generator");
    if (!enc && (index_pairs || random_neg)) return cli_usage_error(prog, "--index-pairs and --random-neg are for --what encoder");
    if (enc && doc_only) return cli_usage_error(prog, "--doc-only is for --what generator");
    if (keep_best && t.o.eval_every <= 0) return cli_usage_error(prog, "--keep-best needs --eval-every N > 0");
    if (keep_best) t.o.ckpt_every = t.o.eval_every; /* every evaluated step is a candidate */
    const char *index_of = NULL;
    if (!enc) {
        static const char *const v[][2] = {{"higen", "higen"}, {"higen-noeff", "higen-noeff"},
                                           {"higen-nocat", "higen-nocat"}, {"higen-ce", "higen"},
                                           {"nci", "nci"}, {"dsi", "dsi"}};
        for (size_t i = 0; i < sizeof v / sizeof *v; i++)
            if (strcmp(variant, v[i][0]) == 0) index_of = v[i][1];
        if (!index_of)
            return cli_usage_error(prog, "unknown --variant '%s' (higen, higen-noeff, higen-nocat, higen-ce, nci, dsi)",
                                   variant);
        if (strcmp(variant, "higen-ce") == 0) pos_decay = sibling = 0; /* the plain-CE ablation */
    }
    if ((rc = cli_check_int(prog, "dim", ec.dim, 8, 1024)) != CLI_OK || (rc = cli_check_int(prog, "layers", ec.n_layers, 1, 24)) != CLI_OK ||
        (rc = cli_check_int(prog, "hidden", ec.hidden_dim, 8, 8192)) != CLI_OK || (rc = cli_check_int(prog, "vocab", ec.vocab, 300, 65536)) != CLI_OK ||
        (rc = cli_check_int(prog, "eff-hidden", ec.eff_hidden, 0, 1024)) != CLI_OK || (rc = cli_check_float(prog, "tau", tau, 1e-3, 10)) != CLI_OK ||
        (rc = cli_check_float(prog, "pos-decay", pos_decay, -1, 1)) != CLI_OK || (rc = cli_check_float(prog, "sibling", sibling, 0, 100)) != CLI_OK ||
        (rc = cli_check_float(prog, "index-span", index_span, 0, 1)) != CLI_OK ||
        (rc = cli_check_float(prog, "index-drop", index_drop, 0, 0.95)) != CLI_OK ||
        (rc = cli_check_int(prog, "batch", t.batch, 2, 4096)) != CLI_OK ||
        (rc = cli_check_int(prog, "max-per-query", max_per_query, 0, 1 << 20)) != CLI_OK)
        return rc;
    ec.n_kv_heads = ec.n_heads;
    char out[1024], tok[1024], ipath[1024], best[1100];
    snprintf(out, sizeof out, "%s/%s", model, enc ? "encoder.safetensors" : "");
    if (!enc) snprintf(out, sizeof out, "%s/%s.generator.safetensors", model, variant);
    t.o.out = out;
    if ((rc = cli_train_check_log(&t)) != CLI_OK) return rc;
    if (mkdir(model, 0777) != 0 && errno != EEXIST)
        return cli_fail(tsr_errorf(TSR_ERR_IO, "cannot create %s: %s", model, strerror(errno)), MODEL_HINT);
    snprintf(tok, sizeof tok, "%s/tokenizer.json", model);
    if ((rc = cli_check_output(prog, "model", out, false)) != CLI_OK) return rc;
    tsr_catalog cat;
    struct stat sb;
    char mpath[1024];
    snprintf(mpath, sizeof mpath, "%s/movies.csv", catalog);
    bool movielens = stat(mpath, &sb) == 0; /* the personalised catalog: queries carry the user's profile */
    tsr_status st = movielens ? tsr_catalog_load_movielens(&cat, catalog) : tsr_catalog_load_debian(&cat, catalog);
    if (st.code != TSR_OK) return cli_fail(st, "--catalog must be the Debian catalog or a MovieLens directory");
    bool have_tok = stat(tok, &sb) == 0;
    if (!enc && !have_tok) {
        tsr_catalog_free(&cat);
        return cli_fail(tsr_errorf(TSR_ERR_IO, "%s: no tokenizer (train the encoder first)", tok), MODEL_HINT);
    }
    double t0 = tsr_time();
    tsr_higen_data d;
    st = tsr_higen_data_build(&d, &cat, have_tok ? tok : NULL, ec.vocab, TSR_HIGEN_TQ, TSR_HIGEN_TI, true, t.o.seed);
    if (st.code == TSR_OK && !have_tok) st = tsr_bpe_save(&d.bpe, tok);
    if (st.code != TSR_OK) {
        tsr_catalog_free(&cat);
        return cli_fail(st, MODEL_HINT);
    }
    if (no_profile) /* the query tokens of the plain query text, as a query without a user reads */
        for (int32_t q = 0; q < d.qs.n; q++)
            d.q_len[q] = tsr_higen_encode(&d.bpe, d.qs.q[q].text, d.q_tok + (size_t)q * d.tq, d.tq);
    if (tune) tsr_higen_data_hold_tune(&d);
    tsr_higen_data_cap_pairs(&d, max_per_query, t.o.seed);
    if (!t.quiet)
        fprintf(stderr, "data: %d tokens, %lld train / %lld tune / %lld valid pairs (%.1f s)\n", d.bpe.vocab_size,
                (long long)d.n_pairs[TSR_SPLIT_TRAIN], (long long)d.n_pairs[TSR_HIGEN_TUNE],
                (long long)d.n_pairs[TSR_SPLIT_VALID], tsr_time() - t0);
    tsr_train_result res = {0};
    if (enc) {
        ec.vocab = d.bpe.vocab_size;
        tsr_benc m;
        st = tsr_benc_init(&m, &ec);
        if (st.code == TSR_OK) {
            tsr_benc_init_weights(&m, t.o.seed);
            cli_train_begin(&t);
            tsr_higen_indexing io = {.on = index_pairs, .span = index_span, .drop = index_drop};
            st = tsr_higen_train_encoder(&d, &m, tau, t.batch, &io, random_neg, &t.o, &res);
            cli_train_end(&t, &res);
            tsr_benc_free(&m);
        }
    } else {
        tsr_higen_index ix;
        snprintf(ipath, sizeof ipath, "%s/%s.index.safetensors", model, index_of);
        st = tsr_higen_index_load(&ix, ipath);
        if (st.code == TSR_OK && ix.n_items != cat.n_items)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: built for another catalog", ipath);
        if (st.code == TSR_OK) {
            gc.dim = ec.dim;
            gc.n_layers = ec.n_layers;
            gc.n_heads = gc.n_kv_heads = ec.n_heads;
            gc.hidden_dim = ec.hidden_dim;
            gc.text_vocab = d.bpe.vocab_size;
            gc.max_depth = ix.trie.max_depth;
            gc.fanout = ix.trie.max_fanout;
            tsr_higen_gen g;
            st = tsr_higen_gen_init(&g, &gc);
            if (st.code == TSR_OK) {
                tsr_higen_gen_init_weights(&g, t.o.seed);
                tsr_higen_loss_opts lo = {.pos_decay = pos_decay, .sibling = sibling, .doc_only = doc_only};
                cli_train_begin(&t);
                tsr_higen_indexing io = {.on = !no_indexing, .span = index_span, .drop = index_drop};
                if (keep_best && !t.o.resume) { /* a best file of an earlier run is not a candidate */
                    snprintf(best, sizeof best, "%s/%s.generator.best.safetensors", model, variant);
                    remove(best);
                }
                st = tsr_higen_train_generator(&d, &g, &ix.trie, &lo, t.batch, &io, keep_best, &t.o, &res);
                cli_train_end(&t, &res);
                tsr_higen_gen_free(&g);
            }
            tsr_higen_index_free(&ix);
        }
    }
    tsr_higen_data_free(&d);
    tsr_catalog_free(&cat);
    if (st.code != TSR_OK) return cli_fail(st, cli_train_hint(&t, st, MODEL_HINT));
    double vl = tsr_train_metric_get(&res.eval, "val_loss"), tl = tsr_train_metric_get(&res.eval, "tune_loss");
    if (t.cm.json) {
        printf("{\"what\": \"%s\", \"steps\": %lld, \"finished\": %s, \"loss\": %.5f, \"val_loss\": %.5f, ",
               what, (long long)res.step, res.finished ? "true" : "false", (double)res.last_loss, vl);
        if (tl == tl) printf("\"tune_loss\": %.5f, ", tl);
        tsr_st_file bf;
        if (keep_best && res.finished && tsr_st_read(out, &bf).code == TSR_OK) {
            const char *bs = tsr_st_meta(&bf, "higen.best_step"), *bl = tsr_st_meta(&bf, "higen.tune_loss");
            if (bs && bl) printf("\"best_step\": %s, \"best_tune_loss\": %s, ", bs, bl);
            tsr_st_free(&bf);
        }
        printf("\"seconds\": %.1f, \"out\": ", res.seconds);
        cli_json_str(stdout, out);
        printf("}\n");
    } else {
        printf("%s %lld steps, last loss %.4f, val loss %.4f (%.0f s); saved %s\n",
               res.finished ? "finished" : "stopped at", (long long)res.step, (double)res.last_loss, vl, res.seconds,
               out);
    }
    return CLI_OK;
}
