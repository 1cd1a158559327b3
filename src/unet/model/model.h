/* SPDX-License-Identifier: MIT */
/*
 * model.h: the UNet itself: its parameter table (PyTorch's state_dict
 * names, order and shapes, so checkpoints map one to one; params.c), the
 * memory plan that says how many bytes a batch size needs before anything
 * is allocated (plan.c), and the forward / backward passes (model.c),
 * which run every op through the backend given to unet_create (backend.h).
 *
 * Model (tests/py/unet_ref.py is the PyTorch twin): `depth` levels of
 * blocks (3x3 conv without bias, BatchNorm2d, ReLU) x 2 with channels
 * base * 2^i; 2x2 max pool down; a bottleneck block; ConvTranspose2d(2,
 * stride 2, bias) up; concat [skip, up]; a decoder block; a 1x1 conv with
 * bias to one logit.
 *
 * Memory: one arena from the backend, laid out by the plan: the
 * parameters with their gradients and Adam moments and BN's counters, the
 * activations the backward pass needs (pre-BN outputs; ReLU outputs are
 * recomputed), the per-level gradients of the skip connections, three
 * working buffers, the kernels' scratch, and the batch, targets and
 * logits in NCHW. The host reaches the arena only through the backend:
 * the data goes in through the host staging buffers (unet_input_host,
 * unet_target_host), the logits come out through unet_logits_host. When
 * the backend is host-visible the staging buffers are the arena's own.
 * Nothing is allocated after unet_create().
 *
 * It does not load data, compute the loss's inputs, save checkpoints or
 * print: the application (app/) drives it.
 */
#ifndef UNET_MODEL_H
#define UNET_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#define UNET_MAX_DEPTH 6
/* nn.BatchNorm2d's defaults, which the reference module keeps. */
#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1
/* Blocks: depth encoders + bottleneck + depth decoders; each block has
 * 2 convs and 2 BNs (5 entries each), plus 2 per up-conv and 2 for out. */
#define UNET_MAX_PARAMS ((2 * UNET_MAX_DEPTH + 1) * 12 + 2 * UNET_MAX_DEPTH + 2)

typedef struct unet_cfg {
    int in_ch; /* 1 or 3 */
    int base;  /* channels of level 0; a multiple of 8 */
    int depth; /* 1 .. UNET_MAX_DEPTH */
} unet_cfg;

typedef enum pkind {
    PARAM_CONV,      /* 3x3 conv weight (Co,Ci,3,3) */
    PARAM_BN_W,      /* BatchNorm weight (gamma) */
    PARAM_BN_B,      /* BatchNorm bias (beta) */
    PARAM_BN_MEAN,   /* running_mean (buffer) */
    PARAM_BN_VAR,    /* running_var (buffer) */
    PARAM_BN_COUNT,  /* num_batches_tracked (int64 buffer, 0-d) */
    PARAM_UP_W,      /* ConvTranspose2d weight (Ci,Co,2,2) */
    PARAM_UP_B,      /* its bias */
    PARAM_OUT_W,     /* 1x1 conv weight (1,C,1,1) */
    PARAM_OUT_B      /* its bias (1) */
} pkind;

typedef struct param {
    char name[40];      /* state_dict key, e.g. "enc.0.1.running_mean" */
    pkind kind;
    int ndim;
    int dims[4];
    size_t numel;
    size_t off;         /* into unet.params (floats) or unet.counts (int64s) */
    int trainable;      /* index in model.parameters() order, -1: buffer */
} param;

/* One (conv, BN, ReLU) x 2 block. Indices into the parameter table. */
typedef struct block_params {
    int w1, g1, b1, m1, v1, n1;
    int w2, g2, b2, m2, v2, n2;
} block_params;

/* A block's saved activations: the pre-BN conv outputs a1, a2 and the
 * batch statistics BN's backward needs. The ReLU outputs are recomputed
 * from them when backward needs them (bn_relu_apply, bitwise the same as
 * the forward's), except an encoder's r2, the skip, which lives in its
 * concat buffer. Storing r1 and the decoder's r2 would cost a quarter of
 * all activation memory. */
typedef struct block_acts {
    shape s;            /* output shape (Co,B,H,W) */
    shape in;           /* input shape */
    const float *x;     /* input */
    float *a1, *a2;
    float *r2;          /* encoders: the skip half of cat; else NULL */
    float *mean1, *rstd1, *mean2, *rstd2; /* Co floats each */
} block_acts;

typedef struct unet_plan {
    size_t params_floats;  /* state_dict floats (params + BN buffers) */
    size_t train_floats;   /* trainable floats */
    int ncounts;           /* BN num_batches_tracked counters (int64) */
    size_t param_bytes;    /* params + grads + Adam m, v + the counters */
    size_t act_bytes;      /* activations kept for backward */
    size_t grad_bytes;     /* activation gradients (3 working buffers) */
    size_t scratch_bytes;  /* kernels' scratch, the largest of any op */
    size_t io_bytes;       /* the batch in NCHW, targets, logits */
    size_t total_bytes;    /* the arena */
    size_t staging_bytes;  /* host staging beside the arena: the batch,
                            * targets and logits; 0 when the backend is
                            * host-visible (they are the arena's own) */
} unet_plan;

typedef struct unet {
    unet_cfg cfg;
    const unet_backend *be;     /* every op and the activation layout */
    int batch, h, w;
    int nparams;
    param p[UNET_MAX_PARAMS];
    int ntrain;                 /* trainable tensors */
    unet_plan plan;

    /* The arena and every pointer into it, from here to loss_state
     * (backend memory: the host dereferences none of them unless
     * be->host_visible). */
    void *arena;                /* one allocation, from be->alloc */
    float *params;              /* state_dict floats, in state_dict order */
    float *grads;               /* same offsets as params */
    float *adam_m, *adam_v;     /* same offsets as params */
    int64_t *counts;            /* num_batches_tracked, plan.ncounts */
    int64_t adam_step;          /* optimizer steps taken (host) */

    block_params enc_p[UNET_MAX_DEPTH], bott_p, dec_p[UNET_MAX_DEPTH];
    int up_w[UNET_MAX_DEPTH], up_b[UNET_MAX_DEPTH], out_w, out_b;

    block_acts enc[UNET_MAX_DEPTH], bott, dec[UNET_MAX_DEPTH];
    float *x;                   /* input, blocked (in_ch,B,H,W) */
    float *cat[UNET_MAX_DEPTH]; /* [skip ; up], blocked (2 ch_i) */
    float *pool[UNET_MAX_DEPTH];/* max-pooled skips */
    float *logits;              /* blocked (1,B,H,W); aliases ga */
    float *dcat[UNET_MAX_DEPTH];/* gradients of cat (skip half kept):
                                 * dec[.].a1 and a2's memory (plan.c) */
    float *ga, *gb;             /* working gradient buffers */
    float *dlogits;             /* blocked (1,B,H,W); aliases gb */
    float *scratch;
    char *zero_lo, *zero_hi;    /* activations and their gradients: zeroed
                                 * again when the batch size changes, since
                                 * the borders move with the shape */
    int cur_batch;              /* batch the shapes are set for, -1: none */
    /* Edges of the model in NCHW (arena), for the loss and the staging. */
    float *in_nchw;             /* (B,in_ch,H,W) */
    float *target_nchw;         /* (B,1,H,W) */
    float *logits_nchw;         /* (B,1,H,W) */
    float *dlogits_nchw;        /* (B,1,H,W) */
    float *loss_state;          /* kept by the loss from forward to backward */
    /* SyncBatchNorm: the sum over the ranks of a data-parallel run that
     * BN's training forward and backward use (NULL: this process's batch
     * alone, the default; the trainer sets it for --sync-bn). */
    const unet_sum_hook *bn_sync;

    /* Host staging of the edges (use the unet_*_host calls): the arena's
     * own in_nchw, target_nchw and logits_nchw when be->host_visible,
     * else one be->alloc_host block of plan.staging_bytes. */
    float *in_host, *target_host, *logits_host;
    void *staging;              /* that block, NULL when host-visible */
} unet;

/* Checks a configuration and image size; fills msg (one line) on error.
 * Returns 0 or -1. */
int unet_check(const unet_cfg *cfg, int batch, int h, int w, char *msg, size_t msg_len);

/* Bytes that unet_create() will allocate on backend `be` for this batch
 * and image size (the arena's layout is the backend's), without
 * allocating anything. */
unet_plan unet_plan_for(const unet_cfg *cfg, int batch, int h, int w, const unet_backend *be);

/* Builds the parameter table, plans and allocates the arena on `be` (one
 * allocation, zeroed) and the host staging, and initialises the weights
 * as PyTorch does (kaiming-uniform a=sqrt(5) from `seed`; BN weight 1,
 * bias 0, running mean 0, var 1). Returns NULL with msg on a bad config
 * or no memory. */
unet *unet_create(const unet_cfg *cfg, int batch, int h, int w, uint64_t seed,
                  const unet_backend *be, char *msg, size_t msg_len);
void unet_destroy(unet *m);

/* The host staging of the next batch: the loader writes the images
 * (B,in_ch,H,W) and their masks (B,1,H,W) here; unet_forward and unet_loss
 * upload the first `batch` of them. */
float *unet_input_host(unet *m);
float *unet_target_host(unet *m);

/* The logits (batch,1,H,W) of the last forward pass, downloaded into the
 * host staging. Valid until the next forward. */
const float *unet_logits_host(unet *m, int batch);

/* Gives the activations and their gradients back to the backend
 * (be->discard; the CPU returns their pages at once). The parameters and
 * the optimiser state stay; the next forward sets the activations up
 * again. For the emergency stop, before its checkpoint. */
void unet_release_activations(unet *m);

/* Forward pass on the first `batch` images of the input staging (batch <=
 * m->batch) in training mode (batch statistics, running stats updated) or
 * eval mode (running stats). Leaves the logits in m->logits_nchw. */
void unet_forward(unet *m, int batch, bool train);

/* Backward pass from m->dlogits_nchw; overwrites m->grads. Must follow a
 * training-mode forward with the same batch. */
void unet_backward(unet *m, int batch);

/* The loss of m->logits_nchw against the target staging (uploaded here)
 * and its gradient into m->dlogits_nchw (BCE-with-logits + 1 - soft Dice).
 * *bce and *dice (may be NULL) get the parts. */
double unet_loss(unet *m, int batch, double *bce, double *dice);

/* A data-parallel rank's part of a step over `total` images, of which it
 * holds `batch`: after unet_loss, scales the loss gradient by batch /
 * total, so that the parameter gradients summed over the ranks are those
 * of one process's loss over all `total` images (the loss is a mean over
 * images). Nothing when total == batch. */
void unet_loss_share(unet *m, int batch, int total);

/* One Adam step over every trainable tensor (torch.optim.Adam semantics). */
void unet_adam(unet *m, double lr, double beta1, double beta2, double eps, double wd);

#endif /* UNET_MODEL_H */
