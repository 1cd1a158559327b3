/* SPDX-License-Identifier: MIT */
/*
 * shrink.c: see shrink.h. The next batch, the model and its checkpoint
 * writer laid out again from the emergency checkpoint, and the report of
 * each shrink (stdout and OUT/shrinks.csv). It never saves, stops or
 * decides to shrink: train.c does, when the guard says stop and
 * --on-memory shrink is given.
 */
#include "shrink.h"

#include "batch_fit.h"
#include "sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHRINKS_HEADER "epoch,sample,samples,from_batch,to_batch,checkpoint,reason\n"

int shrink_table_next(int batch)
{
    static const int rows[] = {8, 6, 4, 2, 1};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i] < batch) return rows[i];
    return 0;
}

/* The model at c->batch with the weights and optimiser state of ckpt, and
 * its writer. 0, or -1 with one line in err. */
static int build(unet **m, ckpt_writer **ck, const run_cfg *c, const unet_backend *be,
                 const char *ckpt, char *err, size_t len)
{
    char msg[2048];
    ckpt_file *f = NULL;
    ckpt_info info;
    *m = unet_create(&c->model, c->batch, c->img_size, c->img_size, c->seed, be, msg, sizeof msg);
    if (!*m) {
        snprintf(err, len, "batch %d: %s", c->batch, msg);
        return -1;
    }
    if (ckpt_open(ckpt, &f, &info, msg, sizeof msg) < 0 || ckpt_apply(f, *m, msg, sizeof msg) < 0) {
        snprintf(err, len, "cannot read back %s: %s", ckpt, msg);
        ckpt_close(f);
        return -1;
    }
    ckpt_close(f);
    *ck = ckpt_writer_new(*m, c, msg, sizeof msg);
    if (!*ck) {
        snprintf(err, len, "batch %d: %s", c->batch, msg);
        return -1;
    }
    return 0;
}

int shrink_model(unet **m, ckpt_writer **ck, run_cfg *c, const unet_backend *be,
                 const guard_opts *go, const char *ckpt, char *err, size_t len)
{
    /* The writer first: it may point into the arena. */
    ckpt_writer_free(*ck);
    *ck = NULL;
    unet_destroy(*m);
    *m = NULL;
    int from = c->batch, next = shrink_table_next(from);
    int fits = next ? batch_fit_largest(c, be, go, next) : 0;
    if (fits == 0) {
        snprintf(err, len, next ? "no batch from 1 to %d fits below the RAM warn threshold now"
                                : "already at batch 1", next);
        return 0;
    }
    c->batch = fits;
    if (build(m, ck, c, be, ckpt, err, len) == 0) return fits;
    ckpt_writer_free(*ck);
    *ck = NULL;
    unet_destroy(*m);
    *m = NULL;
    c->batch = from;
    return 0;
}

/* ---- the report ---------------------------------------------------------------- */

/* s as one CSV field: quoted, inner quotes doubled, cut to fit. */
static void csv_field(char *buf, size_t len, const char *s)
{
    size_t u = 0;
    buf[u++] = '"';
    for (; *s && u + 3 < len; s++) {
        if (*s == '\n' || *s == '\r') continue;
        if (*s == '"') buf[u++] = '"';
        buf[u++] = *s;
    }
    buf[u++] = '"';
    buf[u] = '\0';
}

void shrink_forget(const char *out)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/shrinks.csv", out);
    if (unet_entry_kind(path) != UNET_ENTRY_FILE) return;
    int fd = unet_open_rw(path);
    if (fd < 0) return;
    if (unet_rewrite(fd, "", 0) != 0)
        fprintf(stderr, "unet-train: cannot empty %s (its rows are an earlier run's): %s\n",
                path, strerror(errno));
    close(fd);
}

/* Appends row to OUT/shrinks.csv, with the header when the file is new.
 * 0, or -1 with errno set (ELOOP: a link there, EINVAL: not a file). */
static int append_row(const char *out, const char *row)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/shrinks.csv", out);
    int fd = unet_open_rw(path); /* no link followed, no FIFO waited on */
    if (fd < 0) return -1;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    FILE *f = fdopen(fd, "r+b"); /* Windows: no \r added to the rows */
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rc = fseek(f, 0, SEEK_END) == 0 ? 0 : -1;
    if (rc == 0 && sb.st_size == 0 && fputs(SHRINKS_HEADER, f) == EOF) rc = -1;
    if (rc == 0 && fputs(row, f) == EOF) rc = -1;
    int e = errno;
    if (fclose(f) != 0 && rc == 0) {
        e = errno;
        rc = -1;
    }
    errno = e;
    return rc;
}

void shrink_report(const char *out, const shrink_at *at)
{
    const char *slash = strrchr(at->ckpt, '/');
    const char *name = slash ? slash + 1 : at->ckpt;
    printf("[memguard] %s\n", at->reason);
    printf("[memguard] batch %d -> %d: continuing from epoch %d, sample %d%s (%s saved)\n",
           at->from, at->to, at->epoch, at->sample,
           at->sample == at->samples ? ", validation from its start" : "", name);
    fflush(stdout);
    char q_name[600], q_reason[700], row[1400];
    csv_field(q_name, sizeof q_name, name);
    csv_field(q_reason, sizeof q_reason, at->reason);
    snprintf(row, sizeof row, "%d,%d,%d,%d,%d,%s,%s\n", at->epoch, at->sample, at->samples,
             at->from, at->to, q_name, q_reason);
    if (append_row(out, row) < 0)
        fprintf(stderr, "unet-train: cannot log the shrink in %s/shrinks.csv (training goes "
                "on): %s\n", out, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
}
