/* SPDX-License-Identifier: MIT */
/*
 * common.c: option handling shared by the subcommands: parsing thresholds
 * and sizes with the library's strict parsers, one-line usage errors with
 * exit status 2, the usage text, and a context whose diagnostics go to
 * stderr. Nothing here samples or decides.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_usage(FILE *out)
{
    fputs(
"Usage: memguard COMMAND [OPTIONS]\n"
"       memguard run [OPTIONS] [--] COMMAND [ARGS...]\n"
"       memguard plot [-o FILE] [--run N] LOG\n"
"Watch RAM, container limits, the process tree and GPU memory of a training run.\n"
"\n"
"Commands:\n"
"  check                 print the System Resource Check and the level once\n"
"  watch                 print one status line per sample until Ctrl-C\n"
"  run                   start COMMAND and ask it to checkpoint and stop before\n"
"                        memory runs out; escalate to SIGTERM, SIGKILL\n"
"  plot                  draw the log of a run (run --log) as one SVG file\n"
"\n"
"Thresholds (a fraction such as 0.9 or 90%):\n"
"      --warn-gpu F      warn at this GPU use (default 0.90)\n"
"      --stop-gpu F      critical at this GPU use (default 0.92)\n"
"      --warn-ram F      warn at this RAM use (default 0.85)\n"
"      --stop-ram F      critical at this RAM use (default 0.88)\n"
"      --min-free-ram SIZE  critical below this much free RAM (e.g. 2G)\n"
"      --min-free-gpu SIZE  critical below this much free memory on a GPU\n"
"      --ram-budget SIZE    judge the process tree's RSS against SIZE\n"
"      --predict-lead DURATION  critical already at warn when memory grows fast\n"
"                        enough to be full within DURATION (default 3s: the\n"
"                        trainer's checkpoint save plus a margin)\n"
"      --no-predict      thresholds only; the growth is still shown\n"
"Sources:\n"
"      --pid PID         root of the watched process tree (default: memguard)\n"
"      --no-gpu          do not load NVML\n"
"Output:\n"
"      --json            check: one JSON object; watch: one per line\n"
"      --lang en|ja      language of the texts (default: from the locale)\n"
"  -v, --verbose         more diagnostics on stderr (twice: debug)\n"
"watch only:\n"
"      --interval MS     fixed sampling interval (default: adaptive 10-1000 ms)\n"
"      --count N         stop after N samples\n"
"run only:\n"
"      --grace DURATION  request -> SIGTERM (default 60s; 500ms, 2m also work)\n"
"      --kill-after DURATION  SIGTERM -> SIGKILL (default 10s)\n"
"      --signal SIG      checkpoint signal: USR1 (default), USR2, TERM, INT, ...\n"
"      --hard-ram F, --hard-gpu F  kill at once here (default 0.97, 0.98)\n"
"      --on-warn PATH    run this executable on each warning\n"
"      --hook-timeout DURATION  kill the hook after this (default 10s)\n"
"      --warn-every DURATION  repeat a warning at most this often (default 60s)\n"
"      --restart N       after a stop with an acknowledged checkpoint, start\n"
"                        COMMAND again (at most N times) with MEMGUARD_RESUME\n"
"                        (the checkpoint) and MEMGUARD_ATTEMPT in its environment\n"
"      --dry-run         report what would be done, do nothing to COMMAND\n"
"      --log FILE        append JSON lines: samples and events\n"
"      --plot FILE       write the run's SVG plot (as memguard plot) when it ends\n"
"      --report-interval MS  one sample line in the log this often (1000)\n"
"      --stop-file PATH  the stop-request file given to COMMAND\n"
"      --min-interval MS, --max-interval MS  adaptive interval bounds (10, 1000)\n"
"      --ram-fill-rate SIZE, --swap-fill-rate SIZE, --gpu-fill-rate SIZE\n"
"                        assumed worst fill rates per second\n"
"plot only:\n"
"  -o, --output FILE     the SVG (default: LOG with .svg for its extension;\n"
"                        - for stdout); replaced atomically, never a symlink\n"
"      --run N           draw the Nth run of LOG (default: the last)\n"
"\n"
"      --help            print this help and exit\n"
"      --version         print the version and exit\n"
"\n"
"SIZE is bytes or a number with K, M, G or T (binary units): 512M, 8G.\n"
"Environment: MEMGUARD_PROC_ROOT, MEMGUARD_CGROUP_ROOT, MEMGUARD_NVML_LIBRARY,\n"
"CUDA_VISIBLE_DEVICES, LC_ALL / LC_MESSAGES / LANG.\n"
"Exit status of check: 0 safe, 3 warn, 4 critical, 1 error, 2 usage error.\n"
"Exit status of plot: 0 written, 1 write error, 2 bad LOG or option.\n"
"Exit status of run: COMMAND's own; 75 it saved and stopped on request; 76\n"
"memguard had to stop it; 126/127 cannot execute / not found; 128+N signal N.\n",
        out);
}

int cli_duration_arg(const char *flag, const char *arg, uint64_t *out)
{
    if (mg_parse_duration_ms(arg, 7u * 86400000u, out) < 0)
        return cli_usage_error("%s '%s': expected a duration such as 60, 1.5s, 500ms, 2m or 1h "
                               "(seconds by default, at most a week)", flag, arg);
    return 0;
}

int cli_uint_arg(const char *flag, const char *arg, uint64_t lo, uint64_t hi, const char *what,
                 uint64_t *out)
{
    if (mg_parse_uint(arg, hi, out) == 0 && *out >= lo) return 0;
    return cli_usage_error("%s '%s': expected %s, a whole number from %llu to %llu", flag, arg,
                           what, (unsigned long long)lo, (unsigned long long)hi);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("memguard: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (try 'memguard --help')\n", stderr);
    return MG_EXIT_USAGE;
}

int cli_next_option(int argc, char **argv, const char *shortopts, const struct option *longopts,
                    unsigned char *seen, int *status)
{
    int idx = -1;
    int opt = getopt_long(argc, argv, shortopts, longopts, &idx);
    if (opt < 0 || idx < 0 || longopts[idx].has_arg != required_argument) return opt;
    if (seen[idx]) {
        *status = cli_usage_error("--%s given twice ('%s'): give it once", longopts[idx].name,
                                  optarg);
        return CLI_OPT_FAILED;
    }
    seen[idx] = 1;
    return opt;
}

int cli_bad_option(char *const argv[], int opt)
{
    const char *word = argv[optind - 1];
    if (opt == ':')
        return cli_usage_error("option '%s' needs a value", word);
    return cli_usage_error("unknown option '%s'", word);
}

static int frac_arg(const char *flag, const char *arg, double *out)
{
    if (mg_parse_frac(arg, out) < 0)
        return cli_usage_error("%s '%s': expected a fraction in (0, 1], such as 0.9 or 90%%",
                               flag, arg);
    return 0;
}

static int size_arg(const char *flag, const char *arg, uint64_t *out)
{
    if (mg_parse_size(arg, out) < 0)
        return cli_usage_error("%s '%s': expected a size above 0, such as 4096, 512M or 8G",
                               flag, arg);
    return 0;
}

int cli_common_option(cli_common *c, int opt, const char *arg)
{
    int rc = 0;
    switch (opt) {
    case OPT_WARN_GPU: rc = frac_arg("--warn-gpu", arg, &c->cfg.warn_gpu_frac); break;
    case OPT_STOP_GPU: rc = frac_arg("--stop-gpu", arg, &c->cfg.stop_gpu_frac); break;
    case OPT_WARN_RAM: rc = frac_arg("--warn-ram", arg, &c->cfg.warn_ram_frac); break;
    case OPT_STOP_RAM: rc = frac_arg("--stop-ram", arg, &c->cfg.stop_ram_frac); break;
    case OPT_MIN_FREE_RAM: rc = size_arg("--min-free-ram", arg, &c->cfg.min_free_ram_bytes); break;
    case OPT_MIN_FREE_GPU: rc = size_arg("--min-free-gpu", arg, &c->cfg.min_free_gpu_bytes); break;
    case OPT_RAM_BUDGET: rc = size_arg("--ram-budget", arg, &c->cfg.ram_budget_bytes); break;
    case OPT_PID: {
        uint64_t v;
        rc = cli_uint_arg("--pid", arg, 1, INT_MAX, "a process id", &v);
        if (!rc) c->cfg.pid = (int)v;
        break;
    }
    case OPT_NO_GPU: c->cfg.no_gpu = true; break;
    case OPT_PREDICT_LEAD: {
        uint64_t ms;
        rc = cli_duration_arg("--predict-lead", arg, &ms);
        if (!rc && ms == 0)
            rc = cli_usage_error("--predict-lead '%s': must be above 0 (--no-predict turns "
                                 "the prediction off)", arg);
        if (!rc) c->cfg.predict_lead_ms = (uint32_t)ms;
        break;
    }
    case OPT_NO_PREDICT: c->cfg.no_predict = true; break;
    case OPT_LANG:
        if (strcmp(arg, "en") == 0) c->lang = MG_LANG_EN;
        else if (strcmp(arg, "ja") == 0) c->lang = MG_LANG_JA;
        else rc = cli_usage_error("--lang '%s': expected 'en' or 'ja'", arg);
        break;
    case OPT_JSON: c->json = true; break;
    case 'v': c->verbose++; break;
    case OPT_HELP: cli_usage(stdout); return -1 - MG_EXIT_OK;
    case OPT_VERSION: printf("memguard %s\n", MG_VERSION_STRING); return -1 - MG_EXIT_OK;
    default: return 0;
    }
    return rc ? -1 - rc : 1;
}

static int check_dir(const char *var)
{
    const char *v = getenv(var);
    struct stat st;
    if (!v || !*v) return 0;
    if (stat(v, &st) != 0 || !S_ISDIR(st.st_mode) || access(v, R_OK | X_OK) != 0)
        return cli_usage_error("%s '%s': not a readable directory (unset it to use the system's)",
                               var, v);
    return 0;
}

int cli_common_validate(cli_common *c)
{
    mg_config r;
    mg_config_resolve(&c->cfg, &r);
    if (r.warn_gpu_frac > r.stop_gpu_frac)
        return cli_usage_error("--warn-gpu %g is above --stop-gpu %g: the warning must come first",
                               r.warn_gpu_frac, r.stop_gpu_frac);
    if (r.warn_ram_frac > r.stop_ram_frac)
        return cli_usage_error("--warn-ram %g is above --stop-ram %g: the warning must come first",
                               r.warn_ram_frac, r.stop_ram_frac);
    int rc = check_dir("MEMGUARD_PROC_ROOT");
    if (!rc) rc = check_dir("MEMGUARD_CGROUP_ROOT");
    if (rc) return rc;
    const char *lib = getenv("MEMGUARD_NVML_LIBRARY");
    if (lib && *lib && strchr(lib, '/') && access(lib, R_OK) != 0)
        return cli_usage_error("MEMGUARD_NVML_LIBRARY '%s': no such readable file", lib);
    char msg[256];
    if (mg_config_check(&c->cfg, msg, sizeof msg) < 0)
        return cli_usage_error("%s", msg);
    return 0;
}

/* The library's messages while the context opens are held back: when the
 * open fails, the one line that says why is all the user sees; when it
 * works, they are printed after all. */
#define HELD_MAX 8
static struct held {
    bool holding;
    int n;
    char lines[HELD_MAX][300];
} held;

static void log_stderr(void *user, mg_log_level level, const char *msg)
{
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    const char *name = names[level <= MG_LOG_DEBUG ? level : MG_LOG_DEBUG];
    if (held.holding) {
        if (held.n < HELD_MAX)
            snprintf(held.lines[held.n++], sizeof held.lines[0], "memguard: %s: %s", name, msg);
        return;
    }
    fprintf(stderr, "memguard: %s: %s\n", name, msg);
}

static void release_held(bool print)
{
    for (int i = 0; print && i < held.n; i++) fprintf(stderr, "%s\n", held.lines[i]);
    held.holding = false;
    held.n = 0;
}

mg_ctx *cli_open(cli_common *c, int *status)
{
    int err;
    c->cfg.log_fn = log_stderr;
    c->cfg.log_level = c->verbose >= 2 ? MG_LOG_DEBUG
                     : c->verbose == 1 ? MG_LOG_INFO : MG_LOG_WARN;
    c->cfg.lang = c->lang;
    held.holding = true;
    mg_ctx *ctx = mg_create(&c->cfg, &err);
    if (ctx && c->cfg.pid > 0 && mg_watch_pid(ctx, c->cfg.pid) < 0) {
        mg_destroy(ctx);
        release_held(false);
        *status = cli_usage_error("--pid %d: no such process", c->cfg.pid);
        return NULL;
    }
    release_held(ctx != NULL);
    if (!ctx) {
        const char *root = getenv("MEMGUARD_PROC_ROOT");
        bool injected = root && *root;
        if (injected) {
            *status = cli_usage_error("MEMGUARD_PROC_ROOT '%s': %s (it must hold a meminfo file)",
                                      root, mg_strerror(err));
        } else {
            fprintf(stderr, "memguard: cannot start: %s\n", mg_strerror(err));
            *status = MG_EXIT_ERROR;
        }
    }
    return ctx;
}

mg_text_opts cli_text_opts(const cli_common *c)
{
    mg_text_opts t = mg_text_opts_from_env(STDOUT_FILENO);
    if (c->lang != MG_LANG_AUTO) t.lang = c->lang;
    return t;
}
