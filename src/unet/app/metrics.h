/* SPDX-License-Identifier: MIT */
/*
 * metrics.h: OUT/metrics.csv, one row per completed epoch, kept in step
 * with the checkpoints: a row is appended only after its epoch's
 * checkpoint is on disk, and a run that starts after E completed epochs
 * (0 for a fresh run) first cuts the file back to rows 1..E, so a crash
 * and a resume never repeat or skip an epoch.
 *
 * Not here: the values themselves (train.c formats the row) and any
 * other file of OUT.
 */
#ifndef UNET_METRICS_H
#define UNET_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define METRICS_HEADER                                                                     \
    "epoch,train_loss,train_bce,train_dice_loss,val_loss,val_dice,val_iou,"                \
    "train_images_per_s,epoch_seconds"

/* Opens OUT/metrics.csv (created with the header when missing; a symbolic
 * link, a FIFO or a file whose first line is not the header is refused,
 * never written) for a run that continues after `epoch` completed epochs:
 * keeps the header and the complete rows 1, 2, ... up to `epoch` and cuts
 * the rest (rows of epochs the resume redoes, a torn last line). When row
 * `epoch` itself is missing (a crash between the checkpoint and its row)
 * and `row` (the checkpoint's copy, may be "") is it, row is appended.
 * Returns the stream positioned at the end, or NULL with one line in err. */
FILE *metrics_open(const char *out, int64_t epoch, const char *row, char *err, size_t len);

/* Appends row and a newline and flushes. 0, or -1 with errno set. */
int metrics_append(FILE *f, const char *row);

#endif /* UNET_METRICS_H */
