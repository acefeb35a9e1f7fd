/*
 * server.query._sandwich: the two trees of a function's sandwich, grown over a call tree's arrays.
 *
 * What is grown is server/query/sandwich.py's docstring: sandwich nodes by (node above, function), one
 * level at a time, each an entry per (tree node, F it is reached from); an entry counts its F's subtree
 * (callers) or its frame's (callees), except where another entry of its sandwich node counts a node above
 * it; a level is grown only where a flame graph of max_nodes nodes can draw.
 *
 * Why in C: numpy grew each level with two radix sorts, a grouping, reduceat sums and the repeats and
 * cumsums that make the next level, some fifty calls a level. On the analysis bench (4,240 F nodes of
 * work.Run, 24 levels a side) that was 5.8 ms, more than the whole flame graph the sandwich is drawn
 * beside, and nearly all of it the calls' fixed costs on levels of a few thousand entries. Here a level is
 * a few passes over its entries: a hash table groups them, the groups (hundreds) are sorted by key, and the
 * sums and the next level's entries are written as the entries are read; both sides take 1.6 ms there.
 *
 * Nodes are numbered level by level, and within a level in (node above, function) order, as numpy numbered
 * them. With max_nodes the cut under which nodes are not grown is exact after every node (a heap of the
 * widest), where numpy's was a lower bound worked out every few hundred nodes: a few fewer nodes are grown,
 * and the flame graph drawn from them is the same. Sums wrap at 64 bits, as numpy's do.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../store/_words.h"

/* The call tree, as the caller's arrays (parents before children), and what is worked out from it once. */
typedef struct {
    const int64_t *parent;
    const int64_t *function;
    const uint8_t *recursive;
    const uint64_t *selfs;  /* (size, columns) */
    const uint64_t *totals; /* (size, columns) */
    Py_ssize_t size, columns;
    int64_t width; /* functions are below it */
    int64_t f;     /* the function whose sandwich it is */
    int64_t *f_nodes; /* its nodes, in index order */
    Py_ssize_t f_count;
    /* Callees: each node's children, in index order: children[first[i]:first[i + 1]] (int32: a call tree
     * of 2**31 nodes would not fit in memory anyway). */
    int32_t *first, *children;
    /* When nested entries are checked (see inner()): per F node, the nearest F above (-1: none) and the node
     * just below it on the path down; per node, its depth and a scratch label (-1 when unset). */
    int64_t *f_parent, *below, *depth, *label;
} Tree;

/* One level's entries, as parallel columns. */
typedef struct {
    int64_t *above, *frame, *source;
    uint8_t *suspect;
    Py_ssize_t len, room;
} Entries;

/* The sandwich tree grown so far: per node its parent (-1: the root, F), function, and sums. */
typedef struct {
    int64_t *parent, *function;
    uint64_t *selfs, *totals;
    Py_ssize_t count, room, columns;
} Grown;

/* A hash table slot: a key, and its group + 1 (0: empty). Together, so that a probe reads one cache line. */
typedef struct {
    int64_t key;
    Py_ssize_t group;
} Slot;

/* One level's grouping: per entry its group (as first met, then its number in key order); per group (as
 * first met) its first entry, size and number in key order; the groups' (key, group) pairs sorted; and the
 * hash table. */
typedef struct {
    int64_t *ids, *first_entry, *size, *rank;
    int64_t (*sorted)[2], (*spare)[2]; /* spare: the radix sort's other half */
    Slot *slots;
    Py_ssize_t room, slot_room;
    Py_ssize_t last; /* groups of the last level: the next one's table starts at four times as many slots */
} Groups;

/* The width under which a node cannot be drawn: the max-th widest found so far, a lower bound of the
 * max-th widest of the whole tree (its descendants are no wider than it, so none could be drawn). The max
 * widest so far are a min-heap, so the cut is its top, exact after every node (numpy worked it out only
 * every few hundred nodes: a selection over max widths cost more than the rest of a small level). */
typedef struct {
    Py_ssize_t max; /* 0: every node may be drawn */
    int64_t *heap;  /* the widest so far, at most max, the narrowest first */
    Py_ssize_t len;
} Widest;

static void *
grown_array(void *old, Py_ssize_t count, size_t item)
{
    if (count < 0 || (size_t)count > PY_SSIZE_T_MAX / item) {
        return NULL;
    }
    return realloc(old, (size_t)count * item + 1);
}

/* Room for `need` entries; 0, or -1 with MemoryError. */
static int
entries_room(Entries *e, Py_ssize_t need)
{
    if (need <= e->room) {
        return 0;
    }
    Py_ssize_t room = e->room ? e->room : 64;
    while (room < need) {
        room *= 2;
    }
    int64_t *above = grown_array(e->above, room, 8);
    if (above != NULL) {
        e->above = above;
    }
    int64_t *frame = above == NULL ? NULL : grown_array(e->frame, room, 8);
    if (frame != NULL) {
        e->frame = frame;
    }
    int64_t *source = frame == NULL ? NULL : grown_array(e->source, room, 8);
    if (source != NULL) {
        e->source = source;
    }
    uint8_t *suspect = source == NULL ? NULL : grown_array(e->suspect, room, 1);
    if (suspect == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    e->suspect = suspect;
    e->room = room;
    return 0;
}

static inline int
entries_push(Entries *e, int64_t above, int64_t frame, int64_t source, uint8_t suspect)
{
    if (e->len == e->room && entries_room(e, e->len + 1) < 0) {
        return -1;
    }
    e->above[e->len] = above;
    e->frame[e->len] = frame;
    e->source[e->len] = source;
    e->suspect[e->len] = suspect;
    e->len++;
    return 0;
}

static void
entries_free(Entries *e)
{
    free(e->above);
    free(e->frame);
    free(e->source);
    free(e->suspect);
}

/* Room for `need` nodes; 0, or -1 with MemoryError. */
static int
grown_room(Grown *g, Py_ssize_t need)
{
    if (need <= g->room) {
        return 0;
    }
    Py_ssize_t room = g->room ? g->room : 64;
    while (room < need) {
        room *= 2;
    }
    if (room > PY_SSIZE_T_MAX / g->columns) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t *parent = grown_array(g->parent, room, 8);
    if (parent != NULL) {
        g->parent = parent;
    }
    int64_t *function = parent == NULL ? NULL : grown_array(g->function, room, 8);
    if (function != NULL) {
        g->function = function;
    }
    uint64_t *selfs = function == NULL ? NULL : grown_array(g->selfs, room * g->columns, 8);
    if (selfs != NULL) {
        g->selfs = selfs;
    }
    uint64_t *totals = selfs == NULL ? NULL : grown_array(g->totals, room * g->columns, 8);
    if (totals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    g->totals = totals;
    g->room = room;
    return 0;
}

static void
grown_free(Grown *g)
{
    free(g->parent);
    free(g->function);
    free(g->selfs);
    free(g->totals);
}

/* Room for a level of `entries` entries; 0, or -1 with MemoryError. */
static int
groups_room(Groups *g, Py_ssize_t entries)
{
    if (entries <= g->room) {
        return 0;
    }
    Py_ssize_t room = entries < 64 ? 64 : entries;
    int64_t **columns[4] = {&g->ids, &g->first_entry, &g->size, &g->rank};
    for (int c = 0; c < 4; c++) {
        int64_t *grown = grown_array(*columns[c], room, 8);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *columns[c] = grown;
    }
    int64_t(*sorted)[2] = grown_array(g->sorted, room, 16);
    if (sorted != NULL) {
        g->sorted = sorted;
    }
    int64_t(*spare)[2] = sorted == NULL ? NULL : grown_array(g->spare, room, 16);
    if (spare == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    g->spare = spare;
    g->room = room;
    return 0;
}

/* An empty hash table of `slots` slots (a power of two); 0, or -1 with MemoryError. */
static int
empty_slots(Groups *g, Py_ssize_t slots)
{
    if (slots > g->slot_room) {
        Slot *grown = grown_array(g->slots, slots, sizeof(Slot));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        g->slots = grown;
        g->slot_room = slots;
    }
    memset(g->slots, 0, (size_t)slots * sizeof(Slot));
    return 0;
}

static void
groups_free(Groups *g)
{
    free(g->ids);
    free(g->first_entry);
    free(g->size);
    free(g->rank);
    free(g->sorted);
    free(g->spare);
    free(g->slots);
}

/* Sorts g->sorted[0:count] by key: insertion for a few, else least significant byte first over the bytes in
 * which the keys differ (a level's keys span a few million: three or four passes). qsort's call per
 * comparison cost more than the rest of the grouping. */
static void
sort_keys(Groups *g, Py_ssize_t count)
{
    int64_t(*pairs)[2] = g->sorted;
    if (count < 32) {
        for (Py_ssize_t i = 1; i < count; i++) {
            int64_t key = pairs[i][0], group = pairs[i][1];
            Py_ssize_t j = i;
            for (; j > 0 && pairs[j - 1][0] > key; j--) {
                pairs[j][0] = pairs[j - 1][0];
                pairs[j][1] = pairs[j - 1][1];
            }
            pairs[j][0] = key;
            pairs[j][1] = group;
        }
        return;
    }
    int64_t low = pairs[0][0], high = pairs[0][0];
    for (Py_ssize_t i = 1; i < count; i++) {
        low = pairs[i][0] < low ? pairs[i][0] : low;
        high = pairs[i][0] > high ? pairs[i][0] : high;
    }
    uint64_t span = (uint64_t)high - (uint64_t)low;
    int64_t(*from)[2] = pairs, (*to)[2] = g->spare;
    for (int shift = 0; shift < 64 && (span >> shift) != 0; shift += 8) {
        Py_ssize_t at[257] = {0};
        for (Py_ssize_t i = 0; i < count; i++) {
            at[(((uint64_t)from[i][0] - (uint64_t)low) >> shift & 0xff) + 1]++;
        }
        for (int b = 0; b < 256; b++) {
            at[b + 1] += at[b];
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t into = at[((uint64_t)from[i][0] - (uint64_t)low) >> shift & 0xff]++;
            to[into][0] = from[i][0];
            to[into][1] = from[i][1];
        }
        int64_t(*held)[2] = from;
        from = to;
        to = held;
    }
    if (from != pairs) {
        memcpy(pairs, from, (size_t)count * sizeof(pairs[0]));
    }
}

static inline uint64_t
mix(uint64_t x)
{
    /* splitmix64's finaliser: every input bit moves every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Groups a level's entries by (above, function of frame); returns the number of groups, or -1 with
 * MemoryError. g->ids holds each entry's group as first met, g->rank each such group's number in key order. */
static Py_ssize_t
group(const Tree *t, const Entries *level, Groups *g)
{
    Py_ssize_t m = level->len;
    if (groups_room(g, m) < 0) {
        return -1;
    }
    /* A table for the groups, not the entries: a level's entries are often ten times its groups, and a table
     * that fits the cache is probed faster than a sparse one. It doubles when half full. */
    Py_ssize_t slots = 64, want = g->last < m ? g->last : m;
    while (slots < 4 * want) {
        slots *= 2;
    }
    if (empty_slots(g, slots) < 0) {
        return -1;
    }
    uint64_t mask = (uint64_t)slots - 1;
    Py_ssize_t count = 0;
    for (Py_ssize_t e = 0; e < m; e++) {
        int64_t key = (level->above[e] + 1) * t->width + t->function[level->frame[e]];
        Slot *slot = g->slots + (mix((uint64_t)key) & mask);
        while (slot->group != 0 && slot->key != key) {
            slot = g->slots + ((uint64_t)(slot - g->slots + 1) & mask);
        }
        if (slot->group == 0) {
            if (2 * (count + 1) > slots) { /* doubled, and the groups so far placed again */
                slots *= 2;
                if (empty_slots(g, slots) < 0) {
                    return -1;
                }
                mask = (uint64_t)slots - 1;
                for (Py_ssize_t i = 0; i < count; i++) {
                    Slot *again = g->slots + (mix((uint64_t)g->sorted[i][0]) & mask);
                    while (again->group != 0) {
                        again = g->slots + ((uint64_t)(again - g->slots + 1) & mask);
                    }
                    again->key = g->sorted[i][0];
                    again->group = i + 1;
                }
                slot = g->slots + (mix((uint64_t)key) & mask);
                while (slot->group != 0) {
                    slot = g->slots + ((uint64_t)(slot - g->slots + 1) & mask);
                }
            }
            slot->key = key;
            slot->group = ++count;
            g->sorted[count - 1][0] = key;
            g->sorted[count - 1][1] = count - 1;
            g->first_entry[count - 1] = e;
            g->size[count - 1] = 0;
        }
        g->ids[e] = slot->group - 1;
        g->size[slot->group - 1]++;
    }
    g->last = count;
    sort_keys(g, count);
    for (Py_ssize_t i = 0; i < count; i++) {
        g->rank[g->sorted[i][1]] = i;
    }
    return count;
}

/* The nearest F above each nested F, and the node just below it; node depths. Worked out once, when first
 * needed: most sandwiches have no nested entry to check. 0, or -1 with MemoryError. */
static int
ancestry(Tree *t)
{
    if (t->f_parent != NULL) {
        return 0;
    }
    Py_ssize_t n = t->size;
    t->f_parent = malloc((size_t)n * 8 + 1);
    t->below = malloc((size_t)n * 8 + 1);
    t->depth = malloc((size_t)n * 8 + 1);
    t->label = malloc((size_t)n * 8 + 1);
    if (t->f_parent == NULL || t->below == NULL || t->depth == NULL || t->label == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t up = t->parent[i];
        t->depth[i] = up < 0 ? 0 : t->depth[up] + 1;
        t->label[i] = -1;
        t->f_parent[i] = -1;
        t->below[i] = -1;
        if (t->function[i] == t->f && t->recursive[i]) {
            int64_t at = i;
            while (up >= 0 && t->function[up] != t->f) {
                at = up;
                up = t->parent[up];
            }
            t->f_parent[i] = up;
            t->below[i] = at;
        }
    }
    return 0;
}

/* Per entry, whether another entry of its sandwich node counts a node above its own, so that its samples
 * are counted there already (sandwich.py's docstring). Only a suspect entry whose frame is recursive can be,
 * and only in a group of more than one; the other entry's F is one of the Fs above its own, tried in turn.
 * Returns whether any entry is inner, or -1 with MemoryError. */
static int
inner(Tree *t, const Entries *level, const Groups *g, int up, int64_t distance, uint8_t *out)
{
    Py_ssize_t m = level->len;
    if (m > 0) {
        memset(out, 0, (size_t)m);
    }
    int candidates = 0;
    for (Py_ssize_t e = 0; e < m && !candidates; e++) {
        candidates = level->suspect[e] && t->recursive[level->frame[e]];
    }
    if (!candidates) {
        return 0;
    }
    if (ancestry(t) < 0) {
        return -1;
    }
    const int64_t *counted = up ? level->source : level->frame;
    for (Py_ssize_t e = 0; e < m; e++) {
        t->label[counted[e]] = g->ids[e]; /* a node is counted by at most one entry of a level */
    }
    int any = 0;
    for (Py_ssize_t e = 0; e < m; e++) {
        if (!level->suspect[e] || !t->recursive[level->frame[e]] ||
            g->size[g->sorted[g->ids[e]][1]] < 2) {
            continue;
        }
        int64_t step = level->source[e], above = t->f_parent[step];
        int64_t node = counted[e], climbed = 0; /* callees: the other entry's frame, found walking up */
        while (above >= 0) {
            int64_t other;
            if (up) {
                other = above;
            }
            else if (distance == 1) {
                other = t->below[step];
            }
            else {
                int64_t steps = t->depth[level->source[e]] - t->depth[above];
                for (; climbed < steps; climbed++) { /* Fs further up need more steps: never walked twice */
                    node = t->parent[node];
                }
                other = node;
            }
            if (t->label[other] == g->ids[e]) {
                out[e] = 1;
                any = 1;
                break;
            }
            step = above;
            above = t->f_parent[above];
        }
    }
    for (Py_ssize_t e = 0; e < m; e++) {
        t->label[counted[e]] = -1;
    }
    return any;
}

static inline int64_t
width_of(const uint64_t *row, Py_ssize_t columns)
{
    uint64_t sum = 0;
    for (Py_ssize_t c = 0; c < columns; c++) {
        sum += row[c];
    }
    return (int64_t)sum;
}

/* Offers a node's width to the heap of the widest (whose room is max). */
static void
offer(Widest *w, int64_t width)
{
    int64_t *heap = w->heap;
    Py_ssize_t at;
    if (w->len < w->max) { /* up from the end */
        at = w->len++;
        while (at > 0 && heap[(at - 1) / 2] > width) {
            heap[at] = heap[(at - 1) / 2];
            at = (at - 1) / 2;
        }
        heap[at] = width;
        return;
    }
    if (width <= heap[0]) {
        return;
    }
    at = 0; /* down from the top, replacing the narrowest */
    for (;;) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= w->len) {
            break;
        }
        if (child + 1 < w->len && heap[child + 1] < heap[child]) {
            child++;
        }
        if (heap[child] >= width) {
            break;
        }
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = width;
}

/* Which of a level's new nodes (their totals rows) may be drawn, into out, once their widths are offered;
 * returns whether all may. */
static int
drawable(Widest *w, const uint64_t *totals, Py_ssize_t columns, Py_ssize_t count, uint8_t *out)
{
    if (w->max == 0) {
        return 1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        offer(w, width_of(totals + i * columns, columns));
    }
    if (w->len < w->max) {
        return 1;
    }
    int64_t cut = w->heap[0];
    int all = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        out[i] = width_of(totals + i * columns, columns) >= cut;
        all &= out[i];
    }
    return all;
}

static inline void
add_row(uint64_t *into, const uint64_t *from, Py_ssize_t columns)
{
    for (Py_ssize_t c = 0; c < columns; c++) {
        into[c] += from[c];
    }
}

/* The first level: callers, an entry per F not at a root (its parent, reached from it); callees, an entry per
 * child of each F. 0, or -1 with MemoryError. */
static int
start(const Tree *t, int up, Entries *level)
{
    for (Py_ssize_t i = 0; i < t->f_count; i++) {
        int64_t f = t->f_nodes[i];
        if (up) {
            if (t->parent[f] >= 0 && entries_push(level, -1, t->parent[f], f, t->recursive[f]) < 0) {
                return -1;
            }
            continue;
        }
        for (int32_t c = t->first[f]; c < t->first[f + 1]; c++) {
            if (entries_push(level, -1, t->children[c], f, t->recursive[f]) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* Each node's children in index order (callees). 0, or -1 with MemoryError. */
static int
child_lists(Tree *t)
{
    Py_ssize_t n = t->size;
    if (t->first != NULL) {
        return 0;
    }
    t->first = calloc((size_t)n + 2, sizeof(int32_t));
    t->children = malloc((size_t)n * sizeof(int32_t) + 1);
    if (t->first == NULL || t->children == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (t->parent[i] >= 0) {
            t->first[t->parent[i] + 2]++;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        t->first[i + 2] += t->first[i + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* first[p + 1] is where p's next child goes; ends as p + 1's start */
        if (t->parent[i] >= 0) {
            t->children[t->first[t->parent[i] + 1]++] = (int32_t)i;
        }
    }
    return 0;
}

/* Grows one side into `out`, a level at a time, while some node may still be drawn. 0, or -1 with an
 * exception set. */
static int
grow(Tree *t, int up, Widest *widest, Grown *out)
{
    Entries level = {0}, next = {0};
    Groups groups = {0};
    uint8_t *inner_of = NULL, *draw = NULL;
    Py_ssize_t scratch = 0;
    int status = -1;

    if ((!up && child_lists(t) < 0) || start(t, up, &level) < 0) {
        goto done;
    }
    const Py_ssize_t columns = t->columns;
    int suspects = 0; /* once a level has none, no level below has any */
    for (Py_ssize_t e = 0; e < level.len; e++) {
        suspects |= level.suspect[e];
    }
    for (int64_t distance = 1; level.len; distance++) {
        Py_ssize_t m = level.len;
        if (out->count > (INT64_MAX - t->width) / t->width - 2) {
            PyErr_SetString(PyExc_OverflowError, "grow() made too many sandwich nodes to key them");
            goto done;
        }
        Py_ssize_t count = group(t, &level, &groups);
        if (count < 0) {
            goto done;
        }
        if (m > scratch) {
            uint8_t *grown = grown_array(inner_of, m, 1);
            if (grown != NULL) {
                inner_of = grown;
            }
            grown = grown == NULL ? NULL : grown_array(draw, m, 1);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            draw = grown;
            scratch = m;
        }
        Py_ssize_t base = out->count;
        if (grown_room(out, base + count) < 0) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t first = groups.first_entry[groups.sorted[i][1]];
            out->parent[base + i] = level.above[first];
            out->function[base + i] = t->function[level.frame[first]];
        }
        memset(out->selfs + base * columns, 0, (size_t)(count * columns) * 8);
        memset(out->totals + base * columns, 0, (size_t)(count * columns) * 8);
        out->count += count;
        uint64_t *selfs = out->selfs + base * columns, *totals = out->totals + base * columns;
        for (Py_ssize_t e = 0; e < m; e++) {
            int64_t id = groups.rank[groups.ids[e]], frame = level.frame[e];
            groups.ids[e] = id; /* from here on, the group's number in key order */
            if (!up) { /* a sample ends once: no double count */
                add_row(selfs + id * columns, t->selfs + frame * columns, columns);
            }
            else if (t->parent[frame] < 0) { /* what reaches the root of the stack there */
                add_row(selfs + id * columns, t->totals + level.source[e] * columns, columns);
            }
        }
        if (suspects) {
            int any = inner(t, &level, &groups, up, distance, inner_of);
            if (any < 0) {
                goto done;
            }
            suspects = any;
        }
        else {
            memset(inner_of, 0, (size_t)m);
        }
        const int64_t *counted = up ? level.source : level.frame;
        for (Py_ssize_t e = 0; e < m; e++) {
            if (!inner_of[e]) { /* an inner entry's samples are counted by another entry */
                add_row(totals + groups.ids[e] * columns, t->totals + counted[e] * columns, columns);
            }
        }
        int all = drawable(widest, totals, columns, count, draw);
        next.len = 0;
        for (Py_ssize_t e = 0; e < m; e++) {
            int64_t id = groups.ids[e], frame = level.frame[e];
            if (!all && !draw[id]) {
                continue;
            }
            if (up) { /* up to the callers, until the root of the stack */
                int64_t caller = t->parent[frame];
                if (caller >= 0 && entries_push(&next, base + id, caller, level.source[e], inner_of[e]) < 0) {
                    goto done;
                }
                continue;
            }
            for (int32_t c = t->first[frame]; c < t->first[frame + 1]; c++) {
                if (entries_push(&next, base + id, t->children[c], level.source[e], inner_of[e]) < 0) {
                    goto done;
                }
            }
        }
        Entries swapped = level;
        level = next;
        next = swapped;
    }
    status = 0;
done:
    entries_free(&level);
    entries_free(&next);
    groups_free(&groups);
    free(inner_of);
    free(draw);
    return status;
}

static void
tree_free(Tree *t)
{
    free(t->f_nodes);
    free(t->first);
    free(t->children);
    free(t->f_parent);
    free(t->below);
    free(t->depth);
    free(t->label);
}

/* One grown side as (parents, functions, selfs, totals) bytearrays, or NULL with an exception set. */
static PyObject *
side(const Grown *g)
{
    Py_ssize_t rows = g->count * g->columns * 8;
    return Py_BuildValue("(NNNN)", PyByteArray_FromStringAndSize((const char *)g->parent, g->count * 8),
                         PyByteArray_FromStringAndSize((const char *)g->function, g->count * 8),
                         PyByteArray_FromStringAndSize((const char *)g->selfs, rows),
                         PyByteArray_FromStringAndSize((const char *)g->totals, rows));
}

PyDoc_STRVAR(grow_doc,
             "grow(parent, function, recursive, selfs, totals, f, max_nodes, /)\n--\n\n"
             "The two trees of the sandwich of function id f over a call tree (server/query/sandwich.py). The\n"
             "tree: parent (int64, each in [-1, its own index): parents first), function (int64, each in\n"
             "[0, 2**31)), recursive (bool), selfs and totals ((nodes, columns) int64, fewer than 2**31 nodes).\n"
             "Nodes are grown only where a flame graph of max_nodes nodes draws (0: all). Returns (callers,\n"
             "callees), each (parents, functions, selfs,\n"
             "totals) as bytearrays of int64: the sandwich nodes without their root F, level by level, parents as\n"
             "indices (-1: F). ValueError, before anything is grown, for arrays of other lengths or types, or a\n"
             "parent or function out of range.");

/* Both sides in one call: the tree is checked, and its F nodes and (when needed) ancestry found, once. */
static PyObject *
sandwich_grow(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[5];
    Py_buffer views[5];
    long long f;
    Py_ssize_t max_nodes;
    int got = 0;
    Tree t = {0};
    Grown callers = {0}, callees = {0};
    Widest widest_up = {0}, widest_down = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOOOLn:grow", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &f, &max_nodes)) {
        return NULL;
    }
    static const char *names[5] = {"parent", "function", "recursive", "selfs", "totals"};
    static const Py_ssize_t sizes[5] = {8, 8, 1, 8, 8};
    static const int integers[5] = {SIGNED, SIGNED, BOOLS, SIGNED, SIGNED};
    for (; got < 5; got++) {
        if (get_typed(objs[got], &views[got], sizes[got], integers[got], 0, 0, names[got]) < 0) {
            goto done;
        }
    }
    Py_ssize_t n = views[0].len / 8;
    Py_ssize_t columns = n ? views[3].len / 8 / n : 1;
    if (views[1].len / 8 != n || views[2].len != n || columns < 1 || views[3].len != n * columns * 8 ||
        views[4].len != views[3].len || n >= INT32_MAX || max_nodes < 0 || max_nodes >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "grow() needs parent, function and recursive of one length (below 2**31),"
                                          " selfs and totals of (nodes, columns), and max_nodes in [0, 2**31)");
        goto done;
    }
    t = (Tree){.parent = views[0].buf, .function = views[1].buf, .recursive = views[2].buf,
               .selfs = views[3].buf, .totals = views[4].buf, .size = n, .columns = columns, .width = 1, .f = f};
    for (Py_ssize_t i = 0; i < n; i++) { /* checked whole first */
        if (t.parent[i] < -1 || t.parent[i] >= i || t.function[i] < 0 || t.function[i] > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "grow() needs every parent index in [-1, the node's own) and every "
                                              "function in [0, 2**31)");
            goto done;
        }
        t.width = t.function[i] >= t.width ? t.function[i] + 1 : t.width;
        if (t.function[i] == f) {
            if ((t.f_count & (t.f_count - 1)) == 0) { /* 0, 1, 2, 4...: full, doubled */
                int64_t *grown = grown_array(t.f_nodes, t.f_count ? 2 * t.f_count : 1, 8);
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                t.f_nodes = grown;
            }
            t.f_nodes[t.f_count++] = i;
        }
    }
    callers.columns = callees.columns = columns;
    widest_up.max = widest_down.max = max_nodes;
    widest_up.heap = malloc((size_t)max_nodes * 8 + 1);
    widest_down.heap = malloc((size_t)max_nodes * 8 + 1);
    if (widest_up.heap == NULL || widest_down.heap == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (grow(&t, 1, &widest_up, &callers) < 0 || grow(&t, 0, &widest_down, &callees) < 0) {
        goto done;
    }
    result = Py_BuildValue("(NN)", side(&callers), side(&callees));
done:
    release_all(views, got);
    tree_free(&t);
    grown_free(&callers);
    grown_free(&callees);
    free(widest_up.heap);
    free(widest_down.heap);
    return result;
}

static PyMethodDef sandwich_methods[] = {
    {"grow", sandwich_grow, METH_VARARGS, grow_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot sandwich_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef sandwich_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.query._sandwich",
    .m_doc = "A function's sandwich trees grown over a call tree's arrays, a level a pass (see _sandwich.c).",
    .m_size = 0,
    .m_methods = sandwich_methods,
    .m_slots = sandwich_slots,
};

PyMODINIT_FUNC
PyInit__sandwich(void)
{
    return PyModuleDef_Init(&sandwich_module);
}
