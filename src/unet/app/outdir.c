/* SPDX-License-Identifier: MIT */
/*
 * outdir.c: see outdir.h. mkdir -p with a count of what it made, the
 * lock on OUT/.lock, the write and room checks, and the removal of dead
 * runs' checkpoint and curves.svg temporaries. It never follows a symbolic
 * link inside OUT (unet_open_rw, unet_remove_file_at) and never removes
 * what it cannot prove is a leftover of unet-train. The system calls are
 * sys.h's (POSIX or Windows); this file has the policy and the messages.
 */
#include "outdir.h"

#include "memguard.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define LOCK_TAG "unet-train "

/* ---- creating and removing the folder ------------------------------------------ */

/* Removes the last `made` components of path, deepest first, each only if
 * it is still empty (rmdir refuses otherwise: nothing of the user's goes). */
static void unmake(const char *path, int made)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (int i = 0; i < made; i++) {
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = '\0'; /* "runs/a/" */
        if (rmdir(tmp) != 0) return;
        char *slash = strrchr(tmp, '/');
        if (!slash || slash == tmp) return;
        *slash = '\0';
    }
}

int outdir_make(out_dir *d, const char *flag, const char *path, char *err, size_t len)
{
    d->made = 0;
    d->lock_fd = -1;
    if ((size_t)snprintf(d->path, sizeof d->path, "%s", path) >= sizeof d->path) {
        snprintf(err, len, "%s: path too long (at most %zu bytes)", flag, sizeof d->path - 1);
        return MG_EINVAL;
    }
    char tmp[sizeof d->path];
    memcpy(tmp, d->path, sizeof tmp);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (unet_mkdir(tmp) == 0) {
            d->made++;
        } else if (errno != EEXIST) {
            snprintf(err, len, "%s %s: cannot create %s: %s", flag, path, tmp, strerror(errno));
            char *slash = strrchr(tmp, '/'); /* what was made ends at the parent */
            if (slash && slash != tmp) {
                *slash = '\0';
                unmake(tmp, d->made);
            }
            d->made = 0;
            return MG_EPERM;
        }
        *p = c;
        if (c == '\0') break;
    }
    struct stat sb;
    if (stat(d->path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, len, "%s %s: %s", flag, path, strerror(ENOTDIR));
        return MG_EINVAL;
    }
    return 0;
}

/* ---- the lock ------------------------------------------------------------------ */

/* The pid a lock file names, or 0. */
static long lock_holder(int fd)
{
    char buf[64];
    long n = unet_pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return strncmp(buf, LOCK_TAG, strlen(LOCK_TAG)) == 0 ? atol(buf + strlen(LOCK_TAG)) : 0;
}

/* Whether the lock file is ours to use: empty (a run killed right after
 * creating it) or "unet-train PID". */
static bool lock_is_ours(int fd)
{
    char buf[16];
    long n = unet_pread(fd, buf, strlen(LOCK_TAG), 0);
    return n == 0 || (n == (long)strlen(LOCK_TAG) && memcmp(buf, LOCK_TAG, (size_t)n) == 0);
}

/* Whether fd is still the file at path: a run that ends unlinks its .lock
 * while holding it, so a lock taken on the unlinked file must be retried. */
static bool same_file(int fd, const char *path)
{
    unet_file_id a, b;
    return unet_file_id_fd(fd, &a) == 0 && unet_file_id_of(path, false, &b) == 0 &&
           unet_file_id_eq(&a, &b);
}

/* Gives up an attempt: closes fd, returns the error. */
static int lock_fail(int fd)
{
    if (fd >= 0) close(fd);
    return MG_EPERM;
}

/* One attempt: 0 locked, 1 retry (lost a race with an ending run), or an
 * error. */
static int try_lock(out_dir *d, const char *lp, char *err, size_t len)
{
    int fd = unet_open_rw(lp);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            snprintf(err, len, "--out %s: its .lock is a symbolic link; move it away", d->path);
        else if (e == EACCES || e == EPERM || e == EROFS)
            snprintf(err, len, "--out %s: not writable: %s", d->path, strerror(e));
        else
            snprintf(err, len, "--out %s: cannot create its .lock: %s", d->path, strerror(e));
        return lock_fail(fd);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, len, "--out %s: its .lock is not a regular file; move it away", d->path);
        return lock_fail(fd);
    }
    if (unet_try_lock(fd) != 0) {
        if (errno != EWOULDBLOCK) {
            snprintf(err, len, "--out %s: cannot lock its .lock: %s", d->path, strerror(errno));
            return lock_fail(fd);
        }
        long pid = lock_holder(fd);
        char who[48] = "";
        if (pid > 0) snprintf(who, sizeof who, " (pid %ld)", pid);
        snprintf(err, len, "--out %s: in use by another unet-train%s; wait for it to end or "
                 "choose another --out", d->path, who);
        return lock_fail(fd);
    }
    if (!same_file(fd, lp)) {
        close(fd);
        return 1;
    }
    if (!lock_is_ours(fd)) {
        snprintf(err, len, "--out %s: its .lock holds something other than unet-train's lock; "
                 "move it away", d->path);
        return lock_fail(fd);
    }
    char line[48];
    int n = snprintf(line, sizeof line, LOCK_TAG "%ld\n", unet_pid());
    if (unet_rewrite(fd, line, (size_t)n) != 0) {
        snprintf(err, len, "--out %s: cannot write its .lock: %s", d->path, strerror(errno));
        return lock_fail(fd);
    }
    d->lock_fd = fd;
    return 0;
}

static int take_lock(out_dir *d, char *err, size_t len)
{
    char lp[1100];
    snprintf(lp, sizeof lp, "%s/.lock", d->path);
    for (int i = 0; i < 100; i++) {
        int rc = try_lock(d, lp, err, len);
        if (rc <= 0) return rc;
    }
    snprintf(err, len, "--out %s: its .lock keeps changing; is another unet-train starting?",
             d->path);
    return MG_EPERM;
}

static void drop_lock(out_dir *d)
{
    if (d->lock_fd < 0) return;
    char lp[1100];
    snprintf(lp, sizeof lp, "%s/.lock", d->path);
    if (same_file(d->lock_fd, lp)) unlink(lp); /* still held: no one else can have it */
    close(d->lock_fd);
    d->lock_fd = -1;
}

/* ---- checks and temporaries ------------------------------------------------------ */

/* A file can be created, written and removed in the folder. */
static int write_test(const out_dir *d, char *err, size_t len)
{
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/.unet-train-write-test.%ld", d->path, unet_pid());
    int fd = unet_create_new(probe);
    if (fd < 0 || write(fd, "ok\n", 3) != 3 || close(fd) != 0) {
        int e = errno;
        if (fd >= 0) unlink(probe);
        snprintf(err, len, "--out %s: not writable: %s", d->path, strerror(e));
        return MG_EPERM;
    }
    unlink(probe);
    return 0;
}

/* Room for two checkpoints (the new one is written next to the old one). */
static int room_test(const out_dir *d, uint64_t ckpt_bytes, char *err, size_t len)
{
    uint64_t avail;
    if (unet_disk_free(d->path, &avail) != 0) return 0;
    if (avail >= 2 * ckpt_bytes + (16u << 20)) return 0;
    snprintf(err, len, "--out %s: %.1f MiB free, a checkpoint needs %.1f MiB (room for two plus "
             "16 MiB is required)", d->path, (double)avail / MIB, (double)ckpt_bytes / MIB);
    return MG_ENOSPC;
}

bool outdir_temp_name(const char *name, long *pid)
{
    const char *t = strstr(name, ".pth.tmp.");
    const char *p = t && t != name ? t + strlen(".pth.tmp.") : NULL;
    if (strncmp(name, "curves.svg.tmp.", strlen("curves.svg.tmp.")) == 0)
        p = name + strlen("curves.svg.tmp.");
    if (!p) return false;
    long v = 0;
    int n = 0;
    for (; *p >= '0' && *p <= '9' && n < 10; p++, n++) v = v * 10 + (*p - '0');
    if (*p || n == 0 || v <= 0 || v > 0x7fffffffL) return false;
    *pid = v;
    return true;
}

/* Removes NAME.pth.tmp.PID and curves.svg.tmp.PID regular files whose PID
 * is gone: a save killed half-way. A live PID's temporary may be a save in
 * progress. */
static void remove_dead_temps(const out_dir *d)
{
    DIR *dir = opendir(d->path);
    if (!dir) return;
    struct dirent *e;
    while ((e = readdir(dir))) {
        long pid;
        if (!outdir_temp_name(e->d_name, &pid) || pid == unet_pid()) continue;
        if (unet_pid_gone(pid)) unet_remove_file_at(d->path, e->d_name);
    }
    closedir(dir);
}

int outdir_open_run(out_dir *d, const char *path, uint64_t ckpt_bytes, char *err, size_t len)
{
    int rc = outdir_make(d, "--out", path, err, len);
    if (rc == 0) rc = take_lock(d, err, len);
    if (rc == 0) rc = write_test(d, err, len);
    if (rc == 0) rc = room_test(d, ckpt_bytes, err, len);
    if (rc == 0) remove_dead_temps(d);
    return rc;
}

void outdir_close(out_dir *d, bool failed)
{
    drop_lock(d);
    if (failed) unmake(d->path, d->made);
    d->made = 0;
}
