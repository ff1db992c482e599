/* Tests for the team-size tuner of one-token steps (tsr_team_tuner, behind
 * tsr_step_team): on simulated step times it keeps the full team on an
 * idle machine, moves to one thread within the first probe when a busy core
 * makes the team slow, comes back once the core is free, finds half a
 * 16-thread team when the other half is busy, and never picks a team outside
 * 1..threads. The bracket tsr_step_team_begin/end leaves the OpenMP thread
 * count as it found it. */
#include "testutil.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* runs `steps` steps with step time cost(team, step); returns the number of
 * steps run on fewer threads than the thread count, and the last team */
static long simulate(tsr_team_tuner *u, long first, long steps, double (*cost)(int, long), int *last, int *bad) {
    long fewer = 0;
    for (long s = first; s < first + steps; s++) {
        int team = tsr_team_tuner_next_team(u);
        if (team < 1 || team > u->threads) (*bad)++;
        fewer += team < u->threads;
        tsr_team_tuner_record(u, team, cost(team, s));
        *last = team;
    }
    return fewer;
}

/* idle 2-core machine: the team of 2 is 1.37x faster than one thread */
static double idle2(int team, long step) {
    (void)step;
    return team == 2 ? 1.0e-3 : 1.37e-3;
}
/* another program on one of the 2 cores: the team waits ~10 ms a step */
static double busy2(int team, long step) {
    (void)step;
    return team == 2 ? 10e-3 : 1.0e-3;
}
/* busy for the first 500 steps, idle after */
static double busy_then_idle(int team, long step) { return step < 500 ? busy2(team, step) : idle2(team, step); }
/* 16 cores, 8 of them busy: up to 8 threads scale, more wait */
static double half_busy16(int team, long step) {
    (void)step;
    return team <= 8 ? 8.0e-3 / team : 40e-3;
}

static void test_idle(void) {
    tsr_team_tuner u;
    tsr_team_tuner_init(&u, 2);
    int last = 0, bad = 0;
    long fewer = simulate(&u, 0, 5000, idle2, &last, &bad);
    TU_CHECK(bad == 0, "teams within 1..2");
    TU_CHECK(last == 2, "idle: the full team kept (last team %d)", last);
    /* probes cost 3 one-thread steps each, ever rarer */
    TU_CHECK(fewer < 60, "idle: %ld of 5000 steps on one thread (probes only)", fewer);
}

static void test_busy(void) {
    tsr_team_tuner u;
    tsr_team_tuner_init(&u, 2);
    int last = 0, bad = 0;
    long fewer = simulate(&u, 0, 2, busy2, &last, &bad);
    TU_CHECK(tsr_team_tuner_next_team(&u) == 1, "busy: one thread after the first probe's two steps");
    fewer += simulate(&u, 2, 4998, busy2, &last, &bad);
    TU_CHECK(bad == 0 && last == 1, "busy: one thread kept (last team %d)", last);
    /* each later probe costs one slow step: about 10 in 5000 */
    TU_CHECK(fewer >= 4985, "busy: %ld of 5000 steps on one thread", fewer);
}

static void test_recovers(void) {
    tsr_team_tuner u;
    tsr_team_tuner_init(&u, 2);
    int last = 0, bad = 0;
    simulate(&u, 0, 500, busy_then_idle, &last, &bad);
    TU_CHECK(last == 1, "busy phase: one thread");
    /* the next probe comes within the longest period (1,024 steps) */
    long fewer = simulate(&u, 500, 1100, busy_then_idle, &last, &bad);
    TU_CHECK(last == 2, "the core freed: back to the full team (last team %d)", last);
    long again = simulate(&u, 1600, 2000, busy_then_idle, &last, &bad);
    TU_CHECK(bad == 0 && again < 40, "then the full team stays (%ld of 2000 on one thread; %ld before)", again, fewer);
}

static void test_half_busy16(void) {
    tsr_team_tuner u;
    tsr_team_tuner_init(&u, 16);
    int last = 0, bad = 0;
    simulate(&u, 0, 3000, half_busy16, &last, &bad);
    TU_CHECK(bad == 0, "teams within 1..16");
    TU_CHECK(last == 8, "16 threads, 8 cores busy: a team of 8 (last team %d)", last);
}

static void test_bracket(void) {
#ifdef _OPENMP
    int before = omp_get_max_threads();
    tsr_step_team_tuning(true);
    for (int i = 0; i < 40; i++) {
        tsr_step_team s;
        tsr_step_team_begin(&s);
        TU_CHECK(s.used == 0 || (s.used >= 1 && s.used <= tsr_threads_get()), "step team %d in range", s.used);
        tsr_step_team_end(&s);
        TU_CHECK(omp_get_max_threads() == before, "thread count restored after step %d", i);
    }
    /* an explicit count: no tuning */
    tsr_threads_set(before);
    tsr_step_team s;
    tsr_step_team_begin(&s);
    TU_CHECK(s.used == 0, "explicit thread count: steps not tuned");
    tsr_step_team_end(&s);
    tsr_step_team_tuning(false);
#endif
}

int main(void) {
    test_idle();
    test_busy();
    test_recovers();
    test_half_busy16();
    test_bracket();
    return tu_finish("threads");
}
