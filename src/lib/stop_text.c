/* SPDX-License-Identifier: MIT */
/*
 * stop_text.c: what the trainer's side of the memguard run protocol shares
 * on every platform (posix/stop.c, win/stop.c): the reason read out of a
 * stop file's text (memguard.h, MG_STOP_FILE_HEADER) and its request
 * line, the acknowledgement and the "continuing" answer written through
 * mg_atomic. Opening the stop file, paths and the checkpoint's absolute
 * name are the platform's. It keeps no state.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mg__stop_reason_text(const char *text, char *buf, size_t buf_len)
{
    size_t hl = strlen(MG_STOP_FILE_HEADER);
    buf[0] = '\0';
    if (strncmp(text, MG_STOP_FILE_HEADER, hl) != 0 || text[hl] != '\n') return 0;
    const char *r = text + hl + 1;
    size_t len = strcspn(r, "\n");
    if (len >= buf_len) len = buf_len - 1;
    memcpy(buf, r, len);
    buf[len] = '\0';
    return (int)len;
}

int mg__stop_ack_write(const char *ack, const char *checkpoint)
{
    mg_atomic a;
    int rc = mg_atomic_open(&a, ack);
    if (rc < 0) return rc;
    if ((rc = mg_atomic_write(&a, checkpoint, strlen(checkpoint))) < 0 ||
        (rc = mg_atomic_write(&a, "\n", 1)) < 0) {
        mg_atomic_abort(&a);
        return rc;
    }
    return mg_atomic_commit(&a);
}

uint64_t mg__stop_request_id(const char *text, bool *memory)
{
    *memory = false;
    size_t hl = strlen(MG_STOP_FILE_HEADER);
    if (strncmp(text, MG_STOP_FILE_HEADER, hl) != 0 || text[hl] != '\n') return 0;
    const char *nl = strchr(text + hl + 1, '\n'); /* the end of the reason */
    if (!nl || strncmp(nl + 1, "request ", 8) != 0) return 0;
    const char *p = nl + 1 + 8;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || *p < '0' || *p > '9' || v == 0 || *end != ' ') return 0;
    *memory = strncmp(end + 1, "memory", 6) == 0 && (end[7] == '\n' || end[7] == '\0');
    return (uint64_t)v;
}

/* Whether s is one line: not NULL, no CR or LF. */
static bool one_line(const char *s)
{
    return s && !strpbrk(s, "\r\n");
}

int mg__stop_continue(const char *cont, const char *text, const char *checkpoint,
                      const char *note, uint64_t *answered)
{
    bool memory;
    uint64_t id = cont ? mg__stop_request_id(text, &memory) : 0;
    if (!id || !memory || !*checkpoint || !one_line(checkpoint) || (note && !one_line(note)))
        return MG_EINVAL;
    char body[8192];
    int n = snprintf(body, sizeof body, "%s\nrequest %llu\ncheckpoint %s\nnote %s\n",
                     MG_CONTINUE_FILE_HEADER, (unsigned long long)id, checkpoint,
                     note ? note : "");
    if (n < 0 || (size_t)n >= sizeof body) return MG_EINVAL;
    mg_atomic a;
    int rc = mg_atomic_open(&a, cont);
    if (rc < 0) return rc;
    if ((rc = mg_atomic_write(&a, body, (size_t)n)) < 0) {
        mg_atomic_abort(&a);
        return rc;
    }
    if ((rc = mg_atomic_commit(&a)) == 0) *answered = id;
    return rc;
}
