/* SPDX-License-Identifier: MIT */
/*
 * run_state.h: a training run as the checkpoint keeps it: the settings it
 * was started with (run_cfg, the dict's "config") and where it stands
 * (run_state, the dict's "resume" and "epoch"). The application fills
 * them; ckpt.h writes and reads them.
 *
 * Not here: the ranges of the settings (settings.h), the checkpoint file
 * (ckpt.h).
 */
#ifndef UNET_RUN_STATE_H
#define UNET_RUN_STATE_H

#include <stdint.h>

#include "data.h"  /* UNET_LOADER_STATE_WORDS */
#include "model.h" /* unet_cfg */

/* The settings a run was started with, kept in "config". */
typedef struct run_cfg {
    unet_cfg model;
    int img_size;
    int batch;
    int epochs;
    double lr, beta1, beta2, eps, weight_decay;
    double val_split;
    uint64_t seed;
    int flip;
    int synthetic;          /* samples of the built-in set, 0 = a folder */
    char data[1024];        /* the data folder, "" for synthetic */
} run_cfg;

/* The longest metrics.csv line a checkpoint keeps, plus its NUL. */
#define UT_ROW_CAP 512

/* Where the run stands, beyond the weights and the optimiser. */
typedef struct run_state {
    int64_t epoch;          /* epochs completed */
    int64_t batch;          /* batches of the epoch in progress done */
    uint64_t loader[UNET_LOADER_STATE_WORDS];
    double best_dice;       /* best validation Dice so far, -1 if none */
    int64_t best_epoch;
    char kind[32];          /* "last", "best", "emergency" */
    /* The epoch in progress, so a resumed epoch reports the same means:
     * sums over its training batches so far. */
    double ep_loss, ep_bce, ep_dice, ep_seconds;
    int64_t ep_images;
    /* metrics.csv's line for epoch `epoch` (no newline), "" when none. */
    char metrics_row[UT_ROW_CAP];
} run_state;

#endif /* UNET_RUN_STATE_H */
