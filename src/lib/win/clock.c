/* SPDX-License-Identifier: MIT */
/*
 * clock.c (Windows): the library's monotonic clock, from the performance
 * counter (QueryPerformanceCounter: sub-microsecond and never adjusted,
 * where GetTickCount64 moves in 10-16 ms steps). The counter's frequency is
 * asked every time rather than kept: it is fixed at boot and the call costs
 * nanoseconds, and the library keeps no global state. It reads nothing
 * else.
 */
#include "win/win.h"

/* counter / frequency in units of 1/scale s, without the overflow of
 * counter * scale (a counter at 10 MHz passes 2^64 / 10^6 after 21 days). */
static uint64_t scaled(uint64_t scale)
{
    LARGE_INTEGER c, f;
    QueryPerformanceCounter(&c);
    QueryPerformanceFrequency(&f);
    uint64_t n = (uint64_t)c.QuadPart, hz = (uint64_t)f.QuadPart;
    if (hz == 0) return GetTickCount64() * (scale / 1000u);
    return n / hz * scale + n % hz * scale / hz;
}

uint64_t mg__now_ms(void)
{
    return scaled(1000u);
}

uint64_t mg__now_us(void)
{
    return scaled(1000000u);
}
