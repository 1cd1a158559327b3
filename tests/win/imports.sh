#!/bin/sh
# imports.sh OBJDUMP FILE...: every Windows DLL or program given imports
# system DLLs only: KERNEL32 and msvcrt (the C runtime), and ADVAPI32 (the
# stack protector's canary comes from CryptGenRandom). A libgcc, winpthread
# or other mingw DLL in the list means a user's machine without mingw
# cannot load it. Run on the build machine by ctest (test_win_imports).
objdump=$1
shift
status=0
for f in "$@"; do
    dlls=$("$objdump" -p "$f" | sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
    echo "$(basename "$f"): $(echo $dlls)"
    for d in $dlls; do
        case $d in
            kernel32.dll|msvcrt.dll|advapi32.dll) ;;
            *) echo "  $(basename "$f") imports $d, not a system DLL"; status=1 ;;
        esac
    done
    [ -n "$dlls" ] || { echo "  $(basename "$f"): no imports read"; status=1; }
done
exit $status
