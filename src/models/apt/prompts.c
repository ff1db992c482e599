/* tessera apt: point prompts from a coarse label map (include/tessera/apt.h)
 * in APT's three modes — union grid, random, superpixel centroids — and
 * our own SLIC (Achanta et al. 2012, "SLIC Superpixels Compared to
 * State-of-the-Art Superpixel Methods", alg. 1) for the last. */
#include "tessera/apt.h"

#include <float.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const tsr_apt_mode_names[TSR_APT_MODE_COUNT] = {"grid", "random", "superpixel"};

int tsr_apt_mode_parse(const char *s) {
    for (int i = 0; i < TSR_APT_MODE_COUNT; i++)
        if (strcmp(s, tsr_apt_mode_names[i]) == 0) return i;
    return -1;
}

void tsr_apt_points_free(tsr_apt_points *p) {
    free(p->x);
    free(p->y);
    free(p->label);
    free(p->group);
    memset(p, 0, sizeof *p);
}

static void push(tsr_apt_points *p, float x, float y, int label, int group) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->x = realloc(p->x, sizeof(float) * (size_t)p->cap);
        p->y = realloc(p->y, sizeof(float) * (size_t)p->cap);
        p->label = realloc(p->label, sizeof(int) * (size_t)p->cap);
        p->group = realloc(p->group, sizeof(int) * (size_t)p->cap);
        TSR_ASSERT(p->x && p->y && p->label && p->group);
    }
    p->x[p->n] = x;
    p->y[p->n] = y;
    p->label[p->n] = label;
    p->group[p->n] = group;
    p->n++;
}

typedef struct { int x, y; } pt;
typedef struct { pt *v; int n, cap; } ptlist;
static void pl_push(ptlist *l, int x, int y) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, sizeof(pt) * (size_t)l->cap);
        TSR_ASSERT(l->v);
    }
    l->v[l->n++] = (pt){x, y};
}

/* the official find_closest_factors: N x M ~ A with |N - M| <= 5 */
static void closest_factors(int A, int *N, int *M) {
    int root = (int)floor(sqrt((double)A));
    while ((root + 1) * (root + 1) <= A) root++;
    for (int i = root; i > 0; i--)
        if (A % i == 0 && abs(i - A / i) <= 5) {
            *N = i;
            *M = A / i;
            return;
        }
    int best = A, bn = root, bm = root;
    for (int i = 1; i < 6; i++)
        for (int j = 1; j < 6; j++) {
            int n = root + i, m = root - j;
            if (abs(n - m) <= 5 && abs(n * m - A) < abs(best - A)) {
                best = n * m;
                bn = n;
                bm = m;
            }
        }
    *N = bn > 0 ? bn : 1;
    *M = bm > 0 ? bm : 1;
}

/* centres of the bounding boxes of the 8-connected components of class v
 * (the official fallback), each moved to the component's pixel nearest to
 * it: a box centre can miss its component (a ring, an L, a diagonal) */
static void component_centres(ptlist *out, const uint8_t *lab, int h, int w, int v) {
    int32_t *seen = calloc((size_t)h * (size_t)w, sizeof(int32_t));
    int32_t *stack = malloc(sizeof(int32_t) * (size_t)h * (size_t)w);
    int32_t *members = malloc(sizeof(int32_t) * (size_t)h * (size_t)w);
    TSR_ASSERT(seen && stack && members);
    for (int64_t s = 0; s < (int64_t)h * w; s++) {
        if (lab[s] != v || seen[s]) continue;
        int x0 = w, y0 = h, x1 = -1, y1 = -1, top = 0;
        int64_t nm = 0;
        stack[top++] = (int32_t)s;
        seen[s] = 1;
        while (top) {
            int32_t q = stack[--top];
            members[nm++] = q;
            int qy = q / w, qx = q % w;
            if (qx < x0) x0 = qx;
            if (qx > x1) x1 = qx;
            if (qy < y0) y0 = qy;
            if (qy > y1) y1 = qy;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int ny = qy + dy, nx = qx + dx;
                    if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
                    int64_t r = (int64_t)ny * w + nx;
                    if (lab[r] == v && !seen[r]) {
                        seen[r] = 1;
                        stack[top++] = (int32_t)r;
                    }
                }
        }
        int cx = x0 + (x1 - x0 + 1) / 2, cy = y0 + (y1 - y0 + 1) / 2, bx = cx, by = cy;
        int64_t best = INT64_MAX;
        for (int64_t i = 0; i < nm; i++) {
            int px = members[i] % w, py = members[i] / w;
            int64_t d = (int64_t)(px - cx) * (px - cx) + (int64_t)(py - cy) * (py - cy);
            if (d < best) {
                best = d;
                bx = px;
                by = py;
            }
        }
        pl_push(out, bx, by);
    }
    free(seen);
    free(stack);
    free(members);
}

static void grid_points(ptlist *out, const uint8_t *lab, int h, int w, int v, int64_t area, int points,
                        int iters) {
    double want = (double)points * iters * ((double)h * w / (double)area);
    int A = want >= 256 ? 256 : (int)want;
    if (A < 1) A = 1;
    int N, M;
    closest_factors(A, &N, &M);
    int rh = h / N, rw = w / M;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            int cx = j * rw + rw / 2, cy = i * rh + rh / 2;
            if (cx < w && cy < h && lab[(int64_t)cy * w + cx] == v) pl_push(out, cx, cy);
        }
    if (out->n == 0) component_centres(out, lab, h, w, v);
}

static void random_points(ptlist *out, const uint8_t *lab, int h, int w, int v, int64_t area, int want,
                          tsr_rng *r) {
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)area);
    TSR_ASSERT(idx);
    int64_t k = 0;
    for (int64_t s = 0; s < (int64_t)h * w; s++)
        if (lab[s] == v) idx[k++] = (int32_t)s;
    if (want > area) want = (int)area;
    for (int i = 0; i < want; i++) { /* partial Fisher-Yates: without replacement */
        int64_t j = i + (int64_t)tsr_rng_below(r, (uint32_t)(area - i));
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        pl_push(out, idx[i] % w, idx[i] / w);
    }
    free(idx);
}

/* ---------------------------------------------------------------- SLIC */

void tsr_apt_slic(int32_t *seg, int *n_out, const uint8_t *rgb, int h, int w, int k, float m) {
    int64_t N = (int64_t)h * w;
    if (k < 1) k = 1;
    double S = sqrt((double)N / k);
    if (S < 1) S = 1;
    int gy = (int)ceil(h / S), gx = (int)ceil(w / S), K = gy * gx;
    double *cen = malloc(sizeof(double) * 5 * (size_t)K); /* y, x, r, g, b */
    double *acc = malloc(sizeof(double) * 6 * (size_t)K);
    float *dist = malloc(sizeof(float) * (size_t)N);
    TSR_ASSERT(cen && acc && dist);
    for (int i = 0; i < gy; i++)
        for (int j = 0; j < gx; j++) {
            double *c = cen + 5 * (i * gx + j);
            int cy = (int)((i + 0.5) * h / gy), cx = (int)((j + 0.5) * w / gx);
            /* move to the lowest-gradient pixel of the 3x3 neighbourhood */
            double bestg = DBL_MAX;
            int by = cy, bx = cx;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int y = cy + dy, x = cx + dx;
                    if (y < 1 || y >= h - 1 || x < 1 || x >= w - 1) continue;
                    double g = 0;
                    for (int ch = 0; ch < 3; ch++) {
                        double a = rgb[((int64_t)y * w + x + 1) * 3 + ch] - rgb[((int64_t)y * w + x - 1) * 3 + ch];
                        double b = rgb[((int64_t)(y + 1) * w + x) * 3 + ch] - rgb[((int64_t)(y - 1) * w + x) * 3 + ch];
                        g += a * a + b * b;
                    }
                    if (g < bestg) { bestg = g; by = y; bx = x; }
                }
            c[0] = by;
            c[1] = bx;
            for (int ch = 0; ch < 3; ch++) c[2 + ch] = rgb[((int64_t)by * w + bx) * 3 + ch];
        }
    double wsp = (double)m / S; /* spatial weight: D = d_rgb^2 + (m/S)^2 d_xy^2 */
    for (int it = 0; it < 10; it++) {
        for (int64_t s = 0; s < N; s++) {
            dist[s] = FLT_MAX;
            seg[s] = -1;
        }
        for (int c = 0; c < K; c++) {
            const double *cc = cen + 5 * c;
            int y0 = (int)(cc[0] - 2 * S), y1 = (int)(cc[0] + 2 * S), x0 = (int)(cc[1] - 2 * S),
                x1 = (int)(cc[1] + 2 * S);
            if (y0 < 0) y0 = 0;
            if (x0 < 0) x0 = 0;
            if (y1 > h - 1) y1 = h - 1;
            if (x1 > w - 1) x1 = w - 1;
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++) {
                    int64_t s = (int64_t)y * w + x;
                    const uint8_t *p = rgb + 3 * s;
                    double dr = p[0] - cc[2], dg = p[1] - cc[3], db = p[2] - cc[4];
                    double dy = y - cc[0], dx = x - cc[1];
                    double d = dr * dr + dg * dg + db * db + wsp * wsp * (dy * dy + dx * dx);
                    if (d < dist[s]) {
                        dist[s] = (float)d;
                        seg[s] = c;
                    }
                }
        }
        memset(acc, 0, sizeof(double) * 6 * (size_t)K);
        for (int64_t s = 0; s < N; s++) {
            if (seg[s] < 0) continue;
            double *a = acc + 6 * seg[s];
            a[0] += (double)(s / w);
            a[1] += (double)(s % w);
            for (int ch = 0; ch < 3; ch++) a[2 + ch] += rgb[3 * s + ch];
            a[5] += 1;
        }
        for (int c = 0; c < K; c++)
            if (acc[6 * c + 5] > 0)
                for (int q = 0; q < 5; q++) cen[5 * c + q] = acc[6 * c + q] / acc[6 * c + 5];
    }
    /* connectivity: relabel 4-connected pieces; pieces under a quarter of
     * the nominal size join the last labelled neighbour (Achanta's step) */
    int32_t *lab2 = malloc(sizeof(int32_t) * (size_t)N), *stack = malloc(sizeof(int32_t) * (size_t)N);
    TSR_ASSERT(lab2 && stack);
    for (int64_t s = 0; s < N; s++) lab2[s] = -1;
    int next = 0;
    int64_t small = (int64_t)(S * S / 4);
    const int dx4[4] = {1, -1, 0, 0}, dy4[4] = {0, 0, 1, -1};
    for (int64_t s = 0; s < N; s++) {
        if (lab2[s] >= 0) continue;
        int adj = -1;
        for (int d = 0; d < 4; d++) {
            int y = (int)(s / w) + dy4[d], x = (int)(s % w) + dx4[d];
            if (y >= 0 && y < h && x >= 0 && x < w && lab2[(int64_t)y * w + x] >= 0) adj = lab2[(int64_t)y * w + x];
        }
        int64_t top = 0, cnt = 0;
        stack[top++] = (int32_t)s;
        lab2[s] = next;
        int64_t head = 0; /* breadth-first, the stack array as the queue */
        while (head < top) {
            int32_t q = stack[head++];
            cnt++;
            int qy = q / w, qx = q % w;
            for (int d = 0; d < 4; d++) {
                int y = qy + dy4[d], x = qx + dx4[d];
                if (y < 0 || y >= h || x < 0 || x >= w) continue;
                int64_t r = (int64_t)y * w + x;
                if (lab2[r] < 0 && seg[r] == seg[s]) {
                    lab2[r] = next;
                    stack[top++] = (int32_t)r;
                }
            }
        }
        if (cnt <= small && adj >= 0) {
            for (int64_t i = 0; i < top; i++) lab2[stack[i]] = adj;
        } else {
            next++;
        }
    }
    memcpy(seg, lab2, sizeof(int32_t) * (size_t)N);
    *n_out = next;
    free(lab2);
    free(stack);
    free(cen);
    free(acc);
    free(dist);
}

/* centroids of the superpixel parts on class v, snapped to the part's
 * pixel nearest the centroid, the `want` largest parts kept */
static void superpixel_points(ptlist *out, const uint8_t *lab, const uint8_t *rgb, int h, int w, int v,
                              int64_t area, int want) {
    int64_t N = (int64_t)h * w;
    double kf = (double)want * ((double)N / (double)area);
    int k = kf > 4096 ? 4096 : (int)ceil(kf);
    int32_t *seg = malloc(sizeof(int32_t) * (size_t)N);
    TSR_ASSERT(seg);
    int n;
    tsr_apt_slic(seg, &n, rgb, h, w, k, 20.0f); /* RGB distances: about 2x CIELAB m = 10 */
    double *sy = calloc((size_t)n, sizeof(double)), *sx = calloc((size_t)n, sizeof(double));
    int64_t *cnt = calloc((size_t)n, sizeof(int64_t));
    double *bestd = malloc(sizeof(double) * (size_t)n);
    int *bx = malloc(sizeof(int) * (size_t)n), *by = malloc(sizeof(int) * (size_t)n);
    TSR_ASSERT(sy && sx && cnt && bestd && bx && by);
    for (int64_t s = 0; s < N; s++)
        if (lab[s] == v) {
            sy[seg[s]] += (double)(s / w);
            sx[seg[s]] += (double)(s % w);
            cnt[seg[s]]++;
        }
    for (int i = 0; i < n; i++) {
        bestd[i] = DBL_MAX;
        if (cnt[i]) {
            sy[i] /= (double)cnt[i];
            sx[i] /= (double)cnt[i];
        }
    }
    for (int64_t s = 0; s < N; s++)
        if (lab[s] == v) {
            int i = seg[s];
            double dy = (double)(s / w) - sy[i], dx = (double)(s % w) - sx[i], d = dy * dy + dx * dx;
            if (d < bestd[i]) {
                bestd[i] = d;
                by[i] = (int)(s / w);
                bx[i] = (int)(s % w);
            }
        }
    /* keep the largest parts, in raster order of their centroids */
    int *order = malloc(sizeof(int) * (size_t)n);
    TSR_ASSERT(order);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (cnt[i]) order[m++] = i;
    for (int i = 1; i < m; i++) { /* insertion sort by size, descending (stable) */
        int t = order[i], j = i - 1;
        while (j >= 0 && cnt[order[j]] < cnt[t]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = t;
    }
    if (m > want) m = want;
    for (int i = 1; i < m; i++) { /* then raster order (the official regionprops order) */
        int t = order[i], j = i - 1;
        while (j >= 0 && (int64_t)by[order[j]] * w + bx[order[j]] > (int64_t)by[t] * w + bx[t]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = t;
    }
    for (int i = 0; i < m; i++) pl_push(out, bx[order[i]], by[order[i]]);
    free(order);
    free(seg);
    free(sy);
    free(sx);
    free(cnt);
    free(bestd);
    free(bx);
    free(by);
}

/* the official split_array_with_skip: group g takes elements g, g+iters, ...
 * (n / iters of them), the remainder goes to the last group */
static int group_of(int i, int n, int iters) {
    int per = n / iters;
    if (i < per * iters) return i % iters;
    return iters - 1;
}

tsr_status tsr_apt_prompts(tsr_apt_points *out, const uint8_t *lab, const uint8_t *rgb, int h, int w,
                           int mode, int points, int iters, uint64_t seed) {
    memset(out, 0, sizeof *out);
    if (mode < 0 || mode >= TSR_APT_MODE_COUNT)
        return tsr_errorf(TSR_ERR_ARG, "unknown prompt mode %d", mode);
    if (points < 1 || points > 1000 || iters < 1 || iters > 100)
        return tsr_errorf(TSR_ERR_ARG, "points (%d) must be in 1..1000 and iterations (%d) in 1..100", points,
                          iters);
    if (mode == TSR_APT_SUPERPIXEL && !rgb)
        return tsr_errorf(TSR_ERR_ARG, "superpixel prompts need the image");
    int64_t area[2] = {0, 0};
    for (int64_t s = 0; s < (int64_t)h * w; s++)
        if (lab[s] <= 1) area[lab[s]]++;
    if (area[1] == 0)
        return tsr_errorf(TSR_ERR_ARG, "the land-cover class is absent from the area covered by the image "
                                       "(no pixel of it after resampling): pick another --class or image");
    tsr_rng r;
    tsr_rng_seed(&r, seed);
    ptlist cls[2] = {{0}, {0}};
    for (int v = 1; v >= 0; v--) {
        if (area[v] == 0) continue;
        if (mode == TSR_APT_GRID) grid_points(&cls[v], lab, h, w, v, area[v], points, iters);
        else if (mode == TSR_APT_RANDOM) random_points(&cls[v], lab, h, w, v, area[v], points * iters, &r);
        else superpixel_points(&cls[v], lab, rgb, h, w, v, area[v], points * iters);
    }
    for (int g = 0; g < iters; g++)
        for (int v = 1; v >= 0; v--)
            for (int i = 0; i < cls[v].n; i++)
                if (group_of(i, cls[v].n, iters) == g) push(out, (float)cls[v].v[i].x, (float)cls[v].v[i].y, v, g);
    free(cls[0].v);
    free(cls[1].v);
    return tsr_ok();
}

tsr_status tsr_apt_prompts_tiled(tsr_apt_points *out, const uint8_t *lab, const uint8_t *rgb, int h, int w,
                                 int tile, int shrink, int mode, int points, int iters, uint64_t seed) {
    memset(out, 0, sizeof *out);
    if (tile < 1 || shrink < 1) return tsr_errorf(TSR_ERR_ARG, "tile %d and shrink %d must be positive", tile, shrink);
    int f = shrink, sh = h / f, sw = w / f;
    if (sh < 1 || sw < 1) return tsr_errorf(TSR_ERR_ARG, "a %d x %d map is smaller than the shrink factor %d", w, h, f);
    uint8_t *tl = malloc((size_t)tile * f * tile * f), *trgb = rgb ? malloc((size_t)tile * f * tile * f * 3) : NULL;
    TSR_ASSERT(tl && (!rgb || trgb));
    bool any = false;
    tsr_status st = tsr_ok();
    int k = 0;
    /* the tile walk of tsr_apt_segment, in image pixels */
    for (int ty = 0; ty < sh && !st.code; ty += tile)
        for (int tx = 0; tx < sw && !st.code; tx += tile, k++) {
            int y0 = ty + tile > sh ? (sh > tile ? sh - tile : 0) : ty, x0 = tx + tile > sw ? (sw > tile ? sw - tile : 0) : tx;
            int th = (sh < tile ? sh : tile) * f, tw = (sw < tile ? sw : tile) * f;
            y0 *= f;
            x0 *= f;
            int64_t n1 = 0;
            for (int y = 0; y < th; y++) {
                memcpy(tl + (size_t)y * tw, lab + (size_t)(y0 + y) * w + x0, (size_t)tw);
                if (trgb) memcpy(trgb + (size_t)y * tw * 3, rgb + ((size_t)(y0 + y) * w + x0) * 3, (size_t)tw * 3);
                for (int x = 0; x < tw; x++) n1 += tl[(size_t)y * tw + x] == 1;
            }
            if (n1 == 0) continue;
            tsr_apt_points p;
            st = tsr_apt_prompts(&p, tl, trgb, th, tw, mode, points, iters, seed + (uint64_t)k * 7919u);
            if (st.code) break;
            for (int i = 0; i < p.n; i++) push(out, p.x[i] + (float)x0, p.y[i] + (float)y0, p.label[i], p.group[i]);
            tsr_apt_points_free(&p);
            any = true;
        }
    free(tl);
    free(trgb);
    if (!st.code && !any)
        st = tsr_errorf(TSR_ERR_ARG, "the land-cover class is absent from the area covered by the image "
                                     "(no pixel of it after resampling): pick another --class or image");
    if (st.code) tsr_apt_points_free(out);
    return st;
}
