/* SPDX-License-Identifier: MIT */
/*
 * run.h: the pieces of `memguard run` and what they share: the options
 * (cmd_run.c parses them), the supervisor (supervise.c: spawn, watch,
 * request, escalate, reap) and the JSON-lines event log (runlog.c).
 */
#ifndef MG_RUN_H
#define MG_RUN_H

#include "cli.h"

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
    uint32_t report_interval_ms;/* one sample line in the log this often */
    const char *stop_file;      /* --stop-file, or NULL: a default path */
    uint64_t warn_every_ms;     /* warning lines at most this often */
    char **argv;                /* COMMAND [ARGS...], NULL-terminated */
} run_opts;

/* Runs the whole supervision and returns memguard's exit status. */
int supervise(const run_opts *o, mg_ctx *ctx);

/* ---- runlog.c ----------------------------------------------------------- */

typedef struct runlog runlog;

/* Opens (appends to) the log; NULL path gives a log that drops everything.
 * Returns NULL with errno set when the file cannot be opened. */
runlog *runlog_open(const char *path);
void runlog_close(runlog *l);
/* One event line: {"event":EVENT,"t_ms":T,<extra>,"sample":<json>}.
 * `extra` is a JSON fragment of members without braces (may be NULL or
 * empty); `snap` may be NULL. */
void runlog_event(runlog *l, const char *event, uint64_t t_ms, const char *extra,
                  const mg_config *cfg, const mg_snapshot *snap, const mg_verdict *v);
/* Escapes s as a JSON string (with quotes) into buf. */
void json_quote(char *buf, size_t len, const char *s);

#endif /* MG_RUN_H */
