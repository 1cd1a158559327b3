/* SPDX-License-Identifier: MIT */
/*
 * infer.c: inference throughput of the UNet as `unet-train predict` runs
 * it (eval-mode forward passes through the CPU backend), without the
 * image decoding and PNG writing around it: bench/infer_vs_torch.py sets
 * it beside PyTorch's torch.inference_mode() on the same model.
 *
 *   bench_infer SIZE BATCH STEPS [WARMUP] [fp32|bf16]
 *
 * Prints "images_per_s X" (the median over STEPS timed batches after
 * WARMUP, default 2) of random inputs; threads from OMP_NUM_THREADS.
 * Weights are PyTorch's initialisation (the values do not change the
 * time); the default model (base 16, depth 4, RGB).
 */
#include "backend_cpu.h"
#include "isa.h"
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_time.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_infer SIZE BATCH STEPS [WARMUP] [fp32|bf16]\n");
        return 2;
    }
    const int size = atoi(argv[1]), batch = atoi(argv[2]), steps = atoi(argv[3]);
    const int warmup = argc > 4 ? atoi(argv[4]) : 2;
    const int bf16 = argc > 5 && strcmp(argv[5], "bf16") == 0;
    char msg[256];
    if (steps < 1 || steps > 10000 || warmup < 0 || warmup > 100 ||
        (bf16 && unet_bf16_check(msg, sizeof msg) < 0)) {
        fprintf(stderr, "bench_infer: %s\n", bf16 ? msg : "bad STEPS or WARMUP");
        return 2;
    }
    unet_cfg cfg = {3, 16, 4};
    unet *m = unet_create(&cfg, batch, size, size, 0,
                          bf16 ? unet_backend_cpu_bf16() : unet_backend_cpu(), msg, sizeof msg);
    if (!m) {
        fprintf(stderr, "bench_infer: %s\n", msg);
        return 2;
    }
    float *x = unet_input_host(m);
    const size_t n = (size_t)batch * 3 * (size_t)size * (size_t)size;
    unsigned r = 12345;
    for (size_t i = 0; i < n; i++) {
        r = r * 1103515245u + 12345u;
        x[i] = (float)(r >> 8) / (float)(1u << 24);
    }
    double *t = malloc((size_t)steps * sizeof *t);
    if (!t)
        return 1;
    for (int i = -warmup; i < steps; i++) {
        double t0 = now_s();
        unet_forward(m, batch, false);
        (void)unet_logits_host(m, batch);
        if (i >= 0)
            t[i] = now_s() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_d);
    printf("images_per_s %.3f\n", batch / t[steps / 2]);
    free(t);
    unet_destroy(m);
    return 0;
}
