/* SPDX-License-Identifier: MIT */
/*
 * backend_cpu.c: the CPU backend's table (backend.h): the channel-blocked,
 * zero-bordered layout of layout.h and the kernels of ops_*.c and adam.c,
 * which pick AVX-512, AVX2 or plain C at run time themselves. Only glue
 * lives here: the few layout helpers the table needs beyond layout.h.
 */
#include "backend.h"

#include <string.h>

#include "bn.h"
#include "conv.h"
#include "pool.h"

static const char *cpu_name(void)
{
    const char *k = conv_kernels_name();
    return strcmp(k, "avx512") == 0 ? "cpu-avx512" : strcmp(k, "avx2") == 0 ? "cpu-avx2" : "cpu-ref";
}

/* Channel blocks are outermost, so channels [c0, s.c) start c0/8 blocks in
 * (c0 is a multiple of 8 for every concat of the UNet: base is). */
static float *cpu_channels(float *t, shape s, int c0)
{
    shape lower = s;
    lower.c = c0;
    return t + shape_floats(lower);
}

static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_add(float *dst, const float *src, shape s)
{
    const size_t n = shape_floats(s);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static const unet_backend cpu = {
    .name = cpu_name,
    .act_floats = shape_floats,
    .channels = cpu_channels,
    .from_nchw = layout_pack,
    .to_nchw = layout_unpack,
    .reuse = layout_zero_border,
    .zero = cpu_zero,
    .conv3x3_scratch = conv3x3_scratch_floats,
    .convt2x2_scratch = convt2x2_scratch_floats,
    .conv1x1_scratch = conv1x1_scratch_floats,
    .bn_scratch = bn_scratch_floats,
    .loss_scratch = bce_dice_scratch_floats,
    .loss_state = bce_dice_state_floats,
    .conv3x3_forward = conv3x3_forward,
    .conv3x3_backward_data = conv3x3_backward_data,
    .conv3x3_backward_weight = conv3x3_backward_weight,
    .convt2x2_forward = convt2x2_forward,
    .convt2x2_backward_data = convt2x2_backward_data,
    .convt2x2_backward_weight = convt2x2_backward_weight,
    .conv1x1_forward = conv1x1_forward,
    .conv1x1_backward_data = conv1x1_backward_data,
    .conv1x1_backward_weight = conv1x1_backward_weight,
    .bn_relu_forward = bn_relu_forward,
    .bn_relu_forward_eval = bn_relu_forward_eval,
    .bn_relu_apply = bn_relu_apply,
    .bn_relu_backward = bn_relu_backward,
    .maxpool2x2_forward = maxpool2x2_forward,
    .maxpool2x2_backward = maxpool2x2_backward,
    .add = cpu_add,
    .loss_forward = bce_dice_forward,
    .loss_backward = bce_dice_backward,
    .adam_update = adam_update,
};

const unet_backend *unet_backend_cpu(void) { return &cpu; }
