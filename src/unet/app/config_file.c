/* SPDX-License-Identifier: MIT */
/*
 * config_file.c: reads unet-train's --config file line by line and hands
 * each "key = value" pair to the caller (config_file.h has the syntax).
 *
 * Not here: the keys and their values (main.c maps a key to its long
 * option and checks the value as the command line would) and any
 * printing.
 */
#include "config_file.h"

#include "errf.h"
#include "fileio.h"

#include <stdio.h>
#include <string.h>

/* Strips blanks around s in place; returns the start. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

/* One line of the file: 1 and nothing set for a blank, comment or section
 * line; 0 with *key and *value for a pair; -1 for a line without '='. */
static int split_line(char *line, char **key, char **value)
{
    char *p = trim(line);
    if (!*p || *p == '#' || *p == ';' || *p == '[') return 1;
    char *eq = strchr(p, '=');
    if (!eq) return -1;
    *eq = '\0';
    char *v = trim(eq + 1);
    size_t vl = strlen(v);
    if (vl >= 2 && (*v == '"' || *v == '\'') && v[vl - 1] == *v) {
        v[vl - 1] = '\0';
        v++;
    }
    *key = trim(p);
    *value = v;
    return 0;
}

/* One line as read by unet_read_line (r its result): the pair's status,
 * or -1 with err for a line that is not one. */
static int one_line(int r, char *line, config_pair_fn pair, void *arg, int lineno, char *err,
                    size_t errlen)
{
    char *key = NULL, *value = NULL;
    if (r == UNET_LINE_LONG) {
        unet_errf(err, errlen, "longer than %d characters", CONFIG_LINE_MAX - 1);
        return -1;
    }
    if (r == UNET_LINE_NUL) {
        unet_errf(err, errlen, "holds a NUL byte");
        return -1;
    }
    int s = split_line(line, &key, &value);
    if (s < 0) unet_errf(err, errlen, "expected 'key = value'");
    if (s != 0) return s < 0 ? -1 : 0;
    return pair(arg, lineno, key, value);
}

int config_file_read(const char *path, config_pair_fn pair, void *arg, int *lineno, char *err,
                     size_t errlen)
{
    char line[CONFIG_LINE_MAX];
    *lineno = 0;
    FILE *f = unet_fopen_regular(path, NULL, err, errlen);
    if (!f) return -1;
    int rc = 0;
    while (rc == 0) {
        int r = unet_read_line(f, line, sizeof line);
        if (r == 0) break;
        rc = one_line(r, line, pair, arg, ++*lineno, err, errlen);
    }
    fclose(f);
    return rc;
}
