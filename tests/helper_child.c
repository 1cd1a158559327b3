/* SPDX-License-Identifier: MIT */
/*
 * helper_child.c: the trainers that the `memguard run` tests supervise.
 * Real processes that really allocate (every page touched, so RSS grows),
 * using the library's stop API exactly as a trainer would. Each one kills
 * itself with SIGALRM after 30 s, so a broken test never leaves it behind.
 *
 *   helper_child alloc STEP_MB EVERY_MS CKPT [CAP_MB]
 *       allocate STEP_MB every EVERY_MS; on a stop request write CKPT
 *       atomically ("allocated_mb=N") and exit 75; at CAP_MB exit 0.
 *   helper_child filestop STEP_MB EVERY_MS CKPT
 *       as alloc, but ignores the checkpoint signal: only the stop file
 *       can ask it to stop.
 *   helper_child ignore STEP_MB EVERY_MS CAP_MB
 *       ignores SIGUSR1 and SIGTERM; allocates up to CAP_MB, then sleeps.
 *   helper_child late DELAY_MS STEP_MB CKPT
 *       allocates STEP_MB at once, and only after DELAY_MS installs the
 *       checkpoint signal's handler (a trainer still importing its
 *       libraries); it does not look at the stop file, so only the signal
 *       can stop it: then it writes CKPT and exits 75.
 *   helper_child workers N STEP_MB EVERY_MS CKPT
 *       forks N workers that allocate; the parent allocates nothing, and on
 *       a stop request kills its workers, writes CKPT and exits 75.
 *   helper_child launcher wait|quit CODE STEP_MB EVERY_MS CKPT SAVE_MS
 *       a launcher (torchrun's agent, an mp.spawn parent): it has no
 *       handler for the checkpoint signal and forks one rank that runs the
 *       alloc loop; on a request the rank takes SAVE_MS to save, writes
 *       CKPT, acknowledges it (mg_stop_acknowledge) and exits 75. The
 *       launcher exits CODE when the rank has exited ("wait"), or at once
 *       when the stop file appears ("quit"), leaving the rank saving.
 *   helper_child setsid exit|stay MB
 *       forks a child that leaves the group with setsid(), ignores the
 *       checkpoint signal and SIGHUP, allocates MB and sleeps. The parent
 *       then exits 0 ("exit") or sleeps ("stay").
 *   helper_child resumable TRACE STEP_MB EVERY_MS DIR FIT_MB ACK
 *       a trainer under `memguard run --restart`: appends "attempt=K
 *       resume=PATH" (MEMGUARD_ATTEMPT, MEMGUARD_RESUME or "-") to TRACE;
 *       resumed from a checkpoint that exists, it allocates FIT_MB (0: as
 *       much as the first start, i.e. it never fits) and exits 0; else it
 *       runs the alloc loop and on the request saves DIR/emergency_K.ckpt,
 *       acknowledging it when ACK is 1, and exits 75.
 *   helper_child ballast TRACE LINES STEP_MB EVERY_MS ROUNDS CAP_MB [SHRINKS]
 *       memory that grows beside a trainer inside one budget: for round
 *       r = 1..ROUNDS it waits until the file TRACE has r * LINES lines,
 *       then allocates STEP_MB every EVERY_MS (at most CAP_MB in the
 *       round, then it waits) until the trainer has acted:
 *       under memguard run, until the stop file (MEMGUARD_STOP_FILE)
 *       appears; then it waits until it is gone again (the request was
 *       answered) and gives the round's memory back: a neighbour's spike,
 *       so the answer ends the pressure whatever the trainer's own RSS
 *       does (at 64x64 a smaller batch frees only some 10 % of the budget,
 *       too little to clear a ballast that overshot: the CI run of
 *       session 4 shrank 8 -> 1 and stopped). Meanwhile the trainer beside
 *       it (the other child of its parent, the wrapper script, found in
 *       /proc) is stopped (SIGSTOP) until the stop file appears, at most
 *       5 s once the round's memory is all there. With SHRINKS (a trainer's
 *       own budget), it takes the round's CAP_MB at once while the
 *       trainer (its parent) is stopped (SIGSTOP, then SIGCONT), then
 *       waits until that file has r + 1 lines (a header and r shrinks),
 *       keeping what it has. It sleeps after the last round; it
 *       never catches the checkpoint signal. It exits when its parent does
 *       (a ballast started by a shell that then exec'd the trainer lives
 *       in the trainer's own process tree, and ends with it).
 *   helper_child continuer STEP_MB EVERY_MS CKPT TOTAL_MB
 *       a trainer that answers memory requests by continuing smaller: it
 *       allocates STEP_MB every EVERY_MS, and once it has allocated
 *       TOTAL_MB in all (what it gave back included) holds for 300 ms
 *       and exits 0 (8 if a request came meanwhile); on a
 *       request it may continue from (mg_stop_may_continue) it frees half
 *       of what it holds, writes CKPT and answers with mg_stop_continue
 *       (note "half"); on any other request it writes CKPT, acknowledges
 *       and exits 75.
 *   helper_child forward ARGS...
 *       a launcher that forwards the checkpoint signal (mpirun and srun do
 *       so with SIGUSR1): it starts `helper_child ARGS...` as its child,
 *       catches SIGUSR1 and sends it on to the child, and exits with the
 *       child's status (128 + N when a signal N ended it).
 *   helper_child sleep
 *       sleeps; on SIGINT prints "got SIGINT" and exits 130.
 *   helper_child exit CODE
 */
#include "memguard.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* Allocates and touches `mb` MiB. The blocks are leaked on purpose: the
 * process exists to hold memory. */
static void grab(long mb)
{
    size_t n = (size_t)mb << 20;
    /* volatile: stores into memory nobody reads are otherwise removed by
     * the optimiser, and RSS would never grow. */
    volatile char *p = malloc(n);
    if (!p) _exit(3);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
}

static void checkpoint(const char *path, long allocated_mb)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) _exit(4);
    fprintf(f, "allocated_mb=%ld\n", allocated_mb);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) _exit(4);
    fclose(f);
    if (rename(tmp, path) != 0) _exit(4);
}

/* The alloc loop of a trainer: on a request, take save_ms, write ckpt,
 * acknowledge it when `ack`, exit 75; at cap_mb exit 0. */
static int alloc_loop(mg_stop *stop, long step, long every, long cap, const char *ckpt,
                      long save_ms, bool ack)
{
    long total = 0;
    for (;;) {
        if (mg_stop_requested(stop)) {
            sleep_ms(save_ms);
            checkpoint(ckpt, total);
            if (ack && mg_stop_acknowledge(stop, ckpt) != 0) return 6;
            return MG_EXIT_MEMSTOP;
        }
        if (total + step > cap) return 0;
        grab(step);
        total += step;
        sleep_ms(every);
    }
}

static bool exists(const char *path)
{
    return path && access(path, F_OK) == 0;
}

static int launcher(bool quit, int code, long step, long every, const char *ckpt, long save_ms)
{
    pid_t rank = fork();
    if (rank < 0) return 3;
    if (rank == 0) {
        alarm(30); /* alarms are not inherited across fork */
        mg_stop *stop = mg_stop_open(0, NULL);
        _exit(stop ? alloc_loop(stop, step, every, 100000, ckpt, save_ms, true) : 5);
    }
    const char *stop_file = getenv("MEMGUARD_STOP_FILE");
    for (;;) {
        if (waitpid(rank, NULL, WNOHANG) == rank) return code;
        if (quit && exists(stop_file)) return code;
        sleep_ms(5);
    }
}

static int setsid_child(bool stay, long mb)
{
    int p[2];
    if (pipe(p) != 0) return 3;
    pid_t kid = fork();
    if (kid < 0) return 3;
    if (kid == 0) {
        alarm(30); /* alarms are not inherited across fork */
        setsid();
        signal(SIGUSR1, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        grab(mb);
        char c = 1;
        if (write(p[1], &c, 1) != 1) _exit(3);
        for (;;) pause();
    }
    char c;
    if (read(p[0], &c, 1) != 1) return 3;
    if (!stay) return 0;
    for (;;) pause();
}

static int resumable(const char *trace, long step, long every, const char *dir, long fit_mb,
                     bool ack)
{
    const char *k = getenv(MG_ENV_ATTEMPT), *resume = getenv(MG_ENV_RESUME);
    FILE *f = fopen(trace, "a");
    if (!f) return 4;
    fprintf(f, "attempt=%s resume=%s\n", k ? k : "-", resume ? resume : "-");
    fclose(f);
    if (exists(resume) && fit_mb > 0) {
        grab(fit_mb);
        return 0;
    }
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/emergency_%s.ckpt", dir, k ? k : "x");
    mg_stop *stop = mg_stop_open(0, NULL);
    return stop ? alloc_loop(stop, step, every, 100000, ckpt, 0, ack) : 5;
}

/* Lines in the file at path (0 when it cannot be read). */
static long lines_in(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = 0;
    int c;
    while (f && (c = getc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* STEP_MB MiB mapped and touched: given back whole by munmap, which
 * malloc's trimming would not promise. */
static void *grab_mapped(long mb)
{
    size_t n = (size_t)mb << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) _exit(3);
    for (size_t i = 0; i < n; i += 4096) ((volatile char *)p)[i] = 1;
    return p;
}

/* sleep_ms, and _exit(0) once the parent that started us is gone. */
static void sleep_while_parent(long ms, pid_t parent)
{
    if (getppid() != parent) _exit(0);
    sleep_ms(ms);
}

/* The other child of `parent` (the trainer a wrapper script started
 * beside this ballast), from /proc; 0 when there is none or no /proc. */
static pid_t sibling_of(pid_t parent)
{
    DIR *d = opendir("/proc");
    pid_t found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;) {
        const long pid = atol(e->d_name);
        if (pid <= 0 || pid == (long)getpid())
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        /* pid (comm) state ppid ...: comm may hold spaces, not ')'. */
        const char *rp = strrchr(buf, ')');
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)parent)
            found = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return found;
}

static int ballast(const char *trace, long lines, long step, long every, long rounds, long cap,
                   const char *shrinks)
{
    const char *stop_file = getenv(MG_ENV_STOP_FILE);
    if (!stop_file && !shrinks) return 5;
    pid_t parent = getppid();
    static void *blocks[4096];
    for (long r = 1; r <= rounds; r++) {
        long n = 0;
        while (lines_in(trace) < r * lines) sleep_while_parent(5, parent);
        long got = 0;
        if (shrinks) {
            /* The trainer (the parent) waits while the round's memory
             * arrives, so its next check is sure to see it: a fast
             * trainer under load finished its 24 batches before the
             * ballast got a core (CI, session 6). */
            kill(parent, SIGSTOP);
            for (; got + step <= cap && n < 4096; got += step)
                blocks[n++] = grab_mapped(step);
            kill(parent, SIGCONT);
        }
        /* Under memguard run, the trainer beside us (our parent is the
         * wrapper script) waits until the round's memory has brought the
         * request, which it then sees at its next batch: a fast trainer
         * under a loaded CI finished its 24 batches before the ballast and
         * memguard run had reached the stop line (0 shrinks). */
        pid_t paused = shrinks ? 0 : sibling_of(parent);
        if (paused)
            kill(paused, SIGSTOP);
        long waited = 0; /* ms at the cap with the trainer paused */
        for (; shrinks ? lines_in(shrinks) < r + 1 : !exists(stop_file);) {
            if (got + step <= cap && n < 4096) {
                blocks[n++] = grab_mapped(step);
                got += step;
            } else if (paused && (waited += every) > 5000) {
                /* The cap brought no request: no pause past 5 s. */
                kill(paused, SIGCONT);
                paused = 0;
            }
            sleep_while_parent(every, parent);
        }
        if (shrinks) continue;
        if (paused)
            kill(paused, SIGCONT);
        while (exists(stop_file)) sleep_while_parent(5, parent);
        while (n > 0) munmap(blocks[--n], (size_t)step << 20);
    }
    for (;;) sleep_while_parent(50, parent);
}

/* Holds blocks of STEP_MB it can give back (grab() leaks on purpose). */
static int continuer(long step, long every, const char *ckpt, long total)
{
    mg_stop *stop = mg_stop_open(0, NULL);
    if (!stop) return 5;
    static volatile char *blocks[4096];
    long n = 0;
    for (long all = 0;; all += step) {
        if (mg_stop_requested(stop)) {
            if (!mg_stop_may_continue(stop)) {
                checkpoint(ckpt, n * step);
                return mg_stop_acknowledge(stop, ckpt) == 0 ? MG_EXIT_MEMSTOP : 6;
            }
            for (long k = n / 2; k < n; k++) free((void *)blocks[k]);
            n /= 2;
            checkpoint(ckpt, n * step);
            if (mg_stop_continue(stop, ckpt, "half") != 0) return 7;
        }
        if (all + step > total || n == 4096) {
            sleep_ms(300); /* holding, not growing: no request is pending at the exit */
            return mg_stop_requested(stop) ? 8 : 0;
        }
        size_t bytes = (size_t)step << 20;
        volatile char *p = malloc(bytes);
        if (!p) return 3;
        for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
        blocks[n++] = p;
        sleep_ms(every);
    }
}

static volatile sig_atomic_t got_int;
static void on_int(int sig) { (void)sig; got_int = 1; }

static volatile pid_t forward_to;
static void on_usr1_forward(int sig)
{
    if (forward_to > 0) kill(forward_to, sig);
}

static int forwarder(const char *self, char **args)
{
    pid_t kid = fork();
    if (kid < 0) return 5;
    if (kid == 0) {
        args[-1] = (char *)self; /* argv[1] "forward" becomes the program */
        execv(self, args - 1);
        _exit(127);
    }
    forward_to = kid;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1_forward;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    int st;
    while (waitpid(kid, &st, 0) < 0) {}
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
    alarm(30);
    if (argc < 2) return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "exit") == 0 && argc == 3) return atoi(argv[2]);
    if (strcmp(mode, "forward") == 0 && argc >= 3) return forwarder(argv[0], argv + 2);
    if (strcmp(mode, "sleep") == 0) {
        signal(SIGINT, on_int);
        while (!got_int) pause();
        printf("got SIGINT\n");
        return 130;
    }
    if ((strcmp(mode, "alloc") == 0 || strcmp(mode, "filestop") == 0) && argc >= 5) {
        long step = atol(argv[2]), every = atol(argv[3]);
        long cap = argc > 5 ? atol(argv[5]) : 100000;
        if (strcmp(mode, "filestop") == 0) signal(SIGUSR1, SIG_IGN);
        mg_stop *stop = mg_stop_open(strcmp(mode, "filestop") == 0 ? -1 : 0, NULL);
        if (!stop) return 5;
        return alloc_loop(stop, step, every, cap, argv[4], 0, false);
    }
    if (strcmp(mode, "ballast") == 0 && (argc == 8 || argc == 9))
        return ballast(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]), atol(argv[6]),
                       atol(argv[7]), argc == 9 ? argv[8] : NULL);
    if (strcmp(mode, "continuer") == 0 && argc == 6)
        return continuer(atol(argv[2]), atol(argv[3]), argv[4], atol(argv[5]));
    if (strcmp(mode, "resumable") == 0 && argc == 8)
        return resumable(argv[2], atol(argv[3]), atol(argv[4]), argv[5], atol(argv[6]),
                         atoi(argv[7]) == 1);
    if (strcmp(mode, "launcher") == 0 && argc == 8)
        return launcher(strcmp(argv[2], "quit") == 0, atoi(argv[3]), atol(argv[4]),
                        atol(argv[5]), argv[6], atol(argv[7]));
    if (strcmp(mode, "setsid") == 0 && argc == 4)
        return setsid_child(strcmp(argv[2], "stay") == 0, atol(argv[3]));
    if (strcmp(mode, "late") == 0 && argc == 5) {
        grab(atol(argv[3]));
        sleep_ms(atol(argv[2]));
        unsetenv("MEMGUARD_STOP_FILE");
        mg_stop *stop = mg_stop_open(0, NULL);
        if (!stop) return 5;
        for (int i = 0; i < 5000 && !mg_stop_requested(stop); i++) sleep_ms(2);
        if (!mg_stop_requested(stop)) return 0;
        checkpoint(argv[4], atol(argv[3]));
        return MG_EXIT_MEMSTOP;
    }
    if (strcmp(mode, "ignore") == 0 && argc == 5) {
        long step = atol(argv[2]), every = atol(argv[3]), cap = atol(argv[4]);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        for (long total = 0; total + step <= cap; total += step) {
            grab(step);
            sleep_ms(every);
        }
        for (;;) pause();
    }
    if (strcmp(mode, "workers") == 0 && argc == 6) {
        int n = atoi(argv[2]);
        long step = atol(argv[3]), every = atol(argv[4]);
        mg_stop *stop = mg_stop_open(0, NULL);
        if (!stop || n < 1 || n > 16) return 5;
        pid_t kids[16];
        for (int i = 0; i < n; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                /* Workers leave the checkpoint to the parent, like
                 * DataLoader workers. */
                signal(SIGUSR1, SIG_IGN);
                for (;;) {
                    grab(step);
                    sleep_ms(every);
                }
            }
        }
        while (!mg_stop_requested(stop)) sleep_ms(2);
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
        checkpoint(argv[5], 0);
        return MG_EXIT_MEMSTOP;
    }
    fprintf(stderr, "helper_child: bad arguments\n");
    return 2;
}
