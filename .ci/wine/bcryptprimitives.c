/*
 * A stand-in bcryptprimitives.dll for Wine 8, which lacks ProcessPrng: Rust's
 * std (1.78 and later) calls it for HashMap seeds and the services' random
 * numbers, and an .exe without it stops at start. Real Windows 10 and later
 * ship the real one; this is only for the Wine test (.ci/cross builds it with
 * mingw's gcc and puts it beside the .exe's). It draws on RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
