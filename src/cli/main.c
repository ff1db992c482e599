/* tessera CLI entry point: `tessera <family> <verb> [--long-flags]`, and
 * the commands that span families (`tessera serve [--flags]`).
 * The command table below is the only place that knows every family; a new
 * family adds its cmd_<family>.c (defining a cli_family) and one line here. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "cli/args.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/cpu.h"

extern const cli_family cli_family_classify;
extern const cli_family cli_family_lm;
extern const cli_family cli_family_elm;
extern const cli_family cli_family_space;
extern const cli_family cli_family_bita;
extern const cli_family cli_family_bigr;
extern const cli_family cli_family_higen;
extern const cli_family cli_family_ctnet;
extern const cli_family cli_family_narformer;
extern const cli_family cli_family_ebrm;
extern const cli_family cli_family_ovadetr;
extern const cli_family cli_family_apt;
extern const cli_command cli_command_serve;
extern const cli_command cli_command_plot;

static const cli_command *const g_commands[] = {
    &cli_command_serve,
    &cli_command_plot,
    NULL,
};

static const cli_family *const g_families[] = {
    &cli_family_classify,
    &cli_family_lm,
    &cli_family_elm,
    &cli_family_space,
    &cli_family_bita,
    &cli_family_bigr,
    &cli_family_higen,
    &cli_family_ctnet,
    &cli_family_narformer,
    &cli_family_ebrm,
    &cli_family_ovadetr,
    &cli_family_apt,
    NULL,
};

static void print_top_help(FILE *f) {
    fprintf(f, "usage: tessera <family> <verb> [--flags]\n       tessera <command> [--flags]\n       tessera --version\n\nfamilies:\n");
    for (int i = 0; g_families[i]; i++)
        fprintf(f, "  %-16s %s\n", g_families[i]->name, g_families[i]->summary);
    fprintf(f, "\ncommands:\n");
    for (int i = 0; g_commands[i]; i++)
        fprintf(f, "  %-16s %s\n", g_commands[i]->name, g_commands[i]->summary);
    fprintf(f, "\n'tessera <family> --help' lists its verbs; "
               "'tessera <family> <verb> --help' its flags.\n");
}

static void print_family_help(FILE *f, const cli_family *fam) {
    fprintf(f, "usage: tessera %s <verb> [--flags]\n\n%s\n\nverbs:\n", fam->name, fam->summary);
    for (int i = 0; fam->verbs[i].name; i++)
        fprintf(f, "  %-16s %s\n", fam->verbs[i].name, fam->verbs[i].summary);
}

static bool is_help(const char *a) {
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

/* OpenMP threads that wait at a barrier spin before they sleep; libgomp's
 * default is 300,000 spins (~5 ms here). When another program keeps a core
 * busy, a team of 2 on 2 cores then spins while its other thread waits to
 * be scheduled: 2-thread decode of models/pycode fell to 10-210 tok/s
 * against ~4,500 idle. 10,000 spins (~0.2 ms) kept the idle rate (4,782
 * against 4,555 tok/s, medians of 3, alternating) and gave ~200 tok/s
 * under load (median of 6 against 22). libgomp reads the setting once, in
 * its constructor, so the program runs itself again with it set, from the
 * executable's preinit array: before any library's constructor has run,
 * so the first image costs only its dynamic linking. A wait policy or
 * spin count the user set is left alone; without /proc the program runs
 * on with libgomp's default. */
#if defined(__linux__) && defined(__GLIBC__)
static char g_spin[] = "GOMP_SPINCOUNT=10000";

/* s starts with p (no library call: this runs before libc, and before a
 * sanitizer's interceptors, have initialised) */
static bool starts(const char *s, const char *p) {
    while (*p && *s == *p) s++, p++;
    return !*p;
}

/* runs before libc's own initialisation: only the arguments and system
 * calls are used */
static void bound_omp_spin(int argc, char **argv, char **envp) {
    /* one thread has no team to wait for: no second start then */
    cpu_set_t cs;
    if (sched_getaffinity(0, sizeof cs, &cs) == 0 && CPU_COUNT(&cs) <= 1) return;
    for (int i = 1; i + 1 < argc; i++)
        if (starts(argv[i], "--threads") && !argv[i][9] && starts(argv[i + 1], "1") && !argv[i + 1][1]) return;
    size_t n = 0;
    for (; envp && envp[n]; n++)
        if (starts(envp[n], "GOMP_SPINCOUNT=") || starts(envp[n], "OMP_WAIT_POLICY=") ||
            (starts(envp[n], "TESSERA_THREADS=1") && !envp[n][17]) ||
            (starts(envp[n], "OMP_NUM_THREADS=1") && !envp[n][17]))
            return;
    char *env[n + 2];
    for (size_t i = 0; i < n; i++) env[i] = envp[i];
    env[n] = g_spin;
    env[n + 1] = NULL;
    execve("/proc/self/exe", argv, env);
}
__attribute__((section(".preinit_array"), used)) static void (*const tsr_preinit)(int, char **,
                                                                                 char **) = bound_omp_spin;
#endif

int main(int argc, char **argv) {
    /* settle the kernel level first: a bad TESSERA_CPU is reported, not ignored */
    tsr_status cs = tsr_cpu_init();
    if (cs.code != TSR_OK) {
        fprintf(stderr, "tessera: %s\n", cs.msg);
        return CLI_USAGE;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("tessera %s (kernels: %s; this CPU supports up to %s)\n", TSR_VERSION,
               tsr_cpu_level_name(tsr_cpu_level()), tsr_cpu_level_name(tsr_cpu_best_level()));
        return CLI_OK;
    }
    if (argc < 2) {
        print_top_help(stderr);
        return CLI_USAGE;
    }
    if (is_help(argv[1])) {
        print_top_help(stdout);
        return CLI_OK;
    }
    for (int i = 0; g_commands[i]; i++)
        if (strcmp(g_commands[i]->name, argv[1]) == 0) {
            char prog[64];
            snprintf(prog, sizeof prog, "tessera %s", g_commands[i]->name);
            int rc = g_commands[i]->run(prog, argc - 2, argv + 2);
            return rc == CLI_HELP ? CLI_OK : rc;
        }
    const cli_family *fam = NULL;
    for (int i = 0; g_families[i]; i++)
        if (strcmp(g_families[i]->name, argv[1]) == 0) fam = g_families[i];
    if (!fam) {
        fprintf(stderr, "tessera: unknown family '%s' (see 'tessera --help')\n", argv[1]);
        return CLI_USAGE;
    }
    if (argc < 3) {
        print_family_help(stderr, fam);
        return CLI_USAGE;
    }
    if (is_help(argv[2])) {
        print_family_help(stdout, fam);
        return CLI_OK;
    }
    for (int i = 0; fam->verbs[i].name; i++) {
        if (strcmp(fam->verbs[i].name, argv[2]) == 0) {
            char prog[128];
            snprintf(prog, sizeof prog, "tessera %s %s", fam->name, fam->verbs[i].name);
            int rc = fam->verbs[i].run(prog, argc - 3, argv + 3);
            return rc == CLI_HELP ? CLI_OK : rc;
        }
    }
    fprintf(stderr, "tessera %s: unknown verb '%s' (see 'tessera %s --help')\n", fam->name, argv[2],
            fam->name);
    return CLI_USAGE;
}
