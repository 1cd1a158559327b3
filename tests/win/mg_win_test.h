/* SPDX-License-Identifier: MIT */
/*
 * mg_win_test.h: what the Windows tests (tests/win/test_win_*.c) share:
 * UTF-8 <-> UTF-16 for the checks that look at files with Windows' own wide
 * calls (independently of the library's conversion), and real child
 * processes: started with pipes on stdin and stdout, lines read with a
 * deadline, output captured to the end, killed when a test gives up, so no
 * test hangs or leaves a process behind. It holds no test and calls nothing
 * of memguard's.
 */
#ifndef MG_WIN_TEST_H
#define MG_WIN_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <windows.h>

/* UTF-8 -> UTF-16 into out[cap]; "" when it does not convert. */
static inline const wchar_t *mg_w(const char *s, wchar_t *out, int cap)
{
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, out, cap) <= 0) out[0] = 0;
    return out;
}

/* A child with its stdin (write end) and stdout (read end) as pipes;
 * stderr goes to stdout's pipe when merge, else is inherited. */
typedef struct mg_child {
    PROCESS_INFORMATION pi;
    HANDLE in_w, out_r;
    char pending[8192];  /* read but not yet returned as lines */
    size_t npending;
} mg_child;

/* Starts the UTF-8 command line cmd. False when it cannot be started. */
static inline bool mg_child_start(mg_child *c, const char *cmd, bool merge)
{
    memset(c, 0, sizeof *c);
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE in_r, out_w;
    if (!CreatePipe(&in_r, &c->in_w, &sa, 0)) return false;
    if (!CreatePipe(&c->out_r, &out_w, &sa, 0)) return false;
    SetHandleInformation(c->in_w, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(c->out_r, HANDLE_FLAG_INHERIT, 0);
    STARTUPINFOW si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_r;
    si.hStdOutput = out_w;
    si.hStdError = merge ? out_w : GetStdHandle(STD_ERROR_HANDLE);
    static wchar_t wcmd[32768];
    mg_w(cmd, wcmd, 32768);
    BOOL ok = CreateProcessW(NULL, wcmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &c->pi);
    CloseHandle(in_r);
    CloseHandle(out_w);
    if (!ok) {
        CloseHandle(c->in_w);
        CloseHandle(c->out_r);
        fprintf(stderr, "  cannot start %s (error %lu)\n", cmd, (unsigned long)GetLastError());
        return false;
    }
    return true;
}

/* Reads what the pipe has now into c->pending; false at end of file. */
static inline bool mg_child_pull(mg_child *c)
{
    DWORD avail = 0;
    if (!PeekNamedPipe(c->out_r, NULL, 0, NULL, &avail, NULL)) return false;
    if (avail == 0) return true;
    DWORD room = (DWORD)(sizeof c->pending - 1 - c->npending), n = 0;
    if (room == 0) return true;
    if (!ReadFile(c->out_r, c->pending + c->npending, avail < room ? avail : room, &n, NULL))
        return false;
    c->npending += n;
    c->pending[c->npending] = '\0';
    return true;
}

/* The next line of the child's output (without the newline) into line,
 * waiting at most timeout_ms. False on timeout or end of output. */
static inline bool mg_child_line(mg_child *c, char *line, size_t len, DWORD timeout_ms)
{
    ULONGLONG end = GetTickCount64() + timeout_ms;
    for (;;) {
        char *nl = memchr(c->pending, '\n', c->npending);
        if (nl) {
            size_t n = (size_t)(nl - c->pending);
            size_t k = n < len - 1 ? n : len - 1;
            memcpy(line, c->pending, k);
            line[k] = '\0';
            if (k && line[k - 1] == '\r') line[k - 1] = '\0';
            memmove(c->pending, nl + 1, c->npending - n - 1);
            c->npending -= n + 1;
            c->pending[c->npending] = '\0';
            return true;
        }
        if (!mg_child_pull(c) || GetTickCount64() > end) return false;
        Sleep(5);
    }
}

/* Closes the child's stdin (the helpers exit on end of input), waits up to
 * timeout_ms, kills it if still there; returns its exit code (or -1). */
static inline long mg_child_finish(mg_child *c, DWORD timeout_ms)
{
    if (c->in_w) CloseHandle(c->in_w);
    c->in_w = NULL;
    if (WaitForSingleObject(c->pi.hProcess, timeout_ms) != WAIT_OBJECT_0) {
        fprintf(stderr, "  child %lu still running after %lu ms: killed\n",
                (unsigned long)c->pi.dwProcessId, (unsigned long)timeout_ms);
        TerminateProcess(c->pi.hProcess, 99);
        WaitForSingleObject(c->pi.hProcess, 5000);
    }
    DWORD code = 0;
    long rc = GetExitCodeProcess(c->pi.hProcess, &code) ? (long)code : -1;
    CloseHandle(c->pi.hProcess);
    CloseHandle(c->pi.hThread);
    CloseHandle(c->out_r);
    return rc;
}

/* Runs cmd to the end (at most timeout_ms), its stdout (and stderr when
 * merge) into out (cut to fit). Returns the exit code, -1 if it could not
 * start. */
static inline long mg_run_capture(const char *cmd, bool merge, char *out, size_t len,
                                  DWORD timeout_ms)
{
    mg_child c;
    out[0] = '\0';
    if (!mg_child_start(&c, cmd, merge)) return -1;
    CloseHandle(c.in_w);
    c.in_w = NULL;
    ULONGLONG end = GetTickCount64() + timeout_ms;
    size_t n = 0;
    for (;;) {
        char buf[4096];
        DWORD got = 0;
        /* Blocking reads end at end of output: the child exited. */
        if (!ReadFile(c.out_r, buf, sizeof buf, &got, NULL) || got == 0) break;
        size_t k = n + got < len - 1 ? got : len - 1 - n;
        memcpy(out + n, buf, k);
        n += k;
        out[n] = '\0';
        if (GetTickCount64() > end) break;
    }
    return mg_child_finish(&c, end > GetTickCount64() ? (DWORD)(end - GetTickCount64()) : 0);
}

#endif /* MG_WIN_TEST_H */
