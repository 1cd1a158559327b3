/* SPDX-License-Identifier: MIT */
/*
 * curves.h: OUT/curves.svg, the learning curves of a training run drawn
 * from its OUT/metrics.csv: train and validation loss in one panel,
 * validation Dice and IoU in another, epochs on x, the epoch of an
 * emergency stop as a labelled vertical line, and where --on-memory
 * shrink changed the batch (OUT/shrinks.csv) as a dashed one.
 *
 * Not here: metrics.csv itself (metrics.c writes it; this only reads it
 * back), and any drawing of memguard's own logs (that is memguard plot).
 */
#ifndef UNET_CURVES_H
#define UNET_CURVES_H

#include <stddef.h>

/* Reads OUT/metrics.csv (and OUT/shrinks.csv) and writes OUT/curves.svg atomically (a temporary
 * renamed over the name: a link there is replaced, never followed).
 * stop_epoch > 0 marks an emergency stop during that epoch (the run's
 * emergency_epochN.pth); 0 for none. Returns 0, or -1 with one line in
 * err. */
int curves_write(const char *out, int stop_epoch, char *err, size_t len);

#endif /* UNET_CURVES_H */
