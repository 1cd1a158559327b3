/* SPDX-License-Identifier: MIT */
/*
 * tensor.c: the one computation on tensor.h's values that is not a
 * backend's: Adam's per-step scalars, derived on the host in double from
 * the step count as torch 1.13's _single_tensor_adam derives them, then
 * rounded to float once. It does not update anything (a backend's
 * adam_update does).
 */
#include "tensor.h"

#include <math.h>

adam_scalars adam_scalars_for(const adam_hparams *h, int64_t step)
{
    adam_scalars k;
    double st = (double)(float)step; /* torch: step_t.item() of a float32 */
    double bc1 = 1.0 - pow(h->beta1, st);
    double bc2 = 1.0 - pow(h->beta2, st);
    k.beta1 = (float)h->beta1;
    k.one_minus_beta1 = (float)(1.0 - h->beta1);
    k.beta2 = (float)h->beta2;
    k.one_minus_beta2 = (float)(1.0 - h->beta2);
    k.weight_decay = (float)h->weight_decay;
    k.use_wd = h->weight_decay != 0.0;
    k.bc2_sqrt = (float)sqrt(bc2);
    k.eps = (float)h->eps;
    k.neg_step_size = (float)(-(h->lr / bc1));
    return k;
}
