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

#include "../pprof/_mix.h"
#include "../store/_words.h"

/* The call tree, as the caller's arrays (parents before children), and what is worked out from it once. */
typedef struct {
    Indices parent;   /* int32 or int64 */
    Indices function; /* int32 or int64 */
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

/* One entry of a level: a tree node reached from an F, and where it goes. */
typedef struct {
    int64_t above;  /* the sandwich node of the level above (-1: the root, F) */
    int64_t group;  /* its sandwich node: its group as first met, then the group's number in key order */
    int32_t frame;  /* the tree node whose function it adds (trees have fewer than 2**31 nodes) */
    int32_t source; /* the F it is reached from */
    uint8_t suspect; /* whether it may be counted inside another entry of its sandwich node (inner()) */
    uint8_t inner;   /* whether it is: its samples are counted by that other entry */
} Entry;

typedef struct {
    Entry *at;
    Py_ssize_t len, room;
} Entries;

/* A hash table slot: a key, and its group + 1 (0: empty). Together, so that a probe reads one cache line. */
typedef struct {
    int64_t key;
    Py_ssize_t group;
} Slot;

/* A group of a level's entries (as first met): its first entry, how many it has, its number in key order. */
typedef struct {
    int64_t first_entry, size, rank;
} Group;

/* One level's grouping: its groups, their (key, group) pairs sorted by key (and as many again, the radix
 * sort's other half), whether each may be drawn (in key order), and the hash table that groups them. */
typedef struct {
    Group *at;
    int64_t (*pairs)[2];
    uint8_t *draw;
    Slot *slots;
    Py_ssize_t room, pair_room, draw_room, slot_room;
} Groups;

/* The sandwich tree grown so far: a row per node of 2 + 2 * columns words: its parent (-1: the root, F),
 * function, selfs and totals. One buffer, so that growing it is one reallocation. */
typedef struct {
    uint64_t *rows;
    Py_ssize_t count, room, columns;
} Grown;

#define ROW(g, i) ((g)->rows + (i) * (2 + 2 * (g)->columns))
#define SELFS(g, i) (ROW(g, i) + 2)
#define TOTALS(g, i) (ROW(g, i) + 2 + (g)->columns)

/* The width under which a node cannot be drawn: the max-th widest found so far, a lower bound of the
 * max-th widest of the whole tree (its descendants are no wider than it, so none could be drawn). The max
 * widest so far are a min-heap, so the cut is its top, exact after every node (numpy worked it out only
 * every few hundred nodes: a selection over max widths cost more than the rest of a small level). */
typedef struct {
    Py_ssize_t max; /* 0: every node may be drawn */
    int64_t *heap;  /* the widest so far, at most max, the narrowest first */
    Py_ssize_t len;
} Widest;

/* `buffer` (room for `*room` items of `item` bytes) with room for `need`, its room doubled as often as
 * needed; NULL with MemoryError, the buffer left as it was. */
static void *
with_room(void *buffer, Py_ssize_t *room, Py_ssize_t need, size_t item)
{
    if (need <= *room) {
        return buffer;
    }
    Py_ssize_t grown_room = *room ? *room : 64;
    while (grown_room < need) {
        grown_room *= 2;
    }
    if (need < 0 || (size_t)grown_room > PY_SSIZE_T_MAX / item) {
        PyErr_NoMemory();
        return NULL;
    }
    void *grown = realloc(buffer, (size_t)grown_room * item);
    if (grown == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *room = grown_room;
    return grown;
}

static inline int
entries_push(Entries *e, int64_t above, int64_t frame, int64_t source, uint8_t suspect)
{
    if (e->len == e->room) {
        Entry *at = with_room(e->at, &e->room, e->len + 1, sizeof(Entry));
        if (at == NULL) {
            return -1;
        }
        e->at = at;
    }
    e->at[e->len++] = (Entry){.above = above, .frame = (int32_t)frame, .source = (int32_t)source, .suspect = suspect};
    return 0;
}

/* Room for a level of `entries` entries (as many groups at most); 0, or -1 with MemoryError. */
static int
groups_room(Groups *g, Py_ssize_t entries)
{
    Group *at = with_room(g->at, &g->room, entries, sizeof(Group));
    if (at == NULL) {
        return -1;
    }
    g->at = at;
    int64_t(*pairs)[2] = with_room(g->pairs, &g->pair_room, 2 * entries, sizeof(g->pairs[0]));
    if (pairs == NULL) {
        return -1;
    }
    g->pairs = pairs;
    uint8_t *draw = with_room(g->draw, &g->draw_room, entries, 1);
    if (draw == NULL) {
        return -1;
    }
    g->draw = draw;
    return 0;
}

/* An empty hash table of `slots` slots (a power of two); 0, or -1 with MemoryError. */
static int
empty_slots(Groups *g, Py_ssize_t slots)
{
    Slot *at = with_room(g->slots, &g->slot_room, slots, sizeof(Slot));
    if (at == NULL) {
        return -1;
    }
    g->slots = at;
    memset(g->slots, 0, (size_t)slots * sizeof(Slot));
    return 0;
}

static void
groups_free(Groups *g)
{
    free(g->at);
    free(g->pairs);
    free(g->draw);
    free(g->slots);
}

/* Sorts g->pairs[0:count] by key: insertion for a few, else least significant byte first over the bytes in
 * which the keys differ (a level's keys span a few million: three or four passes). qsort's call per
 * comparison cost more than the rest of the grouping. */
static void
sort_keys(Groups *g, Py_ssize_t count)
{
    int64_t(*pairs)[2] = g->pairs;
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
    int64_t(*from)[2] = pairs, (*to)[2] = pairs + count;
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

/* The slot of `key` in the table of `mask + 1` slots: its own, or the empty one where it goes. */
static inline Slot *
find(Slot *slots, uint64_t mask, int64_t key)
{
    Slot *slot = slots + (mix64((uint64_t)key) & mask);
    while (slot->group != 0 && slot->key != key) {
        slot = slots + ((uint64_t)(slot - slots + 1) & mask);
    }
    return slot;
}

/* Groups a level's entries by (above, function of frame); returns the number of groups, or -1 with
 * MemoryError. Each entry's group is its group as first met; each group's rank, its number in key order. */
static Py_ssize_t
group(const Tree *t, Entries *level, Groups *g)
{
    Py_ssize_t m = level->len;
    if (groups_room(g, m) < 0) {
        return -1;
    }
    /* Twice as many slots as entries, so never half full (there are at most as many groups): a table sized
     * by the last level's groups and doubled when half full measured slower, with more probes a key. */
    Py_ssize_t slots = 64;
    while (slots < 2 * m) {
        slots *= 2;
    }
    if (empty_slots(g, slots) < 0) {
        return -1;
    }
    uint64_t mask = (uint64_t)slots - 1;
    Py_ssize_t count = 0;
    for (Py_ssize_t e = 0; e < m; e++) {
        Entry *entry = level->at + e;
        int64_t key = (entry->above + 1) * t->width + indices_at(&t->function, entry->frame);
        Slot *slot = find(g->slots, mask, key);
        if (slot->group == 0) {
            *slot = (Slot){.key = key, .group = ++count};
            g->pairs[count - 1][0] = key;
            g->pairs[count - 1][1] = count - 1;
            g->at[count - 1] = (Group){.first_entry = e};
        }
        entry->group = slot->group - 1;
        g->at[entry->group].size++;
    }
    sort_keys(g, count);
    for (Py_ssize_t i = 0; i < count; i++) {
        g->at[g->pairs[i][1]].rank = i;
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
        int64_t up = indices_at(&t->parent, i);
        t->depth[i] = up < 0 ? 0 : t->depth[up] + 1;
        t->label[i] = -1;
        t->f_parent[i] = -1;
        t->below[i] = -1;
        if (indices_at(&t->function, i) == t->f && t->recursive[i]) {
            int64_t at = i;
            while (up >= 0 && indices_at(&t->function, up) != t->f) {
                at = up;
                up = indices_at(&t->parent, up);
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
 * Entries' groups are numbered in key order here. Returns whether any entry is inner, or -1 with
 * MemoryError. */
static int
inner(Tree *t, Entries *level, const Groups *g, int up, int64_t distance)
{
    Py_ssize_t m = level->len;
    int candidates = 0;
    for (Py_ssize_t e = 0; e < m; e++) {
        level->at[e].inner = 0;
        candidates |= level->at[e].suspect && t->recursive[level->at[e].frame];
    }
    if (!candidates) {
        return 0;
    }
    if (ancestry(t) < 0) {
        return -1;
    }
    for (Py_ssize_t e = 0; e < m; e++) { /* a node is counted by at most one entry of a level */
        const Entry *entry = level->at + e;
        t->label[up ? entry->source : entry->frame] = entry->group;
    }
    int any = 0;
    for (Py_ssize_t e = 0; e < m; e++) {
        Entry *entry = level->at + e;
        if (!entry->suspect || !t->recursive[entry->frame] || g->at[g->pairs[entry->group][1]].size < 2) {
            continue;
        }
        int64_t step = entry->source, above = t->f_parent[step];
        int64_t node = entry->frame, climbed = 0; /* callees: the other entry's frame, found walking up */
        while (above >= 0) {
            int64_t other;
            if (up) {
                other = above;
            }
            else if (distance == 1) {
                other = t->below[step];
            }
            else {
                int64_t steps = t->depth[entry->source] - t->depth[above];
                for (; climbed < steps; climbed++) { /* Fs further up need more steps: never walked twice */
                    node = indices_at(&t->parent, node);
                }
                other = node;
            }
            if (t->label[other] == entry->group) {
                entry->inner = 1;
                any = 1;
                break;
            }
            step = above;
            above = t->f_parent[above];
        }
    }
    for (Py_ssize_t e = 0; e < m; e++) {
        const Entry *entry = level->at + e;
        t->label[up ? entry->source : entry->frame] = -1;
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

/* Which of a level's new nodes (rows base.. of out) may be drawn, into draw, once their widths are offered;
 * returns whether all may. */
static int
drawable(Widest *w, const Grown *out, Py_ssize_t base, Py_ssize_t count, uint8_t *draw)
{
    if (w->max == 0) {
        return 1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        offer(w, width_of(TOTALS(out, base + i), out->columns));
    }
    if (w->len < w->max) {
        return 1;
    }
    int64_t cut = w->heap[0];
    int all = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        draw[i] = width_of(TOTALS(out, base + i), out->columns) >= cut;
        all &= draw[i];
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

/* Pushes the next level's entries grown from `entry` (its group `id` among all nodes): callers, its frame's
 * parent; callees, its frame's children. 0, or -1 with MemoryError. */
static inline int
grow_entry(const Tree *t, int up, const Entry *entry, int64_t id, Entries *next)
{
    if (up) { /* up to the callers, until the root of the stack */
        int64_t caller = indices_at(&t->parent, entry->frame);
        return caller < 0 ? 0 : entries_push(next, id, caller, entry->source, entry->inner);
    }
    for (int32_t c = t->first[entry->frame]; c < t->first[entry->frame + 1]; c++) {
        if (entries_push(next, id, t->children[c], entry->source, entry->inner) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The first level: an entry per F (its F itself, as if grown from the root), then grown once. 0, or -1 with
 * MemoryError. */
static int
start(const Tree *t, int up, Entries *level)
{
    for (Py_ssize_t i = 0; i < t->f_count; i++) {
        int64_t f = t->f_nodes[i];
        Entry root = {.frame = (int32_t)f, .source = (int32_t)f, .inner = t->recursive[f]}; /* F below F: suspect */
        if (grow_entry(t, up, &root, -1, level) < 0) {
            return -1;
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
        int64_t up = indices_at(&t->parent, i);
        if (up >= 0) {
            t->first[up + 2]++;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        t->first[i + 2] += t->first[i + 1];
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* first[p + 1] is where p's next child goes; ends as p + 1's start */
        int64_t up = indices_at(&t->parent, i);
        if (up >= 0) {
            t->children[t->first[up + 1]++] = (int32_t)i;
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
    int status = -1;

    if ((!up && child_lists(t) < 0) || start(t, up, &level) < 0) {
        goto done;
    }
    const Py_ssize_t columns = t->columns;
    int suspects = 0; /* once a level has none, no level below has any */
    for (Py_ssize_t e = 0; e < level.len; e++) {
        suspects |= level.at[e].suspect;
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
        Py_ssize_t base = out->count;
        uint64_t *rows = with_room(out->rows, &out->room, base + count, (2 + 2 * (size_t)columns) * 8);
        if (rows == NULL) {
            goto done;
        }
        out->rows = rows;
        out->count += count;
        memset(ROW(out, base), 0, (size_t)count * (2 + 2 * (size_t)columns) * 8);
        for (Py_ssize_t i = 0; i < count; i++) {
            const Entry *first = level.at + groups.at[groups.pairs[i][1]].first_entry;
            ROW(out, base + i)[0] = (uint64_t)first->above;
            ROW(out, base + i)[1] = (uint64_t)indices_at(&t->function, first->frame);
        }
        for (Py_ssize_t e = 0; e < m; e++) {
            Entry *entry = level.at + e;
            entry->group = groups.at[entry->group].rank; /* from here on, the group's number in key order */
            if (!up) { /* a sample ends once: no double count */
                add_row(SELFS(out, base + entry->group), t->selfs + entry->frame * columns, columns);
            }
            else if (indices_at(&t->parent, entry->frame) < 0) { /* what reaches the root of the stack there */
                add_row(SELFS(out, base + entry->group), t->totals + entry->source * columns, columns);
            }
        }
        if (suspects) {
            suspects = inner(t, &level, &groups, up, distance);
            if (suspects < 0) {
                goto done;
            }
        }
        for (Py_ssize_t e = 0; e < m; e++) {
            const Entry *entry = level.at + e;
            if (!entry->inner) { /* an inner entry's samples are counted by another entry */
                int64_t counted = up ? entry->source : entry->frame;
                add_row(TOTALS(out, base + entry->group), t->totals + counted * columns, columns);
            }
        }
        int all = drawable(widest, out, base, count, groups.draw);
        next.len = 0;
        for (Py_ssize_t e = 0; e < m; e++) {
            const Entry *entry = level.at + e;
            if ((all || groups.draw[entry->group]) && grow_entry(t, up, entry, base + entry->group, &next) < 0) {
                goto done;
            }
        }
        Entries swapped = level;
        level = next;
        next = swapped;
    }
    status = 0;
done:
    free(level.at);
    free(next.at);
    groups_free(&groups);
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
    Py_ssize_t columns = g->columns, count = g->count;
    PyObject *out[4] = {PyByteArray_FromStringAndSize(NULL, count * 8), PyByteArray_FromStringAndSize(NULL, count * 8),
                        PyByteArray_FromStringAndSize(NULL, count * columns * 8),
                        PyByteArray_FromStringAndSize(NULL, count * columns * 8)};
    if (out[0] == NULL || out[1] == NULL || out[2] == NULL || out[3] == NULL) {
        for (int i = 0; i < 4; i++) {
            Py_XDECREF(out[i]);
        }
        return NULL;
    }
    uint64_t *columns_of[4];
    for (int i = 0; i < 4; i++) {
        columns_of[i] = (uint64_t *)PyByteArray_AS_STRING(out[i]);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint64_t *row = ROW(g, i);
        columns_of[0][i] = row[0];
        columns_of[1][i] = row[1];
        for (Py_ssize_t c = 0; c < columns; c++) {
            columns_of[2][i * columns + c] = row[2 + c];
            columns_of[3][i * columns + c] = row[2 + columns + c];
        }
    }
    return Py_BuildValue("(NNNN)", out[0], out[1], out[2], out[3]);
}

PyDoc_STRVAR(grow_doc,
             "grow(parent, function, recursive, selfs, totals, f, max_nodes, /)\n--\n\n"
             "The two trees of the sandwich of function id f over a call tree (server/query/sandwich.py). The\n"
             "tree: parent (int32 or int64, each in [-1, its own index): parents first), function (int32 or int64,\n"
             "each in [0, 2**31)), recursive (bool), selfs and totals ((nodes, columns) int64, fewer than 2**31\n"
             "nodes).\n"
             "Nodes are grown only where a flame graph of max_nodes nodes draws (0: all). Returns (callers,\n"
             "callees), each (parents, functions, selfs, totals) as bytearrays of int64: the sandwich nodes\n"
             "without their root F, level by level, parents as indices (-1: F). ValueError, before anything is\n"
             "grown, for arrays of other lengths or types, or a parent or function out of range.");

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
    Py_ssize_t f_room = 0;
    Grown callers = {0}, callees = {0};
    Widest widest_up = {0}, widest_down = {0};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOOOLn:grow", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &f, &max_nodes)) {
        return NULL;
    }
    Indices parent, function;
    if (get_parent_function(objs, views, &parent, &function) < 0) {
        goto done;
    }
    got = 2;
    static const char *names[3] = {"recursive", "selfs", "totals"};
    static const Py_ssize_t sizes[3] = {1, 8, 8};
    static const int integers[3] = {BOOLS, SIGNED, SIGNED};
    if (get_typed_columns(objs + 2, views + 2, 3, sizes, integers, names) < 0) {
        goto done;
    }
    got = 5;
    Py_ssize_t n = parent.len;
    Py_ssize_t columns = n ? views[3].len / 8 / n : 1;
    if (function.len != n || views[2].len != n || columns < 1 || views[3].len != n * columns * 8 ||
        views[4].len != views[3].len || n >= INT32_MAX || max_nodes < 0 || max_nodes >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "grow() needs parent, function and recursive of one length (below 2**31),"
                                          " selfs and totals of (nodes, columns), and max_nodes in [0, 2**31)");
        goto done;
    }
    t = (Tree){.parent = parent, .function = function, .recursive = views[2].buf,
               .selfs = views[3].buf, .totals = views[4].buf, .size = n, .columns = columns, .width = 1, .f = f};
    for (Py_ssize_t i = 0; i < n; i++) { /* checked whole first */
        int64_t up = indices_at(&t.parent, i), own = indices_at(&t.function, i);
        if (up < -1 || up >= i || own < 0 || own > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "grow() needs every parent index in [-1, the node's own) and every "
                                              "function in [0, 2**31)");
            goto done;
        }
        t.width = own >= t.width ? own + 1 : t.width;
        if (own == f) {
            int64_t *f_nodes = with_room(t.f_nodes, &f_room, t.f_count + 1, 8);
            if (f_nodes == NULL) {
                goto done;
            }
            t.f_nodes = f_nodes;
            t.f_nodes[t.f_count++] = i;
        }
    }
    callers.columns = callees.columns = columns;
    widest_up.max = widest_down.max = max_nodes;
    widest_up.heap = malloc((size_t)max_nodes * 8 + 8);
    widest_down.heap = malloc((size_t)max_nodes * 8 + 8);
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
    free(callers.rows);
    free(callees.rows);
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
