/* SPDX-License-Identifier: MIT */
/*
 * stopfile.c: the files of `memguard run`'s protocol on the supervisor's
 * side: where the stop file and the acknowledgement live, writing the stop
 * file, reading the acknowledgement, and removing what memguard made. The
 * formats are memguard.h's (MG_STOP_FILE_HEADER); the trainer's side is
 * src/lib/stop.c.
 *
 * By default both live in a private folder made with mkdtemp (mode 0700)
 * under $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp, so no other user can
 * plant, replace or read them, and two runs never share them. With
 * --stop-file PATH they are PATH and PATH.ack: an existing path there is
 * refused unless it is a regular file of ours holding a stop request (or
 * an acknowledgement) that an earlier memguard left behind, so a typo such
 * as `--stop-file train.py` never deletes the script. Every file is
 * created O_EXCL (mkostemp) and renamed into place, so no symlink is ever
 * followed. It never signals or decides anything: supervise.c does.
 */
#define _GNU_SOURCE /* mkostemp */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether path holds a leftover of ours: a regular file (not a link), our
 * user's, starting with the stop file's header or, for an ack, an
 * absolute path. */
static bool is_our_leftover(const char *path, bool ack)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return false;
    struct stat st;
    char head[64] = "";
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
              st.st_size < 8192 && read(fd, head, sizeof head - 1) >= 0;
    close(fd);
    if (!ok) return false;
    if (ack) return head[0] == '/';
    size_t hl = strlen(MG_STOP_FILE_HEADER);
    return strncmp(head, MG_STOP_FILE_HEADER, hl) == 0 && head[hl] == '\n';
}

/* Makes sure nothing is at path: removes a leftover of ours, refuses
 * anything else. Returns 0 or the exit status after one line. */
static int clear_path(const char *flag_value, const char *path, bool ack)
{
    struct stat st;
    if (lstat(path, &st) != 0 && errno == ENOENT) return 0;
    if (!is_our_leftover(path, ack))
        return cli_usage_error("--stop-file '%s': %s exists and is not %s memguard left "
                               "behind; name a path that does not exist",
                               flag_value, path, ack ? "an acknowledgement" : "a stop file");
    if (unlink(path) != 0 && errno != ENOENT)
        return cli_usage_error("--stop-file '%s': cannot remove the stale %s: %s", flag_value,
                               path, strerror(errno));
    if (lstat(path, &st) == 0 || errno != ENOENT)
        return cli_usage_error("--stop-file '%s': %s is still there after removing it",
                               flag_value, path);
    return 0;
}

static int user_paths(stop_paths *p, const char *user)
{
    if (!*user) return cli_usage_error("--stop-file '': expected a path");
    if (snprintf(p->stop, sizeof p->stop, "%s", user) >= (int)sizeof p->stop ||
        snprintf(p->ack, sizeof p->ack, "%s.ack", user) >= (int)sizeof p->ack)
        return cli_usage_error("--stop-file: path too long (at most %d bytes)", PATH_MAX - 8);
    size_t n = strlen(user);
    if (user[n - 1] == '/')
        return cli_usage_error("--stop-file '%s': expected a file name, not a folder", user);
    int rc = clear_path(user, p->stop, false);
    return rc ? rc : clear_path(user, p->ack, true);
}

/* The first usable base folder: $XDG_RUNTIME_DIR, $TMPDIR, /tmp. */
static const char *base_dir(void)
{
    const char *cand[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        struct stat st;
        if (cand[i] && cand[i][0] == '/' && stat(cand[i], &st) == 0 && S_ISDIR(st.st_mode) &&
            access(cand[i], W_OK | X_OK) == 0 && strlen(cand[i]) < PATH_MAX - 64)
            return cand[i];
    }
    return NULL;
}

int stop_paths_init(stop_paths *p, const char *user_path)
{
    memset(p, 0, sizeof *p);
    if (user_path) return user_paths(p, user_path);
    const char *base = base_dir();
    if (!base) {
        fprintf(stderr, "memguard: no folder for the stop file: $XDG_RUNTIME_DIR, $TMPDIR "
                        "and /tmp are not writable folders (use --stop-file PATH)\n");
        return MG_EXIT_ERROR;
    }
    snprintf(p->dir, sizeof p->dir, "%s/memguard-XXXXXX", base);
    if (!mkdtemp(p->dir)) {
        fprintf(stderr, "memguard: cannot create a private folder in %s: %s\n", base,
                strerror(errno));
        return MG_EXIT_ERROR;
    }
    p->dir_made = true;
    /* base_dir() keeps the folder's name 64 bytes short of PATH_MAX. */
    if (snprintf(p->stop, sizeof p->stop, "%.*s/stop", PATH_MAX - 64, p->dir) < 0 ||
        snprintf(p->ack, sizeof p->ack, "%.*s/ack", PATH_MAX - 64, p->dir) < 0)
        return MG_EXIT_ERROR;
    return 0;
}

int stop_file_write(stop_paths *p, const char *reason)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", p->stop);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -errno;
    char text[600];
    int n = snprintf(text, sizeof text, "%s\n%s\n", MG_STOP_FILE_HEADER, reason);
    if (n >= (int)sizeof text) n = (int)sizeof text - 1;
    int e = 0;
    if (fchmod(fd, 0644) != 0 || write(fd, text, (size_t)n) != n) e = errno ? errno : EIO;
    if (close(fd) != 0 && !e) e = errno;
    if (!e && rename(tmp, p->stop) != 0) e = errno;
    if (e) {
        unlink(tmp);
        return -e;
    }
    p->stop_made = true;
    return 0;
}

bool stop_ack_read(const stop_paths *p, char *ckpt, size_t len)
{
    int fd = open(p->ack, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return false;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, ckpt, len - 1) : -1;
    close(fd);
    if (n <= 0) return false;
    ckpt[n] = '\0';
    ckpt[strcspn(ckpt, "\n")] = '\0';
    return true;
}

/* Temporaries a killed trainer left in our private folder ("ack.tmp.PID"). */
static void remove_ack_temporaries(const stop_paths *p)
{
    DIR *d = opendir(p->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "ack.tmp.", 8) == 0) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

void stop_paths_cleanup(stop_paths *p)
{
    if (p->stop_made) unlink(p->stop);
    if (p->dir_made) remove_ack_temporaries(p);
    /* The acknowledgement is the trainer's, made on our request: ours to
     * remove too, but only as the file we asked for. */
    if (is_our_leftover(p->ack, true)) unlink(p->ack);
    if (p->dir_made && rmdir(p->dir) != 0 && errno != ENOENT)
        fprintf(stderr, "memguard: leaving %s: %s\n", p->dir, strerror(errno));
}
