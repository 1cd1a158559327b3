/* SPDX-License-Identifier: MIT */
/*
 * main.c: the memguard command: picks the subcommand and hands it argv.
 * Each subcommand parses its own options (cmd_*.c); this file only knows
 * their names.
 */
#include "cli.h"

#include <string.h>

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {
        {"check", cmd_check},
        {"watch", cmd_watch},
        {"run", cmd_run},
        {"plot", cmd_plot},
    };
    if (argc < 2)
        return cli_usage_error("missing command: expected check, watch, run or plot");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        cli_usage(stdout);
        return MG_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("memguard %s\n", MG_VERSION_STRING);
        return MG_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].run(argc - 1, argv + 1);
    return cli_usage_error("unknown command '%s': expected check, watch, run or plot", cmd);
}
