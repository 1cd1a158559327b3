/* SPDX-License-Identifier: MIT */
/*
 * train.h: the three jobs of unet-train: train (the loop), predict (masks
 * and raw logits for a folder of images) and plan (the memory a batch size
 * needs). main.c parses the command line into these structs; each job
 * prints its own progress and returns the program's exit status.
 */
#ifndef UNET_TRAIN_H
#define UNET_TRAIN_H

#include "ckpt.h"
#include "guard.h"

/* Exit statuses of unet-train (the memguard ones where they overlap). */
enum {
    UT_EXIT_OK = 0,
    UT_EXIT_ERROR = 1,   /* a runtime failure (I/O, memory) */
    UT_EXIT_USAGE = 2,   /* bad flags, data or checkpoint */
    UT_EXIT_MEMSTOP = 75 /* stopped for memory after a good checkpoint */
};

typedef struct train_opts {
    run_cfg run;          /* model, data and optimiser settings */
    char out[1024];       /* --out folder */
    int threads;          /* 0 = OpenMP's default */
    int progress;         /* -1 auto (bar on a terminal), 0 lines, 1 bar */
    const char *resume;   /* --resume FILE or NULL */
    guard_opts guard;     /* thresholds, cadence, budget, watcher */
    bool batch_auto;      /* --batch auto: the largest that stays below warn */
} train_opts;

typedef struct predict_opts {
    const char *checkpoint;
    const char *input;    /* folder of images */
    const char *out;      /* folder for the PNG masks */
    const char *logits;   /* .npy file for the raw logits, or NULL */
    int img_size;         /* 0 = from the checkpoint's config */
    int batch;
    int threads;
} predict_opts;

int train_run(const train_opts *o);
int predict_run(const predict_opts *o);
/* Prints the memory plan of `cfg` at `batch` and `img_size`. */
int plan_run(const unet_cfg *cfg, int batch, int img_size);

#endif /* UNET_TRAIN_H */
