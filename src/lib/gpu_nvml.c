/* SPDX-License-Identifier: MIT */
/*
 * gpu_nvml.c: device-wide GPU memory (total, free, driver reserve) through
 * NVML, loaded at run time with dlopen so that libmemguard neither links
 * against nor needs the NVIDIA driver. Without the library, the driver or a
 * device, open() reports why (MG_GPU_NO_LIBRARY / NO_DRIVER / NO_DEVICE) and
 * the rest of the library goes on without GPU figures.
 *
 * It reads device-level figures only: no per-process attribution (NVML's
 * process lists change stride between drivers and show host PIDs inside
 * containers, research/probes.md 1.5 and 1.8), no MIG instances, and it never
 * touches CUDA: cuMemGetInfo would create a context, which costs seconds and
 * hundreds of MB of device memory in the monitor (probes.md 0.5).
 *
 * Device selection follows CUDA_VISIBLE_DEVICES (the `visible` argument):
 * entries are indices, "GPU-<uuid>" or a unique prefix of one; parsing stops
 * at the first invalid entry as CUDA does. Caveat: an index here is an NVML
 * index, and NVML enumerates in PCI bus order while CUDA orders fastest
 * first unless CUDA_DEVICE_ORDER=PCI_BUS_ID. On a machine with mixed GPUs
 * "0" may therefore name different devices for CUDA and for us; UUIDs name
 * the same device for both, which is why they are the reliable form.
 *
 * No global state: the dl handle, the function pointers and the selected
 * devices live in the struct open() allocates.
 */
#include "internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- The few NVML declarations we need (nvml.h API 13, probes.md 1.3) ---- */

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;

typedef struct {
    unsigned long long total, free, used; /* v1 used includes the reserve */
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t must be 24 bytes");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40,
               "nvmlMemory_v2_t must be 40 bytes (version@0 total@8 "
               "reserved@16 free@24 used@32)");

/* The version word is NVML_STRUCT_VERSION(Memory, 2) = sizeof | 2 << 24 =
 * 0x02000028, not the 2 that nvml.h's comment suggests: the driver answers
 * a plain 2 with FUNCTION_NOT_FOUND, and tools that pass 2 (nvtop) silently
 * fall back to v1 forever (NVIDIA/nvidia-settings#78, probes.md 1.5). */
#define MG_NVML_MEMORY_V2 \
    ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
_Static_assert(MG_NVML_MEMORY_V2 == 0x02000028u, "memory v2 version word");

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_GPU_NOT_FOUND = 28,
    /* Ours, never returned by NVML: the call succeeded with total 0. */
    MG_NVML_ZERO_TOTAL = -1
};

/* Buffer sizes from nvml.h (the _V2 ones, 96 bytes, as mg_gpu's fields). */
#define NVML_NAME_LEN 96u
#define NVML_UUID_LEN 96u

/* Devices enumerated to resolve UUID entries; more than MG_MAX_GPUS so that
 * a UUID can select a device whose index is beyond the first 16. */
#define NVML_MAX_ENUM 64u

typedef nvmlReturn_t (*fn_void)(void);
typedef nvmlReturn_t (*fn_count)(unsigned int *);
typedef nvmlReturn_t (*fn_handle_index)(unsigned int, nvmlDevice_t *);
typedef nvmlReturn_t (*fn_handle_uuid)(const char *, nvmlDevice_t *);
typedef nvmlReturn_t (*fn_string)(nvmlDevice_t, char *, unsigned int);
typedef nvmlReturn_t (*fn_mem_v1)(nvmlDevice_t, nvmlMemory_t *);
typedef nvmlReturn_t (*fn_mem_v2)(nvmlDevice_t, nvmlMemory_v2_t *);
typedef const char *(*fn_errstr)(nvmlReturn_t);

typedef struct nvml_fns {
    fn_void init;
    fn_void shutdown;
    fn_count get_count;
    fn_handle_index handle_by_index;
    fn_handle_uuid handle_by_uuid; /* optional */
    fn_string get_name;
    fn_string get_uuid;
    fn_mem_v1 mem_v1;
    fn_mem_v2 mem_v2;              /* optional: drivers >= R510 */
    fn_errstr error_string;        /* optional */
} nvml_fns;

typedef struct nvml_dev {
    nvmlDevice_t handle;
    unsigned index;          /* NVML index */
    char name[NVML_NAME_LEN];
    char uuid[NVML_UUID_LEN];
    bool v1_only;            /* v2 refused once: go straight to v1 */
    nvmlReturn_t last_rc;    /* last memory result, to log changes once */
} nvml_dev;

typedef struct nvml_state {
    void *dl;
    nvml_fns fn;
    mg__log log;             /* a copy: query() has no log argument */
    unsigned count;
    nvml_dev dev[MG_MAX_GPUS];
} nvml_state;

/* ---- Helpers --------------------------------------------------------- */

/* ISO C does not allow converting dlsym's void * to a function pointer, so
 * copy the bits: POSIX guarantees they have the same representation. */
_Static_assert(sizeof(void *) == sizeof(fn_void),
               "function and object pointers must have the same size");

static bool resolve(void *dl, const char *name, void *fnptr)
{
    void *p = mg__dl_sym(dl, name);
    if (!p) return false;
    memcpy(fnptr, &p, sizeof p);
    return true;
}

/* Newest symbol first, then the older one (may be NULL). Returns the name
 * that was found, or NULL. */
static const char *resolve2(void *dl, const char *newest, const char *older,
                            void *fnptr)
{
    if (resolve(dl, newest, fnptr)) return newest;
    if (older && resolve(dl, older, fnptr)) return older;
    return NULL;
}

static const char *nvml_err(const nvml_fns *fn, nvmlReturn_t rc)
{
    if (fn->error_string) {
        const char *s = fn->error_string(rc);
        if (s) return s;
    }
    switch (rc) {
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_LIBRARY_NOT_FOUND: return "Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
        return "Argument version mismatch";
    case NVML_ERROR_GPU_NOT_FOUND: return "GPU not found";
    default: return "NVML error";
    }
}

/* Resolves every symbol. Returns NULL, or the name of the first required
 * symbol that is missing. */
static const char *load_symbols(void *dl, nvml_fns *fn)
{
    /* The header #defines nvmlInit to nvmlInit_v2 and so on, but the
     * exported unsuffixed symbols are the old ABIs (nvmlInit fails when any
     * GPU is bad), so ask for the suffixed names first (probes.md 1.2). */
    if (!resolve2(dl, "nvmlInit_v2", "nvmlInit", &fn->init))
        return "nvmlInit_v2";
    if (!resolve2(dl, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount",
                  &fn->get_count))
        return "nvmlDeviceGetCount_v2";
    if (!resolve2(dl, "nvmlDeviceGetHandleByIndex_v2",
                  "nvmlDeviceGetHandleByIndex", &fn->handle_by_index))
        return "nvmlDeviceGetHandleByIndex_v2";
    if (!resolve(dl, "nvmlDeviceGetName", &fn->get_name))
        return "nvmlDeviceGetName";
    if (!resolve(dl, "nvmlDeviceGetUUID", &fn->get_uuid))
        return "nvmlDeviceGetUUID";
    if (!resolve(dl, "nvmlShutdown", &fn->shutdown)) return "nvmlShutdown";
    /* v1 exists in every driver; _v2 only from R510 and is not mapped by
     * the header, so it is optional. */
    bool v1 = resolve(dl, "nvmlDeviceGetMemoryInfo", &fn->mem_v1);
    bool v2 = resolve(dl, "nvmlDeviceGetMemoryInfo_v2", &fn->mem_v2);
    if (!v1 && !v2) return "nvmlDeviceGetMemoryInfo";
    (void)resolve(dl, "nvmlDeviceGetHandleByUUID", &fn->handle_by_uuid);
    (void)resolve(dl, "nvmlErrorString", &fn->error_string);
    return NULL;
}

/* ---- CUDA_VISIBLE_DEVICES -------------------------------------------- */

/* One enumerated device, before selection. ok is false when NVML would not
 * give its handle (e.g. NO_PERMISSION in a restricted cgroup). */
typedef struct enum_dev {
    bool ok;
    nvmlDevice_t handle;
    char uuid[NVML_UUID_LEN];
} enum_dev;

/* Parses a whole entry as a decimal index. */
static bool parse_index(const char *s, size_t len, unsigned long *out)
{
    if (len == 0 || len > 9) return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10u + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Finds the device named by a "GPU-..." entry: an exact UUID through
 * nvmlDeviceGetHandleByUUID when available, else a unique prefix of the
 * enumerated UUID strings (case-insensitive, as hex digits may be given in
 * either case). Returns the index or -1 (no match, or ambiguous). */
static long find_uuid(const nvml_fns *fn, const enum_dev *devs, unsigned n,
                      const char *entry, size_t len)
{
    char want[NVML_UUID_LEN];
    if (len >= sizeof want) return -1;
    memcpy(want, entry, len);
    want[len] = '\0';

    if (fn->handle_by_uuid) {
        nvmlDevice_t h;
        if (fn->handle_by_uuid(want, &h) == NVML_SUCCESS) {
            for (unsigned i = 0; i < n; i++)
                if (devs[i].ok && devs[i].handle == h) return (long)i;
        }
    }
    long found = -1;
    for (unsigned i = 0; i < n; i++) {
        if (!devs[i].ok || strncasecmp(devs[i].uuid, want, len) != 0)
            continue;
        if (found >= 0) return -1; /* ambiguous prefix: invalid */
        found = (long)i;
    }
    return found;
}

/* Fills sel[] with the NVML indices `visible` selects, in its order, and
 * returns how many. */
static unsigned select_devices(const nvml_fns *fn, const enum_dev *devs,
                               unsigned n, const char *visible,
                               const mg__log *log, unsigned *sel)
{
    unsigned count = 0;
    if (!visible) {
        for (unsigned i = 0; i < n && count < MG_MAX_GPUS; i++)
            if (devs[i].ok) sel[count++] = i;
        return count;
    }
    const char *p = visible;
    for (;;) {
        const char *end = p + strcspn(p, ",");
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        size_t len = (size_t)(e - s);
        int width = len > 64 ? 64 : (int)len;
        long idx = -1;
        unsigned long ul;

        if (len >= 4 && strncmp(s, "MIG-", 4) == 0) {
            mg__logf(log, MG_LOG_WARN,
                     "nvml: CUDA_VISIBLE_DEVICES entry '%.*s' is a MIG "
                     "instance; MIG is not supported, entry skipped",
                     width, s);
        } else {
            if (parse_index(s, len, &ul)) {
                if (ul < n && devs[ul].ok) idx = (long)ul;
            } else if (len > 4 && strncmp(s, "GPU-", 4) == 0) {
                idx = find_uuid(fn, devs, n, s, len);
            }
            if (idx < 0) {
                /* CUDA's rule: the first invalid entry ends the list
                 * (this is what makes "-1" and "" hide every device). */
                if (len > 0 || *end == ',')
                    mg__logf(log, MG_LOG_INFO,
                             "nvml: CUDA_VISIBLE_DEVICES entry '%.*s' names "
                             "no device; it and later entries are ignored",
                             width, s);
                break;
            }
            bool dup = false;
            for (unsigned k = 0; k < count; k++)
                if (sel[k] == (unsigned)idx) dup = true;
            if (!dup) {
                if (count == MG_MAX_GPUS) {
                    mg__logf(log, MG_LOG_WARN,
                             "nvml: more than %d visible devices; the rest "
                             "are not watched", MG_MAX_GPUS);
                    break;
                }
                sel[count++] = (unsigned)idx;
            }
        }
        if (*end != ',') break;
        p = end + 1;
    }
    return count;
}

/* ---- The backend ----------------------------------------------------- */

static void nvml_close(void *state)
{
    nvml_state *st = state;
    if (!st) return;
    st->fn.shutdown();
    mg__dl_close(st->dl);
    free(st);
}

static int nvml_open(void **state, const char *library, const char *visible,
                     const mg__log *log, mg_gpu_state *why)
{
    *state = NULL;
    *why = MG_GPU_NO_LIBRARY;
    if (!library || !*library) library = "libnvidia-ml.so.1";

    /* RTLD_LOCAL: NVML's symbols must not satisfy anyone else's lookups.
     * RTLD_NOW: a broken library fails here, not at the first query. */
    void *dl = mg__dl_open(library);
    if (!dl) {
        mg__logf(log, MG_LOG_INFO, "nvml: cannot load %s: %s", library, mg__dl_error());
        return 0;
    }

    nvml_fns fn;
    memset(&fn, 0, sizeof fn);
    const char *missing = load_symbols(dl, &fn);
    if (missing) {
        mg__logf(log, MG_LOG_WARN,
                 "nvml: %s has no symbol %s; not an NVML library?", library,
                 missing);
        mg__dl_close(dl);
        return 0;
    }

    nvmlReturn_t rc = fn.init();
    if (rc != NVML_SUCCESS) {
        /* 9 (no driver), 12, 28 (no GPU) are the normal "no GPU here"
         * answers; anything else is reported the same way, with its text. */
        mg__logf(log, MG_LOG_INFO, "nvml: init failed: %s (%d)",
                 nvml_err(&fn, rc), rc);
        *why = MG_GPU_NO_DRIVER;
        mg__dl_close(dl);
        return 0;
    }

    unsigned n = 0;
    rc = fn.get_count(&n);
    if (rc != NVML_SUCCESS) {
        mg__logf(log, MG_LOG_WARN, "nvml: device count failed: %s (%d)",
                 nvml_err(&fn, rc), rc);
        n = 0;
    }
    if (n > NVML_MAX_ENUM) n = NVML_MAX_ENUM;

    enum_dev *devs = calloc(n ? n : 1, sizeof *devs);
    nvml_state *st = calloc(1, sizeof *st);
    if (!devs || !st) {
        free(devs);
        free(st);
        fn.shutdown();
        mg__dl_close(dl);
        return MG_ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        rc = fn.handle_by_index(i, &devs[i].handle);
        if (rc != NVML_SUCCESS) {
            mg__logf(log, MG_LOG_WARN, "nvml: device %u: no handle: %s (%d)",
                     i, nvml_err(&fn, rc), rc);
            continue;
        }
        devs[i].ok = true;
        rc = fn.get_uuid(devs[i].handle, devs[i].uuid, NVML_UUID_LEN);
        if (rc != NVML_SUCCESS) {
            devs[i].uuid[0] = '\0';
            mg__logf(log, MG_LOG_DEBUG, "nvml: device %u: no UUID: %s (%d)",
                     i, nvml_err(&fn, rc), rc);
        }
    }

    unsigned sel[MG_MAX_GPUS];
    unsigned count = select_devices(&fn, devs, n, visible, log, sel);

    st->dl = dl;
    st->fn = fn;
    if (log) st->log = *log;
    st->count = count;
    for (unsigned k = 0; k < count; k++) {
        nvml_dev *d = &st->dev[k];
        const enum_dev *e = &devs[sel[k]];
        d->handle = e->handle;
        d->index = sel[k];
        memcpy(d->uuid, e->uuid, sizeof d->uuid);
        rc = fn.get_name(d->handle, d->name, NVML_NAME_LEN);
        if (rc != NVML_SUCCESS) {
            d->name[0] = '\0';
            mg__logf(log, MG_LOG_DEBUG, "nvml: device %u: no name: %s (%d)",
                     d->index, nvml_err(&fn, rc), rc);
        }
        d->last_rc = NVML_SUCCESS;
        mg__logf(log, MG_LOG_DEBUG, "nvml: watching device %u %s %s",
                 d->index, d->name, d->uuid);
    }
    free(devs);

    if (count == 0) {
        /* Nothing to watch: give everything back now rather than hold the
         * driver open for a list that stays empty. */
        mg__logf(log, MG_LOG_INFO, "nvml: %u device(s), none visible", n);
        nvml_close(st);
        *why = MG_GPU_NO_DEVICE;
        return 0;
    }
    *state = st;
    *why = MG_GPU_OK;
    return 0;
}

/* Reads one device's memory. Returns the NVML result of the call that
 * decided (v2, or v1 after a fallback). */
static nvmlReturn_t query_one(nvml_state *st, nvml_dev *d, mg_gpu *g)
{
    nvmlReturn_t rc;
    if (st->fn.mem_v2 && !d->v1_only) {
        nvmlMemory_v2_t m;
        memset(&m, 0, sizeof m);
        m.version = MG_NVML_MEMORY_V2;
        rc = st->fn.mem_v2(d->handle, &m);
        if (rc == NVML_SUCCESS) {
            g->total_bytes = m.total;
            g->free_bytes = m.free;
            g->reserved_bytes = m.reserved;
            return rc;
        }
        /* Older drivers, WSL (nvitop#30) and unified-memory parts refuse
         * v2: remember it so later samples cost one call, not two. */
        if (!st->fn.mem_v1 || (rc != NVML_ERROR_FUNCTION_NOT_FOUND &&
                               rc != NVML_ERROR_ARGUMENT_VERSION_MISMATCH &&
                               rc != NVML_ERROR_NOT_SUPPORTED))
            return rc;
        d->v1_only = true;
        mg__logf(&st->log, MG_LOG_DEBUG,
                 "nvml: device %u: memory v2 refused (%s, %d); using v1",
                 d->index, nvml_err(&st->fn, rc), rc);
    }
    nvmlMemory_t m1;
    memset(&m1, 0, sizeof m1);
    rc = st->fn.mem_v1(d->handle, &m1);
    if (rc == NVML_SUCCESS) {
        g->total_bytes = m1.total;
        g->free_bytes = m1.free;
        g->reserved_bytes = 0; /* v1 folds the reserve into used */
    }
    return rc;
}

static void nvml_query(void *state, mg_snapshot *snap)
{
    nvml_state *st = state;
    snap->gpu_state = MG_GPU_OK;
    snap->gpu_count = st->count;
    for (unsigned k = 0; k < st->count; k++) {
        nvml_dev *d = &st->dev[k];
        mg_gpu *g = &snap->gpus[k];
        memset(g, 0, sizeof *g);
        g->index = d->index;
        memcpy(g->name, d->name, sizeof g->name);
        memcpy(g->uuid, d->uuid, sizeof g->uuid);

        nvmlReturn_t rc = query_one(st, d, g);
        /* Unified-memory iGPUs (Jetson, GB10) answer SUCCESS with total 0
         * (or NOT_SUPPORTED): no figures either way. */
        nvmlReturn_t status =
            rc == NVML_SUCCESS && g->total_bytes == 0 ? MG_NVML_ZERO_TOTAL : rc;
        /* Logged when the result changes, not at every sample: the caller
         * may sample ten times a second. */
        bool changed = status != d->last_rc;
        d->last_rc = status;
        if (status != NVML_SUCCESS) {
            g->total_bytes = g->free_bytes = g->reserved_bytes = 0;
            snap->gpu_state = MG_GPU_ERROR;
            if (!changed) continue;
            if (status == MG_NVML_ZERO_TOTAL)
                mg__logf(&st->log, MG_LOG_WARN,
                         "nvml: device %u (%s): total memory is 0 (unified "
                         "memory?); no GPU figures", d->index, d->name);
            else if (rc == NVML_ERROR_GPU_IS_LOST)
                mg__logf(&st->log, MG_LOG_ERROR,
                         "nvml: device %u (%s): GPU is lost (fell off the "
                         "bus?); no GPU figures", d->index, d->name);
            else
                mg__logf(&st->log, MG_LOG_ERROR,
                         "nvml: device %u (%s): memory query failed: %s (%d)",
                         d->index, d->name, nvml_err(&st->fn, rc), rc);
            continue;
        }
        if (changed)
            mg__logf(&st->log, MG_LOG_INFO,
                     "nvml: device %u (%s): memory query works again",
                     d->index, d->name);
        g->known = true;
        uint64_t used =
            g->total_bytes > g->free_bytes ? g->total_bytes - g->free_bytes : 0;
        g->used_frac = (double)used / (double)g->total_bytes;
    }
}

const mg__gpu_backend mg__gpu_nvml = {
    "nvml",
    nvml_open,
    nvml_query,
    nvml_close,
};
