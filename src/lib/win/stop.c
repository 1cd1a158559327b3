/* SPDX-License-Identifier: MIT */
/*
 * stop.c (Windows): the trainer's side of the memguard run protocol
 * (memguard.h, "The trainer's side"): the stop file and its reason, the
 * stop event (MEMGUARD_STOP_EVENT, a manual-reset event memguard run sets
 * with the file), CTRL_BREAK_EVENT as the checkpoint signal (SIGBREAK), and
 * the acknowledgement of a good save. It never saves, prints or exits: the
 * trainer does that at its next batch boundary. The supervisor's side is
 * src/cli/win/supervise_os.c.
 *
 * The break handler is a console control handler (SetConsoleCtrlHandler),
 * not the C runtime's signal(SIGBREAK), which resets itself to the default
 * after one delivery so a second break would kill the trainer. Windows
 * runs it on a thread of its own; it only sets a flag and returns TRUE
 * (handled), so CTRL_BREAK never ends the process while an mg_stop is open.
 * Once it is installed mg_stop_open creates the "armed" event
 * "<MEMGUARD_ARMED_EVENT>-<pid>" and holds it while open: memguard run
 * sends CTRL_BREAK only when every process of the run holds one, since the
 * default action ends a process unsaved (0xC000013A). The file and the
 * event alone carry the request without it.
 *
 * Paths and the environment are read as UTF-16 and kept as UTF-8: the
 * library runs inside python.exe, which has no UTF-8 manifest, so the *A
 * functions and getenv would read names in the ANSI code page. The break
 * flag and the count of open handlers are the library's only process-wide
 * state here (a console handler receives nothing but the event's type).
 */
#include "win/win.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile LONG break_flag;  /* a CTRL_BREAK_EVENT came */
static volatile LONG handlers;    /* open mg_stops with the handler installed */

struct mg_stop {
    bool handler;             /* the break handler is ours to remove */
    HANDLE event;             /* the stop event, or NULL */
    HANDLE armed;             /* "<armed prefix>-<pid>", or NULL */
    char *file;               /* MEMGUARD_STOP_FILE or NULL */
    char *ack;                /* MEMGUARD_ACK_FILE or NULL */
    char *cont;               /* MEMGUARD_CONTINUE_FILE or NULL */
    uint64_t answered;        /* the request mg_stop_continue answered, 0: none */
};

static BOOL WINAPI on_break(DWORD type)
{
    if (type != CTRL_BREAK_EVENT) return FALSE; /* the next handler's (Ctrl+C, close) */
    InterlockedExchange(&break_flag, 1);
    return TRUE;
}

/* A non-empty environment variable as a malloc'd UTF-8 string in *out
 * (NULL when unset or empty). False only when out of memory. */
static bool env_copy(const char *name, char **out)
{
    wchar_t wname[64], wval[MG__WPATH_MAX];
    *out = NULL;
    if (!MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 64)) return true;
    DWORD n = GetEnvironmentVariableW(wname, wval, MG__WPATH_MAX);
    if (n == 0 || n >= MG__WPATH_MAX) return true;
    int len = WideCharToMultiByte(CP_UTF8, 0, wval, -1, NULL, 0, NULL, NULL);
    if (len <= 0) return true;
    *out = malloc((size_t)len);
    if (!*out) return false;
    WideCharToMultiByte(CP_UTF8, 0, wval, -1, *out, len, NULL, NULL);
    return true;
}

/* The checkpoint signal asked for, in *out: signo, or MEMGUARD_STOP_SIGNAL
 * (else SIGBREAK) for 0. SIGBREAK is the only one Windows can deliver to a
 * process group (CTRL_BREAK_EVENT); negative: none. 0, MG_EINVAL or
 * MG_ENOMEM. */
static int pick_signal(int signo, int *out)
{
    if (signo == 0) {
        char *e = NULL;
        if (!env_copy(MG_ENV_STOP_SIGNAL, &e)) return MG_ENOMEM;
        char *end = NULL;
        long v = e ? strtol(e, &end, 10) : SIGBREAK;
        bool bad = e && (*end || end == e);
        free(e);
        if (bad) return MG_EINVAL;
        signo = v == SIGBREAK ? SIGBREAK : 0; /* 0 here: not ours to catch */
        if (!signo) return MG_EINVAL;
    }
    if (signo > 0 && signo != SIGBREAK) return MG_EINVAL;
    *out = signo;
    return 0;
}

static void stop_free(mg_stop *s)
{
    if (s->armed) CloseHandle(s->armed);
    if (s->event) CloseHandle(s->event);
    if (s->handler && InterlockedDecrement(&handlers) == 0) {
        SetConsoleCtrlHandler(on_break, FALSE);
        InterlockedExchange(&break_flag, 0);
    }
    free(s->file);
    free(s->ack);
    free(s->cont);
    free(s);
}

/* Opens the stop event to wait on (NULL when there is none), and creates
 * this process's armed event when the handler is in place. */
static bool open_events(mg_stop *s)
{
    char *name = NULL;
    if (!env_copy(MG_ENV_STOP_EVENT, &name)) return false;
    wchar_t w[256];
    if (name && MultiByteToWideChar(CP_UTF8, 0, name, -1, w, 256))
        s->event = OpenEventW(SYNCHRONIZE, FALSE, w);
    free(name);
    if (!s->handler) return true;
    if (!env_copy(MG_ENV_ARMED_EVENT, &name)) return false;
    char armed[256];
    if (name && snprintf(armed, sizeof armed, "%s-%lu", name,
                         (unsigned long)GetCurrentProcessId()) < (int)sizeof armed &&
        MultiByteToWideChar(CP_UTF8, 0, armed, -1, w, 256))
        s->armed = CreateEventW(NULL, TRUE, TRUE, w);
    free(name);
    return true;
}

mg_stop *mg_stop_open(int signo, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    int rc = pick_signal(signo, &signo);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    mg_stop *s = calloc(1, sizeof *s);
    if (!s) {
        *err = MG_ENOMEM;
        return NULL;
    }
    /* The flag is not cleared here: a request that arrived while an
     * earlier mg_stop was open (a program's start-up) still counts. */
    if (signo == SIGBREAK) {
        if (InterlockedIncrement(&handlers) == 1 && !SetConsoleCtrlHandler(on_break, TRUE)) {
            InterlockedDecrement(&handlers);
            free(s);
            *err = MG_EINVAL;
            return NULL;
        }
        s->handler = true;
    }
    if (!env_copy(MG_ENV_STOP_FILE, &s->file) || !env_copy(MG_ENV_ACK_FILE, &s->ack) ||
        !env_copy(MG_ENV_CONTINUE_FILE, &s->cont) || !open_events(s)) {
        stop_free(s);
        *err = MG_ENOMEM;
        return NULL;
    }
    *err = 0;
    return s;
}

/* The text of the stop file at `file` (at most len - 1 bytes,
 * NUL-terminated): its length, or 0 when there is none to read. Never
 * through a link, only a file on a disk (a pipe must not hang). */
static size_t stop_read(const char *file, char *text, size_t len)
{
    wchar_t w[MG__WPATH_MAX];
    if (!file || len > MAXDWORD || mg__wpath(file, w, MG__WPATH_MAX) < 0) return 0;
    HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           NULL, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE) return 0;
    DWORD n = 0;
    BY_HANDLE_FILE_INFORMATION fi;
    bool ok = GetFileType(h) == FILE_TYPE_DISK && GetFileInformationByHandle(h, &fi) &&
              !(fi.dwFileAttributes & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)) &&
              ReadFile(h, text, (DWORD)len - 1, &n, NULL);
    CloseHandle(h);
    if (!ok || n == 0) return 0;
    text[n] = '\0';
    return n;
}

/* The stop file's request line (mg__stop_request_id), *memory (may be
 * NULL) whether it is a memory request; 0 when there is none. */
static uint64_t request_in_file(const mg_stop *s, bool *memory)
{
    char text[4096] = "";
    bool m;
    stop_read(s->file, text, sizeof text);
    uint64_t id = mg__stop_request_id(text, &m);
    if (memory) *memory = m;
    return id;
}


bool mg_stop_requested(mg_stop *s)
{
    if (!s) return false;
    if (s->handler && InterlockedCompareExchange(&break_flag, 0, 0)) return true;
    /* After an answer the event stays set until memguard run takes it: a
     * new request is a stop file with another number (memguard run writes
     * the file before it sets the event). */
    if (!s->answered && s->event && WaitForSingleObject(s->event, 0) == WAIT_OBJECT_0)
        return true;
    wchar_t w[MG__WPATH_MAX];
    if (!s->file || mg__wpath(s->file, w, MG__WPATH_MAX) < 0 ||
        GetFileAttributesW(w) == INVALID_FILE_ATTRIBUTES)
        return false;
    /* The request answered stays until memguard run takes the answer. */
    return !s->answered || request_in_file(s, NULL) != s->answered;
}

const char *mg_stop_file(const mg_stop *s)
{
    return s ? s->file : NULL;
}

int mg_stop_reason(const mg_stop *s, char *buf, size_t buf_len)
{
    if (!s || !buf || buf_len == 0) return MG_EINVAL;
    buf[0] = '\0';
    char text[4096];
    if (stop_read(s->file, text, sizeof text) == 0) return 0;
    return mg__stop_reason_text(text, buf, buf_len);
}

/* The absolute form of a UTF-8 path, in UTF-8 (the path itself when it
 * cannot be had). */
static const char *absolute(const char *path, char *buf, size_t len)
{
    wchar_t w[MG__WPATH_MAX], full[MG__WPATH_MAX];
    if (mg__wpath(path, w, MG__WPATH_MAX) < 0) return path;
    DWORD n = GetFullPathNameW(w, MG__WPATH_MAX, full, NULL);
    if (n == 0 || n >= MG__WPATH_MAX) return path;
    const wchar_t *shown = wcsncmp(full, L"\\\\?\\", 4) == 0 ? full + 4 : full;
    if (!WideCharToMultiByte(CP_UTF8, 0, shown, -1, buf, (int)len, NULL, NULL)) return path;
    return buf;
}

int mg_stop_acknowledge(const mg_stop *s, const char *checkpoint_path)
{
    if (!s || !checkpoint_path || !*checkpoint_path) return MG_EINVAL;
    if (!s->ack) return 0;
    char abs[4096];
    const char *shown = absolute(checkpoint_path, abs, sizeof abs);
    return mg__stop_ack_write(s->ack, shown);
}

bool mg_stop_may_continue(mg_stop *s)
{
    bool memory = false;
    return s && s->cont && request_in_file(s, &memory) != 0 && memory;
}

int mg_stop_continue(mg_stop *s, const char *checkpoint_path, const char *note)
{
    if (!s || !checkpoint_path || !*checkpoint_path) return MG_EINVAL;
    char text[4096] = "";
    char abs[4096];
    const char *shown = absolute(checkpoint_path, abs, sizeof abs);
    stop_read(s->file, text, sizeof text);
    int rc = mg__stop_continue(s->cont, text, shown, note, &s->answered);
    /* A request answered: a signal from now on is a new one's. */
    if (rc == 0 && s->handler) InterlockedExchange(&break_flag, 0);
    return rc;
}

void mg_stop_close(mg_stop *s)
{
    if (s) stop_free(s);
}
