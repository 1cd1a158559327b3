/* SPDX-License-Identifier: MIT */
/*
 * runlog.c: `memguard run --log FILE`: one JSON object per line, per event
 * (start, sample, warn, request, term, kill, exit) with the readings of the
 * moment (the library's JSON), so a run can be replayed or plotted. Lines
 * are written with one write(2) each, so a crash never leaves half a line
 * in the middle of the file. Opening the file safely is the platform's
 * (run_os_log_open). It decides nothing.
 */
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct runlog {
    int fd;
    char line[40000];
};

runlog *runlog_open(const char *path)
{
    runlog *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->fd = -1;
    if (path && (l->fd = run_os_log_open(path)) < 0) {
        int e = errno;
        free(l);
        errno = e;
        return NULL;
    }
    return l;
}

runlog *runlog_open_fd(int fd)
{
    runlog *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return NULL;
    }
    l->fd = fd;
    return l;
}

void runlog_close(runlog *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    free(l);
}

void runlog_event(runlog *l, const char *event, uint64_t t_ms, const char *extra,
                  const mg_config *cfg, const mg_snapshot *snap, const mg_verdict *v)
{
    if (!l || l->fd < 0) return;
    int n = snprintf(l->line, sizeof l->line, "{\"event\":\"%s\",\"t_ms\":%" PRIu64 "%s%s",
                     event, t_ms, extra && *extra ? "," : "", extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof l->line - 16) return;
    size_t pos = (size_t)n;
    if (snap) {
        pos += (size_t)snprintf(l->line + pos, sizeof l->line - pos, ",\"sample\":");
        int k = mg_format_json(cfg, snap, v, l->line + pos, sizeof l->line - pos - 4);
        if (k < 0 || (size_t)k >= sizeof l->line - pos - 4) return; /* never half a line */
        pos += (size_t)k;
        if (pos && l->line[pos - 1] == '\n') pos--;
    }
    l->line[pos++] = '}';
    l->line[pos++] = '\n';
    /* pos < sizeof l->line: fits the count of every write() (unsigned on Windows). */
    ssize_t w = write(l->fd, l->line, (unsigned)pos);
    (void)w; /* a full disk must not stop the supervisor */
}
