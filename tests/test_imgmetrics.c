/* Tests for src/nn/imgmetrics.c: the Jacobi eigensolver (A V = V diag(e),
 * V orthonormal, eigenvalues vs torch.linalg.eigvalsh), the Fréchet
 * distance (closed forms for diagonal and shifted Gaussians, and vs a
 * float64 torch.linalg fixture), the IS analogue (closed-form extremes and
 * fixture), k-NN radii and precision/recall (brute force, extremes and
 * fixture), PSNR and class accuracy. Fixtures: tools/refs/gen_imgtok.py.
 * Tolerances: eigen residuals 1e-10 (double); Fréchet distance vs the
 * fixture rtol 1e-5 (inputs are f32, statistics double; the fixture value
 * is stored as f32); closed forms 1e-9; IS rtol 1e-6; radii rtol 1e-4
 * (sgemm dot products in f32); precision/recall exact (no point sits on a
 * ball's edge in the fixture). */
#include "testutil.h"
#include "tessera/imgmetrics.h"

#include <math.h>
#include <string.h>

static void test_eig(void) {
    const int n = 7;
    double a[49], w[49], v[49], e[7];
    float r[49];
    tu_randn(r, 49, 11, 1.0f);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) a[i * n + j] = (double)r[i * n + j] + r[j * n + i];
    memcpy(w, a, sizeof a);
    int sweeps = tsr_sym_eig(w, n, e, v);
    double res = 0, orth = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double av = 0, vv = 0;
            for (int k = 0; k < n; k++) av += a[i * n + k] * v[k * n + j], vv += v[k * n + i] * v[k * n + j];
            res = fmax(res, fabs(av - e[j] * v[i * n + j]));
            orth = fmax(orth, fabs(vv - (i == j)));
        }
    TU_CHECK(res < 1e-10 && orth < 1e-10, "jacobi residual %g orthonormality %g (%d sweeps)", res, orth, sweeps);
    int sorted = 1;
    for (int i = 1; i < n; i++) sorted &= e[i - 1] <= e[i];
    TU_CHECK(sorted, "eigenvalues ascending");
    /* a diagonal matrix needs no rotation */
    double d[9] = {3, 0, 0, 0, -1, 0, 0, 0, 2}, de[3];
    tsr_sym_eig(d, 3, de, NULL);
    TU_CHECK(de[0] == -1 && de[1] == 2 && de[2] == 3, "diagonal eigenvalues");
}

static void test_frechet_closed(void) {
    /* diagonal covariances: FD = |dm|^2 + sum (sqrt a_i - sqrt b_i)^2 */
    const int d = 4;
    double m1[4] = {0, 1, 2, 3}, m2[4] = {1, 1, 0, 3}, c1[16] = {0}, c2[16] = {0};
    double a[4] = {1, 4, 0.25, 9}, b[4] = {4, 1, 1, 9}, want = 1 + 4;
    for (int i = 0; i < d; i++) {
        c1[i * d + i] = a[i], c2[i * d + i] = b[i];
        want += (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
    }
    double fd = tsr_frechet_from_stats(m1, c1, m2, c2, d);
    TU_CHECK(fabs(fd - want) < 1e-9, "diagonal Frechet %.12g want %.12g", fd, want);
    /* same covariance (non-diagonal) rotated: FD = |dm|^2 only */
    double c[16] = {2, 0.5, 0.1, 0, 0.5, 1, 0.2, 0, 0.1, 0.2, 3, 0.3, 0, 0, 0.3, 1};
    fd = tsr_frechet_from_stats(m1, c, m2, c, d);
    TU_CHECK(fabs(fd - 5) < 1e-9, "equal covariances: FD = |dm|^2 (%.12g)", fd);
    /* C2 = s^2 C1: tr(C1 C2)^1/2 = s tr C1, FD = (1-s)^2 tr C1 */
    double cs[16];
    for (int i = 0; i < 16; i++) cs[i] = 4 * c[i];
    fd = tsr_frechet_from_stats(m1, c, m1, cs, d);
    TU_CHECK(fabs(fd - 7.0) < 1e-9, "scaled covariance: FD = (1-2)^2 tr C = 7 (%.12g)", fd);
}

static void test_fixtures(void) {
    tref *r = tref_load("tests/refs/imgtok.tref");
    const tref_entry *a = tref_get(r, "fd.a"), *b = tref_get(r, "fd.b");
    const int d = (int)a->shape[1];
    double fd = tsr_frechet_distance(a->data, a->shape[0], b->data, b->shape[0], d);
    float fdf = (float)fd;
    tu_close_ref(r, "fd.value", &fdf, 1, 0, 1e-5);
    /* eigenvalues of C1 vs torch.linalg.eigvalsh */
    double m[8], c[64], e[8];
    tsr_feat_stats(a->data, a->shape[0], d, m, c);
    tsr_sym_eig(c, d, e, NULL);
    float ef[8];
    for (int i = 0; i < d; i++) ef[i] = (float)e[i];
    tu_close_ref(r, "fd.eig_c1", ef, d, 1e-6, 1e-5);
    /* identical sets: 0 up to rounding */
    double self = tsr_frechet_distance(a->data, a->shape[0], a->data, a->shape[0], d);
    TU_CHECK(fabs(self) < 1e-8, "FD(a, a) = %g", self);

    const tref_entry *L = tref_get(r, "is.logits");
    float is = (float)tsr_inception_score(L->data, L->shape[0], (int)L->shape[1]);
    tu_close_ref(r, "is.value", &is, 1, 0, 1e-6);

    const tref_entry *X = tref_get(r, "knn.x"), *F = tref_get(r, "pr.fake");
    float r2[64];
    tsr_knn_radii(r2, X->data, X->shape[0], (int)X->shape[1], 3);
    tu_close_ref(r, "knn.r2_k3", r2, X->shape[0], 1e-5, 1e-4);
    tsr_prdc pr = tsr_precision_recall(X->data, X->shape[0], F->data, F->shape[0], (int)X->shape[1], 3);
    float pv = (float)pr.precision, rv = (float)pr.recall;
    tu_close_ref(r, "pr.precision", &pv, 1, 1e-7, 0);
    tu_close_ref(r, "pr.recall", &rv, 1, 1e-7, 0);
    tref_free(r);
}

static void test_small(void) {
    /* IS: uniform predictions -> 1; confident and balanced over C -> C */
    float u[4 * 10] = {0}, conf[20 * 10];
    TU_CHECK(fabs(tsr_inception_score(u, 4, 10) - 1) < 1e-12, "IS of uniform predictions is 1");
    for (int i = 0; i < 20; i++)
        for (int k = 0; k < 10; k++) conf[i * 10 + k] = k == i % 10 ? 60.0f : 0.0f;
    TU_CHECK(fabs(tsr_inception_score(conf, 20, 10) - 10) < 1e-6, "IS of confident balanced is C");
    int32_t lab[20];
    for (int i = 0; i < 20; i++) lab[i] = i < 15 ? i % 10 : (i + 1) % 10;
    TU_CHECK(tsr_class_accuracy(conf, lab, 20, 10) == 0.75, "class accuracy");
    /* PSNR: mse 0.01 -> 20 dB; two images average their PSNRs */
    float x[8] = {0}, y[8] = {0.1f, 0.1f, 0.1f, 0.1f, 0.01f, 0.01f, 0.01f, 0.01f};
    double p = tsr_psnr(y, x, 2, 4), want;
    want = (10 * log10(1 / ((double)0.1f * 0.1f)) + 10 * log10(1 / ((double)0.01f * 0.01f))) / 2;
    TU_CHECK(fabs(p - want) < 1e-4, "psnr %g want %g", p, want);
    /* precision/recall extremes: the same set -> (1,1); far apart -> (0,0) */
    float s[50 * 3], far[50 * 3];
    tu_randn(s, 150, 21, 1.0f);
    for (int i = 0; i < 150; i++) far[i] = s[i] + 100.0f;
    tsr_prdc a = tsr_precision_recall(s, 50, s, 50, 3, 3), b = tsr_precision_recall(s, 50, far, 50, 3, 3);
    TU_CHECK(a.precision == 1 && a.recall == 1, "same set: precision %g recall %g", a.precision, a.recall);
    TU_CHECK(b.precision == 0 && b.recall == 0, "far sets: precision %g recall %g", b.precision, b.recall);
    /* radii over more than one sgemm block agree with brute force */
    const int n = 700, d = 5;
    float *big = malloc(sizeof(float) * n * d), *r2 = malloc(sizeof(float) * n);
    tu_randn(big, n * d, 22, 1.0f);
    tsr_knn_radii(r2, big, n, d, 3);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        double best[3] = {INFINITY, INFINITY, INFINITY};
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double s2 = 0;
            for (int k = 0; k < d; k++) s2 += ((double)big[i * d + k] - big[j * d + k]) * ((double)big[i * d + k] - big[j * d + k]);
            if (s2 < best[2]) {
                best[2] = s2;
                for (int q = 2; q > 0 && best[q] < best[q - 1]; q--) {
                    double t = best[q];
                    best[q] = best[q - 1], best[q - 1] = t;
                }
            }
        }
        ok += fabs(r2[i] - best[2]) <= 1e-5 + 1e-4 * best[2];
    }
    TU_CHECK(ok == n, "knn radii vs brute force (%d/%d)", ok, n);
    free(big), free(r2);
}

int main(void) {
    tsr_threads_set(0);
    test_eig();
    test_frechet_closed();
    test_fixtures();
    test_small();
    return tu_finish("imgmetrics");
}
