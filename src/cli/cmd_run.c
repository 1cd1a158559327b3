/* SPDX-License-Identifier: MIT */
/*
 * cmd_run.c: `memguard run [OPTIONS] -- COMMAND [ARGS...]`: option parsing
 * and validation, self-protection (memory lock, oom_score_adj), then
 * supervise.c does the work. Everything the user can get wrong is rejected
 * here, before the command starts, with one line and exit status 2.
 */
#define _GNU_SOURCE /* sigabbrev_np */
#include "run.h"
#include "plot.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

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
};

static int duration_arg(const char *flag, const char *arg, uint64_t *out)
{
    if (mg_parse_duration_ms(arg, 7u * 86400000u, out) < 0)
        return cli_usage_error("%s '%s': expected a duration such as 60, 1.5s, 500ms, 2m or 1h "
                               "(seconds by default, at most a week)", flag, arg);
    return 0;
}

static int ms_arg(const char *flag, const char *arg, uint32_t *out)
{
    uint64_t v;
    int rc = cli_uint_arg(flag, arg, 1, 3600000, "milliseconds", &v);
    if (!rc) *out = (uint32_t)v;
    return rc;
}

/* Signals that cannot mean "checkpoint": the uncatchable ones, job
 * control, the child's status, the synchronous faults (a handler for them
 * belongs to the runtime, not to a checkpoint), SIGPIPE, and the real-time
 * signals glibc keeps for itself (32 and 33, below SIGRTMIN). */
static bool refused_signal(int sig)
{
    switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGCONT: case SIGTSTP: case SIGTTIN:
    case SIGTTOU: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP:
    case SIGSYS: case SIGABRT: case SIGPIPE:
        return true;
    default:
        return sig < 1 || sig > SIGRTMAX || (sig > 31 && sig < SIGRTMIN);
    }
}

/* A whole number lo..hi in the library's strict grammar. */
static bool parse_int_strict(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (mg_parse_uint(s, (uint64_t)hi, &v) < 0 || v < (uint64_t)lo) return false;
    *out = (int)v;
    return true;
}

/* "USR1", "SIGUSR1", "usr1", "RTMIN+2" or a number. */
static int signal_number(const char *arg)
{
    const char *n = strncasecmp(arg, "SIG", 3) == 0 ? arg + 3 : arg;
    for (int sig = 1; sig < 32; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcasecmp(n, abbrev) == 0) return sig;
    }
    if (strncasecmp(n, "RTMIN+", 6) == 0) {
        int off;
        return parse_int_strict(n + 6, 0, SIGRTMAX - SIGRTMIN, &off) ? SIGRTMIN + off : -1;
    }
    int v;
    return parse_int_strict(arg, 1, SIGRTMAX, &v) ? v : -1;
}

static int signal_arg(const char *arg, int *out)
{
    int sig = signal_number(arg);
    if (sig > 0 && !refused_signal(sig)) {
        *out = sig;
        return 0;
    }
    char name[32];
    if (sig > 0)
        return cli_usage_error("--signal '%s': %s cannot mean \"checkpoint\" (not KILL, STOP, "
                               "CHLD, CONT, TSTP, TTIN, TTOU, PIPE, the faults or 32-33); "
                               "use USR1 (default), USR2, TERM, INT, HUP, ALRM or RTMIN+N",
                               arg, signal_name(sig, name, sizeof name));
    return cli_usage_error("--signal '%s': expected a signal name such as USR1, USR2, TERM, "
                           "RTMIN+2, or its number", arg);
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
    char tmp[PATH_MAX];
    const char *slash = strrchr(o->plot_path, '/');
    int n = snprintf(tmp, sizeof tmp, "%.*s.memguard-log-XXXXXX",
                     slash ? (int)(slash - o->plot_path + 1) : 0, o->plot_path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return cli_usage_error("--plot '%s': name too long", o->plot_path);
    o->log_fd = mkostemp(tmp, O_CLOEXEC);
    if (o->log_fd < 0)
        return cli_usage_error("--plot '%s': cannot make a temporary log next to it: %s",
                               o->plot_path, strerror(errno));
    unlink(tmp);
    return 0;
}

/* After the run: draws its log into --plot's file. Nothing is drawn when
 * the run logged nothing (it never started: that was said already); a
 * failure is reported and leaves memguard's exit status, the command's
 * outcome, as it is. */
static void plot_run_log(run_opts *o, off_t log_size)
{
    munlockall(); /* reading a long log must not count against RLIMIT_MEMLOCK */
    int fd = o->log_fd >= 0 ? o->log_fd
                            : open(o->log_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY |
                                                    O_NOFOLLOW);
    o->log_fd = -1;
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= log_size)) {
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

/* mlockall so memguard itself is never paged out while memory runs out,
 * and oom_score_adj -100 (earlyoom's value, not -1000: a leak in memguard
 * must not make the kernel kill everything else first). Both are
 * best-effort: an unprivileged user still gets a working supervisor. */
static void protect_self(int verbose)
{
    struct rlimit rl;
    /* MCL_FUTURE under a small RLIMIT_MEMLOCK would make later mmaps fail;
     * ONFAULT locks only pages we touch, so RSS does not grow by the size
     * of every mapped library. */
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (64u << 20))) {
        if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 && verbose)
            fprintf(stderr, "memguard: info: mlockall: %s\n", strerror(errno));
    } else if (verbose) {
        fprintf(stderr, "memguard: info: not locking memory: RLIMIT_MEMLOCK too small\n");
    }
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, "-100", 4) != 4 && verbose)
            fprintf(stderr, "memguard: info: oom_score_adj: %s\n", strerror(errno));
        close(fd);
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
        {0, 0, 0, 0}};
    run_opts o = {0};
    o.log_fd = -1;
    o.grace_ms = 60000;
    o.kill_after_ms = 10000;
    o.signo = SIGUSR1;
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
        case OPT_GRACE: rc = duration_arg("--grace", optarg, &o.grace_ms); break;
        case OPT_KILL_AFTER: rc = duration_arg("--kill-after", optarg, &o.kill_after_ms); break;
        case OPT_HOOK_TIMEOUT: rc = duration_arg("--hook-timeout", optarg, &o.hook_timeout_ms); break;
        case OPT_WARN_EVERY: rc = duration_arg("--warn-every", optarg, &o.warn_every_ms); break;
        case OPT_SIGNAL: rc = signal_arg(optarg, &o.signo); break;
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
        struct stat st;
        if (o.on_warn[0] != '/' || stat(o.on_warn, &st) != 0 || !S_ISREG(st.st_mode) ||
            access(o.on_warn, X_OK) != 0)
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
    protect_self(o.c.verbose);
    status = supervise(&o, ctx);
    mg_destroy(ctx);
    if (o.plot_path) plot_run_log(&o, log_size);
    return status;
}
