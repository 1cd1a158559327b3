/* SPDX-License-Identifier: MIT */
/*
 * supervise_log.c: what both halves of `memguard run`'s supervisor
 * (supervise.h) write: one "memguard: ..." line on stderr, and one event
 * line in the run's log stamped with the time since the start. It decides
 * nothing and sends nothing.
 */
#include "supervise.h"

#include <stdarg.h>
#include <stdio.h>

void sup_say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "memguard: %s\n", line);
}

void sup_log(sup *s, const char *event, const char *extra, const mg_snapshot *snap,
             const mg_verdict *v)
{
    runlog_event(s->log, event, run_os_now_us() / 1000u - s->t0_ms, extra, s->cfg, snap, v);
}
