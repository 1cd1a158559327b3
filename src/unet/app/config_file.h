/* SPDX-License-Identifier: MIT */
/*
 * config_file.h: the syntax of unet-train's --config file: "key = value"
 * lines, blanks around both trimmed, a value in matching single or double
 * quotes unquoted; blank lines, '#' and ';' comments and [sections]
 * skipped. A line of CONFIG_LINE_MAX or more characters, or holding a NUL
 * byte, is refused (never split or cut).
 *
 * Not here: what a key means, which job takes it, a key given twice, and
 * every message about a value (main.c's, through the callback). This file
 * prints nothing.
 */
#ifndef UNET_CONFIG_FILE_H
#define UNET_CONFIG_FILE_H

#include <stddef.h>

enum { CONFIG_LINE_MAX = 2048 };

/* Called for each "key = value" line, in file order, with its 1-based
 * line number; key and value are trimmed (either may be empty) and point
 * into a line buffer that the next line reuses. Returns 0 to go on, or an
 * exit status above 0, which stops the reading and is returned. */
typedef int (*config_pair_fn)(void *arg, int lineno, char *key, char *value);

/* Reads the file at path (a regular file: fileio.h) and calls pair for its
 * pairs. Returns 0 at the end of the file, the pair's status when it
 * stopped, or -1 when the file cannot be read or a line is not a pair:
 * then err holds one line and *lineno the line it is about (0 when it is
 * about the file: "PATH: cannot open: ..."). */
int config_file_read(const char *path, config_pair_fn pair, void *arg, int *lineno, char *err,
                     size_t errlen);

#endif /* UNET_CONFIG_FILE_H */
