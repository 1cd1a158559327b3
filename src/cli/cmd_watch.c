/* SPDX-License-Identifier: MIT */
/*
 * cmd_watch.c: `memguard watch`: one status line per sample (RAM, swap,
 * cgroup, process tree, each GPU, level) at the library's adaptive interval
 * or a fixed --interval, until --count samples or Ctrl-C (exit 0). Ctrl-C
 * only sets a flag; it cuts the loop's sleep short and the loop ends there
 * (the platform's part is posix/sys.c or win/sys.c).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

/* " +210MB/s full~12s" when the figure grows (mg_fill), else nothing. */
static void fill_text(const mg_fill *f)
{
    if (!f->known || !(f->rate_bytes_per_s > 0.0) || !isfinite(f->seconds_to_full)) return;
    printf(" +%.0fMB/s full~%.0fs", f->rate_bytes_per_s / (1024.0 * 1024.0),
           f->seconds_to_full);
}

static void status_line(const mg_snapshot *s, mg_level level)
{
    time_t now = time(NULL);
    struct tm tm;
    char ts[16];
    localtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    printf("%s", ts);
    if (s->ram.known)
        printf("  RAM %5.1f%% %.1f/%.1fGB (%s)", 100.0 * s->ram.used_frac, gib(s->ram.used_bytes),
               gib(s->ram.total_bytes), mg_ram_source_name(s->ram.source));
    else
        printf("  RAM unknown");
    if (s->ram.known) fill_text(&s->ram.fill);
    if (s->swap.known && s->swap.total_bytes)
        printf("  swap %.1f/%.1fGB", gib(s->swap.total_bytes - s->swap.free_bytes),
               gib(s->swap.total_bytes));
    if (s->cgroup.known && s->cgroup.has_limit && s->cgroup.usage_known)
        printf("  cgroup %.1f/%.1fGB", gib(s->cgroup.usage_bytes), gib(s->cgroup.limit_bytes));
    if (s->tree.known)
        printf("  tree %u proc %.2fGB %s", s->tree.nprocs, gib(s->tree.used_bytes),
               s->tree.pss_known ? "PSS" : s->tree.used_estimated ? "PSS~" : "RSS");
    if (s->psi.known) printf("  psi %.2f", s->psi.some_avg10);
    for (unsigned i = 0; i < s->gpu_count; i++) {
        const mg_gpu *g = &s->gpus[i];
        if (g->known)
        {
            printf("  GPU%u %5.1f%% %.1f/%.1fGB", g->index, 100.0 * g->used_frac,
                   gib(g->total_bytes - g->free_bytes), gib(g->total_bytes));
            fill_text(&g->fill);
        }
        else
            printf("  GPU%u unknown", g->index);
    }
    if (s->gpu_count == 0) printf("  GPU none");
    printf("  %s\n", mg_level_name(level));
}

int cmd_watch(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"count", required_argument, NULL, OPT_COUNT},
        {0, 0, 0, 0}};
    cli_common c = {0};
    long interval_ms = 0, count = 0;
    int opt;
    opterr = 0;
    optind = 1;
    unsigned char seen[sizeof longopts / sizeof longopts[0]] = {0};
    int dup_status = 0;
    while ((opt = cli_next_option(argc, argv, ":v", longopts, seen, &dup_status)) != -1) {
        if (opt == CLI_OPT_FAILED) return dup_status;
        if (opt == OPT_INTERVAL || opt == OPT_COUNT) {
            uint64_t v;
            int rc = opt == OPT_INTERVAL
                         ? cli_uint_arg("--interval", optarg, 10, 3600000, "milliseconds", &v)
                         : cli_uint_arg("--count", optarg, 1, UINT32_MAX, "samples", &v);
            if (rc) return rc;
            if (opt == OPT_INTERVAL) interval_ms = (long)v;
            else count = (long)v;
            continue;
        }
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return -1 - r;
        if (r == 0) return cli_bad_option(argv, opt);
    }
    if (optind < argc) return cli_usage_error("watch: unexpected argument '%s'", argv[optind]);
    int status = cli_common_validate(&c);
    if (status) return status;
    mg_ctx *ctx = cli_open(&c, &status);
    if (!ctx) return status;

    cli_catch_interrupt();
    setvbuf(stdout, NULL, _IOLBF, 0);

    const mg_config *cfg = mg_ctx_config(ctx);
    mg_policy_state st = {0};
    static char buf[32768];
    for (long n = 0; !cli_interrupted() && (count == 0 || n < count); n++) {
        mg_snapshot snap;
        mg_verdict v;
        mg_sample(ctx, &snap);
        mg_level level = mg_classify(cfg, &snap, &st, &v);
        if (c.json)
            status = print_formatted(mg_format_json(cfg, &snap, &v, buf, sizeof buf), buf,
                                     sizeof buf);
        else
            status_line(&snap, level);
        if (status) break;
        if (count && n + 1 >= count) break;
        cli_sleep_ms(interval_ms ? (uint32_t)interval_ms : mg_next_poll_ms(cfg, &snap));
    }
    mg_destroy(ctx);
    return status;
}
