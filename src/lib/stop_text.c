/* SPDX-License-Identifier: MIT */
/*
 * stop_text.c: what the trainer's side of the memguard run protocol shares
 * on every platform (posix/stop.c, win/stop.c): the reason read out of a
 * stop file's text (memguard.h, MG_STOP_FILE_HEADER) and the
 * acknowledgement written through mg_atomic. Opening the stop file, paths
 * and the checkpoint's absolute name are the platform's. It keeps no state.
 */
#include "internal.h"

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
