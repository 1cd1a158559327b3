/* SPDX-License-Identifier: MIT */
/*
 * sys.c (Windows): what `memguard watch` needs of the system: the console's
 * Ctrl+C, Ctrl+Break and close events turned into a flag, and a sleep that
 * they cut short. Windows runs a console handler on a thread of its own,
 * so the handler sets the flag and an event the sleep waits on; it returns
 * TRUE (handled) so the loop can end and `watch` exits 0 as on Linux. It
 * does not remove the handler: the program ends after the loop.
 */
#include "cli.h"

#include <windows.h>

static volatile LONG stop_flag;
static HANDLE wake; /* manual-reset, set by the handler; NULL: plain Sleep */

static BOOL WINAPI on_console(DWORD type)
{
    if (type != CTRL_C_EVENT && type != CTRL_BREAK_EVENT && type != CTRL_CLOSE_EVENT)
        return FALSE;
    InterlockedExchange(&stop_flag, 1);
    if (wake) SetEvent(wake);
    return TRUE;
}

void cli_catch_interrupt(void)
{
    wake = CreateEventW(NULL, TRUE, FALSE, NULL);
    SetConsoleCtrlHandler(on_console, TRUE);
}

bool cli_interrupted(void)
{
    return InterlockedCompareExchange(&stop_flag, 0, 0) != 0;
}

void cli_sleep_ms(uint32_t ms)
{
    if (wake) WaitForSingleObject(wake, ms);
    else Sleep(ms);
}
