/* SPDX-License-Identifier: MIT */
/*
 * fake_nvml.c: a stand-in for libnvidia-ml, built by the tests as
 * libfake-nvml.so, so the whole NVML path (loading, init failures, device
 * selection, the memory v2 version-word trap, the v1 fallback, lost GPUs,
 * shutdown) runs in CI without a GPU. Point the library at it with the
 * library argument of mg__gpu_nvml.open or with MEMGUARD_NVML_LIBRARY.
 *
 * It exports the NVML symbols libmemguard resolves, with the real ABIs:
 *   nvmlInit_v2, nvmlInit, nvmlShutdown, nvmlErrorString,
 *   nvmlDeviceGetCount_v2, nvmlDeviceGetCount,
 *   nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetHandleByIndex,
 *   nvmlDeviceGetHandleByUUID, nvmlDeviceGetName, nvmlDeviceGetUUID,
 *   nvmlDeviceGetMemoryInfo (v1), nvmlDeviceGetMemoryInfo_v2.
 *
 * Like the driver, every call but init/nvmlErrorString returns
 * UNINITIALIZED (1) before nvmlInit or after the matching nvmlShutdown, and
 * nvmlDeviceGetMemoryInfo_v2 refuses any version word other than
 * 0x02000028 (sizeof(nvmlMemory_v2_t) | 2 << 24) with FUNCTION_NOT_FOUND
 * (13): a plain 2, as nvml.h's comment suggests, is refused
 * (research/probes.md 1.5).
 *
 * Behaviour is driven by environment variables, read at every call, so a
 * test can change them between calls:
 *
 *   FAKE_NVML_INIT_FAIL=<code>   nvmlInit_v2 / nvmlInit return <code>
 *                                (e.g. 9 DRIVER_NOT_LOADED, 12, 28).
 *   FAKE_NVML_COUNT=<n>          number of devices, default 1, at most 64.
 *   FAKE_NVML_GPU<i>="name;uuid;total_bytes;free_bytes;reserved_bytes"
 *                                device i (0-based). Any field may be empty
 *                                or missing and takes its default:
 *                                name "Fake GPU <i>",
 *                                uuid "GPU-fa4e0000-0000-4000-8000-<i as
 *                                12 hex digits>",
 *                                total 25769803776 (24 GiB),
 *                                free 18907922432, reserved 419430400.
 *                                v1 used = total - free; v2 used =
 *                                total - free - reserved (0 if negative).
 *   FAKE_NVML_NO_V2=1            nvmlDeviceGetMemoryInfo_v2 returns 13, as
 *                                a driver older than R510 would (the symbol
 *                                stays exported).
 *   FAKE_NVML_V2_RC=<code>       nvmlDeviceGetMemoryInfo_v2 returns <code>
 *                                (e.g. 25 ARGUMENT_VERSION_MISMATCH or
 *                                3 NOT_SUPPORTED) for every device.
 *   FAKE_NVML_FAIL_MEM=<i>[,<j>...]  memory queries (v1 and v2) of these
 *                                devices fail with FAKE_NVML_FAIL_MEM_RC,
 *                                default 15 GPU_IS_LOST.
 *   FAKE_NVML_FAIL_MEM_RC=<code> see above.
 *   FAKE_NVML_LOG=<file>         append one line per call to <file>:
 *                                "<function> rc=<code>" or, for calls on a
 *                                device, "<function> dev=<i> rc=<code>",
 *                                e.g. "nvmlDeviceGetMemoryInfo_v2 dev=0 rc=0"
 *                                or "nvmlShutdown rc=0". The function name
 *                                starts the line, so `grep -c '^nvmlShutdown '`
 *                                counts shutdowns.
 *
 * Not thread-safe and not meant to be: tests call it from one thread.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define FAKE_API __attribute__((visibility("default")))
#else
#define FAKE_API
#endif

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t is 24 bytes");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t is 40 bytes");

#define FAKE_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
#define FAKE_MAX_DEVICES 64

/* A handle is the address of one of these; its content is never read. */
struct nvmlDevice_st {
    int index;
};

static struct nvmlDevice_st fake_devices[FAKE_MAX_DEVICES];
static int fake_init_count;

typedef struct {
    char name[96];
    char uuid[96];
    unsigned long long total, free, reserved;
} fake_gpu;

static void fake_log(const char *fn, int dev, nvmlReturn_t rc)
{
    const char *path = getenv("FAKE_NVML_LOG");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    if (dev >= 0)
        fprintf(f, "%s dev=%d rc=%d\n", fn, dev, rc);
    else
        fprintf(f, "%s rc=%d\n", fn, rc);
    fclose(f);
}

static long env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    return end == s ? dflt : v;
}

static unsigned fake_count(void)
{
    long n = env_long("FAKE_NVML_COUNT", 1);
    if (n < 0) n = 0;
    if (n > FAKE_MAX_DEVICES) n = FAKE_MAX_DEVICES;
    return (unsigned)n;
}

/* Copies the next ';'-separated field of *s into out (cut to out_len - 1)
 * and advances *s past it. */
static void next_field(const char **s, char *out, size_t out_len)
{
    const char *p = *s;
    size_t n = strcspn(p, ";");
    size_t k = n < out_len - 1 ? n : out_len - 1;
    memcpy(out, p, k);
    out[k] = '\0';
    *s = p[n] == ';' ? p + n + 1 : p + n;
}

static void fake_gpu_get(int i, fake_gpu *g)
{
    char var[32], field[96];
    snprintf(g->name, sizeof g->name, "Fake GPU %d", i);
    snprintf(g->uuid, sizeof g->uuid, "GPU-fa4e0000-0000-4000-8000-%012x",
             (unsigned)i);
    g->total = 25769803776ull;
    g->free = 18907922432ull;
    g->reserved = 419430400ull;

    snprintf(var, sizeof var, "FAKE_NVML_GPU%d", i);
    const char *s = getenv(var);
    if (!s) return;
    next_field(&s, field, sizeof field);
    if (*field) snprintf(g->name, sizeof g->name, "%s", field);
    next_field(&s, field, sizeof field);
    if (*field) snprintf(g->uuid, sizeof g->uuid, "%s", field);
    unsigned long long *nums[3] = {&g->total, &g->free, &g->reserved};
    for (int k = 0; k < 3; k++) {
        next_field(&s, field, sizeof field);
        if (*field) *nums[k] = strtoull(field, NULL, 10);
    }
}

/* The device index behind a handle, or -1 when it is not one of ours or
 * beyond the current count. */
static int fake_dev_index(nvmlDevice_t d)
{
    for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
        if (d == &fake_devices[i])
            return (unsigned)i < fake_count() ? i : -1;
    }
    return -1;
}

static int mem_fails(int dev, nvmlReturn_t *rc)
{
    const char *s = getenv("FAKE_NVML_FAIL_MEM");
    if (!s || !*s) return 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (v == dev) {
            *rc = (nvmlReturn_t)env_long("FAKE_NVML_FAIL_MEM_RC", 15);
            return 1;
        }
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

static nvmlReturn_t do_init(const char *fn)
{
    nvmlReturn_t rc = (nvmlReturn_t)env_long("FAKE_NVML_INIT_FAIL", 0);
    if (rc == 0) fake_init_count++;
    fake_log(fn, -1, rc);
    return rc;
}

FAKE_API nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }
FAKE_API nvmlReturn_t nvmlInit(void) { return do_init("nvmlInit"); }

FAKE_API nvmlReturn_t nvmlShutdown(void)
{
    nvmlReturn_t rc = 0;
    if (fake_init_count <= 0)
        rc = 1;
    else
        fake_init_count--;
    fake_log("nvmlShutdown", -1, rc);
    return rc;
}

FAKE_API const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 25: return "Argument version mismatch";
    case 28: return "GPU not found";
    default: return "Unknown Error";
    }
}

static nvmlReturn_t do_count(const char *fn, unsigned int *count)
{
    nvmlReturn_t rc = 0;
    if (fake_init_count <= 0)
        rc = 1;
    else if (!count)
        rc = 2;
    else
        *count = fake_count();
    fake_log(fn, -1, rc);
    return rc;
}

FAKE_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    return do_count("nvmlDeviceGetCount_v2", count);
}

FAKE_API nvmlReturn_t nvmlDeviceGetCount(unsigned int *count)
{
    return do_count("nvmlDeviceGetCount", count);
}

static nvmlReturn_t do_handle(const char *fn, unsigned int index,
                              nvmlDevice_t *device)
{
    nvmlReturn_t rc = 0;
    if (fake_init_count <= 0)
        rc = 1;
    else if (!device || index >= fake_count())
        rc = 2;
    else
        *device = &fake_devices[index];
    fake_log(fn, index < FAKE_MAX_DEVICES ? (int)index : -1, rc);
    return rc;
}

FAKE_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                    nvmlDevice_t *device)
{
    return do_handle("nvmlDeviceGetHandleByIndex_v2", index, device);
}

FAKE_API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index,
                                                 nvmlDevice_t *device)
{
    return do_handle("nvmlDeviceGetHandleByIndex", index, device);
}

FAKE_API nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid,
                                                nvmlDevice_t *device)
{
    nvmlReturn_t rc = 6; /* NOT_FOUND */
    int dev = -1;
    if (fake_init_count <= 0) {
        rc = 1;
    } else if (!uuid || !device) {
        rc = 2;
    } else {
        unsigned n = fake_count();
        for (unsigned i = 0; i < n; i++) {
            fake_gpu g;
            fake_gpu_get((int)i, &g);
            if (strcmp(g.uuid, uuid) == 0) {
                *device = &fake_devices[i];
                dev = (int)i;
                rc = 0;
                break;
            }
        }
    }
    fake_log("nvmlDeviceGetHandleByUUID", dev, rc);
    return rc;
}

static nvmlReturn_t do_string(const char *fn, nvmlDevice_t device, char *buf,
                              unsigned int length, int want_uuid)
{
    nvmlReturn_t rc = 0;
    int dev = fake_dev_index(device);
    if (fake_init_count <= 0) {
        rc = 1;
    } else if (dev < 0 || !buf) {
        rc = 2;
    } else {
        fake_gpu g;
        fake_gpu_get(dev, &g);
        const char *s = want_uuid ? g.uuid : g.name;
        if (strlen(s) + 1 > length)
            rc = 7; /* INSUFFICIENT_SIZE */
        else
            memcpy(buf, s, strlen(s) + 1);
    }
    fake_log(fn, dev, rc);
    return rc;
}

FAKE_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name,
                                        unsigned int length)
{
    return do_string("nvmlDeviceGetName", device, name, length, 0);
}

FAKE_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid,
                                        unsigned int length)
{
    return do_string("nvmlDeviceGetUUID", device, uuid, length, 1);
}

FAKE_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device,
                                              nvmlMemory_t *memory)
{
    nvmlReturn_t rc = 0;
    int dev = fake_dev_index(device);
    if (fake_init_count <= 0) {
        rc = 1;
    } else if (dev < 0 || !memory) {
        rc = 2;
    } else if (!mem_fails(dev, &rc)) {
        fake_gpu g;
        fake_gpu_get(dev, &g);
        memory->total = g.total;
        memory->free = g.free;
        /* v1 used counts the reserve: used + free == total. */
        memory->used = g.total > g.free ? g.total - g.free : 0;
    }
    fake_log("nvmlDeviceGetMemoryInfo", dev, rc);
    return rc;
}

FAKE_API nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device,
                                                 nvmlMemory_v2_t *memory)
{
    nvmlReturn_t rc = 0;
    int dev = fake_dev_index(device);
    long forced = env_long("FAKE_NVML_V2_RC", 0);
    if (fake_init_count <= 0) {
        rc = 1;
    } else if (dev < 0 || !memory) {
        rc = 2;
    } else if (env_long("FAKE_NVML_NO_V2", 0) != 0) {
        rc = 13;
    } else if (forced != 0) {
        rc = (nvmlReturn_t)forced;
    } else if (memory->version != FAKE_MEMORY_V2) {
        /* The driver's answer to `version = 2` (research/probes.md 1.5). */
        rc = 13;
    } else if (!mem_fails(dev, &rc)) {
        fake_gpu g;
        fake_gpu_get(dev, &g);
        unsigned long long taken = g.free + g.reserved;
        memory->total = g.total;
        memory->reserved = g.reserved;
        memory->free = g.free;
        memory->used = g.total > taken ? g.total - taken : 0;
    }
    fake_log("nvmlDeviceGetMemoryInfo_v2", dev, rc);
    return rc;
}
