/* SPDX-License-Identifier: MIT */
/*
 * progress.h: the training loop's progress display on stdout: a bar
 * redrawn in place on a terminal (phase, epoch, batches, mean loss,
 * images per second, time left), or on a pipe or file a plain line every
 * 10 batches and at a phase's last batch, flushed at once so `tail -f`
 * shows it. Times come from one monotonic clock, progress_now_s.
 *
 * Not here: the per-epoch result line and the start-up header (train.c),
 * the memory guard's lines (guard.c).
 */
#ifndef UNET_PROGRESS_H
#define UNET_PROGRESS_H

#include <stdbool.h>

typedef struct progress {
    bool bar;   /* a redrawn bar, else plain lines */
    int epochs; /* the run's epochs, for "epoch E/N" */
} progress;

/* mode: 1 a bar, 0 lines, -1 a bar when stdout is a terminal. */
progress progress_make(int mode, int epochs);

/* Seconds on the monotonic clock (the rates and the epochs' times). */
double progress_now_s(void);

/* Shows batch `done` of `total` of a phase ("train", "val") of epoch
 * `epoch` (0-based): `loss` the mean so far, `imgs` the images since
 * `t0` (progress_now_s at the phase's start). */
void progress_show(const progress *p, const char *phase, int epoch, int done, int total,
                   double loss, double imgs, double t0);

/* Ends a phase: a bar is wiped, so the next line starts clean. */
void progress_end(const progress *p);

#endif /* UNET_PROGRESS_H */
