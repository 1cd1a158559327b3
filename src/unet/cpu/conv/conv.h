/* SPDX-License-Identifier: MIT */
/*
 * conv.h: the trainer's convolutions on the blocked layout of layout.h:
 * conv3x3 (stride 1, pad 1, no bias), ConvTranspose2d 2x2 stride 2 (bias)
 * and conv1x1 (bias), each as forward / backward-data / backward-weight.
 *
 * Conventions shared by every function below:
 * - `s` is the shape of the op's input x (s.c real channels, may be < 8 for
 *   the first layer); `co` is the number of output channels. Activations
 *   are `float *` in the blocked, zero-bordered layout; the shape of each
 *   tensor is written above its function as (C,B,H,W).
 * - Outputs are overwritten (never accumulated) and only their interior is
 *   written; padded channels of an output block come out as 0.
 * - Weights are PyTorch's: OIHW for conv, IOHW for ConvTranspose2d. dW and
 *   db are overwritten in the same order.
 * - `scratch` is caller-owned, at least *_scratch_floats() floats (32-byte
 *   aligned is not required). Kernels allocate nothing.
 * - Threads: OpenMP, as many as the caller set (OMP_NUM_THREADS or
 *   omp_set_num_threads). Every result is bitwise reproducible for given
 *   inputs, and does not depend on the thread count either: reductions (dW,
 *   db) run over a fixed partition of the pixels chosen from the shape only
 *   and are summed in chunk order.
 * - Kernels, checked at run time (isa.h): AVX-512 (avx512f+avx512vl+FMA)
 *   when the CPU has it, else AVX2+FMA, else the naive reference (the
 *   bf16 variants below: AVX512_BF16 or the reference).
 *   UNET_KERNELS=ref|avx2 caps the level for every op (a level the CPU
 *   lacks falls back to the best one it has), for debugging and tests.
 * - conv3x3 forward and backward-data run as Winograd F(2x2, 3x3) on the
 *   float32 SIMD kernels where that is faster (kernel.h's
 *   conv__wino_takes; UNET_WINOGRAD=off, isa.h, turns it off): the same
 *   contract, results within 1e-5 of the reference but not bitwise the
 *   direct loop's.
 */
#ifndef UNET_CONV_H
#define UNET_CONV_H

#include <stddef.h>

#include "layout.h"

/* ---- conv3x3, stride 1, pad 1, no bias -------------------------------- */

/* Scratch for any of the three conv3x3 calls on input shape s with co
 * outputs. It does not depend on the thread count (the reduction partition
 * is thread-count independent). */
size_t conv3x3_scratch_floats(shape s, int co);

/* out (co,B,H,W) = w (co,Ci,3,3) * in (Ci,B,H,W) */
void conv3x3_forward(float *out, const float *in, shape s, const float *w, int co,
                     float *scratch);

/* din (Ci,B,H,W) = w^T (co,Ci,3,3) *' dout (co,B,H,W), i.e. a forward pass
 * with flipped, transposed weights. Padded channels of din come out 0. */
void conv3x3_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                           float *scratch);

/* dw (co,Ci,3,3) = sum over B,H,W of dout (co,B,H,W) x in (Ci,B,H,W) */
void conv3x3_backward_weight(float *dw, const float *dout, const float *in, shape s, int co,
                             float *scratch);

/* ---- ConvTranspose2d, kernel 2, stride 2, bias ------------------------ */

size_t convt2x2_scratch_floats(shape s, int co);

/* out (co,B,2H,2W) = w (Ci,co,2,2) scattered from in (Ci,B,H,W) + bias (co) */
void convt2x2_forward(float *out, const float *in, shape s, const float *w, const float *bias,
                      int co, float *scratch);

/* din (Ci,B,H,W) = w (Ci,co,2,2) gathered from dout (co,B,2H,2W) */
void convt2x2_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                            float *scratch);

/* dw (Ci,co,2,2) = sum of in (Ci,B,H,W) x dout (co,B,2H,2W);
 * db (co) = sum of dout over B,2H,2W. */
void convt2x2_backward_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                              int co, float *scratch);

/* ---- conv1x1, bias (co may be 1: the logit) --------------------------- */

size_t conv1x1_scratch_floats(shape s, int co);

/* out (co,B,H,W) = w (co,Ci,1,1) * in (Ci,B,H,W) + bias (co) */
void conv1x1_forward(float *out, const float *in, shape s, const float *w, const float *bias,
                     int co, float *scratch);

/* din (Ci,B,H,W) = w^T (co,Ci) * dout (co,B,H,W) */
void conv1x1_backward_data(float *din, const float *dout, shape s, const float *w, int co,
                           float *scratch);

/* dw (co,Ci,1,1) = sum of dout (co,B,H,W) x in (Ci,B,H,W); db (co) = sum of dout */
void conv1x1_backward_weight(float *dw, float *db, const float *dout, const float *in, shape s,
                             int co, float *scratch);

/* ---- bf16: --precision bf16 ----------------------------------------------- */

/* The nine calls above with the same contracts and scratch, computed in
 * bf16: every factor of every product (activations, weights, gradients;
 * not a bias) is rounded to bfloat16 by cpu/bf16.h's rule, products and
 * sums are float32 (double in the reference), tensors stay float32. The
 * avx512bf16 kernel (AVX512_BF16's VDPBF16PS) runs them, or under
 * UNET_KERNELS=ref (or on a CPU without it: unet_bf16_check refuses
 * that before a run) the reference's bf16 loops. */
void conv3x3_forward_bf16(float *out, const float *in, shape s, const float *w, int co,
                          float *scratch);
void conv3x3_backward_data_bf16(float *din, const float *dout, shape s, const float *w, int co,
                                float *scratch);
void conv3x3_backward_weight_bf16(float *dw, const float *dout, const float *in, shape s, int co,
                                  float *scratch);
void convt2x2_forward_bf16(float *out, const float *in, shape s, const float *w,
                           const float *bias, int co, float *scratch);
void convt2x2_backward_data_bf16(float *din, const float *dout, shape s, const float *w, int co,
                                 float *scratch);
void convt2x2_backward_weight_bf16(float *dw, float *db, const float *dout, const float *in,
                                   shape s, int co, float *scratch);
void conv1x1_forward_bf16(float *out, const float *in, shape s, const float *w,
                          const float *bias, int co, float *scratch);
void conv1x1_backward_data_bf16(float *din, const float *dout, shape s, const float *w, int co,
                                float *scratch);
void conv1x1_backward_weight_bf16(float *dw, float *db, const float *dout, const float *in,
                                  shape s, int co, float *scratch);

/* ---- kernel selection -------------------------------------------------- */

/* "avx512", "avx2" or "ref": what the calls above run now (isa.h). */
const char *conv_kernels_name(void);
/* "avx512bf16" or "ref": what the *_bf16 calls run now. */
const char *conv_kernels_name_bf16(void);

#endif /* UNET_CONV_H */
