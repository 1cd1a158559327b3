/* SPDX-License-Identifier: MIT */
/*
 * shrink.h: unet-train --on-memory shrink. At the stop threshold the loop
 * writes emergency_epochN.pth as for a stop; then, instead of exiting 75,
 * it goes on in the same process at a smaller batch: the next row down
 * of the seed's table (8 -> 6 -> 4 -> 2 -> 1), or the largest batch whose
 * memory plan fits below the RAM warn threshold now, whichever is
 * smaller. The arena is freed and laid out again for that batch, and the
 * weights, BatchNorm's counters and Adam's state come back from the
 * emergency checkpoint just written, through the same code as --resume,
 * so what follows is bitwise the run `unet-train --resume
 * emergency_epochN.pth --batch B` would give (the loader's position and
 * the epoch's sums stay in the trainer: they are the checkpoint's).
 *
 * Not here: when to stop (guard.c), the save and the stop itself, the
 * loaders and the loop (train.c), the plan against RAM (batch_fit.c).
 */
#ifndef UNET_SHRINK_H
#define UNET_SHRINK_H

#include "backend.h"
#include "ckpt.h"
#include "guard.h"
#include "run_state.h"

#include <stdbool.h>
#include <stddef.h>

/* The next row of the seed's table below `batch`: 8, 6, 4, 2, 1 (a batch
 * between rows goes to the next row below it: 12 -> 8, 5 -> 4, 3 -> 2);
 * 0 for batch 1. */
int shrink_table_next(int batch);

/* Frees the model and the checkpoint writer (which points into it), picks
 * the batch to go on at (the smaller of shrink_table_next and
 * batch_fit_largest, measured now that the arena is gone), and builds
 * both again at that batch from the checkpoint `ckpt`. Returns the new
 * batch (c->batch is set to it), or 0 with one line in err when there is
 * none or it cannot be built; *m and *ck are then NULL and the run must
 * stop (ckpt is a good checkpoint). */
int shrink_model(unet **m, ckpt_writer **ck, run_cfg *c, const unet_backend *be,
                 const guard_opts *go, const char *ckpt, char *err, size_t len);

/* Where a shrink goes on from, for the line and the log. */
typedef struct shrink_at {
    int epoch;           /* 1-based, the epoch in progress */
    int sample;          /* training samples of it already done */
    int samples;         /* training samples per epoch */
    int from, to;        /* batch sizes */
    const char *ckpt;    /* the emergency checkpoint's path */
    const char *reason;  /* guard_reason's line */
} shrink_at;

/* The seed-style line on stdout, "[memguard] batch 8 -> 6: continuing
 * from epoch 2, sample 96 (emergency_epoch2.pth saved)", after the reason,
 * and one row in OUT/shrinks.csv (created with its header; a link or
 * anything but a regular file there is refused, reported on stderr, and
 * training goes on). */
void shrink_report(const char *out, const shrink_at *at);

/* A fresh run (not --resume) empties OUT/shrinks.csv, as it starts
 * metrics.csv anew, so the rows and curves.svg's marks are this run's: a
 * regular file only (a link or anything else there is left alone), and a
 * failure is said on stderr. */
void shrink_forget(const char *out);

#endif /* UNET_SHRINK_H */
