/* SPDX-License-Identifier: MIT */
/*
 * win/supervise_os.c: the Windows half of `memguard run`'s supervisor
 * (supervise.h). The command runs in a job object with
 * JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, created suspended and assigned before
 * it runs a single instruction: every process it starts joins the job, the
 * job's process list is the run's tree, and when memguard dies for any
 * reason Windows closes the job's handle and kills the whole run (the
 * Linux PR_SET_PDEATHSIG + subreaper pair; research/windows.md, verified
 * under Wine).
 *
 * The request (there is no SIGUSR1): the stop file (stopfile.c), then the
 * named manual-reset event whose name the command got in
 * MEMGUARD_STOP_EVENT ("Local\memguard-stop-<pid>-<n>"), set and left set,
 * then CTRL_BREAK_EVENT to the command's process group, but only when
 * every process of the job has said it survives one: each creates the
 * event "<MEMGUARD_ARMED_EVENT>-<its pid>" (the library's mg_stop_open,
 * the Python StopRequest and ignore_stop_signal do). CTRL_BREAK's default
 * action ends a process unsaved (0xC000013A), exactly the hazard SIGUSR1
 * is on Linux, and it reaches the whole group, spawned DataLoader workers
 * included; so it goes out at most once per request, and the file and
 * the event alone carry the request when it cannot. A request the trainer
 * answered by continuing (mg_stop_continue) resets the event.
 *
 * There is no polite end on Windows (libuv and psutil map SIGTERM to
 * TerminateProcess): after --grace the job is ended with TerminateJobObject
 * (exit code 76). Ctrl+C and Ctrl+Break at memguard's console (the command,
 * in a new process group, does not get Ctrl+C): the first is a manual
 * request, a second the kill; closing the console, logging off or shutting
 * down kill at once (Windows ends memguard a few seconds later anyway).
 *
 * The console handler runs on a thread of its own (Windows makes one), so
 * it only counts and sets an event; its counters are this file's only
 * process-wide state (a console handler receives nothing but the event's
 * type). Names and paths are UTF-8: memguard.exe's manifest makes UTF-8
 * the process code page, so the *A functions take them as they are.
 */
#include "../supervise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

/* The most processes of a job listed at once (the Linux side's bound). */
#define JOB_PIDS_MAX 4096

struct sup_os {
    HANDLE job;                 /* kill-on-close; never inherited */
    HANDLE child;               /* the command's process */
    HANDLE hook;                /* the --on-warn hook's process, or NULL */
    HANDLE stop_event;          /* manual-reset, set by the request */
    char stop_name[64];         /* MEMGUARD_STOP_EVENT */
    char armed_prefix[64];      /* MEMGUARD_ARMED_EVENT */
    bool broke;                 /* CTRL_BREAK went out (or cannot): never again */
    LONG ctrl_seen;             /* Ctrl+C / Ctrl+Break events acted on */
    JOBOBJECT_BASIC_PROCESS_ID_LIST *pids; /* JOB_PIDS_MAX entries */
};

/* The console handler's side: counts, and an event that wakes sos_wait. */
static volatile LONG ctrl_count;   /* Ctrl+C and Ctrl+Break */
static volatile LONG ctrl_closed;  /* the console closed, log-off, shutdown */
static HANDLE ctrl_wake;           /* auto-reset */
static HANDLE ctrl_done;           /* manual-reset: memguard has finished */

static BOOL WINAPI on_console(DWORD type)
{
    if (type == CTRL_C_EVENT || type == CTRL_BREAK_EVENT) {
        InterlockedIncrement(&ctrl_count);
        SetEvent(ctrl_wake);
        return TRUE;
    }
    InterlockedExchange(&ctrl_closed, 1);
    SetEvent(ctrl_wake);
    /* Windows ends the process when this returns (after ~5 s at most):
     * give the main thread the time to kill the job and log it. */
    WaitForSingleObject(ctrl_done, 4000);
    return TRUE;
}

const char *sos_signal_name(const sup *s, char *buf, size_t len)
{
    return signal_name(s->o->signo, buf, len);
}

bool sos_can_terminate(void) { return false; }

void sos_terminate(sup *s) { (void)s; } /* none on Windows: see sos_can_terminate */

const char *sos_kill_name(void) { return "TerminateJobObject"; }

/* A GetLastError() text, one line. */
static const char *win_error(DWORD e, char *buf, size_t len)
{
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                             0, buf, (DWORD)len, NULL);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.')) buf[--n] = '\0';
    if (!n) snprintf(buf, len, "error %lu", (unsigned long)e);
    return buf;
}

void sos_kill(sup *s)
{
    char err[160];
    if (!TerminateJobObject(s->os->job, MG_EXIT_MEMKILL))
        sup_say("cannot end the job of pid %d: %s", s->child,
                win_error(GetLastError(), err, sizeof err));
}

/* The job's processes now: how many (0 when the list cannot be read). */
static size_t job_pids(sup_os *os)
{
    DWORD size = (DWORD)(sizeof *os->pids + JOB_PIDS_MAX * sizeof(ULONG_PTR));
    if (!QueryInformationJobObject(os->job, JobObjectBasicProcessIdList, os->pids, size, NULL))
        return 0;
    return os->pids->NumberOfProcessIdsInList;
}

size_t sos_members_alive(sup *s)
{
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acc;
    if (QueryInformationJobObject(s->os->job, JobObjectBasicAccountingInformation, &acc,
                                  sizeof acc, NULL))
        return acc.ActiveProcesses;
    return job_pids(s->os);
}

/* Whether the process pid has created "<armed prefix>-<pid>". */
static bool armed(const sup_os *os, DWORD pid)
{
    char name[96];
    snprintf(name, sizeof name, "%s-%lu", os->armed_prefix, (unsigned long)pid);
    HANDLE h = OpenEventA(SYNCHRONIZE, FALSE, name);
    if (!h) return false;
    CloseHandle(h);
    return true;
}

/* How many processes the job has when every one of them is armed; 0 when
 * one is not (or the list cannot be read). */
static size_t all_armed(sup_os *os)
{
    size_t n = job_pids(os);
    for (size_t i = 0; i < n; i++)
        if (!armed(os, (DWORD)os->pids->ProcessIdList[i])) return 0;
    return n;
}

size_t sos_request_signal(sup *s, bool late)
{
    sup_os *os = s->os;
    SetEvent(os->stop_event); /* stays set: every later check sees it */
    if (os->broke || s->child_done) return 0;
    size_t n = all_armed(os);
    if (n == 0) return 0;
    /* The command's process group has its pid as ID (CREATE_NEW_PROCESS_GROUP),
     * and our open handle to it keeps that pid from being reused. */
    os->broke = true;
    if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, (DWORD)s->child)) {
        char err[160];
        sup_say("cannot send CTRL_BREAK_EVENT to pid %d: %s (the stop file and event still "
                "ask)", s->child, win_error(GetLastError(), err, sizeof err));
        return 0;
    }
    if (late) {
        char extra[96];
        snprintf(extra, sizeof extra, "\"pid\":%d,\"signal\":%d", s->child, s->o->signo);
        sup_log(s, "signal", extra, NULL, NULL);
        sup_say("every process of pid %d's job now handles CTRL_BREAK: sent it", s->child);
    }
    return n;
}

void sos_request_withdrawn(sup *s)
{
    ResetEvent(s->os->stop_event);
    s->os->broke = false; /* the next request checks every process is armed again */
}

/* ---- the hook ----------------------------------------------------------------- */

void sos_run_hook(sup *s, mg_level level)
{
    char pid[32], cmd[RUN_PATH_MAX + 2];
    snprintf(pid, sizeof pid, "%d", s->child);
    snprintf(cmd, sizeof cmd, "\"%s\"", s->o->on_warn);
    SetEnvironmentVariableA("MEMGUARD_LEVEL", mg_level_name(level));
    SetEnvironmentVariableA("MEMGUARD_REASON", s->reason);
    SetEnvironmentVariableA("MEMGUARD_PID", pid);
    STARTUPINFOA si = {.cb = sizeof si};
    PROCESS_INFORMATION pi;
    BOOL ok = CreateProcessA(s->o->on_warn, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi);
    DWORD e = GetLastError();
    SetEnvironmentVariableA("MEMGUARD_LEVEL", NULL);
    SetEnvironmentVariableA("MEMGUARD_REASON", NULL);
    SetEnvironmentVariableA("MEMGUARD_PID", NULL);
    if (!ok) {
        char err[160];
        sup_say("cannot start --on-warn hook: %s", win_error(e, err, sizeof err));
        return;
    }
    CloseHandle(pi.hThread);
    s->os->hook = pi.hProcess;
    s->hook_running = true;
    s->hook_deadline_ms = run_os_now_us() / 1000u + s->o->hook_timeout_ms;
}

void sos_kill_hook(sup *s)
{
    TerminateProcess(s->os->hook, 1);
}

/* ---- waiting ------------------------------------------------------------------- */

static void child_ended(sup *s)
{
    DWORD code = 0;
    GetExitCodeProcess(s->os->child, &code);
    s->child_done = true;
    s->end = (child_end){.code = (int)code};
}

static void hook_ended(sup *s)
{
    CloseHandle(s->os->hook);
    s->os->hook = NULL;
    s->hook_running = false;
}

/* Ctrl+C / Ctrl+Break at memguard's console, and its closing. */
static void console_events(sup *s, sos_ask *ask)
{
    sup_os *os = s->os;
    if (InterlockedCompareExchange(&ctrl_closed, 0, 0)) {
        ask->kind = ASK_KILL;
        snprintf(ask->how, sizeof ask->how, "the console closing");
        snprintf(ask->text, sizeof ask->text, "the console was closed (or the user logs off)");
    }
    LONG count = InterlockedCompareExchange(&ctrl_count, 0, 0);
    for (; os->ctrl_seen < count; os->ctrl_seen++) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"type\":\"ctrl_c\",\"count\":%ld",
                 (long)os->ctrl_seen + 1);
        sup_log(s, "console", extra, NULL, NULL);
        if (ask->kind != ASK_NONE) continue;
        snprintf(ask->how, sizeof ask->how, "Ctrl+C");
        if (os->ctrl_seen == 0) { /* even during a request: never lose a save to one key */
            ask->kind = ASK_REQUEST;
            snprintf(ask->text, sizeof ask->text, "checkpoint requested with Ctrl+C to memguard");
            sup_say("Ctrl+C: pid %d is asked to checkpoint and stop; Ctrl+C again kills it",
                    s->child);
        } else {
            ask->kind = ASK_KILL;
            snprintf(ask->text, sizeof ask->text, "Ctrl+C again");
        }
    }
    if (ask->kind != ASK_NONE) ask->at_us = run_os_now_us();
}

void sos_wait(sup *s, uint64_t timeout_ms, sos_ask *ask)
{
    sup_os *os = s->os;
    HANDLE h[3];
    DWORD n = 0;
    h[n++] = ctrl_wake;
    if (!s->child_done) h[n++] = os->child;
    if (os->hook) h[n++] = os->hook;
    DWORD t = timeout_ms >= INFINITE ? INFINITE - 1 : (DWORD)timeout_ms;
    WaitForMultipleObjects(n, h, FALSE, t);
    if (!s->child_done && WaitForSingleObject(os->child, 0) == WAIT_OBJECT_0) child_ended(s);
    if (os->hook && WaitForSingleObject(os->hook, 0) == WAIT_OBJECT_0) hook_ended(s);
    console_events(s, ask);
}

/* ---- start-up ------------------------------------------------------------------ */

/* Appends arg to the command line at *pos as CommandLineToArgvW and the C
 * runtime read it back: quoted when it holds a space, a tab or a quote (or
 * is empty), a quote escaped by a backslash, backslashes before a quote or
 * the closing quote doubled. False when it does not fit. */
static bool append_arg(char *line, size_t cap, size_t *pos, const char *arg)
{
    size_t p = *pos;
#define PUT(c) do { if (p + 1 >= cap) return false; line[p++] = (c); } while (0)
    if (p) PUT(' ');
    bool quote = !*arg || strpbrk(arg, " \t\n\v\"") != NULL;
    if (quote) PUT('"');
    for (const char *a = arg;; a++) {
        size_t slashes = 0;
        while (*a == '\\') {
            a++;
            slashes++;
        }
        if (!*a) {
            for (size_t i = 0; i < (quote ? 2 * slashes : slashes); i++) PUT('\\');
            break;
        }
        if (*a == '"') {
            for (size_t i = 0; i < 2 * slashes + 1; i++) PUT('\\');
        } else {
            for (size_t i = 0; i < slashes; i++) PUT('\\');
        }
        PUT(*a);
    }
    if (quote) PUT('"');
#undef PUT
    line[p] = '\0';
    *pos = p;
    return true;
}

/* The stop event under a name nobody else holds: "Local\memguard-stop-
 * <pid>-<n>" (a name another process created first would let it fake or
 * hide a request), and the armed events' prefix with the same tail. */
static int make_stop_event(sup_os *os)
{
    DWORD pid = GetCurrentProcessId();
    for (unsigned n = 0; n < 100; n++) {
        snprintf(os->stop_name, sizeof os->stop_name, "Local\\memguard-stop-%lu-%u",
                 (unsigned long)pid, n);
        HANDLE h = CreateEventA(NULL, TRUE, FALSE, os->stop_name);
        if (h && GetLastError() != ERROR_ALREADY_EXISTS) {
            os->stop_event = h;
            snprintf(os->armed_prefix, sizeof os->armed_prefix, "Local\\memguard-armed-%lu-%u",
                     (unsigned long)pid, n);
            return 0;
        }
        if (h) CloseHandle(h);
    }
    sup_say("cannot create the stop event %s", os->stop_name);
    return MG_EXIT_ERROR;
}

static int make_job(sup_os *os)
{
    char err[160];
    os->job = CreateJobObjectA(NULL, NULL);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION lim;
    memset(&lim, 0, sizeof lim);
    lim.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (os->job && SetInformationJobObject(os->job, JobObjectExtendedLimitInformation, &lim,
                                           sizeof lim))
        return 0;
    sup_say("cannot create a job object: %s", win_error(GetLastError(), err, sizeof err));
    return MG_EXIT_ERROR;
}

/* The protocol's environment, inherited by the command. */
static void set_environment(const sup *s)
{
    char sig[16], pid[32];
    snprintf(sig, sizeof sig, "%d", s->o->signo);
    snprintf(pid, sizeof pid, "%lu", (unsigned long)GetCurrentProcessId());
    SetEnvironmentVariableA(MG_ENV_STOP_FILE, s->files.stop);
    SetEnvironmentVariableA(MG_ENV_ACK_FILE, s->files.ack);
    SetEnvironmentVariableA(MG_ENV_CONTINUE_FILE, s->files.cont);
    SetEnvironmentVariableA(MG_ENV_STOP_SIGNAL, sig);
    SetEnvironmentVariableA(MG_ENV_STOP_EVENT, s->os->stop_name);
    SetEnvironmentVariableA(MG_ENV_ARMED_EVENT, s->os->armed_prefix);
    SetEnvironmentVariableA(MG_ENV_SUPERVISOR_PID, pid);
}

static int spawn(sup *s)
{
    sup_os *os = s->os;
    static char line[32768]; /* CreateProcess's limit, in characters */
    size_t pos = 0;
    for (char **a = s->o->argv; *a; a++)
        if (!append_arg(line, sizeof line, &pos, *a)) {
            sup_say("cannot run '%s': the command line is longer than Windows allows",
                    s->o->argv[0]);
            return 126;
        }
    set_environment(s);
    STARTUPINFOA si = {.cb = sizeof si};
    PROCESS_INFORMATION pi;
    /* Suspended until it is in the job, so even its first child joins. */
    if (!CreateProcessA(NULL, line, NULL, NULL, TRUE,
                        CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED, NULL, NULL, &si, &pi)) {
        DWORD e = GetLastError();
        char err[160];
        sup_say("cannot run '%s': %s", s->o->argv[0], win_error(e, err, sizeof err));
        return e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? 127 : 126;
    }
    if (!AssignProcessToJobObject(os->job, pi.hProcess)) {
        char err[160];
        sup_say("cannot put pid %lu in a job (%s): it runs, but memguard's death would not "
                "end it", (unsigned long)pi.dwProcessId,
                win_error(GetLastError(), err, sizeof err));
    }
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    os->child = pi.hProcess;
    s->child = (int)pi.dwProcessId;
    return 0;
}

int sos_start(sup *s)
{
    sup_os *os = s->os = calloc(1, sizeof *os);
    if (os)
        os->pids = calloc(1, sizeof *os->pids + JOB_PIDS_MAX * sizeof(ULONG_PTR));
    if (!os || !os->pids) {
        sup_say("out of memory");
        return MG_EXIT_ERROR;
    }
    /* Made once, for every attempt of a --restart run; only the Ctrl+C
     * pressed during this attempt count for it. */
    if (!ctrl_wake) ctrl_wake = CreateEventA(NULL, FALSE, FALSE, NULL);
    if (!ctrl_done) ctrl_done = CreateEventA(NULL, TRUE, FALSE, NULL);
    ResetEvent(ctrl_done);
    os->ctrl_seen = InterlockedCompareExchange(&ctrl_count, 0, 0);
    if (!ctrl_wake || !ctrl_done) {
        sup_say("cannot create an event");
        return MG_EXIT_ERROR;
    }
    SetConsoleCtrlHandler(on_console, TRUE);
    int status;
    if ((status = make_stop_event(os)) || (status = make_job(os)) || (status = spawn(s)))
        return status;
    if (mg_watch_descendants(s->ctx, (int)GetCurrentProcessId()) < 0)
        sup_say("cannot watch the process tree");
    return 0;
}

void sos_finish(sup *s)
{
    sup_os *os = s->os;
    if (!os) return;
    if (os->hook) {
        WaitForSingleObject(os->hook, (DWORD)s->o->hook_timeout_ms);
        CloseHandle(os->hook);
    }
    if (os->child) CloseHandle(os->child);
    if (os->job) CloseHandle(os->job); /* kills what is left: nothing, normally */
    if (os->stop_event) CloseHandle(os->stop_event);
    SetConsoleCtrlHandler(on_console, FALSE);
    if (ctrl_done) SetEvent(ctrl_done);
    free(os->pids);
    free(os);
    s->os = NULL;
}
