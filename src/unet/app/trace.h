/* SPDX-License-Identifier: MIT */
/*
 * trace.h: a test hook of unet-train. With UNET_TRAIN_TRACE=FILE in the
 * environment, every training batch appends one line to FILE:
 *   "EPOCH POSITION COUNT SAMPLE..."
 * the 1-based epoch, the position in that epoch's order of the batch's
 * first sample, how many samples it has, and their indices in the data
 * set. The tests use it to prove that every image of every epoch is seen
 * exactly once across stops, resumes and shrinks. It costs one write(2)
 * per batch and allocates nothing; without the variable it does nothing.
 *
 * Not here: anything a user needs (metrics.csv, shrinks.csv).
 */
#ifndef UNET_TRACE_H
#define UNET_TRACE_H

#include "data.h"

#include <stddef.h>

typedef struct trace {
    int fd; /* -1: off */
} trace;

/* Opens UNET_TRAIN_TRACE for appending (created if missing; a symbolic
 * link is not followed). Off (fd -1) when unset; -1 with one line in err
 * when set but unusable. */
int trace_open(trace *t, char *err, size_t len);
/* The batch of `count` samples the loader just handed out. */
void trace_batch(const trace *t, const unet_loader *l, int count);
void trace_close(trace *t);

#endif /* UNET_TRACE_H */
