/*
 * server/pprof/_mix.h: the one 64-bit mixing function of the C code, splitmix64's finaliser, the twin of
 * server/pprof/mixing.py's mix64. The decoder (_wire.c) combines integer columns into sample identities,
 * label runs and digests with it, where sums and products of mixed terms must not cancel; the hash tables
 * (the stack tree index's wide children, the key index, the sandwich's groups, the filters' kept paths)
 * spread their keys with it, packed ids that are often small and close together. After it every input bit
 * moves every output bit. It lives with the decoder, the lowest layer; the store and the query include it.
 */
#ifndef STACKYARD_MIX_H
#define STACKYARD_MIX_H

#include <stdint.h>

static inline uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

#endif
