/* SPDX-License-Identifier: MIT */
/*
 * mg_files.h: the two folder helpers every test shares: make a path with
 * its parents, and remove a tree the test made (never following a
 * symlink: lstat, then unlink the link itself). Test code only.
 */
#ifndef MG_FILES_H
#define MG_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void mkdirs(const char *path)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp) return;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') { *p = '\0'; mkdir(tmp, 0755); *p = '/'; }
    mkdir(tmp, 0755);
}

static inline void mg_rm_rf(const char *p)
{
    struct stat sb;
    if (lstat(p, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        chmod(p, 0755); /* a test may have taken write permission away */
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char q[4400];
            if ((size_t)snprintf(q, sizeof q, "%s/%s", p, e->d_name) < sizeof q) mg_rm_rf(q);
        }
        if (d) closedir(d);
        rmdir(p);
    } else {
        unlink(p);
    }
}

#endif /* MG_FILES_H */
