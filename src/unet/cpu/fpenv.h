/* SPDX-License-Identifier: MIT */
/*
 * fpenv.h: flush-to-zero (FTZ) and denormals-are-zero (DAZ) for the
 * trainer's threads. Denormal floats cost ~100x per operation on x86; with
 * Adam's exp_avg_sq decaying towards 0 they cost torch ~10 ms per step in
 * sqrt alone (research/pytorch-interop.md d.2), and BN / conv gradients
 * can hit them too. It only sets MXCSR bits; it changes no rounding mode
 * and does nothing on non-x86 builds (where it reports 0).
 *
 * Results: with FTZ/DAZ, values below 1.18e-38 become 0, so a run differs
 * from torch (which leaves denormals on unless torch.set_flush_denormal)
 * only where such values occur; parity tests run without them.
 */
#ifndef UNET_FPENV_H
#define UNET_FPENV_H

/* Sets FTZ and DAZ on the calling thread and on every thread of the OpenMP
 * pool (one parallel region of omp_get_max_threads() threads). Threads
 * created later inherit MXCSR from their creator (POSIX requires the
 * floating-point environment to be inherited by pthread_create), so call
 * it once at startup on the main thread, before or after the pool exists.
 * Returns the number of threads set, or 0 where unsupported. */
int fpenv_flush_denormals(void);

/* 1 when FTZ and DAZ are both set on the calling thread. */
int fpenv_denormals_flushed(void);

#endif /* UNET_FPENV_H */
