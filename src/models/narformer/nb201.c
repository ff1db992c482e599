/* narformer: NAS-Bench-201 data and the cell tokenizer (NAR-Former V2
 * sec. 4.2). A cell is 8 tokens on the fixed DAG (input, the 6 edge
 * operations in arch-string order, output), op-on-node as in the official
 * code; each token encodes its operation id and its position. The
 * consistency copy relabels the nodes (same network, other token order). */
#include "tessera/narformer.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <zlib.h>

static const char *const OPNAMES[6] = {"", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none"};

bool tsr_nb201_parse_arch(const char *s, uint8_t ops[6]) {
    /* expected predecessor of each edge, in order */
    static const char pred[6] = {'0', '0', '1', '0', '1', '2'};
    int k = 0;
    const char *p = s;
    while (*p && k <= 6) {
        if (*p == '|' || *p == '+') {
            p++;
            continue;
        }
        const char *t = strchr(p, '~');
        if (!t || k >= 6) return false;
        size_t n = (size_t)(t - p);
        int id = 0;
        for (int i = 1; i <= 5; i++)
            if (strlen(OPNAMES[i]) == n && !strncmp(p, OPNAMES[i], n)) id = i;
        if (!id || t[1] != pred[k] || t[2] != '|') return false;
        ops[k++] = (uint8_t)id;
        p = t + 3;
    }
    return k == 6 && !*p;
}

void tsr_nb201_graph(const uint8_t ops[6], uint8_t node_ops[8], float adj[64]) {
    /* directed edges of the op-on-node DAG: node 0 feeds ops 1, 2, 4 (the
     * edges leaving cell node 0); op 1 feeds ops 3, 5; ops 2, 3 feed op 6;
     * ops 4, 5, 6 feed the output */
    static const int E[][2] = {{0, 1}, {0, 2}, {0, 4}, {1, 3}, {1, 5}, {2, 6}, {3, 6}, {4, 7}, {5, 7}, {6, 7}};
    node_ops[0] = TSR_NB201_INPUT;
    for (int i = 0; i < 6; i++) node_ops[i + 1] = ops[i];
    node_ops[7] = TSR_NB201_OUTPUT;
    memset(adj, 0, sizeof(float) * 64);
    for (size_t e = 0; e < sizeof E / sizeof E[0]; e++) {
        adj[E[e][0] * 8 + E[e][1]] = 1;
        adj[E[e][1] * 8 + E[e][0]] = 1;
    }
}

static bool next_perm(int *a, int n) {
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1]) i--;
    if (i < 0) return false;
    int j = n - 1;
    while (a[j] <= a[i]) j--;
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int l = i + 1, r = n - 1; l < r; l++, r--) {
        t = a[l];
        a[l] = a[r];
        a[r] = t;
    }
    return true;
}

bool tsr_nb201_iso_copy(const uint8_t node_ops[8], const float adj[64], uint8_t ops_out[8], float adj_out[64]) {
    /* relabel on the directed DAG (upper triangle of the undirected adj) */
    int perm[6] = {1, 2, 3, 4, 5, 6};
    do {
        int label[8] = {0, perm[0], perm[1], perm[2], perm[3], perm[4], perm[5], 7};
        bool upper = true, same = true;
        for (int i = 0; i < 8 && upper; i++)
            for (int j = 0; j < 8; j++) {
                int a = label[i] & 7, b = label[j] & 7;
                float d = a < b ? adj[a * 8 + b] : 0; /* directed edge a -> b */
                if (d != 0 && i > j) upper = false;
                float orig = i < j ? adj[i * 8 + j] : 0;
                if (d != orig) same = false;
            }
        if (!upper) continue;
        for (int j = 0; j < 8; j++)
            if (node_ops[label[j]] != node_ops[j]) same = false;
        if (same) continue;
        for (int j = 0; j < 8; j++) ops_out[j] = node_ops[label[j]];
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) {
                int a = label[i] & 7, b = label[j] & 7;
                adj_out[i * 8 + j] = adj[a * 8 + b];
            }
        return true;
    } while (next_perm(perm, 6));
    return false;
}

/* NeRF-style code of the official NB201 tokenizer (embed_type nerf,
 * multires 32): sin/cos(pi x f_k), f_k linearly spaced from 1 to 2^31. At
 * integer x these high frequencies act as a fixed pseudo-random code per
 * value, which keeps the 7 operation ids apart (the 10000^(-j/d) code of
 * whole networks is nearly linear in small ids). */
static void nerf_code(float *out, double x) {
    for (int k = 0; k < 32; k++) {
        double f = 1.0 + (double)k * (2147483648.0 - 1.0) / 31.0;
        out[2 * k] = (float)sin(x * M_PI * f);
        out[2 * k + 1] = (float)cos(x * M_PI * f);
    }
}

/* the codes of 0..7 (operation ids and positions), computed once: the
 * sines of these huge arguments cost ~1 us each, and every training batch
 * tokenizes its cells again */
static float nerf_table[8][64];
static pthread_once_t nerf_once = PTHREAD_ONCE_INIT;

static void nerf_table_init(void) {
    for (int v = 0; v < 8; v++) nerf_code(nerf_table[v], v);
}

void tsr_nb201_tokens(const uint8_t node_ops[8], float *tokens) {
    pthread_once(&nerf_once, nerf_table_init);
    for (int i = 0; i < 8; i++) {
        float *t = tokens + i * TSR_NB201_TOKEN_DIM;
        if (node_ops[i] < 8) memcpy(t, nerf_table[node_ops[i]], sizeof nerf_table[0]);
        else nerf_code(t, node_ops[i]);
        memcpy(t + 64, nerf_table[i], sizeof nerf_table[0]);
    }
}

void tsr_nb201_cost(const uint8_t ops[6], double *flops, double *params) {
    /* cells only (the stem, reduction blocks and classifier are the same for
     * every architecture, so they shift both figures by a constant) */
    static const int C[3] = {16, 32, 64}, HW[3] = {32 * 32, 16 * 16, 8 * 8};
    double f = 0, p = 0;
    for (int s = 0; s < 3; s++)
        for (int e = 0; e < 6; e++) {
            int k = ops[e] == TSR_NB201_CONV3 ? 9 : ops[e] == TSR_NB201_CONV1 ? 1 : 0;
            double cc = (double)C[s] * C[s];
            if (k) {
                f += 5.0 * 2.0 * cc * k * HW[s];     /* conv MACs x 2 */
                p += 5.0 * (cc * k + 2.0 * C[s]); /* weights + BN affine */
            } else if (ops[e] == TSR_NB201_POOL) {
                f += 5.0 * 9.0 * C[s] * HW[s];
            }
        }
    *flops = f;
    *params = p;
}

/* ------------------------------------------------------------ loading */

static char *next_field(char **p) {
    char *s = *p, *c = strchr(s, ',');
    if (c) {
        *c = 0;
        *p = c + 1;
    } else *p = s + strlen(s);
    return s;
}

static tsr_status read_gz(const char *path, char **out, size_t *len) {
    gzFile f = gzopen(path, "rb");
    if (!f) return tsr_errorf(TSR_ERR_IO, "cannot open %s", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + (1 << 16) + 1 > cap) {
            if (cap > ((size_t)1 << 30)) {
                free(buf);
                gzclose(f);
                return tsr_errorf(TSR_ERR_FORMAT, "%s: larger than 1 GiB uncompressed", path);
            }
            cap *= 2;
            buf = realloc(buf, cap);
        }
        int r = gzread(f, buf + n, 1 << 16);
        if (r < 0) {
            free(buf);
            gzclose(f);
            return tsr_errorf(TSR_ERR_FORMAT, "%s: not a valid gzip file", path);
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(f);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return tsr_ok();
}

void tsr_nb201_free(tsr_nb201 *t) {
    free(t->ops);
    for (int k = 0; k < 3; k++) free(t->acc[k]);
    free(t->iso);
    free(t->lat);
    memset(t, 0, sizeof *t);
}

int tsr_nb201_device(const tsr_nb201 *t, const char *name) {
    for (int d = 0; d < t->n_dev; d++)
        if (!strcmp(t->dev[d], name)) return d;
    return -1;
}

/* strings -> dense ids for the isomorphism classes */
typedef struct {
    char **k;
    int *v;
    uint32_t mask;
    int n;
} str_ids;

static int str_id(str_ids *m, const char *s) {
    uint32_t h = 2166136261u;
    for (const char *p = s; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    uint32_t i = h & m->mask;
    while (m->k[i]) {
        if (!strcmp(m->k[i], s)) return m->v[i];
        i = (i + 1) & m->mask;
    }
    m->k[i] = strdup(s);
    m->v[i] = m->n;
    return m->n++;
}

tsr_status tsr_nb201_load(tsr_nb201 *t, const char *acc_csv, const char *lat_gz) {
    memset(t, 0, sizeof *t);
    char *data = NULL, *ldata = NULL;
    size_t len;
    tsr_status st = read_gz(acc_csv, &data, &len); /* gzopen reads plain files too */
    if (st.code) return st;
    t->ops = calloc(TSR_NB201_N, sizeof *t->ops);
    for (int k = 0; k < 3; k++) t->acc[k] = calloc(TSR_NB201_N, sizeof(float));
    t->iso = calloc(TSR_NB201_N, sizeof(int32_t));
    str_ids ids = {calloc(1 << 16, sizeof(char *)), calloc(1 << 16, sizeof(int)), (1 << 16) - 1, 0};
    char *p = data;
    int line = 0, n = 0;
    while (*p && !st.code) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        char *row = p;
        p = e ? e + 1 : p + strlen(p);
        size_t rl = strlen(row);
        if (rl && row[rl - 1] == '\r') row[--rl] = 0;
        line++;
        if (line == 1) {
            if (strncmp(row, "CIFAR10TestAccuracy200Epochs,", 29))
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: header is not nats_bench.csv's (CIFAR10TestAccuracy200Epochs,...)", acc_csv);
            continue;
        }
        if (!rl) continue;
        if (n >= TSR_NB201_N) {
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: more than %d rows", acc_csv, TSR_NB201_N);
            break;
        }
        char *q = row, *end;
        for (int k = 0; k < 3 && !st.code; k++) {
            char *f = next_field(&q);
            double v = strtod(f, &end);
            if (end == f || *end || !(v >= 0 && v <= 100))
                st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: accuracy '%.20s' is not a number in [0,100]", acc_csv, line, f);
            t->acc[k][n] = (float)v;
        }
        if (st.code) break;
        char *arch = next_field(&q), *uniq = next_field(&q);
        if (!tsr_nb201_parse_arch(arch, t->ops[n]))
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: bad arch string '%.60s'", acc_csv, line, arch);
        else if (!*uniq)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: missing UniqueString", acc_csv, line);
        else t->iso[n] = str_id(&ids, uniq);
        n++;
    }
    if (!st.code && n != TSR_NB201_N)
        st = tsr_errorf(TSR_ERR_FORMAT, "%s: %d rows (expected %d)", acc_csv, n, TSR_NB201_N);
    t->n = n;
    t->n_iso = ids.n;
    for (uint32_t i = 0; i <= ids.mask; i++) free(ids.k[i]);
    free(ids.k);
    free(ids.v);
    free(data);
    if (!st.code && lat_gz) {
        st = read_gz(lat_gz, &ldata, &len);
        p = ldata;
        line = 0;
        n = 0;
        while (!st.code && *p) {
            char *e = strchr(p, '\n');
            if (e) *e = 0;
            char *row = p;
            p = e ? e + 1 : p + strlen(p);
            size_t rl = strlen(row);
            if (rl && row[rl - 1] == '\r') row[--rl] = 0;
            line++;
            if (!rl) continue;
            char *q = row;
            if (line == 1) {
                if (strcmp(next_field(&q), "index") || strcmp(next_field(&q), "arch_str")) {
                    st = tsr_errorf(TSR_ERR_FORMAT, "%s: header must start with index,arch_str", lat_gz);
                    break;
                }
                while (*q && t->n_dev < TSR_NB201_MAX_DEV) snprintf(t->dev[t->n_dev++], 32, "%s", next_field(&q));
                if (t->n_dev < 1) st = tsr_errorf(TSR_ERR_FORMAT, "%s: no device columns", lat_gz);
                t->lat = calloc((size_t)TSR_NB201_N * (size_t)(t->n_dev ? t->n_dev : 1), sizeof(float));
                continue;
            }
            if (n >= TSR_NB201_N) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s: more than %d rows", lat_gz, TSR_NB201_N);
                break;
            }
            char *idx = next_field(&q), *end;
            long iv = strtol(idx, &end, 10);
            uint8_t ops[6];
            char *arch = next_field(&q);
            if (*end || iv != n || !tsr_nb201_parse_arch(arch, ops) || memcmp(ops, t->ops[n], 6)) {
                st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: row does not match cell %d of the accuracy table", lat_gz, line, n);
                break;
            }
            for (int d = 0; d < t->n_dev && !st.code; d++) {
                char *f = next_field(&q);
                double v = strtod(f, &end);
                if (end == f || *end || !(v > 0 && v < 1e9))
                    st = tsr_errorf(TSR_ERR_FORMAT, "%s:%d: latency '%.20s' of %s is not a positive number", lat_gz, line, f, t->dev[d]);
                t->lat[(size_t)n * t->n_dev + d] = (float)v;
            }
            n++;
        }
        if (!st.code && n != TSR_NB201_N)
            st = tsr_errorf(TSR_ERR_FORMAT, "%s: %d rows (expected %d)", lat_gz, n, TSR_NB201_N);
        free(ldata);
    }
    if (st.code) tsr_nb201_free(t);
    return st;
}
