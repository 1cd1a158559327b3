/* SPDX-License-Identifier: MIT */
/*
 * cli.h: what the memguard subcommands share: the options common to every
 * command, the one-line usage error, and opening a context with a stderr
 * logger, and the little `watch` needs of the system (posix/sys.c,
 * win/sys.c). Each subcommand lives in its own cmd_*.c file.
 */
#ifndef MG_CLI_H
#define MG_CLI_H

#include "memguard.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* printf-style checking; mingw-w64 builds with its own (GNU) printf family
 * (__USE_MINGW_ANSI_STDIO), whose archetype is gnu_printf there. */
#if defined(__MINGW32__)
#define CLI_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#else
#define CLI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif

/* Options every monitoring command accepts. Long-only ones start at 256,
 * past every short letter, so the two never collide (earlyoom numbers its
 * long-only options past the letters the same way; its enum starts at
 * 513). */
enum {
    OPT_WARN_GPU = 256,
    OPT_STOP_GPU,
    OPT_WARN_RAM,
    OPT_STOP_RAM,
    OPT_MIN_FREE_RAM,
    OPT_MIN_FREE_GPU,
    OPT_RAM_BUDGET,
    OPT_PID,
    OPT_NO_GPU,
    OPT_PREDICT_LEAD,
    OPT_NO_PREDICT,
    OPT_LANG,
    OPT_JSON,
    OPT_INTERVAL,
    OPT_COUNT,
    OPT_HELP,
    OPT_VERSION,
};

#define CLI_COMMON_LONGOPTS                                                   \
    {"warn-gpu", required_argument, NULL, OPT_WARN_GPU},                      \
    {"stop-gpu", required_argument, NULL, OPT_STOP_GPU},                      \
    {"warn-ram", required_argument, NULL, OPT_WARN_RAM},                      \
    {"stop-ram", required_argument, NULL, OPT_STOP_RAM},                      \
    {"min-free-ram", required_argument, NULL, OPT_MIN_FREE_RAM},              \
    {"min-free-gpu", required_argument, NULL, OPT_MIN_FREE_GPU},              \
    {"ram-budget", required_argument, NULL, OPT_RAM_BUDGET},                  \
    {"pid", required_argument, NULL, OPT_PID},                                \
    {"no-gpu", no_argument, NULL, OPT_NO_GPU},                                \
    {"predict-lead", required_argument, NULL, OPT_PREDICT_LEAD},              \
    {"no-predict", no_argument, NULL, OPT_NO_PREDICT},                        \
    {"lang", required_argument, NULL, OPT_LANG},                              \
    {"json", no_argument, NULL, OPT_JSON},                                    \
    {"verbose", no_argument, NULL, 'v'},                                      \
    {"help", no_argument, NULL, OPT_HELP},                                    \
    {"version", no_argument, NULL, OPT_VERSION}

typedef struct cli_common {
    mg_config cfg;
    mg_lang lang;   /* text language; AUTO = from the locale */
    bool json;
    int verbose;    /* -v: info, -vv: debug */
} cli_common;

/* Handles one option of CLI_COMMON_LONGOPTS. Returns 1 when handled, 0 when
 * the option is not a common one, or the exit status to return (2 for a bad
 * value, 0 after --help / --version, both already printed) as -status - 1. */
int cli_common_option(cli_common *c, int opt, const char *arg);

/* Checks the combination (warn below stop and the like) and the injected
 * sources. Returns 0 or the exit status after printing one line. */
int cli_common_validate(cli_common *c);

/* Prints one line, "memguard: <message> (try 'memguard --help')", to
 * stderr and returns MG_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* A duration option (mg_parse_duration_ms: 60, 1.5s, 500ms, 2m; at most a
 * week) into milliseconds; 0, or the usage error's exit status. */
int cli_duration_arg(const char *flag, const char *arg, uint64_t *out);
/* A whole number lo..hi in the library's strict grammar (mg_parse_uint),
 * or the usage error "FLAG 'ARG': expected WHAT, a whole number from LO to
 * HI" (its exit status returned). */
int cli_uint_arg(const char *flag, const char *arg, uint64_t lo, uint64_t hi, const char *what,
                 uint64_t *out);

/* getopt_long that also refuses an option with a value given twice (the
 * later one would silently win). seen[] has one zeroed byte per entry of
 * longopts. Returns getopt_long's value, or CLI_OPT_FAILED with *status set
 * after one line on stderr. */
#define CLI_OPT_FAILED (-2)
int cli_next_option(int argc, char **argv, const char *shortopts, const struct option *longopts,
                    unsigned char *seen, int *status);

/* The unknown or malformed option getopt_long just rejected. */
int cli_bad_option(char *const argv[], int opt);

/* Opens the context with a logger on stderr. On failure prints one line and
 * sets *status (2 when an injected source is at fault, else 1). */
mg_ctx *cli_open(cli_common *c, int *status);

/* Language and emoji for stdout, honouring --lang. */
mg_text_opts cli_text_opts(const cli_common *c);

void cli_usage(FILE *out);

/* Prints a formatter's output (n is its return value); 0 or exit status 1
 * with one line on stderr when it failed or was truncated. */
int print_formatted(int n, char *buf, size_t len);

/* ---- posix/sys.c, win/sys.c: what `watch` needs of the system ------------ */

/* From now on Ctrl-C (and SIGTERM; on Windows Ctrl+Break and closing the
 * console) only sets the flag that cli_interrupted() reads. */
void cli_catch_interrupt(void);
bool cli_interrupted(void);
/* Sleeps ms milliseconds, or less when interrupted meanwhile. */
void cli_sleep_ms(uint32_t ms);

int cmd_check(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_plot(int argc, char **argv);

#endif /* MG_CLI_H */
