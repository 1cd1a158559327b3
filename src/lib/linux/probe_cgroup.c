/* SPDX-License-Identifier: MIT */
/*
 * probe_cgroup.c: the caller's memory cgroup, v2 or v1 (DESIGN.md 4,
 * research/probes.md): found from /proc/self/cgroup and mountinfo under
 * the injectable roots, then walked up to take the smallest limit of any
 * level (v1's "unlimited" is a huge number, not a limit), with the usage
 * and inactive file cache of the level that set it. Descriptors are kept
 * open and re-read with pread.
 */
#include "probe.h"


/* ---- cgroup: discovery --------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

static bool has_token(const char *list, const char *tok, char sep)
{
    size_t tlen = strlen(tok);
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, sep);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == tlen && memcmp(p, tok, tlen) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* Whitespace-separated tokens of one line, in place. */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n < max) {
        while (*p == ' ') p++;
        if (!*p) break;
        f[n++] = p;
        while (*p && *p != ' ') p++;
        if (*p) *p++ = '\0';
    }
    return n;
}

/* From mountinfo ("id parent maj:min ROOT MOUNTPOINT opts [optional...] -
 * FSTYPE SOURCE SUPEROPTS"), the ROOT of the cgroup2 mount and of the v1
 * mount with the memory controller. A root stays "/" when not found. */
static void read_mount_roots(mg__probe *p, char *root_v2, char *root_v1,
                             size_t len)
{
    char path[PATH_LEN];
    bool got_v2 = false, got_v1 = false;
    /* A busy host's mountinfo can run to hundreds of KiB: mg__read_file_grow. */
    if (mg__path(path, sizeof path, "%s/self/mountinfo", p->proc_root) != 0 ||
        mg__read_file_grow(path, &p->buf, &p->buf_len) < 0) {
        mg__logf(&p->log, MG_LOG_DEBUG, "no %s: cgroup mount roots taken as /",
                 path);
        return;
    }
    char *buf = p->buf;
    char *save = buf;
    while (save && *save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            save = nl + 1;
        } else {
            save = NULL;
        }
        char *f[64];
        int n = split_fields(line, f, 64);
        int dash = -1;
        for (int i = 6; i < n; i++)
            if (strcmp(f[i], "-") == 0) { dash = i; break; }
        if (dash < 0 || dash + 1 >= n) continue;
        const char *fstype = f[dash + 1];
        const char *superopts = dash + 3 < n ? f[dash + 3] : "";
        if (!got_v2 && strcmp(fstype, "cgroup2") == 0) {
            unescape_octal(f[3]);
            copy_str(root_v2, len, f[3], strlen(f[3]));
            got_v2 = true;
        } else if (!got_v1 && strcmp(fstype, "cgroup") == 0 &&
                   has_token(superopts, "memory", ',')) {
            unescape_octal(f[3]);
            copy_str(root_v1, len, f[3], strlen(f[3]));
            got_v1 = true;
        }
    }
}

/* The controllers file of a v2 hierarchy lists "memory" when the memory
 * controller is enabled there. */
static bool v2_has_memory(const char *dir)
{
    char path[PATH_LEN], buf[1024];
    if (mg__path(path, sizeof path, "%s/cgroup.controllers", dir) != 0)
        return false;
    ssize_t n = mg__read_file(path, buf, sizeof buf);
    if (n < 0) return false;
    for (char *q = buf; *q; q++)
        if (*q == '\n' || *q == '\t') *q = ' ';
    return has_token(buf, "memory", ' ');
}

/* Builds cg_dir and the levels from the mount directory, the mount's ROOT and
 * the cgroup path. Returns false when the path cannot be mapped. */
static bool map_cgroup(mg__probe *p, const char *mount_dir, const char *root,
                       const char *cgpath)
{
    size_t rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
    while (rlen > 0 && root[rlen - 1] == '/') rlen--;
    size_t strip = 0;
    if (rlen > 0 && strncmp(cgpath, root, rlen) == 0 &&
        (cgpath[rlen] == '/' || cgpath[rlen] == '\0'))
        strip = rlen;
    else if (rlen > 0)
        mg__logf(&p->log, MG_LOG_DEBUG,
                 "cgroup %s is outside its mount root %s: taken as relative",
                 cgpath, root);
    const char *rel = cgpath + strip;
    size_t rel_len = strlen(rel);
    while (rel_len > 0 && rel[rel_len - 1] == '/') rel_len--;
    /* A path with ".." would walk out of the cgroup tree. */
    for (size_t i = 0; i + 2 <= rel_len; i++)
        if (rel[i] == '.' && rel[i + 1] == '.' &&
            (i == 0 || rel[i - 1] == '/') &&
            (i + 2 == rel_len || rel[i + 2] == '/'))
            return false;
    copy_str(p->cg_path, sizeof p->cg_path, cgpath, strlen(cgpath));
    size_t mlen = strlen(mount_dir);
    if (mlen + rel_len + 1 > sizeof p->cg_dir) return false;
    memcpy(p->cg_dir, mount_dir, mlen);
    memcpy(p->cg_dir + mlen, rel, rel_len);
    p->cg_dir[mlen + rel_len] = '\0';

    /* Levels: the leaf, each parent, up to the mount directory itself.
     * Ancestors above a cgroup namespace root are not visible (3.4). */
    p->nlevels = 0;
    size_t cut = rel_len;
    for (;;) {
        if (p->nlevels == MAX_LEVELS) {
            mg__logf(&p->log, MG_LOG_WARN,
                     "cgroup %s deeper than %d levels: upper limits not seen",
                     cgpath, MAX_LEVELS);
            break;
        }
        cg_level *l = &p->levels[p->nlevels++];
        l->dir_len = mlen + cut;
        l->path_len = strip + cut;
        l->limit_fd = -1;
        if (cut == 0) break;
        while (cut > 0 && rel[cut - 1] != '/') cut--;
        if (cut > 0) cut--; /* drop the slash */
    }
    return true;
}

static void level_dir(const mg__probe *p, int i, char *out, size_t len)
{
    copy_str(out, len, p->cg_dir, p->levels[i].dir_len);
}

static void level_path(const mg__probe *p, int i, char *out, size_t len)
{
    if (p->levels[i].path_len == 0)
        copy_str(out, len, "/", 1);
    else
        copy_str(out, len, p->cg_path, p->levels[i].path_len);
}

static int open_level_file(const mg__probe *p, int i, const char *name)
{
    char dir[PATH_LEN], path[PATH_LEN];
    level_dir(p, i, dir, sizeof dir);
    if (mg__path(path, sizeof path, "%s/%s", dir, name) != 0) return -1;
    return open_ro(path);
}

static const char *usage_name(int version)
{
    return version == 2 ? "memory.current" : "memory.usage_in_bytes";
}

/* Points usage_fd and stat_fd at level i. */
static bool open_usage(mg__probe *p, int i)
{
    close_fd(&p->usage_fd);
    close_fd(&p->stat_fd);
    p->usage_level = -1; /* retried at the next sample if this fails */
    p->usage_fd = open_level_file(p, i, usage_name(p->cg_version));
    if (p->usage_fd < 0) return false;
    p->stat_fd = open_level_file(p, i, "memory.stat");
    p->usage_level = i;
    return true;
}

void mg__probe_cgroup_close(mg__probe *p)
{
    for (int i = 0; i < p->nlevels; i++) close_fd(&p->levels[i].limit_fd);
    p->nlevels = 0;
    close_fd(&p->leaf_stat_fd);
    close_fd(&p->usage_fd);
    close_fd(&p->stat_fd);
    p->cg_found = false;
}

/* Maps one hierarchy and opens its files; false (everything closed) when
 * the cgroup's usage file is missing there. */
static bool try_cgroup(mg__probe *p, int version, const char *mount_dir,
                       const char *root, const char *cgpath)
{
    p->cg_version = version;
    if (!map_cgroup(p, mount_dir, root, cgpath)) return false;
    const char *limit_name =
        version == 2 ? "memory.max" : "memory.limit_in_bytes";
    for (int i = 0; i < p->nlevels; i++)
        p->levels[i].limit_fd = open_level_file(p, i, limit_name);
    if (version == 1) p->leaf_stat_fd = open_level_file(p, 0, "memory.stat");
    if (!open_usage(p, 0)) {
        mg__logf(&p->log, MG_LOG_INFO, "cgroup v%d %s has no %s", version,
                 p->cg_dir, usage_name(version));
        mg__probe_cgroup_close(p);
        return false;
    }
    p->cg_found = true;
    mg__logf(&p->log, MG_LOG_DEBUG, "memory cgroup v%d %s at %s", version,
             p->cg_path, p->cg_dir);
    return true;
}

/* Finds the memory cgroup of the calling process and opens its files. */
void mg__probe_cgroup_open(mg__probe *p)
{
    char path[PATH_LEN], buf[8192];
    char root_v2[PATH_LEN] = "/", root_v1[PATH_LEN] = "/";
    char path_v2[PATH_LEN] = "", path_v1[PATH_LEN] = "";
    bool have_v2 = false, have_v1 = false;

    if (mg__path(path, sizeof path, "%s/self/cgroup", p->proc_root) != 0 ||
        mg__read_file(path, buf, sizeof buf) < 0) {
        mg__logf(&p->log, MG_LOG_INFO, "no %s: cgroup unknown", path);
        return;
    }
    /* "ID:controllers:path"; v2 is "0::/path". The path may hold ':'. */
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 && c2[1] == '/') {
            *c1 = '\0';
            *c2 = '\0';
            if (strcmp(line, "0") == 0 && c1[1] == '\0') {
                copy_str(path_v2, sizeof path_v2, c2 + 1, strlen(c2 + 1));
                have_v2 = true;
            } else if (has_token(c1 + 1, "memory", ',')) {
                copy_str(path_v1, sizeof path_v1, c2 + 1, strlen(c2 + 1));
                have_v1 = true;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    read_mount_roots(p, root_v2, root_v1, sizeof root_v2);

    /* v2 at the root itself (pure v2), or at unified/ (hybrid: there it has
     * usually no memory controller, as on this sandbox, probes.md 3.4). */
    if (have_v2) {
        char dir[PATH_LEN];
        const char *cands[2] = { "", "/unified" };
        for (int c = 0; c < 2; c++) {
            if (mg__path(dir, sizeof dir, "%s%s", p->cgroup_root, cands[c]) ||
                !v2_has_memory(dir))
                continue;
            if (try_cgroup(p, 2, dir, root_v2, path_v2)) return;
        }
        mg__logf(&p->log, MG_LOG_DEBUG,
                 "no usable cgroup v2 memory controller under %s",
                 p->cgroup_root);
    }
    if (have_v1) {
        char dir[PATH_LEN];
        if (mg__path(dir, sizeof dir, "%s/memory", p->cgroup_root) == 0 &&
            try_cgroup(p, 1, dir, root_v1, path_v1))
            return;
    }
    mg__logf(&p->log, MG_LOG_INFO, "no usable memory cgroup under %s",
             p->cgroup_root);
}

/* ---- cgroup: sampling ---------------------------------------------------- */

/* One limit file: true with *limit set when it holds a limit. */
static bool read_limit(const mg__probe *p, int fd, uint64_t *limit)
{
    char buf[64];
    if (fd < 0 || mg__pread_single(fd, buf, sizeof buf) < 0) return false;
    if (p->cg_version == 2 && strcmp(buf, "max\n") == 0) return false;
    if (!parse_single_u64(buf, limit)) return false;
    return !(p->cg_version == 1 && *limit >= V1_UNLIMITED);
}

void mg__probe_cgroup(mg__probe *p, mg_snapshot *snap)
{
    mg_cgroup *cg = &snap->cgroup;
    char buf[16384];
    memset(cg, 0, sizeof *cg);
    if (!p->cg_found) return;

    /* Limits are re-read each sample (a runtime can change them; 1.3-2 us
     * per kept fd): the smallest on the walk up decides. */
    bool has_limit = false;
    uint64_t limit = 0;
    int at = 0;
    for (int i = 0; i < p->nlevels; i++) {
        uint64_t v;
        if (read_limit(p, p->levels[i].limit_fd, &v) && (!has_limit || v < limit)) {
            has_limit = true;
            limit = v;
            at = i;
        }
    }
    /* v1: hierarchical_memory_limit is the minimum over every ancestor,
     * including those above the mount root that the walk cannot see; a
     * limit set there is attributed to the topmost visible level. */
    if (p->cg_version == 1 && p->leaf_stat_fd >= 0 &&
        mg__pread_single(p->leaf_stat_fd, buf, sizeof buf) >= 0) {
        uint64_t h;
        if (stat_lookup(buf, "hierarchical_memory_limit", &h) &&
            h < V1_UNLIMITED && (!has_limit || h < limit)) {
            has_limit = true;
            limit = h;
            at = p->nlevels - 1;
        }
    }
    /* Usage is that of the cgroup holding the limit: its own usage is what
     * the kernel compares against it. */
    if (at != p->usage_level && !open_usage(p, at)) {
        mg__logf(&p->log, MG_LOG_WARN, "cgroup level %d has no %s", at,
                 usage_name(p->cg_version));
        return;
    }

    cg->known = true;
    cg->version = p->cg_version;
    copy_str(cg->path, sizeof cg->path, p->cg_path, strlen(p->cg_path));
    cg->has_limit = has_limit;
    cg->limit_bytes = has_limit ? limit : 0;
    if (has_limit) level_path(p, at, cg->limit_path, sizeof cg->limit_path);

    uint64_t v;
    if (p->usage_fd >= 0 && mg__pread_single(p->usage_fd, buf, sizeof buf) >= 0 &&
        parse_single_u64(buf, &v)) {
        cg->usage_known = true;
        cg->usage_bytes = v;
    }
    if (p->stat_fd >= 0 && mg__pread_single(p->stat_fd, buf, sizeof buf) >= 0 &&
        stat_lookup(buf, p->cg_version == 2 ? "inactive_file"
                                            : "total_inactive_file", &v))
        cg->inactive_file_bytes = v;
}
