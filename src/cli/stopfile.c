/* SPDX-License-Identifier: MIT */
/*
 * stopfile.c: the files of `memguard run`'s protocol on the supervisor's
 * side: where the stop file, the acknowledgement and the "continuing"
 * answer live, writing the stop file, reading the acknowledgement and the
 * answer, and removing what memguard made. The
 * formats are memguard.h's (MG_STOP_FILE_HEADER); the trainer's side is
 * the library's stop.c (posix/ or win/).
 *
 * By default both live in a private folder (run_os_private_dir: mkdtemp,
 * mode 0700, on POSIX; a new folder under the user's %TEMP% on Windows),
 * so no other user can plant, replace or read them, and two runs never
 * share them. With --stop-file PATH they are PATH and PATH.ack: an
 * existing path there is refused unless it is a regular file of ours
 * holding a stop request (or an acknowledgement) that an earlier memguard
 * left behind, so a typo such as `--stop-file train.py` never deletes the
 * script. Every file is created new and renamed into place, so no symlink
 * is ever followed. It never signals or decides anything: supervise.c
 * does; the system calls are the platform's (run.h, run_os_*).
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The three files, for messages. */
enum which { F_STOP, F_ACK, F_CONTINUE };
static const char *const what[] = {"a stop file", "an acknowledgement", "a continuing answer"};

static bool starts_with_line(const char *text, const char *header)
{
    size_t hl = strlen(header);
    return strncmp(text, header, hl) == 0 && text[hl] == '\n';
}

/* Whether path holds a leftover of ours: a regular file (not a link), our
 * user's, starting with the stop file's or the answer's header or, for an
 * ack, an absolute path. */
static bool is_our_leftover(const char *path, enum which w)
{
    char head[64];
    if (run_os_read_small(path, head, sizeof head, true) < 0) return false;
    if (w == F_ACK) return run_os_path_absolute(head);
    return starts_with_line(head, w == F_STOP ? MG_STOP_FILE_HEADER : MG_CONTINUE_FILE_HEADER);
}

/* Makes sure nothing is at path: removes a leftover of ours, refuses
 * anything else. Returns 0 or the exit status after one line. */
static int clear_path(const char *flag_value, const char *path, enum which w)
{
    if (!run_os_exists(path)) return 0;
    if (!is_our_leftover(path, w))
        return cli_usage_error("--stop-file '%s': %s exists and is not %s memguard left "
                               "behind; name a path that does not exist",
                               flag_value, path, what[w]);
    int rc = run_os_unlink(path);
    if (rc < 0 && rc != -ENOENT)
        return cli_usage_error("--stop-file '%s': cannot remove the stale %s: %s", flag_value,
                               path, strerror(-rc));
    if (run_os_exists(path))
        return cli_usage_error("--stop-file '%s': %s is still there after removing it",
                               flag_value, path);
    return 0;
}

static int user_paths(stop_paths *p, const char *user)
{
    if (!*user) return cli_usage_error("--stop-file '': expected a path");
    if (snprintf(p->stop, sizeof p->stop, "%s", user) >= (int)sizeof p->stop ||
        snprintf(p->ack, sizeof p->ack, "%s.ack", user) >= (int)sizeof p->ack ||
        snprintf(p->cont, sizeof p->cont, "%s.continue", user) >= (int)sizeof p->cont)
        return cli_usage_error("--stop-file: path too long (at most %d bytes)",
                               RUN_PATH_MAX - 10);
    size_t n = strlen(user);
    if (run_os_is_sep(user[n - 1]))
        return cli_usage_error("--stop-file '%s': expected a file name, not a folder", user);
    int rc = clear_path(user, p->stop, F_STOP);
    if (!rc) rc = clear_path(user, p->ack, F_ACK);
    return rc ? rc : clear_path(user, p->cont, F_CONTINUE);
}

int stop_paths_init(stop_paths *p, const char *user_path)
{
    memset(p, 0, sizeof *p);
    if (user_path) return user_paths(p, user_path);
    int rc = run_os_private_dir(p->dir, sizeof p->dir - 8);
    if (rc) return rc;
    p->dir_made = true;
    /* run_os_private_dir left room for the two names. */
    snprintf(p->stop, sizeof p->stop, "%.*s%cstop", RUN_PATH_MAX - 8, p->dir, run_os_sep());
    snprintf(p->ack, sizeof p->ack, "%.*s%cack", RUN_PATH_MAX - 8, p->dir, run_os_sep());
    snprintf(p->cont, sizeof p->cont, "%.*s%ccontinue", RUN_PATH_MAX - 16, p->dir,
             run_os_sep());
    return 0;
}

int stop_file_write(stop_paths *p, const char *reason, uint64_t request, bool memory)
{
    char text[700], line[300];
    /* The reason is one line: a request line after it must stay the third. */
    snprintf(line, sizeof line, "%s", reason);
    line[strcspn(line, "\r\n")] = '\0';
    int n = snprintf(text, sizeof text, "%s\n%s\nrequest %llu %s\n", MG_STOP_FILE_HEADER, line,
                     (unsigned long long)request, memory ? "memory" : "stop");
    if (n >= (int)sizeof text) n = (int)sizeof text - 1;
    int rc = run_os_write_replace(p->stop, text, (size_t)n);
    if (rc == 0) p->stop_made = true;
    return rc;
}

/* The value of the line "KEY VALUE" that starts at *at, copied into buf;
 * *at moves past it. False when the line is not that key's. */
static bool keyed_line(const char **at, const char *key, char *buf, size_t len)
{
    size_t kl = strlen(key);
    if (strncmp(*at, key, kl) != 0 || (*at)[kl] != ' ') return false;
    const char *v = *at + kl + 1;
    size_t n = strcspn(v, "\n");
    if (v[n] != '\n' || n >= len) return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    *at = v + n + 1;
    return true;
}

bool stop_continue_read(const stop_paths *p, uint64_t *request, char *ckpt, size_t len,
                        char *note, size_t note_len)
{
    char text[RUN_PATH_MAX + 1024], num[32];
    if (run_os_read_small(p->cont, text, sizeof text, true) <= 0 ||
        !starts_with_line(text, MG_CONTINUE_FILE_HEADER))
        return false;
    const char *at = text + strlen(MG_CONTINUE_FILE_HEADER) + 1;
    uint64_t id;
    if (!keyed_line(&at, "request", num, sizeof num) || mg_parse_uint(num, UINT64_MAX, &id) < 0 ||
        !keyed_line(&at, "checkpoint", ckpt, len) || !keyed_line(&at, "note", note, note_len))
        return false;
    *request = id;
    return true;
}

void stop_continue_taken(stop_paths *p)
{
    if (is_our_leftover(p->cont, F_CONTINUE)) run_os_unlink(p->cont);
    if (p->stop_made) run_os_unlink(p->stop);
    p->stop_made = false;
}

bool stop_ack_read(const stop_paths *p, char *ckpt, size_t len)
{
    if (run_os_read_small(p->ack, ckpt, len, false) <= 0) return false;
    ckpt[strcspn(ckpt, "\r\n")] = '\0';
    return true;
}

void stop_paths_cleanup(stop_paths *p)
{
    if (p->stop_made) run_os_unlink(p->stop);
    /* The acknowledgement is the trainer's, made on our request: ours to
     * remove too, but only as the file we asked for. */
    if (is_our_leftover(p->ack, F_ACK)) run_os_unlink(p->ack);
    if (is_our_leftover(p->cont, F_CONTINUE)) run_os_unlink(p->cont);
    if (p->dir_made) run_os_private_dir_remove(p->dir);
}
