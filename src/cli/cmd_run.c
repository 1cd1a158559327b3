/* SPDX-License-Identifier: MIT */
/*
 * cmd_run.c: `memguard run [OPTIONS] -- COMMAND [ARGS...]`: option parsing
 * and validation, the platform's self-protection (run_os_protect_self:
 * memory lock, oom_score_adj), then supervise.c does the work. Everything
 * the user can get wrong is rejected here, before the command starts, with
 * one line and exit status 2. The checkpoint signal's names are the
 * platform's (run_os_signal_arg).
 */
#include "run.h"
#include "plot.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    OPT_GRACE = 400,
    OPT_KILL_AFTER,
    OPT_SIGNAL,
    OPT_HARD_RAM,
    OPT_HARD_GPU,
    OPT_ON_WARN,
    OPT_HOOK_TIMEOUT,
    OPT_DRY_RUN,
    OPT_LOG,
    OPT_REPORT_INTERVAL,
    OPT_STOP_FILE,
    OPT_MIN_INTERVAL,
    OPT_MAX_INTERVAL,
    OPT_RAM_FILL,
    OPT_SWAP_FILL,
    OPT_GPU_FILL,
    OPT_WARN_EVERY,
    OPT_PLOT,
    OPT_RESTART,
};

/* --restart's ceiling: a run that needs more than this many saves in a row
 * has a problem no smaller batch solves. */
#define RESTART_MAX 100u
/* After a save, how long memory may take to fall below critical before
 * the restart is given up (someone else may be holding it). */
#define RESTART_SETTLE_MS 60000u

static int ms_arg(const char *flag, const char *arg, uint32_t *out)
{
    uint64_t v;
    int rc = cli_uint_arg(flag, arg, 1, 3600000, "milliseconds", &v);
    if (!rc) *out = (uint32_t)v;
    return rc;
}

/* --plot FILE: checks FILE before the command starts and, without --log,
 * gives the run an unnamed temporary log in FILE's folder (removed from
 * the folder at once, so nothing is left whatever happens to memguard).
 * *log_size is the size --log's file had, to tell this run's lines from
 * those of earlier runs. Returns 0 or the exit status after one line. */
static int plot_setup(run_opts *o, off_t *log_size)
{
    struct stat st;
    bool have_log = o->log_path && stat(o->log_path, &st) == 0;
    if (strcmp(o->plot_path, "-") == 0)
        return cli_usage_error("--plot '-': expected a file name (stdout belongs to the command)");
    if (o->log_path && strcmp(o->log_path, o->plot_path) == 0)
        return cli_usage_error("--plot '%s': that is the --log file; name another file",
                               o->plot_path);
    plot_file_id id = {have_log ? (uint64_t)st.st_dev : 0, have_log ? (uint64_t)st.st_ino : 0};
    int rc = plot_check_output("--plot", o->plot_path, have_log ? &id : NULL);
    if (rc) return rc;
    *log_size = have_log ? st.st_size : 0;
    if (o->log_path) return 0;
    o->log_fd = run_os_temp_beside(o->plot_path);
    if (o->log_fd < 0)
        return cli_usage_error("--plot '%s': cannot make a temporary log next to it: %s",
                               o->plot_path, errno == ENAMETOOLONG ? "name too long"
                                                                   : strerror(errno));
    return 0;
}

/* After the run: draws its log into --plot's file. Nothing is drawn when
 * the run logged nothing (it never started: that was said already); a
 * failure is reported and leaves memguard's exit status, the command's
 * outcome, as it is. */
static void plot_run_log(run_opts *o, off_t log_size)
{
    run_os_unprotect_memory();
    int fd = o->log_fd >= 0 ? o->log_fd : run_os_open_read(o->log_path);
    o->log_fd = -1;
    if (fd >= 0 && run_os_regular_size(fd) <= log_size) {
        close(fd);
        return;
    }
    if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        fprintf(stderr, "memguard: --plot '%s': not written: cannot read the log back: %s\n",
                o->plot_path, strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    plot_fd_to_file(fd, o->log_path ? o->log_path : "the run's log", 0, false, o->plot_path);
}

/* Whether memory is below critical again (the command's tree is gone;
 * what still holds memory is someone else's), waiting up to
 * RESTART_SETTLE_MS. */
static bool settled(mg_ctx *ctx)
{
    const mg_config *cfg = mg_ctx_config(ctx);
    for (uint32_t waited = 0;; waited += 500) {
        mg_snapshot snap;
        mg_verdict v;
        mg_sample(ctx, &snap);
        if (mg_classify(cfg, &snap, NULL, &v) < MG_LEVEL_CRITICAL) return true;
        if (waited >= RESTART_SETTLE_MS) return false;
        cli_sleep_ms(500);
    }
}

/* The command, and with --restart N up to N starts more: each time it
 * stopped for memory with an acknowledged checkpoint (exit 75 and an
 * acknowledgement), it starts again with MEMGUARD_RESUME naming that
 * checkpoint and MEMGUARD_ATTEMPT counting. Anything else ends the run with
 * that start's status. */
static int supervise_attempts(const run_opts *o, mg_ctx *ctx)
{
    static run_attempt a; /* two paths of RUN_PATH_MAX: off the stack */
    memset(&a, 0, sizeof a);
    for (;;) {
        int status = supervise(o, ctx, &a);
        if (status != MG_EXIT_MEMSTOP || a.k >= o->restart_max) {
            if (status == MG_EXIT_MEMSTOP && o->restart_max)
                fprintf(stderr, "memguard: stopped for memory again; no restart left (--restart %u)\n",
                        o->restart_max);
            return status;
        }
        if (!a.saved[0]) {
            fprintf(stderr, "memguard: not restarting: the command exited 75 without "
                            "acknowledging a checkpoint (MEMGUARD_ACK_FILE)\n");
            return status;
        }
        if (!run_os_exists(a.saved)) {
            fprintf(stderr, "memguard: not restarting: the acknowledged checkpoint %s is gone\n",
                    a.saved);
            return status;
        }
        if (!settled(ctx)) {
            fprintf(stderr, "memguard: not restarting: memory is still critical %u s after the "
                            "save\n", RESTART_SETTLE_MS / 1000u);
            return status;
        }
        memcpy(a.resume, a.saved, sizeof a.resume);
        a.k++;
        fprintf(stderr, "memguard: restart %u of %u: MEMGUARD_RESUME=%s\n", a.k, o->restart_max,
                a.resume);
    }
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"grace", required_argument, NULL, OPT_GRACE},
        {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
        {"signal", required_argument, NULL, OPT_SIGNAL},
        {"hard-ram", required_argument, NULL, OPT_HARD_RAM},
        {"hard-gpu", required_argument, NULL, OPT_HARD_GPU},
        {"on-warn", required_argument, NULL, OPT_ON_WARN},
        {"hook-timeout", required_argument, NULL, OPT_HOOK_TIMEOUT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"log", required_argument, NULL, OPT_LOG},
        {"report-interval", required_argument, NULL, OPT_REPORT_INTERVAL},
        {"stop-file", required_argument, NULL, OPT_STOP_FILE},
        {"min-interval", required_argument, NULL, OPT_MIN_INTERVAL},
        {"max-interval", required_argument, NULL, OPT_MAX_INTERVAL},
        {"ram-fill-rate", required_argument, NULL, OPT_RAM_FILL},
        {"swap-fill-rate", required_argument, NULL, OPT_SWAP_FILL},
        {"gpu-fill-rate", required_argument, NULL, OPT_GPU_FILL},
        {"warn-every", required_argument, NULL, OPT_WARN_EVERY},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"restart", required_argument, NULL, OPT_RESTART},
        {0, 0, 0, 0}};
    run_opts o = {0};
    o.log_fd = -1;
    o.grace_ms = 60000;
    o.kill_after_ms = 10000;
    o.signo = run_os_default_signal();
    o.hard_ram_frac = 0.97;
    o.hard_gpu_frac = 0.98;
    o.hook_timeout_ms = 10000;
    o.report_interval_ms = 1000;
    o.warn_every_ms = 60000;
    int opt, rc = 0;
    opterr = 0;
    optind = 1;
    /* "+": stop at the first non-option, so the command's own flags are
     * never taken for ours even without "--". */
    unsigned char seen[sizeof longopts / sizeof longopts[0]] = {0};
    int dup_status = 0;
    while ((opt = cli_next_option(argc, argv, "+:v", longopts, seen, &dup_status)) != -1) {
        if (opt == CLI_OPT_FAILED) return dup_status;
        switch (opt) {
        case OPT_GRACE: rc = cli_duration_arg("--grace", optarg, &o.grace_ms); break;
        case OPT_KILL_AFTER: rc = cli_duration_arg("--kill-after", optarg, &o.kill_after_ms); break;
        case OPT_HOOK_TIMEOUT: rc = cli_duration_arg("--hook-timeout", optarg, &o.hook_timeout_ms); break;
        case OPT_WARN_EVERY: rc = cli_duration_arg("--warn-every", optarg, &o.warn_every_ms); break;
        case OPT_SIGNAL: rc = run_os_signal_arg(optarg, &o.signo); break;
        case OPT_HARD_RAM:
        case OPT_HARD_GPU: {
            double *dst = opt == OPT_HARD_RAM ? &o.hard_ram_frac : &o.hard_gpu_frac;
            if (mg_parse_frac(optarg, dst) < 0)
                rc = cli_usage_error("%s '%s': expected a fraction in (0, 1], such as 0.97 or 97%%",
                                     opt == OPT_HARD_RAM ? "--hard-ram" : "--hard-gpu", optarg);
            break;
        }
        case OPT_ON_WARN: o.on_warn = optarg; break;
        case OPT_DRY_RUN: o.dry_run = true; break;
        case OPT_LOG: o.log_path = optarg; break;
        case OPT_PLOT: o.plot_path = optarg; break;
        case OPT_STOP_FILE: o.stop_file = optarg; break;
        case OPT_RESTART: {
            uint64_t n;
            rc = cli_uint_arg("--restart", optarg, 0, RESTART_MAX, "restarts", &n);
            if (!rc) o.restart_max = (unsigned)n;
            break;
        }
        case OPT_REPORT_INTERVAL: rc = ms_arg("--report-interval", optarg, &o.report_interval_ms); break;
        case OPT_MIN_INTERVAL: rc = ms_arg("--min-interval", optarg, &o.c.cfg.min_interval_ms); break;
        case OPT_MAX_INTERVAL: rc = ms_arg("--max-interval", optarg, &o.c.cfg.max_interval_ms); break;
        case OPT_RAM_FILL:
        case OPT_SWAP_FILL:
        case OPT_GPU_FILL: {
            uint64_t *dst = opt == OPT_RAM_FILL ? &o.c.cfg.ram_fill_rate_bytes_per_s
                          : opt == OPT_SWAP_FILL ? &o.c.cfg.swap_fill_rate_bytes_per_s
                          : &o.c.cfg.gpu_fill_rate_bytes_per_s;
            if (mg_parse_size(optarg, dst) < 0)
                rc = cli_usage_error("%s '%s': expected bytes per second such as 6000M or 10G",
                                     opt == OPT_RAM_FILL ? "--ram-fill-rate"
                                     : opt == OPT_SWAP_FILL ? "--swap-fill-rate" : "--gpu-fill-rate",
                                     optarg);
            break;
        }
        case OPT_PID:
            return cli_usage_error("run: --pid does not apply: the command's own tree is watched");
        default: {
            int r = cli_common_option(&o.c, opt, optarg);
            if (r < 0) return -1 - r;
            if (r == 0) return cli_bad_option(argv, opt);
        }
        }
        if (rc) return rc;
    }
    if (optind >= argc)
        return cli_usage_error("run: missing COMMAND (memguard run [OPTIONS] -- COMMAND [ARGS...])");
    o.argv = argv + optind;

    int status = cli_common_validate(&o.c);
    if (status) return status;
    mg_config r;
    mg_config_resolve(&o.c.cfg, &r);
    if (o.hard_ram_frac < r.stop_ram_frac)
        return cli_usage_error("--hard-ram %g is below --stop-ram %g: the hard limit must come last",
                               o.hard_ram_frac, r.stop_ram_frac);
    if (o.hard_gpu_frac < r.stop_gpu_frac)
        return cli_usage_error("--hard-gpu %g is below --stop-gpu %g: the hard limit must come last",
                               o.hard_gpu_frac, r.stop_gpu_frac);
    if (o.on_warn) {
        if (!run_os_hook_ok(o.on_warn))
            return cli_usage_error("--on-warn '%s': expected the absolute path of an executable file",
                                   o.on_warn);
    }

    off_t log_size = 0;
    if (o.plot_path && (status = plot_setup(&o, &log_size))) return status;

    mg_ctx *ctx = cli_open(&o.c, &status);
    if (!ctx) {
        if (o.log_fd >= 0) close(o.log_fd);
        return status;
    }
    run_os_protect_self(o.c.verbose);
    status = supervise_attempts(&o, ctx);
    mg_destroy(ctx);
    if (o.plot_path) plot_run_log(&o, log_size);
    return status;
}
