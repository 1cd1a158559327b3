/* SPDX-License-Identifier: MIT */
/*
 * ckpt.h: the trainer's checkpoints: the model and its optimiser as a
 * PyTorch checkpoint dict (pth.h writes and reads the file format), plus
 * what an exact resume needs.
 *
 * Layout of the dict, so torch.load(path, weights_only=True) gives:
 *   "model":     OrderedDict, the state_dict of tests/py/unet_ref.py
 *   "optimizer": torch.optim.Adam's state_dict (state: step, exp_avg,
 *                exp_avg_sq per parameter; param_groups with lr, betas...)
 *   "epoch":     epochs completed
 *   "config":    {str: int / float / str / bool}, the run's settings
 *   "resume":    {"batch": batches of the current epoch done, "loader":
 *                 [8 ints: the data loader's RNG and position], "best_dice",
 *                 "best_epoch", "kind" ("last", "best", "emergency"), and the
 *                 epoch's running sums "epoch_loss_sum", "epoch_bce_sum",
 *                 "epoch_dice_sum", "epoch_seconds", "epoch_images"}
 * A bare state_dict (torch.save(model.state_dict())) and a dict with only
 * "model" load too, as weights without optimiser state.
 */
#ifndef UNET_CKPT_H
#define UNET_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "model.h"

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
} run_state;

/* A checkpoint writer built once at start-up: the whole dict as a tree
 * whose tensors point at the model's own arrays and whose scalars are
 * updated in place, plus the scratch the file writer needs. Saving then
 * allocates nothing, which is what an emergency save under memory
 * pressure requires. Returns NULL with one line in err. */
typedef struct ckpt_writer ckpt_writer;
ckpt_writer *ckpt_writer_new(const unet *m, const run_cfg *cfg, char *err, size_t err_len);
void ckpt_writer_free(ckpt_writer *w);

/* Writes the checkpoint atomically (temporary, fsync, rename, fsync of the
 * folder) with the model's current weights, optimiser state and `st`.
 * Returns 0 or a negative MG_E* code with one line in err. */
int ckpt_save(ckpt_writer *w, const char *path, const run_state *st, char *err,
              size_t err_len);

/* Reads the model configuration stored in a checkpoint's state_dict
 * (input channels, base width, depth), whatever wrote it. */
int ckpt_peek(const char *path, unet_cfg *model, char *err, size_t err_len);

/* Loads weights and BN buffers into m (whose configuration must match:
 * otherwise one line says what differs), the optimiser state when present
 * (*have_opt says so), and cfg / st when the file has them (*have_run).
 * Nothing in m changes unless the whole file is valid. */
int ckpt_load(const char *path, unet *m, run_cfg *cfg, run_state *st, int *have_opt,
              int *have_run, char *err, size_t err_len);

#endif /* UNET_CKPT_H */
