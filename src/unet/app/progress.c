/* SPDX-License-Identifier: MIT */
/*
 * progress.c: the progress bar or lines of the training loop (progress.h).
 *
 * Not here: what is measured (train.c counts batches, images and loss)
 * and any file output.
 */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

progress progress_make(int mode, int epochs)
{
    progress p = {mode == 1 || (mode < 0 && isatty(STDOUT_FILENO)), epochs};
    return p;
}

double progress_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void progress_show(const progress *p, const char *phase, int epoch, int done, int total,
                   double loss, double imgs, double t0)
{
    double el = progress_now_s() - t0;
    double rate = el > 0 ? imgs / el : 0;
    double eta = done > 0 ? el / done * (total - done) : 0;
    if (p->bar) {
        int width = 24, fill = total ? done * width / total : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        printf("\r  %-5s epoch %d/%d [%s] %d/%d loss %.4f %6.1f img/s ETA %d:%02d ", phase,
               epoch + 1, p->epochs, bar, done, total, loss, rate, (int)eta / 60,
               (int)eta % 60);
        fflush(stdout);
    } else if (done == total || done % 10 == 0) {
        /* A log file gets a line every 10 batches, not a redrawn bar. */
        printf("  %s epoch %d/%d batch %d/%d loss %.4f %.1f img/s ETA %ds\n", phase, epoch + 1,
               p->epochs, done, total, loss, rate, (int)eta);
        fflush(stdout); /* `tail -f` of a log shows it now, not at the epoch's end */
    }
}

void progress_end(const progress *p)
{
    if (p->bar) printf("\r%100s\r", "");
}
