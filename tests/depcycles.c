/* SPDX-License-Identifier: MIT */
/*
 * depcycles.c: fails when the project's source files depend on each other
 * in a circle. It reads the symbols of every object file it is given
 * (`nm -P`, binutils' portable output): a file that uses a symbol another
 * file defines depends on that file. The strongly connected components of
 * that graph (Tarjan) with more than one file are the cycles; each is
 * printed with one symbol per edge, so the fix is easy to find.
 *
 * Usage: depcycles OBJ... (an argument may hold several paths separated by
 * ';', as CMake's $<TARGET_OBJECTS:...> gives them). Exit 0: no cycle; 1: a
 * cycle; 2: an object could not be read. It only reads, never builds; the
 * graph is between objects, so two files of one target count as two.
 */
#define _GNU_SOURCE /* popen */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 512
#define MAX_SYMS 65536

typedef struct sym {
    char *name;
    int file;
} sym;

static char *files[MAX_FILES];
static int nfiles;
static sym defs[MAX_SYMS];
static int ndefs;
static sym uses[MAX_SYMS];
static int nuses;
static bool edge[MAX_FILES][MAX_FILES];
static const char *why[MAX_FILES][MAX_FILES]; /* one symbol per edge */

/* Reads `nm -P` of file f into defs (T, D, B, R, V, W, C) and uses (U). */
static bool read_symbols(int f)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "nm -P '%s' 2>/dev/null", files[f]);
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, p)) {
        char name[4000], type;
        if (sscanf(line, "%3999s %c", name, &type) != 2) continue;
        n++;
        bool def = strchr("TDBRVWCG", type) != NULL;
        bool use = type == 'U';
        if ((!def && !use) || (def ? ndefs : nuses) >= MAX_SYMS) continue;
        sym s = {strdup(name), f};
        if (!s.name) return false;
        if (def) defs[ndefs++] = s;
        else uses[nuses++] = s;
    }
    return pclose(p) == 0 && n >= 0;
}

static int cmp_sym(const void *a, const void *b)
{
    return strcmp(((const sym *)a)->name, ((const sym *)b)->name);
}

static void build_edges(void)
{
    qsort(defs, (size_t)ndefs, sizeof *defs, cmp_sym);
    for (int i = 0; i < nuses; i++) {
        sym *d = bsearch(&uses[i], defs, (size_t)ndefs, sizeof *defs, cmp_sym);
        if (!d || d->file == uses[i].file) continue; /* libc, or its own */
        edge[uses[i].file][d->file] = true;
        if (!why[uses[i].file][d->file]) why[uses[i].file][d->file] = uses[i].name;
    }
}

/* ---- Tarjan's strongly connected components ------------------------------- */

static int idx[MAX_FILES], low[MAX_FILES], stack[MAX_FILES], comp[MAX_FILES];
static bool on_stack[MAX_FILES];
static int counter, sp, ncomp;

static void strong(int v)
{
    idx[v] = low[v] = ++counter;
    stack[sp++] = v;
    on_stack[v] = true;
    for (int w = 0; w < nfiles; w++) {
        if (!edge[v][w]) continue;
        if (!idx[w]) {
            strong(w);
            if (low[w] < low[v]) low[v] = low[w];
        } else if (on_stack[w] && idx[w] < low[v]) {
            low[v] = idx[w];
        }
    }
    if (low[v] != idx[v]) return;
    int w;
    do {
        w = stack[--sp];
        on_stack[w] = false;
        comp[w] = ncomp;
    } while (w != v);
    ncomp++;
}

static const char *base(const char *path)
{
    const char *s = strstr(path, "/src/");
    return s ? s + 1 : path;
}

static int report_cycles(void)
{
    int bad = 0;
    for (int c = 0; c < ncomp; c++) {
        int members = 0;
        for (int v = 0; v < nfiles; v++) members += comp[v] == c;
        if (members < 2) continue;
        bad++;
        printf("cycle %d (%d files):\n", bad, members);
        for (int v = 0; v < nfiles; v++)
            for (int w = 0; w < nfiles; w++)
                if (comp[v] == c && comp[w] == c && edge[v][w])
                    printf("  %s -> %s (%s)\n", base(files[v]), base(files[w]), why[v][w]);
    }
    return bad;
}

static bool add_files(char *arg)
{
    for (char *tok = strtok(arg, ";"); tok; tok = strtok(NULL, ";")) {
        if (!*tok) continue;
        if (nfiles >= MAX_FILES) return false;
        files[nfiles++] = tok;
    }
    return true;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!add_files(argv[i])) {
            fprintf(stderr, "depcycles: more than %d objects\n", MAX_FILES);
            return 2;
        }
    if (nfiles == 0) {
        fprintf(stderr, "usage: depcycles OBJ...\n");
        return 2;
    }
    for (int f = 0; f < nfiles; f++)
        if (!read_symbols(f)) {
            fprintf(stderr, "depcycles: cannot read the symbols of %s\n", files[f]);
            return 2;
        }
    build_edges();
    for (int v = 0; v < nfiles; v++)
        if (!idx[v]) strong(v);
    int bad = report_cycles();
    printf("%d objects, %d cycle%s between files\n", nfiles, bad, bad == 1 ? "" : "s");
    return bad ? 1 : 0;
}
