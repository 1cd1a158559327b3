/* SPDX-License-Identifier: MIT */
/*
 * cmd_check.c: `memguard check`: the System Resource Check (or one JSON
 * object) and the level, told by the exit status too: 0 safe, 3 warn,
 * 4 critical. It reports the last of three samples 50 ms apart, so the
 * growth of each figure (mg_fill) is measured too. It samples and reports;
 * it acts on nothing.
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>

static int level_exit(mg_level level)
{
    return level == MG_LEVEL_CRITICAL ? MG_EXIT_CRITICAL
         : level == MG_LEVEL_WARN ? MG_EXIT_WARN : MG_EXIT_OK;
}

/* Prints one formatted text, growing the buffer when the first one was too
 * small (a machine with 16 GPUs makes a long block). */
int print_formatted(int n, char *buf, size_t len)
{
    if (n < 0) {
        fprintf(stderr, "memguard: cannot format the report: %s\n", mg_strerror(n));
        return MG_EXIT_ERROR;
    }
    if ((size_t)n >= len) {
        fprintf(stderr, "memguard: report truncated at %zu bytes\n", len);
        return MG_EXIT_ERROR;
    }
    fputs(buf, stdout);
    return 0;
}

/* Three points 50 ms apart: the fewest and the shortest span over which
 * the library measures a growth rate (mg_fill), 100 ms in all. */
#define CHECK_SAMPLES 3
#define CHECK_GAP_MS 50u

int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {0, 0, 0, 0}};
    cli_common c = {0};
    int opt;
    opterr = 0;
    optind = 1;
    unsigned char seen[sizeof longopts / sizeof longopts[0]] = {0};
    int dup_status = 0;
    while ((opt = cli_next_option(argc, argv, ":v", longopts, seen, &dup_status)) != -1) {
        if (opt == CLI_OPT_FAILED) return dup_status;
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return -1 - r;
        if (r == 0) return cli_bad_option(argv, opt);
    }
    if (optind < argc) return cli_usage_error("check: unexpected argument '%s'", argv[optind]);
    int status = cli_common_validate(&c);
    if (status) return status;
    mg_ctx *ctx = cli_open(&c, &status);
    if (!ctx) return status;

    mg_snapshot snap;
    mg_verdict v;
    for (int i = 0; i < CHECK_SAMPLES; i++) {
        if (i) cli_sleep_ms(CHECK_GAP_MS);
        mg_sample(ctx, &snap);
    }
    const mg_config *cfg = mg_ctx_config(ctx);
    mg_level level = mg_classify(cfg, &snap, NULL, &v);
    /* Critical acts on one sample only after a second read agrees (a page
     * cache spike can come and go between two reads). */
    if (level == MG_LEVEL_CRITICAL) {
        mg_sample(ctx, &snap);
        level = mg_classify(cfg, &snap, NULL, &v);
    }

    static char buf[32768];
    mg_text_opts t = cli_text_opts(&c);
    if (c.json) {
        status = print_formatted(mg_format_json(cfg, &snap, &v, buf, sizeof buf), buf,
                                 sizeof buf);
    } else {
        status = print_formatted(mg_format_system_check(&snap, &t, buf, sizeof buf), buf,
                                 sizeof buf);
        if (!status && level != MG_LEVEL_SAFE)
            status = print_formatted(mg_format_warning(&v, &t, -1, buf, sizeof buf), buf,
                                     sizeof buf);
        if (!status) {
            printf("Level: %s\n", mg_level_name(level));
            if (v.unknown & MG_UNKNOWN_RAM)
                printf("Note: RAM could not be read and was not judged.\n");
            if (v.unknown & MG_UNKNOWN_GPU)
                printf("Note: a GPU gave no memory figures and was not judged.\n");
        }
    }
    mg_destroy(ctx);
    /* Unknown is never "safe": RAM that could not be read is a runtime
     * error (the report above says so). */
    if (!status && (v.unknown & MG_UNKNOWN_RAM)) return MG_EXIT_ERROR;
    return status ? status : level_exit(level);
}
