/* SPDX-License-Identifier: MIT */
/*
 * safety.c: the seed's own call, check_memory_safety(threshold_gpu,
 * threshold_ram): one sample judged against one threshold per resource,
 * and the seed's warning text when it is not safe. It sits above both the
 * context (the sample) and the texts (report.c), so neither needs the
 * other. It keeps nothing between calls.
 */
#include "internal.h"

#include <string.h>

int mg_check_memory_safety(mg_ctx *ctx, double threshold_gpu, double threshold_ram,
                           bool *is_safe, char *warning, size_t warning_len)
{
    if (!ctx || !is_safe) return MG_EINVAL;
    if (!(threshold_gpu > 0.0 && threshold_gpu <= 1.0) ||
        !(threshold_ram > 0.0 && threshold_ram <= 1.0))
        return MG_ERANGE;
    /* The seed's call has one threshold per resource: reaching it is unsafe.
     * Warn and stop both sit there; floors keep applying. The sample's tree
     * figure is decided for these thresholds, not the context's. */
    mg_config c = *mg_ctx_config(ctx);
    c.warn_gpu_frac = c.stop_gpu_frac = threshold_gpu;
    c.warn_ram_frac = c.stop_ram_frac = threshold_ram;
    mg_snapshot snap;
    int rc = mg__sample_for(ctx, &c, &snap);
    if (rc < 0) return rc;
    mg_verdict v;
    mg_level level = mg_classify(&c, &snap, NULL, &v);
    *is_safe = level == MG_LEVEL_SAFE;
    if (warning && warning_len) {
        warning[0] = '\0';
        if (!*is_safe) {
            mg_text_opts t = mg_text_opts_from_env(-1);
            if (c.lang != MG_LANG_AUTO) t.lang = c.lang;
            rc = mg_format_warning(&v, &t, -1, warning, warning_len);
            if (rc < 0) return rc;
            size_t n = strlen(warning);
            if (n && warning[n - 1] == '\n') warning[n - 1] = '\0';
        }
    }
    return 0;
}

