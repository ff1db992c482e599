/* tessera core: thread count for OpenMP and OpenBLAS, the team size of
 * short steps chosen by timing, and a clock. */
#include "tessera/core.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <unistd.h>

void openblas_set_num_threads(int n);

static int g_threads = 0;
static bool g_auto = false; /* the count was left to tessera: short steps may use fewer */

void tsr_threads_set(int n) {
    bool chosen = n > 0;
    if (n <= 0) {
        const char *e = getenv("TESSERA_THREADS");
        if (e && atoi(e) > 0) n = atoi(e), chosen = true;
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    g_threads = n;
    g_auto = !chosen;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

void tsr_threads_adopt(void) {
#ifdef _OPENMP
    omp_set_num_threads(tsr_threads_get());
#endif
}

int tsr_omp_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int tsr_omp_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int tsr_threads_get(void) {
    if (g_threads == 0) tsr_threads_set(0);
    return g_threads;
}

/* ------------------------------------------------ team size of short steps */

enum { PROBE_EACH = 3, PERIOD_MIN = 16, PERIOD_MAX = 1024 };

static int neighbour(tsr_team_tuner *u);

static void start_probe(tsr_team_tuner *u) {
    u->alt = neighbour(u);
    u->n_c = u->n_a = 0;
    u->probe = 2 * PROBE_EACH;
}

/* the full team first, probed at once against half of it */
void tsr_team_tuner_init(tsr_team_tuner *u, int threads) {
    memset(u, 0, sizeof *u);
    u->threads = threads > 1 ? threads : 1;
    u->choice = u->threads;
    u->period = PERIOD_MIN;
    if (u->threads > 1) start_probe(u);
}

/* the neighbour of the kept team a probe compares: alternately half and
 * double it, whichever exists */
static int neighbour(tsr_team_tuner *u) {
    int down = u->choice > 1 ? u->choice / 2 : 0;
    int up = u->choice < u->threads ? (2 * u->choice < u->threads ? 2 * u->choice : u->threads) : 0;
    int dir = u->last_dir > 0 ? -1 : 1; /* the other way than last time */
    if (dir < 0 && !down) dir = 1;
    if (dir > 0 && !up) dir = -1;
    u->last_dir = dir;
    return dir < 0 ? down : up;
}

static double median3(const double *t, int n) {
    double a = t[0], b = n > 1 ? t[1] : a, c = n > 2 ? t[2] : b;
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

int tsr_team_tuner_next_team(const tsr_team_tuner *u) {
    if (u->probe == 0) return u->choice;
    /* interleaved: the kept team on even probe steps left, the neighbour on odd */
    return u->probe % 2 == 0 ? u->choice : u->alt;
}

void tsr_team_tuner_record(tsr_team_tuner *u, int team, double seconds) {
    if (u->probe > 0) {
        if (team == u->choice && u->n_c < PROBE_EACH) u->t_c[u->n_c++] = seconds;
        else if (team == u->alt && u->n_a < PROBE_EACH) u->t_a[u->n_a++] = seconds;
        /* one team 1.5x slower than the other ends the probe at once (a team
         * that waits for a busy core costs ms a step) */
        double mc = median3(u->t_c, u->n_c), ma = median3(u->t_a, u->n_a);
        bool clear = u->n_c > 0 && u->n_a > 0 && (ma > 1.5 * mc || mc > 1.5 * ma);
        if (--u->probe > 0 && !clear) return;
        u->probe = 0;
        bool change = ma < 0.9 * mc;
        if (change) u->choice = u->alt, u->period = PERIOD_MIN;
        else u->period = 2 * u->period < PERIOD_MAX ? 2 * u->period : PERIOD_MAX;
        u->left = u->period;
        return;
    }
    if (u->left > 0 && --u->left == 0) start_probe(u);
}

static _Thread_local tsr_team_tuner g_tuner;
static _Thread_local long g_steps, g_reduced;
static bool g_tuning = false;

void tsr_step_team_tuning(bool on) { g_tuning = on; }

double tsr_step_team_reduced_share(void) { return g_steps ? (double)g_reduced / (double)g_steps : 0; }

void tsr_step_team_begin(tsr_step_team *s) {
    s->used = 0;
#ifdef _OPENMP
    if (!g_tuning || !g_auto || g_threads <= 1 || omp_in_parallel()) return;
    tsr_team_tuner *u = &g_tuner;
    if (u->threads != g_threads) tsr_team_tuner_init(u, g_threads);
    s->prev = omp_get_max_threads();
    s->used = tsr_team_tuner_next_team(u);
    s->probe = u->probe > 0;
    omp_set_num_threads(s->used);
    s->t0 = tsr_time();
#endif
}

void tsr_step_team_end(tsr_step_team *s) {
#ifdef _OPENMP
    if (!s->used) return;
    double dt = tsr_time() - s->t0;
    omp_set_num_threads(s->prev);
    g_steps++;
    g_reduced += !s->probe && s->used < g_threads;
    tsr_team_tuner_record(&g_tuner, s->used, dt);
#endif
}

double tsr_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tsr_thread_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
