/*
 * server/store/_mix.h: the one 64-bit mixing function of the C hash tables (the stack tree index's wide
 * children, the key index, the sandwich's groups). Their keys are packed ids, often small and close
 * together, so a table indexed by their low bits would crowd; after this finaliser every input bit moves
 * every output bit.
 */
#ifndef STACKYARD_MIX_H
#define STACKYARD_MIX_H

#include <stdint.h>

/* splitmix64's finaliser. */
static inline uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

#endif
