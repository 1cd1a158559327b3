/* SPDX-License-Identifier: MIT */
/*
 * run.h: the pieces of `memguard run` and what they share: the options
 * (cmd_run.c parses them), the supervisor (supervise.c: spawn, watch,
 * request, escalate, reap), the protocol's files (stopfile.c), the
 * processes it may signal (members.c) and the JSON-lines event log
 * (runlog.c).
 */
#ifndef MG_RUN_H
#define MG_RUN_H

#include "cli.h"

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct run_opts {
    cli_common c;
    uint64_t grace_ms;          /* --grace: request -> SIGTERM */
    uint64_t kill_after_ms;     /* --kill-after: SIGTERM -> SIGKILL */
    int signo;                  /* --signal: the checkpoint request */
    double hard_ram_frac;       /* --hard-ram: kill at once */
    double hard_gpu_frac;       /* --hard-gpu */
    const char *on_warn;        /* --on-warn: absolute path, or NULL */
    uint64_t hook_timeout_ms;   /* a hook still running then is killed */
    bool dry_run;
    const char *log_path;       /* --log, or NULL */
    int log_fd;                 /* the log when --plot has no --log: an unnamed
                                   temporary file; else -1 */
    const char *plot_path;      /* --plot, or NULL */
    uint32_t report_interval_ms;/* one sample line in the log this often */
    const char *stop_file;      /* --stop-file, or NULL: a default path */
    uint64_t warn_every_ms;     /* warning lines at most this often */
    char **argv;                /* COMMAND [ARGS...], NULL-terminated */
} run_opts;

/* Runs the whole supervision and returns memguard's exit status. */
int supervise(const run_opts *o, mg_ctx *ctx);

/* ---- stopfile.c ---------------------------------------------------------- */

typedef struct stop_paths {
    char dir[PATH_MAX];     /* the private folder, when memguard made one */
    bool dir_made;
    char stop[PATH_MAX];    /* MEMGUARD_STOP_FILE */
    char ack[PATH_MAX];     /* MEMGUARD_ACK_FILE */
    bool stop_made;         /* the stop file is ours to remove */
} stop_paths;

/* The private folder and its two names, or --stop-file PATH (user_path)
 * and PATH.ack after making sure nothing but a leftover of ours is there.
 * Returns 0, or the exit status after one line on stderr. */
int stop_paths_init(stop_paths *p, const char *user_path);
/* Writes the stop file (header + reason) through a temporary and a
 * rename. Returns 0 or -errno. */
int stop_file_write(stop_paths *p, const char *reason);
/* True when the trainer acknowledged a save; ckpt gets its path. */
bool stop_ack_read(const stop_paths *p, char *ckpt, size_t len);
/* Removes what memguard made (the stop file, the acknowledgement, the
 * private folder). */
void stop_paths_cleanup(stop_paths *p);

/* ---- members.c ----------------------------------------------------------- */

#define MEMBERS_MAX 4096

/* One process of the watched tree, pinned by a pidfd. */
typedef struct member {
    int pid;
    int pidfd;                /* -1 on kernels without pidfds */
    unsigned long long start; /* start time (clock ticks after boot) */
    bool catches;             /* the signal asked about is in its SigCgt */
} member;

/* The live descendants of memguard now, `exclude` left out (the --on-warn
 * hook), each pinned and checked to be ours; `catches` is about sig (0:
 * not asked). Returns how many were put in out[0..cap). */
size_t members_list(mg_ctx *ctx, int sig, int exclude, member *out, size_t cap);
/* Sends sig through the pin. 0 or -errno (-ESRCH: it is gone). */
int member_signal(const member *m, int sig);
void members_release(member *m, size_t n);
/* "SIGUSR1", "SIGRTMIN+2", "signal 99". */
const char *signal_name(int sig, char *buf, size_t len);

/* ---- runlog.c ----------------------------------------------------------- */

typedef struct runlog runlog;

/* Opens (appends to) the log; NULL path gives a log that drops everything.
 * Returns NULL with errno set when the file cannot be opened: ELOOP for a
 * symlink (never followed), EINVAL for what is not a writable regular
 * file. */
runlog *runlog_open(const char *path);
/* A log that writes to fd (open for writing, close-on-exec), which it
 * takes over. NULL when out of memory (fd is closed). */
runlog *runlog_open_fd(int fd);
void runlog_close(runlog *l);
/* One event line: {"event":EVENT,"t_ms":T,<extra>,"sample":<json>}.
 * `extra` is a JSON fragment of members without braces (may be NULL or
 * empty); `snap` may be NULL. */
void runlog_event(runlog *l, const char *event, uint64_t t_ms, const char *extra,
                  const mg_config *cfg, const mg_snapshot *snap, const mg_verdict *v);

#endif /* MG_RUN_H */
