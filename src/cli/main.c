/* tessera CLI entry point: `tessera <family> <verb> [--long-flags]`, and
 * the commands that span families (`tessera serve [--flags]`).
 * The command table below is the only place that knows every family; a new
 * family adds its cmd_<family>.c (defining a cli_family) and one line here. */
#include "cli/args.h"

#include <string.h>

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
