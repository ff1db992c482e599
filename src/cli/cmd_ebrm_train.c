/* tessera CLI: `tessera ebrm train` — QE pretraining on the catalog's weak
 * (keyword, entity) pairs, EBRM training through the aggregation on QI
 * labels, and the full-text cross-encoder baseline, all on the shared
 * trainer with the shared train flags (src/cli/train_flags.c). */
#include "cli/train_flags.h"

#include "tessera/ebrm.h"
#include "tessera/safetensors.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_TOKENIZER "models/higen-debian/tokenizer.json"
#define MODEL_HINT "--dir must be a writable directory holding tokenizer.json (or pass --tokenizer to copy one in)"

#define TOKENIZER_HINT "--tokenizer must be a tokenizer.json written by tessera (e.g. " DEFAULT_TOKENIZER ")"

int cli_ebrm_train(const char *prog, int argc, char **argv);

/* what a run created in --dir, to be removed again when it fails */
typedef struct {
    const char *dir, *tok, *out;
    bool made_dir, made_tok;
} created;

/* Removes what the run created, unless it left a model or a training state
 * (a state is resumed with --resume): tokenizer.json if it copied it in,
 * then the directory if it made it and it is empty (rmdir removes nothing
 * else). */
static void undo_created(const created *c) {
    struct stat sb;
    char state[1100];
    tsr_train_state_path(c->out, state, sizeof state);
    if (stat(c->out, &sb) == 0 || stat(state, &sb) == 0) return;
    if (c->made_tok) unlink(c->tok);
    if (c->made_dir) rmdir(c->dir);
}

static int parse_constructions(const char *prog, const char *s, bool use[TSR_QC_COUNT]) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    memset(use, 0, TSR_QC_COUNT * sizeof *use);
    int n = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int c = tsr_qc_from_name(t);
        if (c < 0 || c == TSR_QC_MOVIELENS || c == TSR_QC_FILE)
            return cli_usage_error(prog, "--constructions: unknown '%s' (appstream, virtual, debtags, known-item)", t);
        use[c] = true;
        n++;
    }
    return n ? CLI_OK : cli_usage_error(prog, "--constructions is empty");
}

/* --stage fuse: a trained soft-logic model (or a fused one without a gate,
 * its weight replaced) plus the fusion weight and optionally the query gate,
 * written to --out (no training: the weights are chosen on the tuning
 * split, see docs/ebrm.md) */
static int fuse_stage(const char *prog, const char *init, const char *out, float alpha, const char *lex_name,
                      float gate_slope, float gate_center) {
    if (!init || !out) return cli_usage_error(prog, "--stage fuse needs --init FILE (a softlogic model) and --out FILE");
    if (!(alpha >= 0 && alpha <= 1000)) return cli_usage_error(prog, "--stage fuse needs --fuse-alpha X in [0, 1000]");
    int norm = strcmp(lex_name, "top1") == 0 ? TSR_EBRM_LEX_TOP1 : strcmp(lex_name, "max") == 0 ? TSR_EBRM_LEX_MAX : -1;
    if (norm < 0) return cli_usage_error(prog, "unknown --fuse-lex '%s' (top1, max)", lex_name);
    bool gated = !isnan(gate_slope);
    if (gated != !isnan(gate_center)) return cli_usage_error(prog, "--gate-slope and --gate-center go together");
    if (gated && !(gate_slope >= -1000 && gate_slope <= 1000))
        return cli_usage_error(prog, "--gate-slope %g outside [-1000, 1000]", gate_slope);
    if (gated && !(gate_center >= 0 && gate_center <= 1))
        return cli_usage_error(prog, "--gate-center %g outside [0, 1]", gate_center);
    int rc = cli_check_output(prog, "out", out, false);
    if (rc != CLI_OK) return rc;
    char tok[1100];
    const char *slash = strrchr(init, '/');
    if (slash) snprintf(tok, sizeof tok, "%.*s/tokenizer.json", (int)(slash - init), init);
    else snprintf(tok, sizeof tok, "tokenizer.json");
    tsr_ebrm_model m;
    tsr_status st = tsr_ebrm_model_load(&m, init, tok);
    if (st.code != TSR_OK) return cli_fail(st, MODEL_HINT);
    /* the trained model's metadata (its training record) plus the fusion's */
    tsr_st_file f;
    st = tsr_st_read(init, &f);
    if (st.code != TSR_OK) {
        tsr_ebrm_model_free(&m);
        return cli_fail(st, MODEL_HINT);
    }
    char a[32];
    snprintf(a, sizeof a, "%g", alpha);
    const char *meta[2 * 60 + 7];
    int k = 0;
    for (int i = 0; i < f.n_meta && k < 2 * 60; i++)
        if (strncmp(f.meta_keys[i], "fuse.", 5) != 0) meta[k++] = f.meta_keys[i], meta[k++] = f.meta_vals[i];
    const char *extra[6] = {"fuse.from", init, "fuse.alpha", a, "fuse.lex", tsr_ebrm_lex_names[norm]};
    for (int i = 0; i < 6; i++) meta[k++] = extra[i];
    meta[k] = NULL;
    /* a fused model (no gate) is fused again: its weight replaced */
    if (m.gate) st = tsr_errorf(TSR_ERR_ARG, "%s already has a gate; fuse its soft-logic model instead", init);
    else if (m.fuse) tsr_f32(m.fuse)[0] = alpha;
    else st = tsr_ebrm_model_set_agg(&m, TSR_EBRM_AGG_FUSE, alpha);
    m.lex_norm = norm;
    if (st.code == TSR_OK && gated) st = tsr_ebrm_model_set_gate(&m, gate_slope, gate_center);
    if (st.code == TSR_OK) st = tsr_ebrm_model_save(&m, out, meta);
    tsr_st_free(&f);
    tsr_ebrm_model_free(&m);
    if (st.code != TSR_OK) return cli_fail(st, MODEL_HINT);
    if (gated)
        printf("%s: %s fused with BM25, alpha %g, gate sigmoid(%g * (top - %g))\n", out, init, alpha, gate_slope,
               gate_center);
    else
        printf("%s: %s fused with BM25, alpha %g\n", out, init, alpha);
    return CLI_OK;
}

int cli_ebrm_train(const char *prog, int argc, char **argv) {
    const char *stage = "qi", *dir = "models/ebrm-debian", *out_arg = NULL, *init = NULL, *agg_name = "softlogic",
               *tokenizer = DEFAULT_TOKENIZER, *catalog = "../shared/data/debian-catalog",
               *cons_arg = "appstream,virtual,debtags";
    tsr_benc_cfg ec = {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4, .hidden_dim = 128, .max_seq = 80};
    int n_neg = 15, min_pkgs = 2;
    float fuse_alpha = -1;
    const char *fuse_lex = "max";
    float gate_slope = NAN, gate_center = NAN; /* not given (the parser refuses "nan") */
    float qe_aux = 0;
    int qe_items = 0;
    const char *qe_items_neg = "uniform";
    bool tune = false, qe_virtual = false;
    const char *qe_target = "share";
    tsr_train_opts def = tsr_train_default_opts();
    def.steps = 300;
    def.lr = 1e-3f;
    def.min_lr = 1e-4f;
    def.warmup = 30;
    def.eval_every = 0;
    def.log_every = 20;
    def.clip = 1.0f;
    def.weight_decay = 0.01f;
    cli_train t = cli_train_init(def, 8, CLI_TF_STEPS | CLI_TF_EPOCHS | CLI_TF_BATCH | CLI_TF_EVAL);
    const arg_spec specs[] = {
        {"stage", ARG_STR, &stage, "NAME", "qe (QE pretraining), qi (EBRM on QI labels, default), cross "
                                           "(the full-text cross-encoder baseline) or fuse (--init's soft-logic "
                                           "model plus late fusion with BM25, weight --fuse-alpha, to --out)", NULL},
        {"dir", ARG_STR, &dir, "DIR", "model directory (created): tokenizer.json, qe/ebrm/cross.safetensors", NULL},
        {"out", ARG_STR, &out_arg, "FILE", "weights file (default: DIR/qe, DIR/ebrm or DIR/cross .safetensors)", NULL},
        {"init", ARG_MODEL, &init, "FILE", "qi: start from these weights (default DIR/qe.safetensors; 'none': from "
                                         "scratch, the no-pretraining ablation)", NULL},
        {"agg", ARG_STR, &agg_name, "NAME", "qi: softlogic (default) or mean (the ablation)", NULL},
        {"fuse-alpha", ARG_FLOAT, &fuse_alpha, "X", "fuse: the weight of the lexical match in "
                                                    "sigmoid(logit(p) + X * lex), X in [0, 1000] [required with --stage fuse]", NULL},
        {"fuse-lex", ARG_STR, &fuse_lex, "NAME", "fuse: lex = BM25 / max (the score no item reaches) or / top1 (the "
                                                 "query's best BM25 over the catalog)", NULL},
        {"gate-slope", ARG_FLOAT, &gate_slope, "X", "fuse: a query gate on the soft-logic logit, sigmoid(g * logit(p) "
                                                    "+ alpha * lex) with g = sigmoid(X * (top - C)), top = the "
                                                    "query's best BM25 / its maximum [no gate]", NULL},
        {"gate-center", ARG_FLOAT, &gate_center, "C", "fuse: the gate's center C in [0, 1] (with --gate-slope)", NULL},
        {"constructions", ARG_STR, &cons_arg, "LIST", "qi/cross: train queries of these constructions", NULL},
        {"negatives", ARG_INT, &n_neg, "N", "qi/cross: non-relevant candidates drawn per query and step", NULL},
        {"min-pkgs", ARG_INT, &min_pkgs, "N", "qe: keywords listed by at least N packages", NULL},
        {"qe-target", ARG_STR, &qe_target, "NAME", "qe: a pair's weak target, share (the share of the keyword's "
                                                   "packages holding the entity) or lift (that share's excess over "
                                                   "the entity's base rate)", NULL},
        {"qe-virtual", ARG_BOOL, &qe_virtual, NULL, "qe: also pairs from the train split's virtual-package "
                                                    "descriptions against their providers' tags, sections and "
                                                    "categories (never provides)", NULL},
        {"qe-items", ARG_INT, &qe_items, "N", "qe: also pairs from N packages' own summaries against their tags, "
                                              "sections and categories (summaries in the train split; never "
                                              "provides); qi with --qe-aux: those pairs are the auxiliary loss's "
                                              "instead of the virtual-description ones [0: none]", NULL},
        {"qe-items-neg", ARG_STR, &qe_items_neg, "NAME", "qe, qi: the item pairs' negatives, uniform (any entity of the "
                                                         "type the package lacks) or freq (drawn as often as packages "
                                                         "hold them)", NULL},
        {"qe-aux", ARG_FLOAT, &qe_aux, "W", "qi: keep the virtual-description QE pairs (those of --qe-virtual) as "
                                             "an auxiliary loss, W x their BCE over 64 pairs a step [0: none]", NULL},
        {"tune", ARG_BOOL, &tune, NULL, "hold the tuning split (about 1/8 of the train queries) out of QE pretraining "
                                        "and QI training, and evaluate on it instead of the validation queries", NULL},
        {"tokenizer", ARG_MODEL, &tokenizer, "FILE", "tokenizer.json copied into DIR when DIR has none", NULL},
        {"catalog", ARG_MODEL, &catalog, "DIR", "Debian catalog directory", NULL},
        {"dim", ARG_INT, &ec.dim, "N", "model width", NULL},
        {"layers", ARG_INT, &ec.n_layers, "N", "transformer blocks", NULL},
        {"heads", ARG_INT, &ec.n_heads, "N", "attention heads", NULL},
        {"hidden", ARG_INT, &ec.hidden_dim, "N", "MLP width", NULL},
    };
    int rc = cli_train_parse(prog,
                             "Train EBRM: QE pretraining on weak (keyword, entity) pairs from the catalog, then the QE "
                             "model and the aggregation on QI labels (BM25 top-100 candidates of train queries); or the "
                             "same-size cross-encoder over (query, full item text).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strcmp(stage, "fuse") == 0) return fuse_stage(prog, init, out_arg, fuse_alpha, fuse_lex, gate_slope, gate_center);
    int st_kind = strcmp(stage, "qe") == 0 ? 0 : strcmp(stage, "qi") == 0 ? 1 : strcmp(stage, "cross") == 0 ? 2 : -1;
    if (st_kind < 0) return cli_usage_error(prog, "--stage must be qe, qi, cross or fuse");
    int agg = strcmp(agg_name, "softlogic") == 0 ? TSR_EBRM_AGG_SOFTLOGIC : strcmp(agg_name, "mean") == 0 ? TSR_EBRM_AGG_MEAN : -1;
    if (agg < 0) return cli_usage_error(prog, "--agg must be softlogic or mean");
    int qe_tk = strcmp(qe_target, "share") == 0 ? TSR_EBRM_QE_SHARE : strcmp(qe_target, "lift") == 0 ? TSR_EBRM_QE_LIFT : -1;
    if (qe_tk < 0) return cli_usage_error(prog, "--qe-target must be share or lift");
    bool use[TSR_QC_COUNT];
    if ((rc = parse_constructions(prog, cons_arg, use)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "dim", ec.dim, 8, 1024)) != CLI_OK || (rc = cli_check_int(prog, "layers", ec.n_layers, 1, 24)) != CLI_OK ||
        (rc = cli_check_int(prog, "heads", ec.n_heads, 1, 64)) != CLI_OK || (rc = cli_check_int(prog, "hidden", ec.hidden_dim, 8, 8192)) != CLI_OK ||
        (rc = cli_check_int(prog, "negatives", n_neg, 1, 99)) != CLI_OK || (rc = cli_check_int(prog, "min-pkgs", min_pkgs, 1, 1000)) != CLI_OK ||
        (rc = cli_check_int(prog, "batch", t.batch, 1, 4096)) != CLI_OK)
        return rc;
    if (ec.dim % ec.n_heads) return cli_usage_error(prog, "--heads must divide --dim");
    if ((rc = cli_check_int(prog, "qe-items", qe_items, 0, 1000000)) != CLI_OK) return rc;
    if (qe_items > 0 && st_kind != 0 && !(st_kind == 1 && qe_aux > 0))
        return cli_usage_error(prog, "--qe-items is for --stage qe (or --stage qi with --qe-aux)");
    int items_neg = strcmp(qe_items_neg, "uniform") == 0 ? TSR_EBRM_NEG_UNIFORM : strcmp(qe_items_neg, "freq") == 0 ? TSR_EBRM_NEG_FREQ : -1;
    if (items_neg < 0) return cli_usage_error(prog, "--qe-items-neg must be uniform or freq");
    if (!(qe_aux >= 0 && qe_aux <= 100)) return cli_usage_error(prog, "--qe-aux must be in [0, 100]");
    if (qe_aux > 0 && st_kind != 1)
        return cli_usage_error(prog, "--qe-aux is for --stage qi");
    ec.n_kv_heads = ec.n_heads;
    char out[1024], tok[1024], initp[1024];
    snprintf(out, sizeof out, "%s/%s.safetensors", dir, st_kind == 0 ? "qe" : st_kind == 1 ? "ebrm" : "cross");
    if (out_arg) snprintf(out, sizeof out, "%s", out_arg);
    t.o.out = out;
    if ((rc = cli_train_check_log(&t)) != CLI_OK) return rc;
    snprintf(tok, sizeof tok, "%s/tokenizer.json", dir);
    /* the inputs first (tokenizer, catalog), so that a run refused on them
     * creates nothing */
    tsr_bpe bpe;
    struct stat sb;
    char tbuf[1024];
    tokenizer = cli_shipped_default(tokenizer, DEFAULT_TOKENIZER, tbuf, sizeof tbuf); /* from any directory */
    const bool had_tok = stat(tok, &sb) == 0;
    tsr_status st = tsr_bpe_load(&bpe, had_tok ? tok : tokenizer);
    if (st.code != TSR_OK) return cli_fail(st, had_tok ? MODEL_HINT : TOKENIZER_HINT);
    tsr_catalog cat;
    st = tsr_catalog_load_debian(&cat, catalog);
    if (st.code != TSR_OK) {
        tsr_bpe_free(&bpe);
        return cli_fail(st, "--catalog must be the Debian catalog directory");
    }
    tsr_ebrm_entities E;
    st = tsr_ebrm_entities_build(&E, &cat);
    /* then --dir; on a failure that leaves neither a model nor a training
     * state, what this run created there (tokenizer.json, the directory) is
     * removed again, never what was there before */
    created cr = {.dir = dir, .tok = tok};
    if (st.code == TSR_OK) {
        if (mkdir(dir, 0777) == 0) cr.made_dir = true;
        else if (errno != EEXIST) st = tsr_errorf(TSR_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    }
    cr.out = out;
    if (st.code == TSR_OK && (rc = cli_check_output(prog, "out", out, false)) != CLI_OK) {
        tsr_bpe_free(&bpe);
        tsr_ebrm_entities_free(&E);
        tsr_catalog_free(&cat);
        undo_created(&cr);
        return rc;
    }
    if (st.code == TSR_OK && !had_tok) {
        st = tsr_bpe_save(&bpe, tok);
        cr.made_tok = st.code == TSR_OK;
    }
    if (st.code == TSR_OK) ec.vocab = bpe.vocab_size + 1;
    tsr_ebrm_model m;
    bool have_m = false;
    const char *hint = MODEL_HINT;
    if (st.code == TSR_OK) {
        /* qi starts from the pretrained QE model unless told otherwise */
        snprintf(initp, sizeof initp, "%s/qe.safetensors", dir);
        const char *from = st_kind == 1 ? (init ? init : initp) : init;
        if (from && strcmp(from, "none") != 0) {
            st = tsr_ebrm_model_load(&m, from, tok);
            if (st.code == TSR_OK) {
                have_m = true;
                if (m.kind != (st_kind == 2 ? TSR_EBRM_KIND_CROSS : TSR_EBRM_KIND_EBRM))
                    st = tsr_errorf(TSR_ERR_ARG, "--init %s is a model of another kind", from);
                else if (m.kind == TSR_EBRM_KIND_EBRM && st_kind == 1)
                    st = tsr_ebrm_model_set_agg(&m, agg, 0.f);
                ec = m.qe.cfg;
            }
            if (st.code != TSR_OK) /* the starting weights, not --dir, are at fault */
                hint = init ? "--init must be a model of this stage written by 'tessera ebrm train' (or none: from scratch)"
                            : "--stage qi starts from --dir's qe.safetensors: train --stage qe into --dir first, or "
                              "pass --init FILE (none: from scratch)";
        } else {
            st = tsr_ebrm_model_init(&m, &ec, st_kind == 2 ? TSR_EBRM_KIND_CROSS : TSR_EBRM_KIND_EBRM, agg);
            if (st.code == TSR_OK) {
                have_m = true;
                tsr_ebrm_model_init_weights(&m, t.o.seed);
                m.bpe = bpe;
                m.have_bpe = true;
                bpe.vocab_size = 0; /* owned by the model now */
            }
        }
    }
    if (bpe.vocab_size) tsr_bpe_free(&bpe);
    tsr_train_result res = {0};
    if (st.code == TSR_OK && st_kind == 0) {
        tsr_ebrm_qe_data d;
        st = tsr_ebrm_qe_pairs_ex(&d, &cat, &E, min_pkgs, t.o.seed, tune, qe_tk);
        int32_t n_kw = d.n_queries;
        if (st.code == TSR_OK && qe_virtual) st = tsr_ebrm_qe_pairs_virtual(&d, &cat, &E, t.o.seed, tune);
        int32_t n_kv = d.n_queries;
        if (st.code == TSR_OK && qe_items > 0) st = tsr_ebrm_qe_pairs_items(&d, &cat, &E, qe_items, t.o.seed, tune, items_neg);
        if (st.code == TSR_OK) {
            if (!t.quiet)
                fprintf(stderr, "data: %lld QE pairs over %d keywords, %d virtual-package descriptions and %d "
                                "package summaries\n", (long long)d.n, n_kw, n_kv - n_kw, d.n_queries - n_kv);
            cli_train_begin(&t);
            st = tsr_ebrm_train_qe(&m, &E, &d, t.batch, &t.o, &res);
            cli_train_end(&t, &res);
        }
        tsr_ebrm_qe_data_free(&d);
    } else if (st.code == TSR_OK) {
        tsr_queryset qs = {0};
        for (int c = 0; c < TSR_QC_MOVIELENS; c++)
            if (use[c]) tsr_queries_build(&qs, &cat, c);
        if (tune) tsr_ebrm_mark_tune(&qs);
        tsr_bm25 ix[2];
        tsr_bm25_build_catalog(&ix[0], &cat, TSR_F_ALL, 1.2f, 0.4f);
        tsr_bm25_build_catalog(&ix[1], &cat, TSR_F_ALL & ~TSR_F_TAGS, 1.2f, 0.4f);
        const tsr_bm25 *ixs[TSR_QC_COUNT];
        for (int c = 0; c < TSR_QC_COUNT; c++) ixs[c] = (tsr_qc_hidden(c) & TSR_F_TAGS) ? &ix[1] : &ix[0];
        tsr_ebrm_qiset tr = {0}, va = {0};
        st = tsr_ebrm_qi_build(&tr, &qs, TSR_SPLIT_TRAIN, ixs, 100);
        if (st.code == TSR_OK) st = tsr_ebrm_qi_build(&va, &qs, tune ? TSR_EBRM_SPLIT_TUNE : TSR_SPLIT_VALID, ixs, 100);
        if (st.code == TSR_OK) {
            if (!t.quiet)
                fprintf(stderr, "data: %d train / %d %s queries, BM25 top-100 candidates\n", tr.n, va.n, tune ? "tune" : "valid");
            tsr_ebrm_qi_train qt = {.cat = &cat, .E = &E, .qs = &qs, .tr = &tr, .va = &va, .batch = t.batch, .n_neg = n_neg};
            tsr_ebrm_qe_data aux = {0};
            if (qe_aux > 0) {
                st = qe_items > 0 ? tsr_ebrm_qe_pairs_items(&aux, &cat, &E, qe_items, t.o.seed, tune, items_neg)
                                  : tsr_ebrm_qe_pairs_virtual(&aux, &cat, &E, t.o.seed, tune);
                qt.aux = &aux, qt.aux_weight = qe_aux, qt.aux_batch = 64;
                if (st.code == TSR_OK && !t.quiet)
                    fprintf(stderr, "data: auxiliary loss over %lld QE pairs of %d %s, weight %g\n", (long long)aux.n,
                            aux.n_queries, qe_items > 0 ? "package summaries" : "virtual-package descriptions",
                            (double)qe_aux);
            }
            if (st.code == TSR_OK) {
                cli_train_begin(&t);
                st = tsr_ebrm_train_qi(&m, &qt, &t.o, &res);
                cli_train_end(&t, &res);
            }
            tsr_ebrm_qe_data_free(&aux);
            tsr_ebrm_qiset_free(&va);
        }
        if (tr.q) tsr_ebrm_qiset_free(&tr);
        tsr_bm25_free(&ix[0]);
        tsr_bm25_free(&ix[1]);
        tsr_queryset_free(&qs);
    }
    if (have_m) tsr_ebrm_model_free(&m);
    tsr_ebrm_entities_free(&E);
    tsr_catalog_free(&cat);
    if (st.code != TSR_OK) {
        undo_created(&cr);
        return cli_fail(st, cli_train_hint(&t, st, hint));
    }
    if (t.cm.json) {
        printf("{\"stage\": \"%s\", \"out\": ", stage);
        cli_json_str(stdout, out);
        printf(", \"step\": %lld, \"loss\": %.6g", (long long)res.step, res.last_loss);
        for (int i = 0; i < res.eval.n; i++) printf(", \"%s\": %.6g", res.eval.name[i], res.eval.value[i]);
        printf(", \"seconds\": %.1f}\n", res.seconds);
    } else {
        printf("%s: step %lld, loss %.4f", out, (long long)res.step, res.last_loss);
        for (int i = 0; i < res.eval.n; i++) printf(", %s %.4f", res.eval.name[i], res.eval.value[i]);
        printf(" (%.0f s)\n", res.seconds);
    }
    return CLI_OK;
}
