/* SPDX-License-Identifier: MIT */
/*
 * probe_psi.c: memory pressure (PSI "some" and "full" avg10) from
 * /proc/pressure/memory where the kernel has it. Read only; no triggers
 * are armed, nothing is polled.
 */
#include "probe.h"

static bool psi_avg10(const char *buf, const char *kind, double *out)
{
    const char *p = buf;
    size_t klen = strlen(kind);
    while (*p) {
        if (strncmp(p, kind, klen) == 0 && starts_with(p + klen, " avg10=")) {
            const char *v = p + klen + 7;
            return parse_decimal(&v, out) && (*v == ' ' || *v == '\n' ||
                                              *v == '\0');
        }
        const char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    return false;
}

void mg__probe_psi(mg__probe *p, mg_snapshot *snap)
{
    char buf[1024];
    snap->psi.known = false;
    if (p->psi_fd < 0) return;
    double some, full;
    if (mg__pread_single(p->psi_fd, buf, sizeof buf) < 0) return;
    if (!psi_avg10(buf, "some", &some) || !psi_avg10(buf, "full", &full))
        return;
    snap->psi.known = true;
    snap->psi.some_avg10 = some;
    snap->psi.full_avg10 = full;
}
