/* SPDX-License-Identifier: MIT */
/*
 * params.c: the UNet's parameter table, in PyTorch's state_dict names,
 * order and shapes (tests/py/unet_ref.py registers its modules in this
 * order), and the values PyTorch's default initialisation gives them. It
 * knows nothing of where the tensors live: offsets here are into flat
 * arrays, which plan.c places in the arena.
 */
#include "plan.h"

#include "rng.h"

#include <math.h>
#include <stdio.h>

/* ---- the table ----------------------------------------------------------------- */

static int add_param(unet *m, const char *name, pkind kind, int ndim, int d0, int d1, int d2,
                     int d3, size_t *float_off, int *count_off, int *trainable)
{
    param *p = &m->p[m->nparams];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    p->dims[0] = d0;
    p->dims[1] = d1;
    p->dims[2] = d2;
    p->dims[3] = d3;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->numel *= (size_t)p->dims[i];
    if (kind == PARAM_BN_COUNT) {
        p->off = (size_t)(*count_off)++;
        p->trainable = -1;
    } else {
        p->off = *float_off;
        *float_off += p->numel;
        bool buffer = kind == PARAM_BN_MEAN || kind == PARAM_BN_VAR;
        p->trainable = buffer ? -1 : (*trainable)++;
    }
    return m->nparams++;
}

static void add_block(unet *m, block_params *bp, const char *prefix, int cin, int cout,
                      size_t *fo, int *co, int *tr)
{
    char n[40];
#define BLOCK_PARAM(suffix, kind, nd, a, b, c, d)                                                   \
    (snprintf(n, sizeof n, "%s.%s", prefix, suffix),                                      \
     add_param(m, n, kind, nd, a, b, c, d, fo, co, tr))
    bp->w1 = BLOCK_PARAM("0.weight", PARAM_CONV, 4, cout, cin, 3, 3);
    bp->g1 = BLOCK_PARAM("1.weight", PARAM_BN_W, 1, cout, 0, 0, 0);
    bp->b1 = BLOCK_PARAM("1.bias", PARAM_BN_B, 1, cout, 0, 0, 0);
    bp->m1 = BLOCK_PARAM("1.running_mean", PARAM_BN_MEAN, 1, cout, 0, 0, 0);
    bp->v1 = BLOCK_PARAM("1.running_var", PARAM_BN_VAR, 1, cout, 0, 0, 0);
    bp->n1 = BLOCK_PARAM("1.num_batches_tracked", PARAM_BN_COUNT, 0, 0, 0, 0, 0);
    bp->w2 = BLOCK_PARAM("3.weight", PARAM_CONV, 4, cout, cout, 3, 3);
    bp->g2 = BLOCK_PARAM("4.weight", PARAM_BN_W, 1, cout, 0, 0, 0);
    bp->b2 = BLOCK_PARAM("4.bias", PARAM_BN_B, 1, cout, 0, 0, 0);
    bp->m2 = BLOCK_PARAM("4.running_mean", PARAM_BN_MEAN, 1, cout, 0, 0, 0);
    bp->v2 = BLOCK_PARAM("4.running_var", PARAM_BN_VAR, 1, cout, 0, 0, 0);
    bp->n2 = BLOCK_PARAM("4.num_batches_tracked", PARAM_BN_COUNT, 0, 0, 0, 0, 0);
#undef BLOCK_PARAM
}

/* state_dict order: enc.*, bottleneck.*, up.*, dec.*, out.* (the modules'
 * registration order in unet_ref.py); trainable order is the same minus
 * the buffers, which is model.parameters() order. */
void unet_table_build(unet *m)
{
    const unet_cfg *c = &m->cfg;
    size_t fo = 0;
    int co = 0, tr = 0;
    char pre[32], n[40];
    m->nparams = 0;
    for (int i = 0; i < c->depth; i++) {
        snprintf(pre, sizeof pre, "enc.%d", i);
        add_block(m, &m->enc_p[i], pre, i ? unet_level_ch(c, i - 1) : c->in_ch, unet_level_ch(c, i), &fo, &co,
                  &tr);
    }
    add_block(m, &m->bott_p, "bottleneck", unet_level_ch(c, c->depth - 1), unet_level_ch(c, c->depth), &fo,
              &co, &tr);
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        snprintf(n, sizeof n, "up.%d.weight", j);
        m->up_w[j] = add_param(m, n, PARAM_UP_W, 4, unet_level_ch(c, i + 1), unet_level_ch(c, i), 2, 2, &fo, &co,
                               &tr);
        snprintf(n, sizeof n, "up.%d.bias", j);
        m->up_b[j] = add_param(m, n, PARAM_UP_B, 1, unet_level_ch(c, i), 0, 0, 0, &fo, &co, &tr);
    }
    for (int j = 0; j < c->depth; j++) {
        int i = c->depth - 1 - j;
        snprintf(pre, sizeof pre, "dec.%d", j);
        add_block(m, &m->dec_p[j], pre, 2 * unet_level_ch(c, i), unet_level_ch(c, i), &fo, &co, &tr);
    }
    m->out_w = add_param(m, "out.weight", PARAM_OUT_W, 4, 1, unet_level_ch(c, 0), 1, 1, &fo, &co, &tr);
    m->out_b = add_param(m, "out.bias", PARAM_OUT_B, 1, 1, 0, 0, 0, &fo, &co, &tr);
    m->ntrain = tr;
    m->plan.params_floats = fo;
    m->plan.ncounts = co;
    size_t t = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->p[i].trainable >= 0) t += m->p[i].numel;
    m->plan.train_floats = t;
}

/* ---- initial values ------------------------------------------------------------- */

/* PyTorch's default init: kaiming_uniform_(a=sqrt(5)) makes the bound
 * 1/sqrt(fan_in) for weights and biases alike; fan_in is dims[1] * kernel
 * area (for ConvTranspose2d that is dims[1] = out channels, as torch's
 * _calculate_fan_in_and_fan_out reads it). */
void unet_table_init(const unet *m, uint64_t seed, float *params, int64_t *counts)
{
    unet_rng r;
    unet_rng_seed(&r, seed);
    for (int i = 0; i < m->nparams; i++) {
        const param *p = &m->p[i];
        float *d = p->kind == PARAM_BN_COUNT ? NULL : params + p->off;
        switch (p->kind) {
        case PARAM_CONV: case PARAM_UP_W: case PARAM_OUT_W: case PARAM_UP_B: case PARAM_OUT_B: {
            const param *wp = p->kind == PARAM_UP_B ? &m->p[i - 1]
                            : p->kind == PARAM_OUT_B ? &m->p[i - 1] : p;
            double fan_in = (double)wp->dims[1] * wp->dims[2] * wp->dims[3];
            double bound = 1.0 / sqrt(fan_in);
            for (size_t k = 0; k < p->numel; k++)
                d[k] = (float)((2.0 * unet_rng_uniform(&r) - 1.0) * bound);
            break;
        }
        case PARAM_BN_W: case PARAM_BN_VAR:
            for (size_t k = 0; k < p->numel; k++) d[k] = 1.0f;
            break;
        case PARAM_BN_B: case PARAM_BN_MEAN:
            break; /* the caller zeroed them */
        case PARAM_BN_COUNT:
            counts[p->off] = 0;
            break;
        }
    }
}
