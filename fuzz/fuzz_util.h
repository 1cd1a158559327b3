/* SPDX-License-Identifier: MIT */
/*
 * fuzz_util.h: what the harnesses share. The code under test reads files
 * by path or descriptor, so a harness gets a private temporary folder
 * (mkdtemp under $TMPDIR, else /tmp) and writes the fuzzed bytes into
 * files there (each harness removes its own files; the folder itself goes
 * at exit). FZ_CHECK aborts with a message when a property the harness
 * checks does not hold, so libFuzzer reports it like a crash.
 *
 * Header-only (static inline functions) so each harness stays one .c file.
 */
#ifndef MG_FUZZ_UTIL_H
#define MG_FUZZ_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond,        \
                    __FILE__, __LINE__);                                     \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

static char fz_dir[4096];

static inline void fz_rmdir_at_exit(void)
{
    if (fz_dir[0]) rmdir(fz_dir);
}

/* The private folder of this process, made on the first call. */
static inline const char *fz_tmpdir(void)
{
    if (fz_dir[0]) return fz_dir;
    const char *t = getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/memguard-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_rmdir_at_exit);
    return fz_dir;
}

/* Writes len bytes to path (created or truncated); 0 or -1. */
static inline int fz_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return close(fd);
}

/* Replaces the whole content of an open descriptor with len bytes. */
static inline void fz_refill_fd(int fd, const void *data, size_t len)
{
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len)) {
        perror("fuzz: refill");
        abort();
    }
}

/* A NUL-terminated copy of data (free it). */
static inline char *fz_strndup(const unsigned char *data, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) abort();
    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

#endif /* MG_FUZZ_UTIL_H */
