/* SPDX-License-Identifier: MIT */
/*
 * cmd_plot.c: `memguard plot [-o FILE] [--run N] LOG`: the log of `memguard
 * run --log` drawn as one SVG file, and the writing of that file, which
 * `memguard run --plot` shares. The log must be a regular file (a FIFO,
 * device or folder is refused before anything is read); the SVG replaces
 * its name atomically (mg_atomic: a temporary, fsync, rename), never
 * through a symlink and never over the log itself. Lines of the log that
 * are not valid are skipped and counted on stderr; a log without one valid
 * line is bad input (exit 2). Reading is plot_log.c, drawing plot_svg.c,
 * opening the log and checking the output name the platform's
 * plot_file.c.
 */
#include "cli.h"
#include "plot.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_RUN = 500 };

static int write_svg(const char *out_path, const plot_buf *svg)
{
    if (strcmp(out_path, "-") == 0) {
        if (fwrite(svg->p, 1, svg->n, stdout) != svg->n || fflush(stdout) != 0) {
            fprintf(stderr, "memguard: plot: cannot write the SVG to stdout: %s\n",
                    strerror(errno));
            return MG_EXIT_ERROR;
        }
        return 0;
    }
    mg_atomic a;
    int rc = mg_atomic_open(&a, out_path);
    if (!rc) rc = mg_atomic_write(&a, svg->p, svg->n);
    if (!rc) rc = mg_atomic_commit(&a);
    else mg_atomic_abort(&a);
    if (rc) {
        fprintf(stderr, "memguard: plot: cannot write '%s': %s\n", out_path, mg_strerror(rc));
        return MG_EXIT_ERROR;
    }
    return 0;
}

static void report_skips(const char *name, const plot_stats *st, unsigned which, bool note_runs)
{
    if (st->skipped)
        fprintf(stderr, "memguard: plot: '%s': %zu of %zu lines skipped, not valid log lines "
                        "(the first, line %zu: %s)\n",
                name, st->skipped, st->lines, st->first_bad, st->why);
    if (note_runs && which == 0 && st->runs > 1)
        fprintf(stderr, "memguard: plot: '%s' holds %zu runs: drawing the last "
                        "(--run N draws another)\n", name, st->runs);
}

int plot_fd_to_file(int fd, const char *name, unsigned which, bool note_runs,
                    const char *out_path)
{
    plot_fd_blocking(fd);
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        fprintf(stderr, "memguard: plot: '%s': %s\n", name, strerror(errno));
        return MG_EXIT_ERROR;
    }
    plot_run r;
    plot_stats st;
    char err[200];
    int rc = plot_read(f, which, &r, &st, err, sizeof err);
    fclose(f);
    if (rc < 0) {
        fprintf(stderr, "memguard: plot: '%s': %s\n", name, err);
        return rc == -1 ? MG_EXIT_USAGE : MG_EXIT_ERROR;
    }
    report_skips(name, &st, which, note_runs);
    plot_buf svg = {0};
    plot_svg(&r, &svg);
    int status;
    if (svg.failed) {
        fprintf(stderr, "memguard: plot: out of memory while drawing '%s'\n", name);
        status = MG_EXIT_ERROR;
    } else {
        status = write_svg(out_path, &svg);
    }
    if (!status && strcmp(out_path, "-") != 0)
        fprintf(stderr, "memguard: plot: wrote %s (%zu samples, %zu events, %.2f s)\n",
                out_path, r.samples, r.nev + r.ev_dropped, r.t_end);
    free(svg.p);
    plot_run_free(&r);
    return status;
}

/* LOG with its extension (after the last dot of the last component)
 * replaced by .svg. */
static int default_output(const char *log, char *out, size_t len)
{
    const char *base = strrchr(log, '/');
    base = base ? base + 1 : log;
    const char *dot = strrchr(base, '.');
    size_t keep = dot && dot != base ? (size_t)(dot - log) : strlen(log);
    int n = snprintf(out, len, "%.*s.svg", (int)keep, log);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int cmd_plot(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"run", required_argument, NULL, OPT_RUN},
        {"help", no_argument, NULL, OPT_HELP},
        {0, 0, 0, 0}};
    const char *out = NULL;
    uint64_t which = 0;
    bool run_given = false;
    unsigned char seen[sizeof longopts / sizeof longopts[0]] = {0};
    int opt, status = 0;
    opterr = 0;
    optind = 1;
    while ((opt = cli_next_option(argc, argv, ":o:", longopts, seen, &status)) != -1) {
        switch (opt) {
        case CLI_OPT_FAILED: return status;
        case 'o':
            if (out) return cli_usage_error("-o given twice ('%s'): give it once", optarg);
            out = optarg;
            break;
        case OPT_RUN:
            if ((status = cli_uint_arg("--run", optarg, 1, UINT_MAX, "a run of the log (1 = "
                                       "the first)", &which)))
                return status;
            run_given = true;
            break;
        case OPT_HELP: cli_usage(stdout); return MG_EXIT_OK;
        default: return cli_bad_option(argv, opt);
        }
    }
    if (optind >= argc)
        return cli_usage_error("plot: missing LOG (memguard plot [-o FILE] [--run N] LOG)");
    if (optind + 1 < argc)
        return cli_usage_error("plot: one LOG at a time ('%s' is extra)", argv[optind + 1]);
    const char *log = argv[optind];
    char derived[PATH_MAX];
    if (!out) {
        if (default_output(log, derived, sizeof derived) < 0)
            return cli_usage_error("plot: LOG '%s': name too long", log);
        out = derived;
    }
    plot_file_id id;
    int fd = plot_open_log(log, &id, &status);
    if (fd < 0) return status;
    if ((status = plot_check_output("-o", out, &id))) {
        close(fd);
        return status;
    }
    return plot_fd_to_file(fd, log, (unsigned)which, !run_given, out);
}
