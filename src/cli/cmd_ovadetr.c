/* tessera ovadetr: train | detect | eval | bench for OVA-DETR, the
 * open-vocabulary aerial detector (src/models/ovadetr/, docs/ovadetr.md). */
#include "cli/args.h"
#include "cli/train_flags.h"

#include "tessera/detlabels.h"
#include "tessera/fileio.h"
#include "tessera/ovadetr.h"
#include "tessera/png.h"

#include <math.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <time.h>

#define OVD_MODEL "models/ovadetr.safetensors"
#define OVD_CLOSED "models/ovadetr_closed.safetensors"
#define OVD_STRICT "models/ovadetr_strict.safetensors"
#define OVD_STRICT_CLOSED "models/ovadetr_strict_closed.safetensors"
#define OVD_DATA_HINT "the training and evaluation images are the real files in ../shared/data (see docs/ovadetr.md)"

static tsr_train_opts ovd_train_defaults(void) {
    tsr_train_opts o = tsr_train_default_opts();
    o.steps = 1000;
    o.lr = 1e-3f;
    o.min_lr = 1e-4f;
    o.weight_decay = 1e-4f;
    o.warmup = 50;
    o.clip = 0.5f;
    o.seed = 1;
    o.log_every = 10;
    o.ckpt_minutes = 5;
    return o;
}

static int cmd_train(const char *prog, int argc, char **argv) {
    cli_train t = cli_train_init(ovd_train_defaults(), 4, CLI_TF_STEPS | CLI_TF_EVAL);
    tsr_ovd_data_opts d = tsr_ovd_default_data_opts();
    const char *model_cfg = "", *variant = "ovadetr";
    t.o.out = NULL;
    t.cm.threads = 1;
    const arg_spec specs[] = {
        {"out", ARG_STR, &t.o.out, "PATH", "model to write (weights + name vocabulary; state beside it)", NULL},
        {"variant", ARG_STR, &variant, "NAME", "ovadetr | closed-set | no-tgvt | no-vat (default ovadetr)", NULL},
        {"model-config", ARG_STR, &model_cfg, "K=V,...", "model size, e.g. d=64,heads=4,queries=100,dec=3", NULL},
        {"data", ARG_STR, &d.data_dir, "DIR", "the shared data folder (default ../shared/data)", NULL},
        {"crop", ARG_INT, &d.crop, "PX", "training crop side, a multiple of 32 (default 256)", NULL},
        {"slots", ARG_INT, &d.slots, "K", "text slots per step: positive names + sampled negatives (default 12)", NULL},
        {"copy-paste", ARG_FLOAT, &d.copy_paste, "P", "probability of pasting iSAID chips into a crop (default 0.5)", NULL},
        {"only", ARG_STR, &d.only, "STEM", "fitting check: train and validate on this one KIT AIS image (e.g. MOS74)", NULL},
        {"name-pool", ARG_INT, &d.name_pool, "K", "a positive name is, half of the time, one of its K nearest vocabulary names that are nearer to it than to any other protocol name (default 0: off)", NULL},
        {"lv-paste", ARG_FLOAT, &d.lv_paste, "P", "probability of pasting a parking row of 2-4 large-vehicle chips, scaled by 0.45-1 at one angle, into a DOTA/iSAID crop (default 0: off)", NULL},
        {"text-geo", ARG_FLOAT, &d.text_geo, "W", "weight of a loss keeping the cosines of the head's text rows of a step's names near their CLIP cosines (default 0: off)", NULL},
        {"split", ARG_STR, &d.split, "NAME", "zero-shot protocol: names (bus, minibus unseen as names; default) | strict (also no training image showing a bus under another name)", NULL},
    };
    int rc = cli_train_parse(prog,
                             "Train OVA-DETR (or its closed-set twin / an ablation) on the zero-shot split of the real "
                             "aerial images (seen: car, ship, plane, storage tank, small/large vehicle; bus and minibus "
                             "never seen).",
                             specs, (int)(sizeof specs / sizeof specs[0]), &t, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!t.o.out) return cli_usage_error(prog, "--out PATH is required");
    tsr_ovd_cfg cfg = tsr_ovd_default_cfg();
    tsr_status st = tsr_ovd_cfg_parse(&cfg, model_cfg);
    if (st.code) return cli_usage_error(prog, "--model-config: %s", st.msg);
    if (!strcmp(variant, "closed-set")) cfg.closed = 6;
    else if (!strcmp(variant, "no-tgvt")) cfg.tgvt = false;
    else if (!strcmp(variant, "no-vat")) cfg.vat = false;
    else if (strcmp(variant, "ovadetr")) return cli_usage_error(prog, "--variant must be ovadetr, closed-set, no-tgvt or no-vat");
    if ((rc = cli_check_int(prog, "crop", d.crop, 64, 1024)) != CLI_OK) return rc;
    if (d.crop % 32) return cli_usage_error(prog, "--crop must be a multiple of 32 (got %d)", d.crop);
    if ((rc = cli_check_int(prog, "slots", d.slots, 6, 64)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "copy-paste", d.copy_paste, 0, 1)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "name-pool", d.name_pool, 0, 32)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "text-geo", d.text_geo, 0, 1000)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "lv-paste", d.lv_paste, 0, 1)) != CLI_OK) return rc;
    if (strcmp(d.split, "names") && strcmp(d.split, "strict"))
        return cli_usage_error(prog, "--split must be names or strict (got '%s')", d.split);
    if (d.only && (!*d.only || strlen(d.only) > 40 || strchr(d.only, '/') || strchr(d.only, '.')))
        return cli_usage_error(prog, "--only takes a KIT AIS image name such as MOS74 (got '%s')", d.only);
    if ((rc = cli_check_output(prog, "out", t.o.out, false)) != CLI_OK) return rc;
    tsr_train_result res;
    cli_train_begin(&t);
    st = tsr_ovd_train(&cfg, &d, &t.o, &res);
    cli_train_end(&t, &res);
    if (st.code) return cli_fail(st, cli_train_hint(&t, st, OVD_DATA_HINT));
    if (t.cm.json) {
        printf("{\"step\":%lld,\"loss\":%.5f,\"val_ap50_car\":%.4f,\"seconds\":%.1f}\n", (long long)res.step,
               res.last_loss, tsr_train_metric_get(&res.eval, "val_ap50_car"), res.seconds);
    }
    return CLI_OK;
}

/* ------------------------------------------------------------- drawing */

static const uint8_t g_col[8][3] = {{255, 60, 60}, {60, 220, 60}, {70, 130, 255}, {255, 200, 0},
                                    {255, 0, 255}, {0, 230, 230}, {255, 128, 0}, {160, 90, 255}};

/* 3x5 digits and letters for the labels */
static const char *glyph(char ch) {
    static const char *g[128];
    static int init;
    if (!init) {
        g['0'] = "111101101101111"; g['1'] = "010110010010111"; g['2'] = "111001111100111";
        g['3'] = "111001111001111"; g['4'] = "101101111001001"; g['5'] = "111100111001111";
        g['6'] = "111100111101111"; g['7'] = "111001001001001"; g['8'] = "111101111101111";
        g['9'] = "111101111001111"; g['.'] = "000000000000010"; g[' '] = "000000000000000";
        g['a'] = "010101111101101"; g['b'] = "110101110101110"; g['c'] = "011100100100011";
        g['d'] = "110101101101110"; g['e'] = "111100110100111"; g['f'] = "111100110100100";
        g['g'] = "011100101101011"; g['h'] = "101101111101101"; g['i'] = "111010010010111";
        g['j'] = "001001001101010"; g['k'] = "101101110101101"; g['l'] = "100100100100111";
        g['m'] = "101111111101101"; g['n'] = "110101101101101"; g['o'] = "010101101101010";
        g['p'] = "110101110100100"; g['q'] = "010101101110011"; g['r'] = "110101110101101";
        g['s'] = "011100010001110"; g['t'] = "111010010010010"; g['u'] = "101101101101111";
        g['v'] = "101101101101010"; g['w'] = "101101111111101"; g['x'] = "101101010101101";
        g['y'] = "101101010010010"; g['z'] = "111001010100111"; g['-'] = "000000111000000";
        init = 1;
    }
    unsigned char u = (unsigned char)ch;
    if (u >= 'A' && u <= 'Z') u = (unsigned char)(u - 'A' + 'a');
    return u < 128 && g[u] ? g[u] : g[' '];
}

static void put(uint8_t *px, int w, int h, int x, int y, const uint8_t *c) {
    if (x >= 0 && y >= 0 && x < w && y < h) memcpy(px + 3 * ((size_t)y * w + x), c, 3);
}

static void draw_text(uint8_t *px, int w, int h, int x, int y, const char *s, const uint8_t *c, int sc) {
    static const uint8_t black[3] = {0, 0, 0};
    int len = (int)strlen(s);
    for (int yy = -1; yy < 5 * sc + 1; yy++)
        for (int xx = -1; xx < len * 4 * sc; xx++) put(px, w, h, x + xx, y + yy, black);
    for (int i = 0; i < len; i++) {
        const char *g = glyph(s[i]);
        for (int r = 0; r < 5; r++)
            for (int q = 0; q < 3; q++)
                if (g[r * 3 + q] == '1')
                    for (int a = 0; a < sc; a++)
                        for (int b = 0; b < sc; b++) put(px, w, h, x + (i * 4 + q) * sc + b, y + r * sc + a, c);
    }
}

static void draw_box(uint8_t *px, int w, int h, const tsr_ovd_det *d, const char *label, const uint8_t *c) {
    int x0 = (int)d->x0, y0 = (int)d->y0, x1 = (int)d->x1, y1 = (int)d->y1;
    for (int t = 0; t < 2; t++) {
        for (int x = x0; x <= x1; x++) put(px, w, h, x, y0 + t, c), put(px, w, h, x, y1 - t, c);
        for (int y = y0; y <= y1; y++) put(px, w, h, x0 + t, y, c), put(px, w, h, x1 - t, y, c);
    }
    char s[96];
    snprintf(s, sizeof s, "%s %.2f", label, d->score);
    draw_text(px, w, h, x0, y0 - 8 >= 0 ? y0 - 8 : y1 + 2, s, c, 1);
}

/* ------------------------------------------------------------- detect */

/* the hint under a failed detect: none where the message names the flag
 * (or says what to pass), the --embeddings file's form where it names that
 * file, else the inputs */
static const char *detect_hint(tsr_status st, const char *emb, bool writing) {
    if (writing) return "the outputs were checked before the work: check the free space under --out and --draw";
    if (strstr(st.msg, "--classes") || strstr(st.msg, "--embeddings") || strstr(st.msg, "embedding")) return NULL;
    if (emb && strstr(st.msg, emb)) return "pass --embeddings a float32 .npy of one 512-d CLIP row per --classes name";
    return "check the --image PNG, --classes and --model";
}

static int cmd_detect(const char *prog, int argc, char **argv) {
    const char *image = NULL, *classes = NULL, *emb = NULL, *out = NULL, *draw = NULL, *model = OVD_MODEL;
    int tile = 0, overlap = -1, max_det = 100;
    float min_score = 0.3f;
    cli_common cm = {0};
    const arg_spec specs[] = {
        {"image", ARG_STR, &image, "PNG", "the aerial image (any size: large images are tiled)", NULL},
        {"classes", ARG_STR, &classes, "NAMES", "comma-separated class names, e.g. \"ship,harbor,car\"", NULL},
        {"embeddings", ARG_STR, &emb, "FILE.npy", "one 512-d CLIP text row per --classes name (for names the vocabulary lacks)", NULL},
        {"out", ARG_STR, &out, "JSON", "detections as COCO JSON (images, categories, annotations with score)", NULL},
        {"draw", ARG_STR, &draw, "PNG", "the image with labelled boxes", NULL},
        {"model", ARG_MODEL, &model, "PATH", "model (default: the shipped " OVD_MODEL ")", NULL},
        {"tile", ARG_INT, &tile, "PX", "tile side, a multiple of 32 (default 0: the model's training crop)", NULL},
        {"overlap", ARG_INT, &overlap, "PX", "tile overlap (default -1: a quarter of the tile)", NULL},
        {"max-det", ARG_INT, &max_det, "N", "detections kept per image (default 100)", NULL},
        {"min-score", ARG_FLOAT, &min_score, "S", "score threshold (default 0.3)", NULL},
        CLI_COMMON_THREADS(&cm),
    };
    int rc = args_parse(prog, "Detect objects by class name in an aerial image: COCO JSON and a labelled PNG.", specs,
                        (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    if (!image || !classes) return cli_usage_error(prog, "--image PNG and --classes NAMES are required");
    if (!out && !draw) return cli_usage_error(prog, "give --out JSON and/or --draw PNG");
    if (tile && (tile < 64 || tile > 2048 || tile % 32)) return cli_usage_error(prog, "--tile must be 0 or a multiple of 32 in [64, 2048] (got %d)", tile);
    if ((rc = cli_check_int(prog, "overlap", overlap, -1, tile ? tile - 32 : 1024)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "max-det", max_det, 1, 100000)) != CLI_OK) return rc;
    if ((rc = cli_check_float(prog, "min-score", min_score, 0, 1)) != CLI_OK) return rc;
    if (out && (rc = cli_check_output(prog, "out", out, true)) != CLI_OK) return rc;
    if (draw && (rc = cli_check_output(prog, "draw", draw, false)) != CLI_OK) return rc;
    if ((rc = cli_check_distinct_outputs(prog, "out", out, "draw", draw)) != CLI_OK) return rc;
    char mbuf[1024];
    model = cli_shipped_default(model, OVD_MODEL, mbuf, sizeof mbuf);
    tsr_ovd_model m;
    tsr_ovd_vocab v;
    tsr_status st = tsr_ovd_load(&m, model);
    if (st.code) return cli_fail(st, "pass --model PATH of a model written by tessera ovadetr train");
    st = tsr_ovd_vocab_load(&v, model);
    if (st.code) {
        tsr_ovd_free(&m);
        return cli_fail(st, "pass --model PATH of a model written by tessera ovadetr train");
    }
    char **names = NULL, **mcls = NULL;
    int K = 0, nmc = 0;
    float *rows = NULL;
    st = tsr_ovd_text_for(&v, classes, emb, &names, &K, &rows);
    if (!st.code) st = tsr_ovd_model_classes(model, &mcls, &nmc);
    uint8_t *px = NULL;
    int w = 0, h = 0, ch = 0;
    if (!st.code) st = tsr_png_read(image, &px, &w, &h, &ch);
    if (!st.code && ch == 1) {
        uint8_t *rgb = malloc((size_t)w * h * 3);
        for (int64_t i = 0; i < (int64_t)w * h; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = px[i];
        free(px);
        px = rgb;
    }
    tsr_ovd_det *dets = NULL;
    int nd = 0;
    bool out_existed = out && access(out, F_OK) == 0; /* a failed --draw removes only a new --out */
    if (!st.code) {
        struct timeval a, b;
        gettimeofday(&a, NULL);
        st = tsr_ovd_detect(&m, (const char *const *)mcls, nmc, px, w, h, (const char *const *)names, rows, K, tile,
                            overlap, max_det, min_score, &dets, &nd);
        gettimeofday(&b, NULL);
        if (!st.code)
            fprintf(stderr, "%s: %d detections in %dx%d px (%.2f s)\n", prog, nd, w, h,
                    (b.tv_sec - a.tv_sec) + 1e-6 * (b.tv_usec - a.tv_usec));
    }
    bool writing = !st.code; /* a failure from here on is an output's */
    if (!st.code && out) {
        tsr_det_set s;
        tsr_det_set_init(&s);
        const char *base = strrchr(image, '/');
        int ii = tsr_det_add_image(&s, base ? base + 1 : image, w, h);
        for (int k = 0; k < K; k++) tsr_det_class(&s, names[k]);
        for (int i = 0; i < nd; i++) {
            tsr_det_box b = {dets[i].x0, dets[i].y0, dets[i].x1, dets[i].y1, dets[i].score, dets[i].cls, ii, 0, 0};
            tsr_det_add_box(&s, &b);
        }
        st = tsr_coco_write(&s, out, true);
        tsr_det_set_free(&s);
    }
    if (!st.code && draw) {
        for (int i = nd - 1; i >= 0; i--) draw_box(px, w, h, &dets[i], names[dets[i].cls], g_col[dets[i].cls % 8]);
        st = tsr_png_write(draw, px, w, h, 3);
        if (st.code && out && !out_existed) unlink(out); /* both outputs or no new one */
    }
    free(px), free(dets), free(rows);
    tsr_ovd_names_free(names, K);
    tsr_ovd_names_free(mcls, nmc);
    tsr_ovd_vocab_free(&v);
    tsr_ovd_free(&m);
    if (st.code) return cli_fail(st, detect_hint(st, emb, writing));
    return CLI_OK;
}

/* --------------------------------------------------------------- eval */

static void jnum(const char *k, double v, bool last) {
    if (isfinite(v)) printf("\"%s\":%.4f%s", k, v, last ? "" : ",");
    else printf("\"%s\":null%s", k, last ? "" : ",");
}

static int cmd_eval(const char *prog, int argc, char **argv) {
    const char *model = NULL, *method = "ovadetr", *data = "../shared/data", *split = "names", *on = "test";
    int tile = 0, overlap = -1;
    float calib = 0.f;
    cli_common cm = {0};
    cm.threads = 0;
    const arg_spec specs[] = {
        {"model", ARG_MODEL, &model, "PATH", "model (default: the shipped " OVD_MODEL ", or " OVD_CLOSED " for closed-set; with --split strict " OVD_STRICT " and " OVD_STRICT_CLOSED ")", NULL},
        {"split", ARG_STR, &split, "NAME", "zero-shot protocol the model was trained on: names (default) | strict (docs/ovadetr.md)", NULL},
        {"method", ARG_STR, &method, "NAME", "ovadetr | closed-set | text-nearest (default ovadetr)", NULL},
        {"on", ARG_STR, &on, "SET", "test (the held-out images; default) | val (with --split strict: P1888, P0003, P0005, the bus images left out of its training)", NULL},
        {"calib", ARG_FLOAT, &calib, "G", "calibrated stacking: subtract G from every seen name's logit, any method (default 0: off)", NULL},
        {"data", ARG_STR, &data, "DIR", "the shared data folder (default ../shared/data)", NULL},
        {"tile", ARG_INT, &tile, "PX", "tile side (default 0: the model's training crop)", NULL},
        {"overlap", ARG_INT, &overlap, "PX", "tile overlap (default -1: a quarter of the tile)", NULL},
        CLI_COMMON_THREADS(&cm),
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Zero-shot evaluation on the held-out KIT AIS sequences (MOS155-179, MunichStreet02): AP50 and "
                        "recall@100 for the seen class car and the unseen classes bus and minibus, and their harmonic mean.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if ((rc = cli_common_apply(prog, &cm)) != CLI_OK) return rc;
    int mth;
    if (!strcmp(method, "ovadetr")) mth = TSR_OVD_METHOD_OVADETR;
    else if (!strcmp(method, "closed-set")) mth = TSR_OVD_METHOD_CLOSED;
    else if (!strcmp(method, "text-nearest")) mth = TSR_OVD_METHOD_TEXT_NEAREST;
    else return cli_usage_error(prog, "--method must be ovadetr, closed-set or text-nearest");
    bool strict = !strcmp(split, "strict");
    if (!strict && strcmp(split, "names")) return cli_usage_error(prog, "--split must be names or strict (got '%s')", split);
    if (strcmp(on, "test") && strcmp(on, "val")) return cli_usage_error(prog, "--on must be test or val (got '%s')", on);
    if (!strcmp(on, "val") && !strict)
        return cli_usage_error(prog, "--on val needs --split strict (P1888, P0003, P0005 are training images of split names)");
    if ((rc = cli_check_float(prog, "calib", calib, -50, 50)) != CLI_OK) return rc;
    if (tile && (tile < 64 || tile > 2048 || tile % 32)) return cli_usage_error(prog, "--tile must be 0 or a multiple of 32 in [64, 2048]");
    if ((rc = cli_check_int(prog, "overlap", overlap, -1, tile ? tile - 32 : 1024)) != CLI_OK) return rc;
    char mbuf[1024];
    const char *def = mth == TSR_OVD_METHOD_CLOSED ? (strict ? OVD_STRICT_CLOSED : OVD_CLOSED) : (strict ? OVD_STRICT : OVD_MODEL);
    const char *path = model ? model : cli_shipped_default(def, def, mbuf, sizeof mbuf);
    tsr_ovd_eval_res r;
    tsr_status st = tsr_ovd_eval(path, mth, split, data, !strcmp(on, "val"), calib, tile, overlap, &r, !cm.json);
    if (st.code) return cli_fail(st, OVD_DATA_HINT);
    if (cm.json) {
        printf("{\"method\":\"%s\",", r.method);
        jnum("ap50_seen", r.ap50_seen, false), jnum("ap50_unseen", r.ap50_unseen, false);
        jnum("ap50_car", r.ap50_car, false), jnum("recall_seen", r.recall_seen, false);
        jnum("recall_unseen", r.recall_unseen, false), jnum("hm_recall", r.hm_recall, false);
        jnum("ap50_bus", r.ap50_bus, false), jnum("ap50_minibus", r.ap50_minibus, false);
        jnum("recall_car", r.recall_car, false), jnum("recall_bus", r.recall_bus, false);
        jnum("recall_minibus", r.recall_minibus, false);
        printf("\"gt_seen\":%d,\"gt_unseen\":%d,\"images\":%d,\"split\":\"%s\",\"on\":\"%s\",\"calib\":%g}\n", r.gt_seen,
               r.gt_unseen, r.images, r.split, r.on, (double)r.calib);
    } else {
        printf("method %s, split %s, on %d %s images (%d seen, %d unseen objects), calibration %g\n", r.method, r.split,
               r.images, r.on, r.gt_seen, r.gt_unseen, (double)r.calib);
        printf("  AP50 seen (car) %.4f  unseen %.4f (bus %.4f, minibus %.4f)\n", r.ap50_seen, r.ap50_unseen, r.ap50_bus, r.ap50_minibus);
        printf("  recall@100 seen %.4f  unseen %.4f (bus %.4f, minibus %.4f)  harmonic mean %.4f\n", r.recall_seen,
               r.recall_unseen, r.recall_bus, r.recall_minibus, r.hm_recall);
    }
    return CLI_OK;
}

/* -------------------------------------------------------------- bench */

static double now_s(void) {
    struct timeval t;
    gettimeofday(&t, NULL);
    return t.tv_sec + 1e-6 * t.tv_usec;
}

/* CPU seconds of the whole process (every thread): on a loaded machine the
 * wall clock measures the other processes too */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the 1-minute load average (Linux), -1 elsewhere */
static double loadavg(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double median(double *a, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && a[j] < a[j - 1]; j--) {
            double t = a[j];
            a[j] = a[j - 1], a[j - 1] = t;
        }
    return n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
}

static int cmd_bench(const char *prog, int argc, char **argv) {
    int runs = 3, size = 0, nth = 0;
    cli_common cm = {0};
    const arg_spec specs[] = {
        {"runs", ARG_INT, &runs, "N", "timed forwards per model and setting, alternating (default 3, after one warm-up); the median counts", NULL},
        {"size", ARG_INT, &size, "PX", "only this input side, a multiple of 32 (default 0: 640 and 800)", NULL},
        {"threads", ARG_INT, &nth, "N", "only this thread count (default 0: 1 and 2)", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Images/s of one forward at 640x640 and 800x800, 1 and 2 threads, OVA-DETR against its "
                        "closed-set twin (same size, random weights), in one run.",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if ((rc = cli_check_int(prog, "runs", runs, 1, 1000)) != CLI_OK) return rc;
    if ((rc = cli_check_int(prog, "size", size, 0, 2048)) != CLI_OK) return rc;
    if (size % 32) return cli_usage_error(prog, "--size must be a multiple of 32 (got %d)", size);
    if ((rc = cli_check_int(prog, "threads", nth, 0, 64)) != CLI_OK) return rc;
    tsr_ovd_model m[2];
    tsr_ovd_cfg cfg = tsr_ovd_default_cfg();
    tsr_ovd_init(&m[0], &cfg);
    cfg.closed = 6;
    tsr_ovd_init(&m[1], &cfg);
    for (int i = 0; i < 2; i++) tsr_ovd_init_weights(&m[i], 1);
    float *text = malloc(sizeof(float) * 3 * TSR_OVD_TEXT_DIM);
    tsr_rng r;
    tsr_rng_seed(&r, 1);
    for (int i = 0; i < 3 * TSR_OVD_TEXT_DIM; i++) text[i] = tsr_rng_normal(&r);
    const double load0 = loadavg();
    const int sizes[2] = {size ? size : 640, 800}, n_sizes = size ? 1 : 2;
    double ips[2][64][2];
    double cpu[2][64][2];
    double *tv = malloc(sizeof(double) * 4 * (size_t)runs), *tc = tv + 2 * runs;
    /* the two models alternate forward by forward, so load on the machine
     * hits both alike; the figure is the median of the timed forwards */
    for (int si = 0; si < n_sizes; si++)
        for (int th = nth ? nth : 1; th <= (nth ? nth : 2); th++) {
            tsr_threads_set(th);
            const int S = sizes[si];
            tsr_ctx c;
            tsr_ctx_init(&c, 64 << 20);
            c.grad_enabled = false;
            /* one random input per setting (drawn outside the timed forwards) */
            float *px = malloc(sizeof(float) * 3 * (size_t)S * S);
            TSR_ASSERT(px);
            for (int64_t i = 0; i < 3 * (int64_t)S * S; i++) px[i] = tsr_rng_normal(&r);
            for (int it = 0; it <= runs; it++)
                for (int v = 0; v < 2; v++) {
                    tsr_tensor *img = tsr_from_f32(&c, 4, TSR_SHAPE(1, 3, S, S), px);
                    double t0 = now_s(), c0 = cpu_s();
                    tsr_ovd_out o = tsr_ovd_forward(&c, &m[v], img, text, 3);
                    double dt = now_s() - t0, dc = cpu_s() - c0;
                    bool fin = isfinite(tsr_f32(o.logits[o.n_sets - 1])[0]);
                    tsr_ctx_reset(&c);
                    if (!fin) {
                        fprintf(stderr, "%s: non-finite output\n", prog);
                        tsr_ctx_free(&c), free(tv), free(text), free(px);
                        return CLI_FAIL;
                    }
                    if (it > 0) tv[v * runs + it - 1] = dt, tc[v * runs + it - 1] = dc; /* forward 0 is the warm-up */
                }
            tsr_ctx_free(&c);
            free(px);
            for (int v = 0; v < 2; v++) {
                ips[si][th - 1][v] = 1 / median(tv + v * runs, runs);
                cpu[si][th - 1][v] = median(tc + v * runs, runs);
                if (cm.json)
                    printf("{\"bench\":\"ovadetr_forward\",\"model\":\"%s\",\"size\":%d,\"threads\":%d,\"runs\":%d,\"images_per_s\":%.3f,\"cpu_s_per_image\":%.4f}\n",
                           v ? "closed-set" : "ovadetr", S, th, runs, ips[si][th - 1][v], cpu[si][th - 1][v]);
                else
                    printf("%-10s %dx%d  %d thread%s  %.3f images/s, %.4f CPU-s per image (medians of %d)\n", v ? "closed-set" : "ovadetr",
                           S, S, th, th > 1 ? "s" : "", ips[si][th - 1][v], cpu[si][th - 1][v], runs);
            }
            if (!cm.json)
                printf("  ratio ovadetr / closed-set at %d px, %d thread%s: %.3f (images/s), %.3f (CPU-s)\n", sizes[si], th,
                       th > 1 ? "s" : "", ips[si][th - 1][0] / ips[si][th - 1][1], cpu[si][th - 1][1] / cpu[si][th - 1][0]);
        }
    if (cm.json) printf("{\"bench\":\"load\",\"start\":%.2f,\"end\":%.2f}\n", load0, loadavg());
    else printf("load average (1 min): %.2f at start, %.2f at end\n", load0, loadavg());
    free(tv);
    free(text);
    tsr_ovd_free(&m[0]), tsr_ovd_free(&m[1]);
    return CLI_OK;
}

static const cli_verb g_verbs[] = {
    {"train", "train OVA-DETR (or the closed-set twin / an ablation) on the shared trainer", cmd_train},
    {"detect", "detect objects by class name in an aerial PNG (COCO JSON, labelled PNG)", cmd_detect},
    {"eval", "zero-shot evaluation on the held-out split (--json: one object)", cmd_eval},
    {"bench", "images/s at 640 and 800 px, 1 and 2 threads, against the closed-set twin", cmd_bench},
    {NULL, NULL, NULL},
};

const cli_family cli_family_ovadetr = {
    "ovadetr", "OVA-DETR: open-vocabulary detection in aerial images by class name", g_verbs};
