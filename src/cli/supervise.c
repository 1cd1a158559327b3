/* SPDX-License-Identifier: MIT */
/*
 * supervise.c: the heart of `memguard run`, on every platform: watch
 * memory at the library's adaptive interval, and when it turns critical
 * ask the command to checkpoint and stop, then escalate: a polite end
 * after --grace (SIGTERM; Windows has none and goes straight on), a kill
 * after --kill-after, a kill at once past a hard limit. It returns the exit
 * status: 75 whenever the trainer acknowledged a good save, whatever a
 * launcher made of its status.
 *
 * The request is the stop file (stopfile.c) plus the platform's signal
 * (SIGUSR1 to the processes that catch it on Linux; the stop event and, to
 * an armed process group, CTRL_BREAK on Windows), sent again while the
 * request is pending to processes that became able to take it: a signal
 * with its default action would kill a launcher, a wrapper, a DataLoader
 * worker or a trainer that has not created its guard yet. Those read the
 * stop file.
 *
 * The escalation is a one-way state machine, RUNNING -> REQUESTED ->
 * TERMINATED -> KILLED, so the polite end is sent once and never looped on
 * (earlyoom #354 / #373). The one way back: a trainer that answers a
 * memory request with "saved and continuing" (memguard.h,
 * mg_stop_continue) while it is pending returns it to RUNNING; each
 * request carries its number, so an answer is to one request only. Starting the command, waiting, reaping, and who
 * is signalled how are the platform's half (supervise.h); this file never
 * sends, spawns or waits itself.
 */
#include "supervise.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_name[] = {"running", "requested", "terminated", "killed"};

/* How often a pending request looks for processes that installed a
 * handler for the checkpoint signal since it was sent. */
#define RECHECK_MS 50u

/* The budget's hard limit kills no sooner than this after the request,
 * which goes out first even when the first confirmed reading is already
 * past it: a fast fill can cross from the stop line past the hard one
 * between the two reads that confirm it (each a page-table walk, 10-40 ms
 * on a loaded machine: test_run, test_workers_are_counted), and a kill
 * before any request loses the run. The machine's, the cgroup's and the
 * GPUs' hard limits still kill at once. */
#define BUDGET_HARD_AFTER_MS 2000u

static uint64_t now_ms(void) { return run_os_now_us() / 1000u; }

/* The verdict as the seed's warning text, without marker and newline. */
static void reason_text(const mg_verdict *v, char *buf, size_t len)
{
    mg_text_opts t = {MG_LANG_EN, false};
    mg_format_warning(v, &t, -1, buf, len);
    char *p = strstr(buf, "] ");
    if (p && buf[0] == '[') memmove(buf, p + 2, strlen(p + 2) + 1);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n') buf[n - 1] = '\0';
}

/* ---- acting on levels ---------------------------------------------------------- */

/* Which hard limit a reading is past. The budget's is the caller's own
 * line, not the machine's: memory past it does not freeze anything, so it
 * waits for the request to have had a chance (BUDGET_HARD_AFTER_MS). */
enum hard { HARD_NONE, HARD_BUDGET, HARD_NOW };

static enum hard past_hard_limit(const sup *s, const mg_snapshot *snap, char *why, size_t len)
{
    if (snap->ram.known && snap->ram.used_frac >= s->o->hard_ram_frac) {
        snprintf(why, len, "RAM %.1f%% >= hard limit %.1f%%", 100.0 * snap->ram.used_frac,
                 100.0 * s->o->hard_ram_frac);
        return snap->ram.source == MG_RAM_SOURCE_BUDGET ? HARD_BUDGET : HARD_NOW;
    }
    for (unsigned i = 0; i < snap->gpu_count; i++) {
        const mg_gpu *g = &snap->gpus[i];
        if (g->known && g->used_frac >= s->o->hard_gpu_frac) {
            snprintf(why, len, "GPU %u %.1f%% >= hard limit %.1f%%", g->index,
                     100.0 * g->used_frac, 100.0 * s->o->hard_gpu_frac);
            return HARD_NOW;
        }
    }
    return HARD_NONE;
}

static void kill_now(sup *s, const char *why, uint64_t detect_us, const mg_snapshot *snap,
                  const mg_verdict *v)
{
    if (!s->o->dry_run) sos_kill(s);
    double latency = (double)(run_os_now_us() - detect_us) / 1000.0;
    char extra[512], q[300];
    mg_json_quote(why, q, sizeof q);
    snprintf(extra, sizeof extra, "\"why\":%s,\"hard\":true,\"dry_run\":%s,\"latency_ms\":%.3f",
             q, s->o->dry_run ? "true" : "false", latency);
    sup_log(s, "kill", extra, snap, v);
    sup_say("%s%s: killing pid %d and its whole tree now (%s)",
            s->o->dry_run ? "dry run: " : "", why, s->child, sos_kill_name());
    s->phase = PH_KILLED;
}

static size_t request_signal(sup *s, bool late)
{
    size_t got = sos_request_signal(s, late);
    s->next_recheck_ms = now_ms() + RECHECK_MS;
    return got;
}

/* The request: the stop file for every process of the tree, the signal for
 * those that can take it. `memory`: critical memory, which a trainer may
 * answer by continuing smaller; else a manual request, which stops. */
static void request_stop(sup *s, uint64_t detect_us, const mg_snapshot *snap, const mg_verdict *v,
                         bool memory)
{
    size_t got = 0;
    s->request_no++;
    if (!s->o->dry_run) {
        int rc = stop_file_write(&s->files, s->reason, s->request_no, memory);
        if (rc < 0)
            sup_say("cannot write the stop file %s: %s (the signal still goes out)",
                    s->files.stop, strerror(-rc));
        got = request_signal(s, false);
    }
    double latency = (double)(run_os_now_us() - detect_us) / 1000.0;
    char extra[RUN_PATH_MAX + 1024], q[300], f[RUN_PATH_MAX + 8], name[32];
    mg_json_quote(s->reason, q, sizeof q);
    mg_json_quote(s->files.stop, f, sizeof f);
    sos_signal_name(s, name, sizeof name);
    snprintf(extra, sizeof extra,
             "\"reason\":%s,\"signal\":%d,\"signal_name\":\"%s\",\"signalled\":%zu,"
             "\"stop_file\":%s,\"dry_run\":%s,\"latency_ms\":%.3f,\"grace_ms\":%" PRIu64
             ",\"request\":%" PRIu64 ",\"may_continue\":%s",
             q, s->o->signo, name, got, f, s->o->dry_run ? "true" : "false", latency,
             s->o->grace_ms, s->request_no, memory ? "true" : "false");
    sup_log(s, "request", extra, snap, v);
    sup_say("%scritical: %s; asking pid %d to checkpoint and stop (stop file %s; %s to %zu "
            "process%s that handle%s it), grace %.0f s",
            s->o->dry_run ? "dry run: " : "", s->reason, s->child, s->files.stop, name, got,
            got == 1 ? "" : "es", got == 1 ? "s" : "", (double)s->o->grace_ms / 1000.0);
    s->phase = PH_REQUESTED;
    s->deadline_ms = now_ms() + s->o->grace_ms;
    s->budget_kill_ms = now_ms() + BUDGET_HARD_AFTER_MS;
}

/* What memguard itself was asked: a "checkpoint and stop" (SIGUSR1, a
 * first Ctrl+C on Windows) or a kill (a second Ctrl+C). */
static void act_on(sup *s, const sos_ask *a)
{
    if (a->kind == ASK_KILL) {
        if (s->phase < PH_KILLED && !s->child_done) kill_now(s, a->text, a->at_us, NULL, NULL);
    } else if (a->kind == ASK_REQUEST) {
        if (s->phase != PH_RUNNING || s->child_done) {
            sup_say("%s: a request is already under way", a->how);
            return;
        }
        snprintf(s->reason, sizeof s->reason, "%s", a->text);
        request_stop(s, a->at_us, NULL, NULL, false);
    }
}

/* Waits for what can happen to memguard, and acts on what it was asked. */
static void wait_events(sup *s, uint64_t timeout_ms)
{
    sos_ask a = {0};
    sos_wait(s, timeout_ms, &a);
    act_on(s, &a);
}

static void warn(sup *s, mg_level level, const mg_snapshot *snap, const mg_verdict *v)
{
    uint64_t now = now_ms();
    bool fresh = s->last_level == MG_LEVEL_SAFE;
    if (!fresh && now - s->last_warn_ms < s->o->warn_every_ms) return;
    s->last_warn_ms = now;
    char buf[512];
    mg_text_opts t = cli_text_opts(&s->o->c);
    mg_format_warning(v, &t, -1, buf, sizeof buf);
    fprintf(stderr, "memguard: %s", buf);
    char extra[400], q[300];
    mg_json_quote(s->reason, q, sizeof q);
    snprintf(extra, sizeof extra, "\"reason\":%s", q);
    sup_log(s, "warn", extra, snap, v);
    if (s->o->on_warn && !s->hook_running) sos_run_hook(s, level);
}

/* One sample and what follows from it. Returns the milliseconds until the
 * next one, from the same sample. */
static uint32_t check(sup *s)
{
    mg_snapshot snap;
    mg_verdict v;
    uint64_t detect_us = run_os_now_us();
    mg_sample(s->ctx, &snap);
    mg_level level = mg_classify(s->cfg, &snap, &s->st, &v);
    if (level != MG_LEVEL_SAFE) reason_text(&v, s->reason, sizeof s->reason);

    uint64_t now = now_ms();
    if ((s->o->log_path || s->o->log_fd >= 0) && now >= s->next_report_ms) {
        sup_log(s, "sample", NULL, &snap, &v);
        s->next_report_ms = now + s->o->report_interval_ms;
    }
    char why[160];
    bool act = s->phase == PH_RUNNING ||
               (s->phase < PH_KILLED && past_hard_limit(s, &snap, why, sizeof why));
    if (level == MG_LEVEL_CRITICAL && act) {
        /* Nothing is done on one reading: a re-read must agree (a
         * page-cache burst can come and go between two reads; the tree's
         * figure is then a fresh PSS, see mg_proctree). */
        mg_sample(s->ctx, &snap);
        level = mg_classify(s->cfg, &snap, &s->st, &v);
        if (level == MG_LEVEL_CRITICAL) {
            reason_text(&v, s->reason, sizeof s->reason);
            enum hard h = past_hard_limit(s, &snap, why, sizeof why);
            if (h == HARD_NOW || (h == HARD_BUDGET && s->phase != PH_RUNNING &&
                                  now_ms() >= s->budget_kill_ms))
                kill_now(s, why, detect_us, &snap, &v);
            else if (s->phase == PH_RUNNING)
                request_stop(s, detect_us, &snap, &v, true);
        }
    } else if (level == MG_LEVEL_WARN && s->phase == PH_RUNNING) {
        warn(s, level, &snap, &v);
    }
    s->last_level = level;
    return mg_next_poll_ms(s->cfg, &snap);
}

/* After --kill-after, or at once after --grace where there is no polite
 * end. */
static void kill_after_grace(sup *s, const char *after, uint64_t ms)
{
    sup_say("%spid %d still running %.0f s after %s: sending %s",
            s->o->dry_run ? "dry run: " : "", s->child, (double)ms / 1000.0, after,
            sos_kill_name());
    if (!s->o->dry_run) sos_kill(s);
    sup_log(s, "kill", s->o->dry_run ? "\"hard\":false,\"dry_run\":true"
                                     : "\"hard\":false,\"dry_run\":false", NULL, NULL);
    s->phase = PH_KILLED;
}

/* The trainer answered the pending request with "saved and continuing":
 * back to watching, the stop file gone, the signal ready for the next
 * request. An answer to another request than the pending one is left. */
static void take_continue(sup *s)
{
    char ckpt[RUN_PATH_MAX], note[256], extra[RUN_PATH_MAX + 600], q[RUN_PATH_MAX + 8],
        qn[300];
    uint64_t id;
    if (!stop_continue_read(&s->files, &id, ckpt, sizeof ckpt, note, sizeof note) ||
        id != s->request_no)
        return;
    mg_json_quote(ckpt, q, sizeof q);
    mg_json_quote(note, qn, sizeof qn);
    snprintf(extra, sizeof extra, "\"request\":%" PRIu64 ",\"checkpoint\":%s,\"note\":%s", id,
             q, qn);
    sup_log(s, "continue", extra, NULL, NULL);
    sup_say("pid %d saved %s and continues%s%s%s", s->child, ckpt, note[0] ? " (" : "", note,
            note[0] ? ")" : "");
    stop_continue_taken(&s->files);
    sos_request_withdrawn(s);
    s->phase = PH_RUNNING;
}

/* Time-driven escalation; never repeats a step. */
static void escalate(sup *s)
{
    if (s->phase == PH_REQUESTED && !s->o->dry_run) take_continue(s);
    uint64_t now = now_ms();
    if (s->phase == PH_REQUESTED && !s->o->dry_run && now >= s->next_recheck_ms)
        request_signal(s, true);
    if (s->phase == PH_REQUESTED && now >= s->deadline_ms && sos_can_terminate()) {
        sup_say("%spid %d still running %.0f s after the request: sending SIGTERM",
                s->o->dry_run ? "dry run: " : "", s->child, (double)s->o->grace_ms / 1000.0);
        if (!s->o->dry_run) sos_terminate(s);
        sup_log(s, "term", s->o->dry_run ? "\"dry_run\":true" : "\"dry_run\":false", NULL,
                NULL);
        s->phase = PH_TERMINATED;
        s->deadline_ms = now + s->o->kill_after_ms;
    } else if (s->phase == PH_REQUESTED && now >= s->deadline_ms) {
        kill_after_grace(s, "the request", s->o->grace_ms);
    } else if (s->phase == PH_TERMINATED && now >= s->deadline_ms) {
        kill_after_grace(s, "SIGTERM", s->o->kill_after_ms);
    }
    if (s->hook_running && now >= s->hook_deadline_ms) {
        sup_say("--on-warn hook %s ran past %.0f s: killing it", s->o->on_warn,
                (double)s->o->hook_timeout_ms / 1000.0);
        sos_kill_hook(s);
        s->hook_deadline_ms = UINT64_MAX;
    }
}

/* ---- the end ------------------------------------------------------------------- */

/* The status from the acknowledgement, when the trainer wrote one: a good
 * save, whatever a launcher (torchrun, mp.spawn) returned. 0 if none. */
static int acknowledged(sup *s)
{
    char ckpt[RUN_PATH_MAX], extra[RUN_PATH_MAX + 64], q[RUN_PATH_MAX + 8];
    if (!stop_ack_read(&s->files, ckpt, sizeof ckpt)) return 0;
    snprintf(s->att->saved, sizeof s->att->saved, "%s", ckpt);
    mg_json_quote(ckpt, q, sizeof q);
    snprintf(extra, sizeof extra, "\"checkpoint\":%s", q);
    sup_log(s, "ack", extra, NULL, NULL);
    sup_say("pid %d saved %s and stopped (exit %d)", s->child, ckpt, MG_EXIT_MEMSTOP);
    return MG_EXIT_MEMSTOP;
}

static int exit_status(sup *s)
{
    int acked = acknowledged(s);
    if (acked) return acked;
    const child_end *e = &s->end;
    if (s->o->dry_run || s->phase == PH_RUNNING) return e->signalled ? 128 + e->sig : e->code;
    if (!e->signalled) {
        if (s->phase == PH_REQUESTED && (e->code == 0 || e->code == MG_EXIT_MEMSTOP)) {
            sup_say("pid %d saved and stopped after the memory request (exit %d)", s->child,
                    MG_EXIT_MEMSTOP);
            return MG_EXIT_MEMSTOP;
        }
        if (s->phase == PH_REQUESTED) return e->code; /* it failed on its own */
    } else if (!e->sig_ours) {
        return 128 + e->sig;
    }
    sup_say("pid %d was stopped without a checkpoint (exit %d)", s->child, MG_EXIT_MEMKILL);
    return MG_EXIT_MEMKILL;
}

/* Waits until no member is left or the deadline passes. */
static bool wait_members_gone(sup *s, uint64_t deadline)
{
    while (sos_members_alive(s) > 0) {
        if (now_ms() >= deadline) return false;
        wait_events(s, 50);
        if (s->phase == PH_REQUESTED && !s->o->dry_run && now_ms() >= s->next_recheck_ms)
            request_signal(s, true);
    }
    return true;
}

/* After the command exits: processes of its tree still alive (workers it
 * left behind, ranks, processes that left its group) get the rest of
 * --grace when a request is pending (ranks may still be saving), then the
 * polite end, then the kill after --kill-after. */
static void clean_up_tree(sup *s)
{
    if (sos_members_alive(s) == 0) return;
    if (s->phase == PH_REQUESTED && now_ms() < s->deadline_ms) {
        sup_say("pid %d exited during the request; its other processes get the rest of the "
                "grace time to save", s->child);
        if (wait_members_gone(s, s->deadline_ms)) return;
    }
    if (sos_can_terminate()) {
        sup_say("processes of pid %d's tree outlived it: sending SIGTERM", s->child);
        sup_log(s, "cleanup", "\"signal\":15", NULL, NULL);
        sos_terminate(s);
        if (wait_members_gone(s, now_ms() + s->o->kill_after_ms)) return;
    }
    sup_say("processes of pid %d's tree still alive: sending %s", s->child, sos_kill_name());
    sup_log(s, "cleanup", "\"signal\":9", NULL, NULL);
    sos_kill(s);
    wait_members_gone(s, now_ms() + 2000);
}

/* The first start logs "start" with the command; a restart logs "restart"
 * in the same run (one picture for every attempt), with the checkpoint it
 * resumes from. */
static void log_start(sup *s)
{
    char extra[4200], q[4096];
    if (s->att->k > 0) {
        mg_json_quote(s->att->resume, q, sizeof q);
        snprintf(extra, sizeof extra, "\"pid\":%d,\"attempt\":%u,\"resume\":%s", s->child,
                 s->att->k, q);
        sup_log(s, "restart", extra, NULL, NULL);
        return;
    }
    size_t pos = 0;
    q[0] = '\0';
    for (char **a = s->o->argv; *a && pos < sizeof q - 600; a++) {
        char one[512];
        mg_json_quote(*a, one, sizeof one);
        pos += (size_t)snprintf(q + pos, sizeof q - pos, "%s%s", pos ? "," : "", one);
    }
    snprintf(extra, sizeof extra,
             "\"pid\":%d,\"command\":[%s],\"dry_run\":%s,\"hard_ram_frac\":%.6g,"
             "\"hard_gpu_frac\":%.6g",
             s->child, q, s->o->dry_run ? "true" : "false", s->o->hard_ram_frac,
             s->o->hard_gpu_frac);
    sup_log(s, "start", extra, NULL, NULL);
}

static void watch(sup *s)
{
    uint64_t next_sample = 0;
    while (!s->child_done) {
        uint64_t now = now_ms();
        if (now >= next_sample && (s->phase < PH_KILLED || s->o->dry_run))
            next_sample = now_ms() + check(s);
        escalate(s);
        if (s->child_done) break;
        /* Once killed, nothing is left to decide: just wait for the end. */
        uint64_t wake = s->phase < PH_KILLED || s->o->dry_run ? next_sample : now_ms() + 1000;
        if (s->phase == PH_REQUESTED || s->phase == PH_TERMINATED)
            wake = wake < s->deadline_ms ? wake : s->deadline_ms;
        if (s->phase == PH_REQUESTED && s->next_recheck_ms < wake) wake = s->next_recheck_ms;
        if (s->hook_running && s->hook_deadline_ms < wake) wake = s->hook_deadline_ms;
        now = now_ms();
        wait_events(s, wake > now ? wake - now : 0);
    }
}

static void log_exit(sup *s, int status)
{
    char extra[200];
    snprintf(extra, sizeof extra,
             "\"pid\":%d,\"code\":%d,\"signal\":%d,\"phase\":\"%s\",\"exit_status\":%d",
             s->child, s->end.signalled ? -1 : s->end.code,
             s->end.signalled ? s->end.sig : 0, phase_name[s->phase], status);
    sup_log(s, "exit", extra, NULL, NULL);
}

/* MEMGUARD_ATTEMPT always, MEMGUARD_RESUME on a restart. */
static int attempt_env(const run_attempt *a)
{
    char k[16];
    snprintf(k, sizeof k, "%u", a->k);
    int rc = run_os_setenv(MG_ENV_ATTEMPT, k);
    if (rc == 0 && a->k > 0) rc = run_os_setenv(MG_ENV_RESUME, a->resume);
    if (rc < 0) sup_say("cannot set %s: %s", MG_ENV_ATTEMPT, strerror(-rc));
    return rc;
}

int supervise(const run_opts *o, mg_ctx *ctx, run_attempt *a)
{
    sup s = {0};
    s.o = o;
    s.att = a;
    s.ctx = ctx;
    s.cfg = mg_ctx_config(ctx);
    if (!a->t0_ms) a->t0_ms = now_ms();
    s.t0_ms = a->t0_ms;
    a->saved[0] = '\0';
    if (attempt_env(a) < 0) return MG_EXIT_ERROR;
    int status = stop_paths_init(&s.files, o->stop_file);
    if (status) return status;
    s.log = o->log_fd >= 0 ? runlog_open_fd(run_os_dup(o->log_fd)) : runlog_open(o->log_path);
    if (!s.log && o->log_fd >= 0) {
        sup_say("out of memory");
        stop_paths_cleanup(&s.files);
        return MG_EXIT_ERROR;
    }
    if (!s.log) {
        int e = errno;
        stop_paths_cleanup(&s.files);
        return cli_usage_error("--log '%s': %s", o->log_path,
                               e == EINVAL ? "not a writable regular file"
                               : e == ELOOP ? "a symbolic link (not followed)" : strerror(e));
    }
    if ((status = sos_start(&s)) == 0) {
        log_start(&s);
        watch(&s);
        clean_up_tree(&s);
        status = exit_status(&s);
        log_exit(&s, status);
    }
    sos_finish(&s);
    stop_paths_cleanup(&s.files);
    runlog_close(s.log);
    return status;
}
