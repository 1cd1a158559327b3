/* SPDX-License-Identifier: MIT */
/*
 * outdir.h: the folder a job writes into (--out): created with its
 * missing parents (and only those taken away again when the job fails to
 * start), and for training also locked, checked for room and cleared of
 * temporaries that dead runs left.
 *
 * The lock: flock(2) on OUT/.lock (Windows: LockFileEx; sys.h), a file
 * that holds "unet-train PID". A second live run on one folder is refused;
 * a lock whose holder died (kill -9, TerminateProcess) is free again,
 * because the system drops the lock with its process.
 * The file is removed when the run ends. A .lock that is not ours (not a
 * regular file, a symbolic link, or other contents) is left alone and the
 * run refused.
 *
 * Nothing here follows a symbolic link inside OUT or removes a path that
 * unet-train did not create: the folders removed are the ones this job
 * made (and only when empty), the temporaries removed are
 * "NAME.pth.tmp.PID" and "curves.svg.tmp.PID" regular files whose PID no
 * longer exists.
 */
#ifndef UNET_OUTDIR_H
#define UNET_OUTDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct out_dir {
    char path[1024];
    int made;     /* trailing components of path this job created */
    int lock_fd;  /* the locked OUT/.lock, -1 when none */
} out_dir;

/* Creates path and its missing parents and checks it is a folder. Errors
 * (one line naming `flag`, e.g. "--out runs/a: cannot create runs: Permission
 * denied", "--out /etc/passwd: Not a directory") are usage errors. */
int outdir_make(out_dir *d, const char *flag, const char *path, char *err, size_t len);

/* Training's folder: outdir_make, the lock, a write test, room for two
 * checkpoints of ckpt_bytes plus 16 MiB, then removes dead runs'
 * temporaries. 0 or a negative MG_E* code with one line in err, e.g.
 *   "--out runs/a: in use by another unet-train (pid 4242); wait for it to
 *    end or choose another --out" */
int outdir_open_run(out_dir *d, const char *path, uint64_t ckpt_bytes, char *err, size_t len);

/* Ends the job's use of the folder: removes OUT/.lock and releases it,
 * and when `failed`, removes the folders outdir_make created if they are
 * still empty. Safe on a zeroed out_dir with lock_fd -1. */
void outdir_close(out_dir *d, bool failed);

/* Whether name is a temporary that mg_atomic_* leaves when its writer is
 * killed ("last.pth.tmp.4242", "curves.svg.tmp.4242"), with the writer's
 * pid. */
bool outdir_temp_name(const char *name, long *pid);

#endif /* UNET_OUTDIR_H */
