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
 *                 "epoch_dice_sum", "epoch_seconds", "epoch_images", and
 *                 "metrics_row": the metrics.csv line of epoch "epoch", so
 *                 a resume can restore a row a crash kept from the file)}
 * A bare state_dict (torch.save(model.state_dict())) and a dict with only
 * "model" load too, as weights without optimiser state.
 *
 * Not here: the run's settings and position themselves (run_state.h), the
 * file format (pth.h).
 */
#ifndef UNET_CKPT_H
#define UNET_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "run_state.h"

/* A checkpoint writer built once at start-up: the whole dict as a tree
 * whose scalars are updated in place and whose tensors point at the
 * model's own arrays (a host-visible backend) or at a host mirror of the
 * parameters, Adam's moments and BN's counters reserved here (any other:
 * ckpt_save downloads into it first), plus the scratch the file writer
 * needs. Saving then allocates nothing, which is what an emergency save
 * under memory pressure requires. Returns NULL with one line in err. */
typedef struct ckpt_writer ckpt_writer;
ckpt_writer *ckpt_writer_new(const unet *m, const run_cfg *cfg, char *err, size_t err_len);
void ckpt_writer_free(ckpt_writer *w);

/* Writes the checkpoint atomically (temporary, fsync, rename, fsync of the
 * folder) with the model's current weights, optimiser state and `st`.
 * Returns 0 or a negative MG_E* code with one line in err. */
int ckpt_save(ckpt_writer *w, const char *path, const run_state *st, char *err,
              size_t err_len);

/* ---- reading ------------------------------------------------------------ */

/* A checkpoint file read into memory and checked; see ckpt_open. */
typedef struct ckpt_file ckpt_file;

/* What a checkpoint says about itself, every value range-checked. */
typedef struct ckpt_info {
    unet_cfg model;   /* input channels, base width, depth of its weights */
    int img_size;     /* its config's img_size, 0 when it has none */
    bool has_run;     /* it has our "resume" dict: st is where the run stood */
    bool has_opt;     /* it has optimiser state (Adam moments) */
    run_state st;     /* zeroed, best_dice and best_epoch -1, unless has_run */
} ckpt_info;

/* Reads path (a regular file: a FIFO or a folder is refused, never
 * waited on) and checks what can be checked without a model: a UNet
 * state_dict (ours, a bare torch.save(model.state_dict()), or a dict
 * with "model"), every known "config" entry against the range of its
 * flag (settings.h) and against the weights' shapes, and, in our own
 * files, every value of "epoch" and "resume" (0 <= epoch <= 1000000, the
 * loader state 8 integers, ...) and the optimiser's step counts. Returns
 * 0 or a negative MG_E* code with one line in err, e.g.
 *   "PATH: epoch is -5, expected an integer from 0 to 1000000"
 *   "PATH: config.base is 'x', expected an integer from 8 to 256" */
int ckpt_open(const char *path, ckpt_file **out, ckpt_info *info, char *err, size_t err_len);

/* Loads the weights and BN buffers into m, whose configuration must be
 * info.model (otherwise one line names the first tensor that differs),
 * and the optimiser state when the file has one (else Adam starts from
 * zero). Nothing in m changes unless every tensor fits. */
int ckpt_apply(const ckpt_file *f, unet *m, char *err, size_t err_len);

/* Frees the file's memory. NULL is fine. */
void ckpt_close(ckpt_file *f);

#endif /* UNET_CKPT_H */
