/* tessera nn: image-generation metrics on fixed-extractor features and
 * class probabilities (include/tessera/imgmetrics.h): Fréchet distance
 * (with a cyclic Jacobi symmetric eigensolver for the matrix square roots),
 * an Inception-Score analogue, k-NN precision/recall (Kynkäänniemi et al.
 * 2019), class accuracy and PSNR. Shared by the image families. */
#include "tessera/imgmetrics.h"

#include <math.h>
#include <string.h>

#define KNN_BLOCK 512
#define KNN_MAXK 32

int tsr_sym_eig(double *a, int n, double *eval, double *evec) {
    double *v = evec;
    if (v)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) v[i * n + j] = i == j;
    int sweep = 0;
    for (; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < n; i++) {
            diag += a[i * n + i] * a[i * n + i];
            for (int j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
        }
        if (off <= 1e-30 * (diag + 1e-300) || off == 0) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                /* rotation that zeroes a[p][q] (Golub & Van Loan, alg. 8.4.1) */
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double cs = 1 / sqrt(t * t + 1), sn = t * cs;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = cs * akp - sn * akq;
                    a[k * n + q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = cs * apk - sn * aqk;
                    a[q * n + k] = sn * apk + cs * aqk;
                }
                if (v)
                    for (int k = 0; k < n; k++) {
                        double vkp = v[k * n + p], vkq = v[k * n + q];
                        v[k * n + p] = cs * vkp - sn * vkq;
                        v[k * n + q] = sn * vkp + cs * vkq;
                    }
            }
    }
    /* ascending order (selection sort keeps columns of v paired) */
    for (int i = 0; i < n; i++) eval[i] = a[i * n + i];
    for (int i = 0; i < n; i++) {
        int m = i;
        for (int j = i + 1; j < n; j++)
            if (eval[j] < eval[m]) m = j;
        if (m == i) continue;
        double t = eval[i];
        eval[i] = eval[m], eval[m] = t;
        if (v)
            for (int k = 0; k < n; k++) {
                t = v[k * n + i];
                v[k * n + i] = v[k * n + m], v[k * n + m] = t;
            }
    }
    return sweep;
}

void tsr_feat_stats(const float *x, int64_t n, int d, double *mean, double *cov) {
    TSR_ASSERT(n >= 2 && d >= 1);
    memset(mean, 0, sizeof(double) * (size_t)d);
    memset(cov, 0, sizeof(double) * (size_t)d * (size_t)d);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= (double)n;
    double *r = malloc(sizeof(double) * (size_t)d);
    TSR_ASSERT(r);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) r[j] = x[i * d + j] - mean[j];
#pragma omp parallel for schedule(static) if (d >= 64)
        for (int j = 0; j < d; j++)
            for (int k = j; k < d; k++) cov[j * d + k] += r[j] * r[k];
    }
    for (int j = 0; j < d; j++)
        for (int k = j; k < d; k++) cov[k * d + j] = cov[j * d + k] /= (double)(n - 1);
    free(r);
}

/* s = A^1/2 for symmetric PSD A (n,n); negative eigenvalues clamp to 0 */
static void sym_sqrt(double *s, const double *a, int n) {
    size_t nn = (size_t)n * (size_t)n;
    double *w = malloc(sizeof(double) * nn), *v = malloc(sizeof(double) * nn),
           *e = malloc(sizeof(double) * (size_t)n);
    TSR_ASSERT(w && v && e);
    memcpy(w, a, sizeof(double) * nn);
    tsr_sym_eig(w, n, e, v);
    for (int i = 0; i < n; i++) e[i] = e[i] > 0 ? sqrt(e[i]) : 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int k = 0; k < n; k++) acc += v[i * n + k] * e[k] * v[j * n + k];
            s[i * n + j] = acc;
        }
    free(w), free(v), free(e);
}

double tsr_frechet_from_stats(const double *m1, const double *c1, const double *m2,
                              const double *c2, int d) {
    size_t nn = (size_t)d * (size_t)d;
    double *s1 = malloc(sizeof(double) * nn), *t = malloc(sizeof(double) * nn),
           *m = malloc(sizeof(double) * nn), *e = malloc(sizeof(double) * (size_t)d);
    TSR_ASSERT(s1 && t && m && e);
    sym_sqrt(s1, c1, d);
    /* M = C1^1/2 C2 C1^1/2 is symmetric PSD and similar to C1 C2, so
     * tr (C1 C2)^1/2 = sum sqrt(eig M) */
#pragma omp parallel for schedule(static) if (d >= 64)
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int k = 0; k < d; k++) acc += s1[i * d + k] * c2[k * d + j];
            t[i * d + j] = acc;
        }
#pragma omp parallel for schedule(static) if (d >= 64)
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double acc = 0;
            for (int k = 0; k < d; k++) acc += t[i * d + k] * s1[k * d + j];
            m[i * d + j] = acc;
        }
    for (int i = 0; i < d; i++) /* symmetrise rounding */
        for (int j = i + 1; j < d; j++) m[i * d + j] = m[j * d + i] = 0.5 * (m[i * d + j] + m[j * d + i]);
    tsr_sym_eig(m, d, e, NULL);
    double tr_sqrt = 0, tr1 = 0, tr2 = 0, dm = 0;
    for (int i = 0; i < d; i++) {
        tr_sqrt += e[i] > 0 ? sqrt(e[i]) : 0;
        tr1 += c1[i * d + i];
        tr2 += c2[i * d + i];
        dm += (m1[i] - m2[i]) * (m1[i] - m2[i]);
    }
    free(s1), free(t), free(m), free(e);
    return dm + tr1 + tr2 - 2 * tr_sqrt;
}

double tsr_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int d) {
    size_t nn = (size_t)d * (size_t)d;
    double *m1 = malloc(sizeof(double) * (size_t)d), *m2 = malloc(sizeof(double) * (size_t)d),
           *c1 = malloc(sizeof(double) * nn), *c2 = malloc(sizeof(double) * nn);
    TSR_ASSERT(m1 && m2 && c1 && c2);
    tsr_feat_stats(a, na, d, m1, c1);
    tsr_feat_stats(b, nb, d, m2, c2);
    double fd = tsr_frechet_from_stats(m1, c1, m2, c2, d);
    free(m1), free(m2), free(c1), free(c2);
    return fd;
}

/* softmax of one row in double */
static void softmax_row(double *p, const float *z, int C) {
    double mx = z[0], s = 0;
    for (int k = 1; k < C; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < C; k++) s += p[k] = exp((double)z[k] - mx);
    for (int k = 0; k < C; k++) p[k] /= s;
}

double tsr_inception_score(const float *logits, int64_t n, int C) {
    TSR_ASSERT(n >= 1 && C >= 1);
    double *py = calloc((size_t)C, sizeof(double)), *p = malloc(sizeof(double) * (size_t)C);
    TSR_ASSERT(py && p);
    double neg_h = 0; /* E_x sum_y p log p */
    for (int64_t i = 0; i < n; i++) {
        softmax_row(p, logits + i * C, C);
        for (int k = 0; k < C; k++) {
            py[k] += p[k];
            if (p[k] > 0) neg_h += p[k] * log(p[k]);
        }
    }
    neg_h /= (double)n;
    double hy = 0; /* E KL(p(y|x)||p(y)) = -H(y|x) + H(y) */
    for (int k = 0; k < C; k++) {
        double q = py[k] / (double)n;
        if (q > 0) hy -= q * log(q);
    }
    free(py), free(p);
    return exp(neg_h + hy);
}

double tsr_class_accuracy(const float *logits, const int32_t *labels, int64_t n, int C) {
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < C; k++)
            if (logits[i * C + k] > logits[i * C + best]) best = k;
        ok += best == labels[i];
    }
    return n ? (double)ok / (double)n : 0.0;
}

double tsr_psnr(const float *a, const float *b, int64_t n, int64_t pix) {
    double tot = 0;
    for (int64_t i = 0; i < n; i++) {
        double se = 0;
        for (int64_t j = 0; j < pix; j++) {
            double d = (double)a[i * pix + j] - b[i * pix + j];
            se += d * d;
        }
        double mse = se / (double)pix;
        tot += 10 * log10(1.0 / (mse > 1e-10 ? mse : 1e-10));
    }
    return n ? tot / (double)n : 0.0;
}

static void row_norms(double *nr, const float *x, int64_t n, int d) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        nr[i] = s;
    }
}

void tsr_knn_radii(float *r2, const float *x, int64_t n, int d, int k) {
    TSR_ASSERT(k >= 1 && k <= KNN_MAXK && n > k);
    double *nr = malloc(sizeof(double) * (size_t)n);
    float *dot = malloc(sizeof(float) * (size_t)KNN_BLOCK * (size_t)n);
    TSR_ASSERT(nr && dot);
    row_norms(nr, x, n, d);
    for (int64_t i0 = 0; i0 < n; i0 += KNN_BLOCK) {
        int bm = (int)(n - i0 < KNN_BLOCK ? n - i0 : KNN_BLOCK);
        tsr_backend_cpu.sgemm(false, true, bm, (int)n, d, 1.0f, x + i0 * d, d, x, d, 0.0f, dot,
                              (int)n);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < bm; r++) {
            double best[KNN_MAXK];
            for (int q = 0; q < k; q++) best[q] = INFINITY;
            const int64_t i = i0 + r;
            for (int64_t j = 0; j < n; j++) {
                if (j == i) continue;
                double d2 = nr[i] + nr[j] - 2.0 * dot[(int64_t)r * n + j];
                if (d2 < 0) d2 = 0;
                if (d2 >= best[k - 1]) continue;
                int q = k - 1;
                while (q > 0 && best[q - 1] > d2) best[q] = best[q - 1], q--;
                best[q] = d2;
            }
            r2[i] = (float)best[k - 1];
        }
    }
    free(nr), free(dot);
}

/* share of rows of q (nq,d) inside at least one ball (centre ref row j,
 * squared radius rad[j]) */
static double coverage(const float *q, int64_t nq, const float *ref, const float *rad, int64_t nr,
                       int d) {
    double *nq2 = malloc(sizeof(double) * (size_t)nq), *nr2 = malloc(sizeof(double) * (size_t)nr);
    float *dot = malloc(sizeof(float) * (size_t)KNN_BLOCK * (size_t)nr);
    TSR_ASSERT(nq2 && nr2 && dot);
    row_norms(nq2, q, nq, d);
    row_norms(nr2, ref, nr, d);
    int64_t inside = 0;
    for (int64_t i0 = 0; i0 < nq; i0 += KNN_BLOCK) {
        int bm = (int)(nq - i0 < KNN_BLOCK ? nq - i0 : KNN_BLOCK);
        tsr_backend_cpu.sgemm(false, true, bm, (int)nr, d, 1.0f, q + i0 * d, d, ref, d, 0.0f, dot,
                              (int)nr);
#pragma omp parallel for schedule(static) reduction(+ : inside)
        for (int r = 0; r < bm; r++) {
            const int64_t i = i0 + r;
            for (int64_t j = 0; j < nr; j++) {
                double d2 = nq2[i] + nr2[j] - 2.0 * dot[(int64_t)r * nr + j];
                if (d2 <= rad[j]) {
                    inside++;
                    break;
                }
            }
        }
    }
    free(nq2), free(nr2), free(dot);
    return nq ? (double)inside / (double)nq : 0.0;
}

tsr_prdc tsr_precision_recall(const float *real, int64_t nr, const float *fake, int64_t nf,
                              int d, int k) {
    float *rr = malloc(sizeof(float) * (size_t)nr), *rf = malloc(sizeof(float) * (size_t)nf);
    TSR_ASSERT(rr && rf);
    tsr_knn_radii(rr, real, nr, d, k);
    tsr_knn_radii(rf, fake, nf, d, k);
    tsr_prdc r;
    r.precision = coverage(fake, nf, real, rr, nr, d);
    r.recall = coverage(real, nr, fake, rf, nf, d);
    free(rr), free(rf);
    return r;
}
