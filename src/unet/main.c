/* SPDX-License-Identifier: MIT */
/*
 * main.c: the unet-train command line: `train` (the default), `predict`
 * and `plan`. It parses and validates flags with the library's strict
 * number parsers, prints one line plus "Try 'unet-train --help'." for
 * anything wrong (exit 2), and hands a filled options struct to train.c /
 * predict.c. Nothing here trains.
 */
#include "train.h"

#include "memguard.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs(
"Usage: unet-train [train] [OPTIONS]      train a UNet for binary segmentation\n"
"       unet-train predict --checkpoint FILE --input DIR --out DIR [--logits FILE.npy]\n"
"       unet-train plan --batch B --img-size S [--base W --depth D --in-ch C]\n"
"\n"
"Data:\n"
"      --data DIR        DIR/images/ and DIR/masks/ (PNG or JPEG, paired by name)\n"
"      --synthetic N     the built-in set of N shapes on textured noise\n"
"                        (the default, with N = 240, when --data is not given)\n"
"      --img-size S      resize to SxS (default 128; a multiple of 2^depth)\n"
"      --in-ch 1|3       gray or RGB input (default 3)\n"
"      --val-split F     fraction held out for validation (default 0.2)\n"
"      --flip            random horizontal and vertical flips\n"
"      --seed N          split, shuffling, flips and weights (default 0)\n"
"Model and optimiser:\n"
"      --base W          channels of the first level (default 16)\n"
"      --depth D         levels (default 4)\n"
"      --epochs N        (default 20)\n"
"      --batch B         (default 4)\n"
"      --lr F            Adam learning rate (default 0.001)\n"
"      --beta1 F --beta2 F --eps F --weight-decay F   (torch's defaults)\n"
"Run:\n"
"      --out DIR         last.pth, best.pth, metrics.csv (default runs/unet)\n"
"      --resume FILE     continue from a checkpoint (ours or a PyTorch state_dict)\n"
"      --threads N       OpenMP threads (default: all cores)\n"
"      --progress bar|lines  progress display (default: bar on a terminal)\n"
"predict:\n"
"      --checkpoint FILE --input DIR --out DIR [--logits FILE.npy] [--img-size S] [--batch B]\n"
"plan:\n"
"      --batch B --img-size S [--base W] [--depth D] [--in-ch C]: bytes needed, nothing allocated\n"
"\n"
"      --help, --version\n"
"Exit status: 0 done, 1 runtime error, 2 bad flags, data or checkpoint,\n"
"75 stopped for memory after saving a checkpoint.\n", f);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    fputs("unet-train: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'unet-train --help'.\n", stderr);
    return UT_EXIT_USAGE;
}

static int int_arg(const char *flag, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad("%s '%s': expected an integer from %ld to %ld", flag, s, lo, hi);
    *out = (int)v;
    return 0;
}

static int real_arg(const char *flag, const char *s, double lo, double hi, bool lo_open,
                    double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v > hi || v < lo || (lo_open && v == lo))
        return bad("%s '%s': expected a number in %s%g, %g]", flag, s, lo_open ? "(" : "[", lo,
                   hi);
    *out = v;
    return 0;
}

enum {
    O_DATA = 300, O_SYNTH, O_IMG, O_INCH, O_VAL, O_FLIP, O_SEED, O_BASE, O_DEPTH, O_EPOCHS,
    O_BATCH, O_LR, O_B1, O_B2, O_EPS, O_WD, O_OUT, O_RESUME, O_THREADS, O_PROGRESS, O_CKPT,
    O_INPUT, O_LOGITS, O_HELP, O_VERSION
};

static const struct option longopts[] = {
    {"data", required_argument, NULL, O_DATA},
    {"synthetic", required_argument, NULL, O_SYNTH},
    {"img-size", required_argument, NULL, O_IMG},
    {"in-ch", required_argument, NULL, O_INCH},
    {"val-split", required_argument, NULL, O_VAL},
    {"flip", no_argument, NULL, O_FLIP},
    {"seed", required_argument, NULL, O_SEED},
    {"base", required_argument, NULL, O_BASE},
    {"depth", required_argument, NULL, O_DEPTH},
    {"epochs", required_argument, NULL, O_EPOCHS},
    {"batch", required_argument, NULL, O_BATCH},
    {"lr", required_argument, NULL, O_LR},
    {"beta1", required_argument, NULL, O_B1},
    {"beta2", required_argument, NULL, O_B2},
    {"eps", required_argument, NULL, O_EPS},
    {"weight-decay", required_argument, NULL, O_WD},
    {"out", required_argument, NULL, O_OUT},
    {"resume", required_argument, NULL, O_RESUME},
    {"threads", required_argument, NULL, O_THREADS},
    {"progress", required_argument, NULL, O_PROGRESS},
    {"checkpoint", required_argument, NULL, O_CKPT},
    {"input", required_argument, NULL, O_INPUT},
    {"logits", required_argument, NULL, O_LOGITS},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {0, 0, 0, 0}};

int main(int argc, char **argv)
{
    enum { TRAIN, PREDICT, PLAN } job = TRAIN;
    int first = 1;
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "train") == 0) job = TRAIN;
        else if (strcmp(argv[1], "predict") == 0) job = PREDICT;
        else if (strcmp(argv[1], "plan") == 0) job = PLAN;
        else return bad("unknown command '%s': expected train, predict or plan", argv[1]);
        first = 2;
    }
    train_opts t = {0};
    run_cfg *c = &t.run;
    c->model = (unet_cfg){3, 16, 4};
    c->img_size = 128;
    c->batch = 4;
    c->epochs = 20;
    c->lr = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->val_split = 0.2;
    snprintf(t.out, sizeof t.out, "runs/unet");
    t.progress = -1;
    predict_opts p = {0};
    bool size_given = false, batch_given = false, out_given = false;

    opterr = 0;
    optind = first;
    int opt, rc = 0;
    while ((opt = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (opt) {
        case O_DATA:
            if (!*optarg) return bad("--data '': expected a folder");
            snprintf(c->data, sizeof c->data, "%s", optarg);
            break;
        case O_SYNTH: rc = int_arg("--synthetic", optarg, 2, 1000000, &c->synthetic); break;
        case O_IMG: rc = int_arg("--img-size", optarg, 8, 8192, &c->img_size); size_given = true; break;
        case O_INCH: rc = int_arg("--in-ch", optarg, 1, 3, &c->model.in_ch);
            if (!rc && c->model.in_ch == 2) rc = bad("--in-ch '2': expected 1 (gray) or 3 (RGB)");
            break;
        case O_VAL: rc = real_arg("--val-split", optarg, 0, 0.95, false, &c->val_split); break;
        case O_FLIP: c->flip = 1; break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return bad("--seed '%s': expected a non-negative integer", optarg);
            c->seed = v;
            break;
        }
        case O_BASE: rc = int_arg("--base", optarg, 8, 256, &c->model.base); break;
        case O_DEPTH: rc = int_arg("--depth", optarg, 1, 6, &c->model.depth); break;
        case O_EPOCHS: rc = int_arg("--epochs", optarg, 1, 1000000, &c->epochs); break;
        case O_BATCH: rc = int_arg("--batch", optarg, 1, 4096, &c->batch); batch_given = true; break;
        case O_LR: rc = real_arg("--lr", optarg, 0, 10, true, &c->lr); break;
        case O_B1: rc = real_arg("--beta1", optarg, 0, 0.999999, false, &c->beta1); break;
        case O_B2: rc = real_arg("--beta2", optarg, 0, 0.999999999, false, &c->beta2); break;
        case O_EPS: rc = real_arg("--eps", optarg, 0, 1, true, &c->eps); break;
        case O_WD: rc = real_arg("--weight-decay", optarg, 0, 1, false, &c->weight_decay); break;
        case O_OUT:
            if (!*optarg) return bad("--out '': expected a folder");
            snprintf(t.out, sizeof t.out, "%s", optarg);
            out_given = true;
            break;
        case O_RESUME: t.resume = optarg; break;
        case O_THREADS: rc = int_arg("--threads", optarg, 1, 1024, &t.threads); break;
        case O_PROGRESS:
            if (strcmp(optarg, "bar") == 0) t.progress = 1;
            else if (strcmp(optarg, "lines") == 0) t.progress = 0;
            else return bad("--progress '%s': expected bar or lines", optarg);
            break;
        case O_CKPT: p.checkpoint = optarg; break;
        case O_INPUT: p.input = optarg; break;
        case O_LOGITS: p.logits = optarg; break;
        case O_HELP: usage(stdout); return UT_EXIT_OK;
        case O_VERSION: printf("unet-train %s\n", MG_VERSION_STRING); return UT_EXIT_OK;
        case ':': return bad("option '%s' needs a value", argv[optind - 1]);
        default: return bad("unknown option '%s'", argv[optind - 1]);
        }
        if (rc) return rc;
    }
    if (optind < argc) return bad("unexpected argument '%s'", argv[optind]);

    if (job == PLAN) return plan_run(&c->model, c->batch, c->img_size);
    if (job == PREDICT) {
        if (!p.checkpoint) return bad("predict: --checkpoint FILE is required");
        if (!p.input) return bad("predict: --input DIR is required");
        if (!out_given) return bad("predict: --out DIR is required");
        p.out = t.out;
        p.img_size = size_given ? c->img_size : 0;
        p.batch = batch_given ? c->batch : 4;
        p.threads = t.threads;
        return predict_run(&p);
    }
    if (c->data[0] && c->synthetic)
        return bad("--data and --synthetic exclude each other: give one");
    if (!c->data[0] && !c->synthetic) c->synthetic = 240;
    return train_run(&t);
}
