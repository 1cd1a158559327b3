/* SPDX-License-Identifier: MIT */
/*
 * run.h: the pieces of `memguard run` and what they share: the options
 * (cmd_run.c parses them), the supervisor (supervise.c and the platform's
 * half, see supervise.h), the protocol's files (stopfile.c), the JSON-lines
 * event log (runlog.c), and the few file and process operations that differ
 * between POSIX and Windows (posix/run_os.c, win/run_os.c; on Linux also
 * the processes it may signal, posix/members.c). The files outside those
 * folders call no system interface that differs between the two.
 */
#ifndef MG_RUN_H
#define MG_RUN_H

#include "cli.h"

#include <stdint.h>

/* Room for a path in memguard run's buffers, on every platform (Windows'
 * MAX_PATH of 260 is too small for a UTF-8 path under a Japanese home). */
#define RUN_PATH_MAX 4096

typedef struct run_opts {
    cli_common c;
    uint64_t grace_ms;          /* --grace: request -> SIGTERM */
    uint64_t kill_after_ms;     /* --kill-after: SIGTERM -> SIGKILL */
    int signo;                  /* --signal: the checkpoint request
                                   (Windows: SIGBREAK, CTRL_BREAK_EVENT) */
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
    unsigned restart_max;       /* --restart: starts again after a save */
    char **argv;                /* COMMAND [ARGS...], NULL-terminated */
} run_opts;

/* One start of the command under --restart (the first is attempt 0). */
typedef struct run_attempt {
    unsigned k;                 /* MEMGUARD_ATTEMPT */
    uint64_t t0_ms;             /* the first start: the log's time origin */
    char resume[RUN_PATH_MAX];  /* MEMGUARD_RESUME when k > 0 */
    char saved[RUN_PATH_MAX];   /* out: the checkpoint acknowledged, or "" */
} run_attempt;

/* Runs one start of the command under supervision and returns memguard's
 * exit status for it; a->saved names the acknowledged checkpoint. */
int supervise(const run_opts *o, mg_ctx *ctx, run_attempt *a);

/* ---- stopfile.c ---------------------------------------------------------- */

typedef struct stop_paths {
    char dir[RUN_PATH_MAX];     /* the private folder, when memguard made one */
    bool dir_made;
    char stop[RUN_PATH_MAX];    /* MEMGUARD_STOP_FILE */
    char ack[RUN_PATH_MAX];     /* MEMGUARD_ACK_FILE */
    char cont[RUN_PATH_MAX];    /* MEMGUARD_CONTINUE_FILE */
    bool stop_made;             /* the stop file is ours to remove */
} stop_paths;

/* The private folder and its three names (stop, ack, continue), or
 * --stop-file PATH (user_path), PATH.ack and PATH.continue after making
 * sure nothing but a leftover of ours is there. Returns 0, or the exit
 * status after one line on stderr. */
int stop_paths_init(stop_paths *p, const char *user_path);
/* Writes the stop file (header, reason, "request N memory|stop") through
 * a temporary and a rename. Returns 0 or -errno. */
int stop_file_write(stop_paths *p, const char *reason, uint64_t request, bool memory);
/* True when the trainer acknowledged a save; ckpt gets its path. */
bool stop_ack_read(const stop_paths *p, char *ckpt, size_t len);
/* True when the trainer answered a request with "saved and continuing"
 * (memguard.h, MG_CONTINUE_FILE_HEADER): the request it answers, the
 * checkpoint and its note. */
bool stop_continue_read(const stop_paths *p, uint64_t *request, char *ckpt, size_t len,
                        char *note, size_t note_len);
/* The answer was taken: removes it and the stop file. */
void stop_continue_taken(stop_paths *p);
/* Removes what memguard made (the stop file, the acknowledgement, the
 * private folder). */
void stop_paths_cleanup(stop_paths *p);

/* ---- posix/run_os.c, win/run_os.c: what differs by platform ------------ */

/* A monotonic clock, in microseconds. */
uint64_t run_os_now_us(void);
/* The checkpoint signal when --signal is not given: SIGUSR1, or SIGBREAK
 * (CTRL_BREAK_EVENT) on Windows. */
int run_os_default_signal(void);
/* --signal's value (a name or number). 0, or the usage error's status. */
int run_os_signal_arg(const char *arg, int *out);
/* "SIGUSR1", "SIGRTMIN+2", "signal 99". */
const char *signal_name(int sig, char *buf, size_t len);
/* Sets an environment variable for the command memguard starts next. 0 or
 * -errno. */
int run_os_setenv(const char *name, const char *value);
/* Whether path is absolute here ("/x"; "C:\x" or "\\server\x"). */
bool run_os_path_absolute(const char *path);
/* Whether c separates folders in a path ('/'; also '\\' on Windows), and
 * the separator memguard writes. */
bool run_os_is_sep(char c);
char run_os_sep(void);
/* --on-warn's value: an absolute path to an executable file. */
bool run_os_hook_ok(const char *path);
/* Best-effort protection of memguard itself (memory lock, OOM score). */
void run_os_protect_self(int verbose);
/* Reading a long log must not count against the memory lock. */
void run_os_unprotect_memory(void);

/* Opens the log for appending: a regular file that is writable, never
 * through a symlink and never blocking on a FIFO. -1 with errno ELOOP for a
 * link, EINVAL for anything else that is not a writable regular file. */
int run_os_log_open(const char *path);
/* An unnamed temporary file beside `name` (for --plot without --log), open
 * for reading and writing, gone whatever happens to memguard. -1 + errno. */
int run_os_temp_beside(const char *name);
/* A second descriptor of fd that the command does not inherit. */
int run_os_dup(int fd);
/* Opens a log to read it back (no link followed, no FIFO blocking). */
int run_os_open_read(const char *path);
/* The size of the regular file open as fd; -1 for anything else. */
long long run_os_regular_size(int fd);

/* At most len - 1 bytes of the regular file at path, NUL-terminated,
 * without following a symlink or blocking on a FIFO; with `own`, only a
 * file of this user. -1 when there is no such file. */
long run_os_read_small(const char *path, char *buf, size_t len, bool own);
/* Whether anything (a link included) is at path. */
bool run_os_exists(const char *path);
/* Removes the file (never a folder) at path: 0 or -errno. */
int run_os_unlink(const char *path);
/* Makes a private folder for the stop file and the acknowledgement (only
 * this user may use it), its path in dir. 0, or the exit status after one
 * line on stderr. */
int run_os_private_dir(char *dir, size_t len);
/* Removes the private folder, and first the temporaries a killed trainer
 * left there ("ack.tmp.PID", "continue.tmp.PID"); says so on stderr when
 * it cannot. */
void run_os_private_dir_remove(const char *dir);
/* Writes n bytes as the file path through a temporary of its own in the
 * same folder, renamed into place (no link followed, never half a file).
 * 0 or -errno. */
int run_os_write_replace(const char *path, const char *text, size_t n);

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
