/* SPDX-License-Identifier: MIT */
/*
 * posix.h: what the POSIX layer of libmemguard gives the platform probes
 * (linux/): whole-file reads through descriptors kept open, with POSIX's
 * ssize_t. The portable files never include it, so internal.h stays free
 * of POSIX types.
 */
#ifndef MG_POSIX_H
#define MG_POSIX_H

#include "internal.h"

#include <sys/types.h>

/* ---- files.c ----------------------------------------------------------- */

/* One pread from offset 0, for the files read on every sample: meminfo,
 * statm, PSI and the cgroup counters are "single show" seq files, which the
 * kernel renders whole and hands out in one read when the buffer is large
 * enough. Reading to EOF would cost a second, EOF-confirming pread (0.8-1
 * us here, 20 % of a meminfo read); this skips it. Returns the length
 * (buf NUL-terminated), or MG_EIO / MG_ESRCH (the process behind a
 * /proc/PID file has exited) / MG_ENOBUFS when the buffer filled up. */
ssize_t mg__pread_single(int fd, char *buf, size_t buf_len);

/* open(path, O_RDONLY | O_CLOEXEC), read it whole as above, close. Returns
 * the length or MG_ENOENT / MG_EPERM / MG_EIO / MG_ENOBUFS. */
ssize_t mg__read_file(const char *path, char *buf, size_t buf_len);

/* mg__read_file into a malloc'ed *buf that doubles (up to 16 MiB) until
 * the whole file fits: a children list of 1000 pids is about 6000 bytes
 * (probes.md 3.3), a busy host's mountinfo hundreds of KiB. Returns the
 * length, MG_ENOMEM, or mg__read_file's errors. */
ssize_t mg__read_file_grow(const char *path, char **buf, size_t *buf_len);

#endif /* MG_POSIX_H */
