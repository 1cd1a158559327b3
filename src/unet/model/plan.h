/* SPDX-License-Identifier: MIT */
/*
 * plan.h: the model's own interface between its files, for model.c: the
 * parameter table and the weights' first values (params.c), and the
 * arena's layout (plan.c). Nothing outside model/ includes it; model.h is
 * the model's public face. Not here: allocation (model.c asks the
 * backend), the backend's own layout of a tensor (act_floats).
 */
#ifndef UNET_PLAN_H
#define UNET_PLAN_H

#include "model.h"

/* Channels of level `level`: base * 2^level. */
static inline int unet_level_ch(const unet_cfg *c, int level) { return c->base << level; }

/* Fills m->p, the indices of each block's tensors, m->ntrain and the
 * plan's params_floats, train_floats and ncounts from m->cfg. */
void unet_table_build(unet *m);

/* Writes PyTorch's initial values of every parameter and BN buffer into
 * host arrays laid out like m->params (params_floats, zeroed by the
 * caller) and m->counts (ncounts). */
void unet_table_init(const unet *m, uint64_t seed, float *params, int64_t *counts);

/* Lays out every region of the arena at `arena` and of the host staging
 * at `staging` (unused when m->be is host-visible: the staging is then the
 * arena's NCHW edges) and sets m's pointers and m->plan's sizes; with
 * NULLs it only measures (the pointers are then meaningless). Needs the
 * table, m->be, the batch and the image size. */
void unet_layout(unet *m, char *arena, char *staging);

#endif /* UNET_PLAN_H */
