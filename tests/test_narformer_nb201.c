/* Tests for narformer's NAS-Bench-201 side: arch-string parsing, the cell
 * DAG and its tokens, the isomorphic relabelling (same graph, other order),
 * FLOPs of known cells, and the two tables of ../shared/data (15,625 rows in
 * the same order; skipped when the data is absent). */
#include "testutil.h"
#include "tessera/narformer.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static void test_arch(void) {
    uint8_t ops[6];
    TU_CHECK(tsr_nb201_parse_arch("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|", ops),
             "parse a real arch string");
    const uint8_t want[6] = {TSR_NB201_POOL, TSR_NB201_CONV1, TSR_NB201_SKIP, TSR_NB201_CONV1, TSR_NB201_SKIP, TSR_NB201_SKIP};
    TU_CHECK(!memcmp(ops, want, 6), "ops in arch-string order");
    TU_CHECK(!tsr_nb201_parse_arch("|avg_pool_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", ops), "wrong predecessor");
    TU_CHECK(!tsr_nb201_parse_arch("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", ops), "unknown op");
    TU_CHECK(!tsr_nb201_parse_arch("|none~0|+|none~0|none~1|", ops), "too few edges");
    TU_CHECK(!tsr_nb201_parse_arch("", ops), "empty");
}

static void test_graph_iso(void) {
    const uint8_t ops[6] = {1, 2, 3, 4, 5, 2};
    uint8_t no[8], io[8];
    float adj[64], ia[64];
    tsr_nb201_graph(ops, no, adj);
    int edges = 0;
    for (int i = 0; i < 64; i++) edges += adj[i] != 0;
    TU_CHECK(edges == 20, "10 undirected edges, got %d entries", edges);
    TU_CHECK(no[0] == TSR_NB201_INPUT && no[7] == TSR_NB201_OUTPUT && no[2] == 2, "node ops");
    TU_CHECK(tsr_nb201_iso_copy(no, adj, io, ia), "an isomorphic copy exists");
    /* same multiset of ops, same degree sequence, same number of edges, and
     * a valid relabelling: ops[label] with adjacency adj[label][label] */
    int deg0[8] = {0}, deg1[8] = {0}, e1 = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) deg0[i] += adj[i * 8 + j] != 0, deg1[i] += ia[i * 8 + j] != 0, e1 += ia[i * 8 + j] != 0;
    TU_CHECK(e1 == edges, "copy keeps the edges");
    int hist0[7] = {0}, hist1[7] = {0};
    for (int i = 0; i < 8; i++) hist0[no[i]]++, hist1[io[i]]++;
    TU_CHECK(!memcmp(hist0, hist1, sizeof hist0), "copy keeps the ops");
    TU_CHECK(memcmp(no, io, 8) || memcmp(adj, ia, sizeof adj), "copy differs from the original");
    /* directed version upper-triangular: every edge of the copy goes from a lower to a higher index along a
     * path input -> output, so node 0 keeps its 3 successors and node 7 its 3 predecessors */
    TU_CHECK(deg1[0] == 3 && deg1[7] == 3 && io[0] == TSR_NB201_INPUT && io[7] == TSR_NB201_OUTPUT, "ends fixed");
    float tok[8 * TSR_NB201_TOKEN_DIM];
    tsr_nb201_tokens(no, tok);
    double f1 = 1.0 + (2147483648.0 - 1.0) / 31.0;
    TU_CHECK(fabsf(tok[1 * TSR_NB201_TOKEN_DIM + 2] - (float)sin(M_PI * f1)) < 1e-6f, "op code of node 1 = 1");
    TU_CHECK(fabsf(tok[3 * TSR_NB201_TOKEN_DIM + 64 + 3] - (float)cos(3 * M_PI * f1)) < 1e-6f, "position of node 3");
    TU_CHECK(fabsf(tok[0 * TSR_NB201_TOKEN_DIM + 1] - 1.0f) < 1e-6f, "input op code 0: cos 0 = 1");
    float d = 0; /* ids 1 and 2 far apart */
    for (int k = 0; k < 64; k++) d += fabsf(tok[1 * TSR_NB201_TOKEN_DIM + k] - tok[2 * TSR_NB201_TOKEN_DIM + k]);
    TU_CHECK(d > 10, "op codes 1 and 2 differ (L1 %.2f)", d);
}

static void test_cost(void) {
    const uint8_t none[6] = {5, 5, 5, 5, 5, 5}, conv3[6] = {2, 2, 2, 2, 2, 2}, conv1[6] = {1, 1, 1, 1, 1, 1};
    double f0, p0, f3, p3, f1, p1;
    tsr_nb201_cost(none, &f0, &p0);
    tsr_nb201_cost(conv3, &f3, &p3);
    tsr_nb201_cost(conv1, &f1, &p1);
    TU_CHECK(f0 == 0 && p0 == 0, "empty cell costs nothing");
    /* 6 edges x 5 cells x 2 x 9 C^2 HW summed over stages: 6*5*2*9*3*262144 */
    TU_CHECK(fabs(f3 - 6.0 * 5 * 2 * 9 * 3 * 262144) < 1, "3x3 FLOPs %.0f", f3);
    TU_CHECK(fabs(f3 / f1 - 9) < 1e-9, "3x3 is 9x the 1x1");
}

static void test_tables(void) {
    const char *acc = "../shared/data/nas-bench-201/nats_bench.csv", *lat = "../shared/data/nb201-latency/nb201_latency_ms.csv.gz";
    if (access(acc, R_OK) || access(lat, R_OK)) {
        fprintf(stderr, "skip tables: data absent\n");
        return;
    }
    tsr_nb201 t;
    tsr_status st = tsr_nb201_load(&t, acc, lat);
    TU_CHECK(st.code == 0, "%s", st.msg);
    if (st.code) return;
    TU_CHECK(t.n == TSR_NB201_N, "15,625 cells");
    TU_CHECK(t.n_dev == 27, "27 devices, got %d", t.n_dev);
    TU_CHECK(fabsf(t.acc[0][0] - 85.8633f) < 1e-3f, "cell 0 CIFAR-10 accuracy");
    TU_CHECK(tsr_nb201_device(&t, "pixel3") >= 0 && tsr_nb201_device(&t, "nope") < 0, "device lookup");
    int d = tsr_nb201_device(&t, "1080ti_1");
    TU_CHECK(d == 0 && fabsf(t.lat[d] - 10.7544f) < 1e-3f, "cell 0 latency on 1080ti_1");
    TU_CHECK(t.n_iso > 6000 && t.n_iso < 15625, "isomorphism classes: %d", t.n_iso);
    float best = 0;
    for (int i = 0; i < t.n; i++) best = fmaxf(best, t.acc[0][i]);
    TU_CHECK(best > 94 && best < 95, "best CIFAR-10 accuracy %.2f", best);
    tsr_nb201_free(&t);
    /* a latency table that does not match is refused */
    st = tsr_nb201_load(&t, acc, acc);
    TU_CHECK(st.code != 0, "mismatched latency table accepted");
    st = tsr_nb201_load(&t, "/nonexistent.csv", NULL);
    TU_CHECK(st.code != 0 && strstr(st.msg, "/nonexistent.csv"), "missing file named: %s", st.msg);
}

static void test_metrics(void) {
    /* tau-b with ties in both, by hand (brute force in Python): 16 concordant,
     * 3 discordant, 1 tie in each -> 13 / sqrt(20 * 20) = 0.65 */
    const float a[7] = {1, 2, 3, 4, 5, 5, 7}, b[7] = {2, 1, 3, 3, 6, 7, 5};
    TU_CHECK(fabs(tsr_nf_kendall_tau(a, b, 7) - 0.65) < 1e-9, "tau-b %.6f", tsr_nf_kendall_tau(a, b, 7));
    TU_CHECK(fabs(tsr_nf_kendall_tau(a, a, 7) - 1.0) < 1e-9, "tau of itself");
    const float p[4] = {1.05f, 2, 2.9f, 4.5f}, y[4] = {1, 2, 3, 4};
    tsr_nf_metrics m;
    tsr_nf_metrics_compute(p, y, 4, &m);
    TU_CHECK(fabs(m.mape - (0.05 + 0 + 0.1 / 3 + 0.125) / 4) < 1e-6, "mape %.6f", m.mape);
    TU_CHECK(m.acc_10pct == 0.75 && m.acc_5pct == 0.75 && m.acc_1pct == 0.25, "within 10/5/1%%: %.2f %.2f %.2f",
             m.acc_10pct, m.acc_5pct, m.acc_1pct);
}

int main(void) {
    test_metrics();
    test_arch();
    test_graph_iso();
    test_cost();
    test_tables();
    return tu_finish("narformer_nb201");
}
