/* SPDX-License-Identifier: MIT */
/*
 * sys.h: the few operating-system calls unet-train makes that POSIX and
 * Windows spell differently, behind one interface: posix/sys.c (Linux and
 * other POSIX systems) or win/sys.c (Windows, mingw-w64), picked by the
 * build. The callers (outdir.c, metrics.c, fileio.c, predict.c, folder.c,
 * image.c, model.c, pyval.c) hold the policy and every message; the two
 * files only translate.
 *
 * Conventions: functions that fail return -1 (or false/NULL) and leave an
 * errno value (ENOENT, EACCES, ELOOP, EWOULDBLOCK, ...: Windows errors are
 * mapped to the nearest one), so callers' messages read the same on both.
 * Paths are UTF-8: on Windows the programs run with the UTF-8 code page
 * (src/compat/utf8.manifest), so the CRT and the *A calls take them as they
 * are. Descriptors are C runtime descriptors opened in binary mode and not
 * inherited by child processes.
 *
 * Not here: reading and writing file contents (stdio), atomic replacement
 * (libmemguard's mg_atomic_*), threads (OpenMP, winpthreads on Windows),
 * the monotonic clock (clock_gettime: winpthreads has it), and the model's
 * arena (the CPU backend's own memory calls).
 */
#ifndef UNET_SYS_H
#define UNET_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#ifndef S_ISSOCK /* Windows: no sockets in the file system */
#define S_ISSOCK(m) 0
#endif

/* Creates a folder (mode 0755 where modes exist). 0, or -1 with errno
 * (EEXIST when something is there already). */
int unet_mkdir(const char *path);

/* Opens an existing file read-only without waiting on it (a FIFO with no
 * writer would block a POSIX open forever): a descriptor, or -1 with errno
 * (EISDIR for a folder). Links are followed: the user named the path. */
int unet_open_read(const char *path);

/* Makes a descriptor from unet_open_read block again. 0 or -1 with errno. */
int unet_fd_blocking(int fd);

/* Opens a file for reading and writing, creating it (0644) when missing,
 * without following a symbolic link at path (-1 with ELOOP), without
 * waiting on a FIFO. On Windows the file may still be renamed or removed
 * while open, as on POSIX. A descriptor or -1 with errno. */
int unet_open_rw(const char *path);

/* Creates a new file for writing (0644); -1 with EEXIST when anything is
 * at path already (a symbolic link included: it is not followed). */
int unet_create_new(const char *path);

/* Takes an exclusive lock on the whole open file without waiting: 0, or
 * -1 with errno EWOULDBLOCK when another process holds it. The system
 * drops it when the descriptor is closed or its process dies (kill -9,
 * TerminateProcess). It does not stop others from reading the file. */
int unet_try_lock(int fd);

/* Reads up to n bytes at offset off without moving anything others see:
 * the count (0 at the end), or -1 with errno. */
long unet_pread(int fd, void *buf, size_t n, uint64_t off);

/* Replaces the whole contents of the open file with buf[0..n): 0, or -1
 * with errno. */
int unet_rewrite(int fd, const void *buf, size_t n);

/* Which file a name is: device and file number (POSIX st_dev/st_ino,
 * Windows the volume serial number and file index), so two names, or a
 * name and a descriptor, can be compared. */
typedef struct unet_file_id {
    uint64_t dev, ino;
} unet_file_id;

/* The file at path, following a final symbolic link or not. 0 or -1. */
int unet_file_id_of(const char *path, bool follow, unet_file_id *id);
/* The file an open descriptor refers to. 0 or -1. */
int unet_file_id_fd(int fd, unet_file_id *id);
bool unet_file_id_eq(const unet_file_id *a, const unet_file_id *b);

/* What a directory entry is, without following a link at it. */
typedef enum {
    UNET_ENTRY_NONE,  /* nothing there (or it cannot be looked at) */
    UNET_ENTRY_FILE,  /* a regular file */
    UNET_ENTRY_DIR,   /* a folder */
    UNET_ENTRY_LINK,  /* a symbolic link (Windows: any reparse point) */
    UNET_ENTRY_OTHER  /* a FIFO, a device, a socket */
} unet_entry;
unet_entry unet_entry_kind(const char *path);

/* Removes dir/name if that entry is a regular file; a link, a folder or
 * anything else there is left alone (a link is never followed). 0 when
 * removed, -1 otherwise. */
int unet_remove_file_at(const char *dir, const char *name);

/* This process's id, and whether the process `pid` certainly no longer
 * exists (false when it exists or cannot be told: a temporary of a live
 * writer must never be removed). */
long unet_pid(void);
bool unet_pid_gone(long pid);

/* Bytes the calling user may still write on path's file system. 0 or -1. */
int unet_disk_free(const char *path, uint64_t *bytes);

/* strerror into the caller's buffer (safe on several threads at once, as
 * the data loader decodes): buf, holding the text or "errno N". */
const char *unet_strerror(int e, char *buf, size_t len);

/* Memory aligned to `align` (a power of two, at most 4096) bytes; free it
 * with unet_aligned_free only (Windows' aligned blocks are not malloc's). */
void *unet_aligned_alloc(size_t align, size_t n);
void unet_aligned_free(void *p);

#endif /* UNET_SYS_H */
