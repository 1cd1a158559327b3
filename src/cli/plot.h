/* SPDX-License-Identifier: MIT */
/*
 * plot.h: `memguard plot` and `memguard run --plot`: a run's JSON-lines log
 * (runlog.c writes it) drawn as one self-contained SVG. plot_log.c reads the
 * log into series and events (cJSON, every number checked), plot_svg.c draws
 * them, cmd_plot.c is the subcommand and writes the file (mg_atomic, never
 * through a symlink). Nothing here samples memory or decides a level: the
 * plot shows what the log recorded.
 */
#ifndef MG_PLOT_H
#define MG_PLOT_H

#include "cli.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PLOT_MAX_LIMITS 4     /* RAM limits weighed: meminfo, commit, cgroup,
                               * budget */
#define PLOT_MAX_GPUS 16
#define PLOT_MAX_EVENTS 4096  /* more are counted, not kept */
#define PLOT_MAX_LINE (1u << 20)

/* One point: t in seconds since the run's start, v in the series' unit
 * (a fraction, 1 = 100 %, for RAM and GPU use; bytes for the process
 * tree). NAN in v breaks the line: the value was null at that time. */
typedef struct plot_point {
    double t, v;
} plot_point;

typedef struct plot_series {
    char key[32];       /* "ram:budget", "tree:used", "gpu:0" */
    char name[128];     /* legend text: "budget", "GPU 0 NVIDIA A100" */
    plot_point *pt;     /* in time order */
    size_t n, cap;
    double total_lo, total_hi; /* sizes of the limit or device seen (bytes) */
} plot_series;

typedef struct plot_event {
    double t;           /* seconds */
    char kind[16];      /* "warn", "request", "ack", "term", "kill", "exit", ... */
    char text[320];     /* what happened, valid UTF-8 without control characters */
    size_t seq;         /* order in the log, for equal times */
} plot_event;

typedef struct plot_run {
    /* from the start line (command empty when the log has none) */
    char command[600];
    int pid;
    bool dry_run;
    double hard_ram, hard_gpu;          /* NAN when the log does not say */
    /* thresholds of the last sample (NAN when unknown) */
    double warn_ram, stop_ram, warn_gpu, stop_gpu, budget;
    char gpu_state[24];                 /* of the last sample */
    plot_series ram[PLOT_MAX_LIMITS];   /* used fraction of each limit */
    size_t nram;
    plot_series tree_used, tree_rss, tree_pss;  /* bytes */
    plot_series gpu[PLOT_MAX_GPUS];     /* used fraction of each device */
    size_t ngpu;
    plot_event *ev;
    size_t nev, ev_cap, ev_dropped;
    double t_end;                       /* the last time in the run (s) */
    bool exited;                        /* an exit line was read */
    int exit_status, exit_signal;       /* memguard's status; the signal that ended the command */
    size_t samples;                     /* lines with a reading */
} plot_run;

/* What reading a log found besides the chosen run. */
typedef struct plot_stats {
    size_t lines;        /* lines in the file */
    size_t skipped;      /* lines that were not a valid log line */
    size_t first_bad;    /* the first of them (1-based), 0 when none */
    char why[96];        /* and why it was skipped */
    size_t runs;         /* runs in the file (start lines) */
} plot_stats;

/* Reads run `which` (1 = the first in the file, 0 = the last) from f.
 * Invalid lines are skipped and counted in *st. Returns 0; -1 when f held
 * no valid log line at all or no such run (err says which, for one line);
 * -2 when reading failed or memory ran out (err says why). */
int plot_read(FILE *f, unsigned which, plot_run *r, plot_stats *st, char *err, size_t err_len);
void plot_run_free(plot_run *r);

/* A growable text buffer. */
typedef struct plot_buf {
    char *p;
    size_t n, cap;
    bool failed;        /* out of memory: the text is incomplete */
} plot_buf;

void plot_buf_printf(plot_buf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
void plot_buf_put(plot_buf *b, const char *s, size_t n);
/* Appends s with XML's special characters escaped. */
void plot_buf_xml(plot_buf *b, const char *s);

/* Draws the run as one SVG document (UTF-8, no external references). */
void plot_svg(const plot_run *r, plot_buf *out);

/* ---- posix/plot_file.c, win/plot_file.c ------------------------------------ */

/* What tells two names of one file apart from two files: device and inode
 * on POSIX, volume serial number and file index on Windows. */
typedef struct plot_file_id {
    uint64_t dev, ino;
} plot_file_id;

/* Checks an output path before anything is written: "-" (stdout), or a
 * name whose folder exists and that is absent or a regular file, never a
 * symlink, and not the input (in, may be NULL). Returns 0, or the exit
 * status after one line naming `flag`. */
int plot_check_output(const char *flag, const char *path, const plot_file_id *in);

/* Opens the log for reading without blocking on a FIFO and checks it is a
 * regular file. Returns the descriptor (and *id), or -1 after one line
 * (*status set). */
int plot_open_log(const char *path, plot_file_id *id, int *status);

/* Makes reads on fd block again (POSIX: clears O_NONBLOCK; Windows: no
 * such mode, nothing to do). */
void plot_fd_blocking(int fd);

/* Reads run `which` of the log open on fd and writes its SVG to out_path
 * (atomically; "-" is stdout). `name` is the log's name for messages.
 * Returns an exit status: 0, 1 (write failed), 2 (bad log), after one line
 * on stderr when not 0. */
int plot_fd_to_file(int fd, const char *name, unsigned which, bool note_runs,
                    const char *out_path);

#endif /* MG_PLOT_H */
