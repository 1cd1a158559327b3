/* SPDX-License-Identifier: MIT */
/*
 * train.h: the three jobs of unet-train: train (the loop), predict (masks
 * and raw logits for a folder of images) and plan (the memory a batch size
 * needs). main.c parses the command line into these structs; each job
 * prints its own progress and returns the program's exit status.
 */
#ifndef UNET_TRAIN_H
#define UNET_TRAIN_H

#include "backend_cpu.h"
#include "ckpt.h"
#include "guard.h"

/* The jobs return memguard's exit statuses (memguard.h): MG_EXIT_OK,
 * _ERROR a runtime failure, _USAGE bad flags, data or checkpoint, _MEMSTOP
 * stopped for memory after a good checkpoint. */

/* Paths are at most UT_PATH_MAX - 1 bytes (main.c refuses longer ones). */
#define UT_PATH_MAX 1024

typedef struct train_opts {
    run_cfg run;          /* model, data and optimiser settings */
    char out[UT_PATH_MAX];    /* --out folder */
    int threads;          /* 0 = OpenMP's default */
    int progress;         /* -1 auto (bar on a terminal), 0 lines, 1 bar */
    char resume[UT_PATH_MAX]; /* --resume FILE, "" for none */
    guard_opts guard;     /* thresholds, cadence, budget, watcher */
    bool batch_auto;      /* --batch auto: the largest that stays below warn */
    bool shrink;          /* --on-memory shrink: go on at a smaller batch (shrink.h) */
    bool sync_bn;         /* --sync-bn: BatchNorm statistics over every MPI rank */
    const unet_backend *backend; /* NULL: the CPU (the command line's only one) */
} train_opts;

typedef struct predict_opts {
    char checkpoint[UT_PATH_MAX];
    char input[UT_PATH_MAX];  /* folder of images */
    char out[UT_PATH_MAX];    /* folder for the PNG masks */
    char logits[UT_PATH_MAX]; /* .npy file for the raw logits, "" for none */
    char overlay[UT_PATH_MAX]; /* folder for the outline overlays, "" for none */
    int img_size;         /* 0 = from the checkpoint's config */
    int batch;
    int threads;
    const unet_backend *backend; /* NULL: the CPU */
} predict_opts;

/* The backend a job runs on. */
static inline const unet_backend *ut_backend(const unet_backend *be)
{
    return be ? be : unet_backend_cpu();
}

int train_run(const train_opts *o);
/* A train job refused before train_run (main.c's checks; msg its line,
 * rc its status): under mpirun it meets the other ranks' start-up, so the
 * line is said once and every rank exits with the largest status; else
 * msg is said. Returns the status to exit with. */
int train_refuse(int rc, const char *msg);
int predict_run(const predict_opts *o);
/* Prints the memory plan of `cfg` at `batch` and `img_size`. */
int plan_run(const unet_cfg *cfg, int batch, int img_size);

#endif /* UNET_TRAIN_H */
