/* SPDX-License-Identifier: MIT */
/*
 * stop.c (Windows): a stand-in for the trainer's side of the memguard run
 * protocol, so the library links and says plainly that the protocol is not
 * here yet: mg_stop_open fails with MG_EINVAL and the rest behave as for a
 * NULL mg_stop (no request, no file, nothing acknowledged). The Windows
 * protocol (stop file, named event MEMGUARD_STOP_EVENT, Ctrl+Break to an
 * armed trainer) replaces this file (issue 13). It keeps no state.
 */
#include "internal.h"

mg_stop *mg_stop_open(int signo, int *err)
{
    (void)signo;
    if (err) *err = MG_EINVAL;
    return NULL;
}

bool mg_stop_requested(mg_stop *s)
{
    (void)s;
    return false;
}

const char *mg_stop_file(const mg_stop *s)
{
    (void)s;
    return NULL;
}

int mg_stop_reason(const mg_stop *s, char *buf, size_t buf_len)
{
    (void)s;
    if (buf && buf_len) buf[0] = '\0';
    return MG_EINVAL;
}

int mg_stop_acknowledge(const mg_stop *s, const char *checkpoint_path)
{
    (void)s;
    (void)checkpoint_path;
    return MG_EINVAL;
}

void mg_stop_close(mg_stop *s)
{
    (void)s;
}
