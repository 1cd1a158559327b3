/* SPDX-License-Identifier: MIT */
/*
 * ram.c: turns the raw RAM figures of one sample into the one number the
 * policy judges: the used fraction of the effective total.
 *
 * Four limits can end a run: the machine (MemTotal vs MemAvailable), on
 * Windows the commit limit (the commit charge against RAM plus page files),
 * the container's cgroup limit (its working set, usage minus inactive file
 * cache, as kubelet counts it; on Windows a job object's limit against its
 * processes' commit), and the caller's budget (the process tree's
 * used_bytes: its PSS, or its RSS sum where that proves the budget safe;
 * ctx.c decides which). Each applicable one is evaluated and the one
 * closest to full decides, so a budget never hides a machine that is about
 * to run out. It does no I/O: the probes have already filled the snapshot.
 */
#include "internal.h"

typedef struct mg_ram_limit candidate;

static double frac(const candidate *c)
{
    return (double)c->used_bytes / (double)c->total_bytes;
}

void mg__ram_combine(mg_snapshot *snap, uint64_t ram_budget_bytes)
{
    mg_ram *r = &snap->ram;
    candidate *c = r->limits;
    unsigned n = 0;
    r->nlimits = 0;

    if (r->meminfo_known && r->mem_total_bytes > 0) {
        uint64_t avail = r->mem_available_bytes;
        if (avail > r->mem_total_bytes) avail = r->mem_total_bytes;
        c[n++] = (candidate){MG_RAM_SOURCE_MEMINFO, r->mem_total_bytes,
                             r->mem_total_bytes - avail};
    }
    /* Windows: the commit charge against the commit limit (RAM + page
     * files), where allocations fail whatever RAM is free. */
    if (r->commit_known && r->commit_limit_bytes > 0)
        c[n++] = (candidate){MG_RAM_SOURCE_COMMIT, r->commit_limit_bytes,
                             r->commit_used_bytes};
    /* A limit at or above the machine's RAM can never bind first. */
    const mg_cgroup *cg = &snap->cgroup;
    if (cg->known && cg->has_limit && cg->usage_known && cg->limit_bytes > 0 &&
        (!r->meminfo_known || cg->limit_bytes < r->mem_total_bytes)) {
        uint64_t ws = cg->usage_bytes > cg->inactive_file_bytes
                          ? cg->usage_bytes - cg->inactive_file_bytes : 0;
        c[n++] = (candidate){MG_RAM_SOURCE_CGROUP, cg->limit_bytes, ws};
    }
    if (ram_budget_bytes > 0) {
        /* A budget that cannot be measured leaves RAM unknown rather than
         * silently judged against something else. */
        if (!snap->tree.known) {
            r->known = false;
            r->nlimits = 0;
            return;
        }
        c[n++] = (candidate){MG_RAM_SOURCE_BUDGET, ram_budget_bytes,
                             snap->tree.used_bytes};
    }
    r->nlimits = n;
    if (n == 0) {
        r->known = false;
        return;
    }
    unsigned best = 0;
    for (unsigned i = 1; i < n; i++) {
        double fi = frac(&c[i]), fb = frac(&c[best]);
        if (fi > fb || (fi == fb && c[i].total_bytes < c[best].total_bytes)) best = i;
    }
    r->known = true;
    r->source = c[best].source;
    r->total_bytes = c[best].total_bytes;
    r->used_bytes = c[best].used_bytes;
    r->available_bytes = c[best].used_bytes < c[best].total_bytes
                             ? c[best].total_bytes - c[best].used_bytes : 0;
    r->used_frac = frac(&c[best]);
}
