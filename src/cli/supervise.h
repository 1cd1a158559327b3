/* SPDX-License-Identifier: MIT */
/*
 * supervise.h: the two halves of `memguard run`'s supervisor and what they
 * share. supervise.c is the portable half: sampling, the policy, the
 * one-way escalation (RUNNING -> REQUESTED -> TERMINATED -> KILLED), the
 * request (stop file + the platform's signal), the JSON-lines log and the
 * exit status. The platform's half (posix/supervise_os.c on Linux,
 * win/supervise_os.c on Windows) starts the command, waits for what can
 * happen to memguard (signals or console events, the command's end, the
 * hook's end), and sends, kills and counts processes. Neither half decides
 * what the other does: what memguard itself was asked (a manual request,
 * a kill) comes back from sos_wait as a sos_ask for supervise.c to act on.
 * Both halves write messages and log lines through supervise_log.c. This
 * header holds no logic.
 */
#ifndef MG_SUPERVISE_H
#define MG_SUPERVISE_H

#include "run.h"

#include <stdbool.h>
#include <stdint.h>

enum phase { PH_RUNNING, PH_REQUESTED, PH_TERMINATED, PH_KILLED };

/* How the command ended: an exit code, or (POSIX) a signal. */
typedef struct child_end {
    bool signalled;
    int code;               /* when !signalled */
    int sig;                /* when signalled */
    bool sig_ours;          /* sig is one memguard sends (checkpoint, TERM, KILL) */
} child_end;

typedef struct sup_os sup_os; /* the platform's own state */

typedef struct sup {
    const run_opts *o;
    run_attempt *att;           /* which start of the command this is */
    mg_ctx *ctx;
    const mg_config *cfg;
    runlog *log;
    int child;                  /* the command's pid */
    bool child_done;
    child_end end;              /* once child_done */
    enum phase phase;
    uint64_t deadline_ms;       /* of the current phase */
    uint64_t t0_ms;
    mg_policy_state st;
    mg_level last_level;
    uint64_t last_warn_ms;
    uint64_t next_report_ms;
    bool hook_running;          /* an --on-warn hook has not ended yet */
    uint64_t hook_deadline_ms;
    stop_paths files;           /* the stop file and the acknowledgement */
    uint64_t next_recheck_ms;   /* a pending request looks for new catchers */
    uint64_t budget_kill_ms;    /* the budget's hard limit kills from then on */
    char reason[256];           /* of the last non-safe verdict */
    uint64_t request_no;        /* requests made in this start: the stop file's N */
    sup_os *os;
} sup;

/* ---- supervise_log.c: both halves' messages and log lines -------------- */

/* "memguard: <text>" on stderr. */
void sup_say(const char *fmt, ...) CLI_PRINTF(1, 2);
/* One line of the run's log, stamped with the time since the start. */
void sup_log(sup *s, const char *event, const char *extra, const mg_snapshot *snap,
             const mg_verdict *v);

/* ---- the platform's half (posix/ or win/supervise_os.c) --------------- */

/* What memguard itself was asked while it waited. */
typedef struct sos_ask {
    enum { ASK_NONE, ASK_REQUEST, ASK_KILL } kind;
    uint64_t at_us;     /* when it came */
    char how[96];       /* "SIGUSR1 from pid 12", "Ctrl+C" */
    char text[256];     /* the request's reason, or why to kill */
} sos_ask;

/* Takes over signals / console events, starts the command with the
 * protocol's environment and makes it the watched tree. 0, or the exit
 * status after one line on stderr (127: not found, 126: cannot run). */
int sos_start(sup *s);
/* Waits up to timeout_ms for something to happen, handling what is the
 * platform's (sets child_done and end, the hook's end, forwards signals)
 * and putting in *ask what memguard was asked (kind ASK_NONE if nothing;
 * the first of several, the others said on stderr). */
void sos_wait(sup *s, uint64_t timeout_ms, sos_ask *ask);
/* The request's signal to the processes that can take it now and have not
 * had it (late: a recheck while the request is pending, which logs each).
 * Returns how many got it. */
size_t sos_request_signal(sup *s, bool late);
/* The trainer answered the request by continuing: the next request is
 * sent to every process that catches the signal again (and on Windows
 * the stop event is reset first). */
void sos_request_withdrawn(sup *s);
/* The checkpoint signal's name ("SIGUSR1", "SIGBREAK"). */
const char *sos_signal_name(const sup *s, char *buf, size_t len);
/* Whether the platform has a polite end (SIGTERM); Windows has none, so
 * there the kill follows the grace at once. */
bool sos_can_terminate(void);
/* The polite end to every process of the job. */
void sos_terminate(sup *s);
/* Kills every process of the job at once; sos_kill_name() says how
 * ("SIGKILL", "TerminateJobObject"). */
void sos_kill(sup *s);
const char *sos_kill_name(void);
/* The live processes of the job, the hook left out. */
size_t sos_members_alive(sup *s);
/* Starts the --on-warn hook (at most one at a time). */
void sos_run_hook(sup *s, mg_level level);
/* Kills the hook that ran past --hook-timeout. */
void sos_kill_hook(sup *s);
/* Gives back what sos_start took: the terminal, signal masks or console
 * handler, waits for a hook, frees the platform's state. Safe after a
 * failed or no sos_start. */
void sos_finish(sup *s);

#endif /* MG_SUPERVISE_H */
