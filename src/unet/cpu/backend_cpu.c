/* SPDX-License-Identifier: MIT */
/*
 * backend_cpu.c: the CPU backend's table (backend.h): the arena in host
 * memory, the channel-blocked, zero-bordered layout of layout.h and the
 * kernels of conv/ and ops/, which pick AVX-512, AVX2 or plain C at run
 * time themselves (isa.c). Only glue lives here: the table, its copies,
 * and the few layout helpers it needs beyond layout.h. The memory section
 * (allocate, zero, give back arena memory) is mem.h's, one file per
 * system (posix/mem.c, win/mem.c), the one part a port changes.
 *
 * Two tables: float32, and bf16 (--precision bf16), which differs only in
 * its convolutions (conv.h's *_bf16: bf16 products, float32 tensors,
 * parameters, gradients and Adam state).
 */
#include "backend_cpu.h"

#include <string.h>

#include "adam.h"
#include "bn.h"
#include "conv.h"
#include "layout.h"
#include "loss.h"
#include "mem.h"
#include "pool.h"

static const char *cpu_name(void)
{
    const char *k = conv_kernels_name();
    return strcmp(k, "avx512") == 0 ? "cpu-avx512" : strcmp(k, "avx2") == 0 ? "cpu-avx2" : "cpu-ref";
}

static const char *cpu_name_bf16(void)
{
    return strcmp(conv_kernels_name_bf16(), "avx512bf16") == 0 ? "cpu-avx512bf16" : "cpu-ref-bf16";
}

/* Channel blocks are outermost, so channels [c0, s.c) start c0/8 blocks in
 * (c0 is a multiple of 8 for every concat of the UNet: base is). */
static float *cpu_channels(float *t, shape s, int c0)
{
    shape lower = s;
    lower.c = c0;
    return t + shape_floats(lower);
}

/* ---- memory: host memory (mem.h); staging and arena are the same kind ---- */

static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }

/* Every op has returned when its call does. */
static void cpu_sync(void) {}

/* ---- layout ---- */

static void cpu_add(float *dst, const float *src, shape s)
{
    const size_t n = shape_floats(s);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

static void cpu_scale(float *x, size_t n, float a)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= a;
}

/* Everything but the name and the convolutions, which the precision picks
 * (CPU_TABLE_CONVS). */
#define CPU_TABLE_COMMON                                                                   \
    .alloc = cpu_mem_alloc, .free = cpu_mem_free, .alloc_host = cpu_mem_alloc,             \
    .free_host = cpu_mem_free, .upload = cpu_copy, .download = cpu_copy,                   \
    .zero = cpu_mem_zero, .discard = cpu_mem_discard, .sync = cpu_sync,                    \
    .host_visible = true, .act_floats = shape_floats, .channels = cpu_channels,            \
    .from_nchw = layout_pack, .to_nchw = layout_unpack, .reuse = layout_zero_border,       \
    .conv3x3_scratch = conv3x3_scratch_floats, .convt2x2_scratch = convt2x2_scratch_floats, \
    .conv1x1_scratch = conv1x1_scratch_floats, .bn_scratch = bn_scratch_floats,            \
    .loss_scratch = bce_dice_scratch_floats, .loss_state = bce_dice_state_floats,          \
    .bn_relu_forward = bn_relu_forward_sync, .bn_relu_forward_eval = bn_relu_forward_eval, \
    .bn_relu_apply = bn_relu_apply, .bn_relu_backward = bn_relu_backward_sync,             \
    .maxpool2x2_forward = maxpool2x2_forward, .maxpool2x2_backward = maxpool2x2_backward,  \
    .add = cpu_add, .scale = cpu_scale, .loss_forward = bce_dice_forward,                  \
    .loss_backward = bce_dice_backward, .adam_update = adam_update

/* The convolutions of one precision: conv.h's calls with SUFFIX (none for
 * float32, _bf16). */
#define CPU_TABLE_CONVS(suffix)                                                            \
    .conv3x3_forward = conv3x3_forward##suffix,                                            \
    .conv3x3_backward_data = conv3x3_backward_data##suffix,                                \
    .conv3x3_backward_weight = conv3x3_backward_weight##suffix,                            \
    .convt2x2_forward = convt2x2_forward##suffix,                                          \
    .convt2x2_backward_data = convt2x2_backward_data##suffix,                              \
    .convt2x2_backward_weight = convt2x2_backward_weight##suffix,                          \
    .conv1x1_forward = conv1x1_forward##suffix,                                            \
    .conv1x1_backward_data = conv1x1_backward_data##suffix,                                \
    .conv1x1_backward_weight = conv1x1_backward_weight##suffix

static const unet_backend cpu = {.name = cpu_name, CPU_TABLE_COMMON, CPU_TABLE_CONVS()};

static const unet_backend cpu_bf16 = {.name = cpu_name_bf16, CPU_TABLE_COMMON,
                                      CPU_TABLE_CONVS(_bf16)};

const unet_backend *unet_backend_cpu(void) { return &cpu; }

const unet_backend *unet_backend_cpu_bf16(void) { return &cpu_bf16; }
