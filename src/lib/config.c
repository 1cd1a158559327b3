/* SPDX-License-Identifier: MIT */
/*
 * config.c: the configuration's defaults (a zero field reads as the seed's
 * value), its resolution against the environment (MEMGUARD_PROC_ROOT and
 * friends) and its validation (warn below stop, and the like). Pure: it
 * opens nothing and keeps no state; ctx.c, policy.c and report.c all read
 * the numbers through mg__config_numbers, so none of them depends on
 * another for its defaults.
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------ */

/* NVML's library; on Windows win/dl.c looks for a bare name in NVIDIA's
 * folders only. */
#ifdef _WIN32
#define NVML_DEFAULT "nvml.dll"
#else
#define NVML_DEFAULT "libnvidia-ml.so.1"
#endif

static const char *env_or(const char *given, const char *env, const char *def)
{
    if (given) return given;
    const char *e = getenv(env);
    return (e && *e) ? e : def;
}

static void config_defaults(mg_config *c)
{
    if (c->warn_gpu_frac == 0) c->warn_gpu_frac = MG_DEFAULT_WARN_GPU;
    if (c->stop_gpu_frac == 0) c->stop_gpu_frac = MG_DEFAULT_STOP_GPU;
    if (c->warn_ram_frac == 0) c->warn_ram_frac = MG_DEFAULT_WARN_RAM;
    if (c->stop_ram_frac == 0) c->stop_ram_frac = MG_DEFAULT_STOP_RAM;
    if (c->check_train_every == 0) c->check_train_every = MG_DEFAULT_CHECK_TRAIN;
    if (c->check_eval_every == 0) c->check_eval_every = MG_DEFAULT_CHECK_EVAL;
    if (c->hysteresis_frac == 0) c->hysteresis_frac = MG_DEFAULT_HYSTERESIS;
    if (c->min_interval_ms == 0) c->min_interval_ms = MG_DEFAULT_MIN_INTERVAL_MS;
    if (c->max_interval_ms == 0) c->max_interval_ms = MG_DEFAULT_MAX_INTERVAL_MS;
    if (c->ram_fill_rate_bytes_per_s == 0)
        c->ram_fill_rate_bytes_per_s = MG_DEFAULT_RAM_FILL_RATE;
    if (c->swap_fill_rate_bytes_per_s == 0)
        c->swap_fill_rate_bytes_per_s = MG_DEFAULT_SWAP_FILL_RATE;
    if (c->gpu_fill_rate_bytes_per_s == 0)
        c->gpu_fill_rate_bytes_per_s = MG_DEFAULT_GPU_FILL_RATE;
    if (c->predict_lead_ms == 0) c->predict_lead_ms = MG_DEFAULT_PREDICT_LEAD_MS;
}

void mg__config_numbers(const mg_config *in, mg_config *out)
{
    mg_config zero = {0};
    *out = in ? *in : zero;
    config_defaults(out);
}

void mg_config_resolve(const mg_config *in, mg_config *out)
{
    mg__config_numbers(in, out);
    out->proc_root = env_or(out->proc_root, "MEMGUARD_PROC_ROOT", "/proc");
    out->cgroup_root = env_or(out->cgroup_root, "MEMGUARD_CGROUP_ROOT", "/sys/fs/cgroup");
    out->nvml_library = env_or(out->nvml_library, "MEMGUARD_NVML_LIBRARY", NVML_DEFAULT);
    /* CUDA_VISIBLE_DEVICES set to "" hides every device, so unset and
     * empty differ here, unlike the MEMGUARD_* variables. */
    if (!out->visible_devices) out->visible_devices = getenv("CUDA_VISIBLE_DEVICES");
}

static int fail(char *msg, size_t len, const char *fmt, ...) MG_PRINTF(3, 4);
static int fail(char *msg, size_t len, const char *fmt, ...)
{
    if (msg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return MG_ECONFIG;
}

int mg_config_check(const mg_config *in, char *msg, size_t msg_len)
{
    mg_config c;
    mg_config_resolve(in, &c);
    if (msg && msg_len) msg[0] = '\0';
    const struct { const char *name; double v; } fr[] = {
        {"warn_gpu_frac", c.warn_gpu_frac}, {"stop_gpu_frac", c.stop_gpu_frac},
        {"warn_ram_frac", c.warn_ram_frac}, {"stop_ram_frac", c.stop_ram_frac},
    };
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        if (!(fr[i].v > 0.0 && fr[i].v <= 1.0))
            return fail(msg, msg_len, "%s %g is outside (0, 1]", fr[i].name, fr[i].v);
    if (c.warn_gpu_frac > c.stop_gpu_frac)
        return fail(msg, msg_len, "warn_gpu_frac %g is above stop_gpu_frac %g",
                    c.warn_gpu_frac, c.stop_gpu_frac);
    if (c.warn_ram_frac > c.stop_ram_frac)
        return fail(msg, msg_len, "warn_ram_frac %g is above stop_ram_frac %g",
                    c.warn_ram_frac, c.stop_ram_frac);
    if (!(c.hysteresis_frac < 1.0) || isnan(c.hysteresis_frac))
        return fail(msg, msg_len, "hysteresis_frac %g must be below 1 (negative: none)",
                    c.hysteresis_frac);
    if (c.min_interval_ms > c.max_interval_ms)
        return fail(msg, msg_len, "min_interval_ms %u is above max_interval_ms %u",
                    (unsigned)c.min_interval_ms, (unsigned)c.max_interval_ms);
    if (c.ram_budget_bytes && (c.skip_sources & MG_SKIP_TREE))
        return fail(msg, msg_len, "ram_budget_bytes needs the process tree: drop MG_SKIP_TREE");
    if (c.pid < 0)
        return fail(msg, msg_len, "pid %d must be 0 (this process) or positive", c.pid);
    if (c.lang != MG_LANG_AUTO && c.lang != MG_LANG_EN && c.lang != MG_LANG_JA)
        return fail(msg, msg_len, "lang %d is not MG_LANG_AUTO, _EN or _JA", (int)c.lang);
    return 0;
}

