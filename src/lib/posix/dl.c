/* SPDX-License-Identifier: MIT */
/*
 * dl.c: the dynamic loader, the one place libmemguard touches it (NVML is
 * loaded at run time so the library neither links nor requires the NVIDIA
 * driver: gpu_nvml.c). It only wraps dlopen/dlsym/dlclose/dlerror.
 */
#include "internal.h"

#include <dlfcn.h>

void *mg__dl_open(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }

void *mg__dl_sym(void *lib, const char *symbol) { return dlsym(lib, symbol); }

void mg__dl_close(void *lib) { dlclose(lib); }

const char *mg__dl_error(void)
{
    const char *e = dlerror();
    return e ? e : "unknown error";
}
