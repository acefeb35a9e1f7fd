/*
 * server.store._treeindex: the stack prefix tree's dedup index, and the walk
 * that resolves a batch of stacks against it.
 *
 * Why this exists: resolving a profile's new stacks in numpy took a
 * searchsorted per depth level, a grouping of the missing positions with
 * np.unique and merges of sorted key arrays; on a high-churn profile (~2,000
 * new stacks, ~47,000 new nodes) that was 13-20 ms a tree. Here a stack is
 * walked root first, a node at a time, and the nodes it lacks are numbered as
 * they are met, so the work is one pass over the batch's frames.
 *
 * Index: the tree itself, by node id, 8 bytes a node: its first child and
 * next sibling (a list of at most LIST children a node), and a bit saying it
 * is indexed. A node's frame is not here: it is the tree's function column
 * (int32, by node id), which the caller passes in; walk and lookup read it
 * and commit and add write it. Children past a node's first LIST go into a
 * hash table (wide), so a node with a hundred thousand children costs a
 * probe a lookup, not a scan; a lookup that misses consults the table only
 * when the list is full, and an insert counts the list (at most LIST steps)
 * to choose. With its frame and a count of children each node was 16 bytes:
 * a churny profile's new nodes are all written to fresh pages, each page a
 * fault (~2.6 us on the machine measured), and the function column is
 * written for them anyway. Ids are dense (given out in order, with gaps only where
 * garbage collection removed nodes), so the nodes are one array grown by
 * doubling (on Linux a mapping moved by mremap, never copied), and adding a
 * segment writes it in order: a hash table keyed by (parent, frame) scattered every insert over the whole table, and on a
 * growing churny tree its page faults and cache misses were most of the cost.
 * Nodes made along one stack get consecutive ids, so a walk down a path made
 * at once reads neighbouring entries.
 *
 * walk: nodes are numbered from next_id in the order they are met, which is
 * the order of (first stack needing the node, depth): along a new stack ids
 * count up by one, and a parent's id is always smaller than its child's. The
 * batch's new nodes are found again by later stacks of the batch through
 * lists of their own (Batch), so a prefix shared by several stacks is one
 * node. The index itself is not changed: the caller adds the new nodes only
 * once their segment has committed, so a rolled back segment leaves no id
 * behind. A walk can keep its new nodes in its scratch (nodes=False) rather
 * than copy them out as arrays: the segment's column bytes are then written
 * from there (segment_columns) and, after the commit, so are the index
 * entries and the tree's numpy columns, in one pass (commit). On a churny
 * profile's ~50,000 new nodes a tree, the copies, the arrays made of them
 * and add()'s separate passes cost about as much as the walk itself.
 *
 * mark_known: a loaded segment's nodes checked (each parent stored, or earlier
 * in the segment) and marked known in one pass, before any column takes them;
 * depths does the same and works their depths out (for a migration: the store
 * keeps no depth column).
 *
 * columns: a segment's column bytes (server.store.stackcodec's layout) in two
 * passes over its nodes' arrays, ready for the compressor (segments rewritten
 * by garbage collection; a new one's come from segment_columns).
 *
 * closure and gather: a query's stored nodes, read from the tree's columns by
 * id (the passes over the call tree made of them are server/query/_calltree.c).
 *
 * The tree's numpy columns that commit writes, by node id: parent uint32
 * (ids stay below 2**32; the root's entry is never read), function int32
 * (frames are below 2**31), recursive and known bool: 10 bytes a node. Every
 * node a churny profile adds is written to fresh pages there, and each page's
 * first touch costs a fault (~1.6-2.6 us on the machines measured): with
 * parent, function and a depth column int64, 26 bytes a node faulted in 86%
 * more pages than 14. No column holds depths: nothing the store serves needs
 * a node's depth that a pass over its query's nodes cannot give, and the
 * column was 75 MB of a churny day's 18.8 M nodes.
 *
 * Nothing here keeps a Python object or releases the GIL; the caller (the
 * StackTree) serialises calls under its own lock.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "../pprof/_mix.h"
#include "_words.h"

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

#define FRAME_BITS 31
#define FRAME_LIMIT ((int64_t)1 << FRAME_BITS)
/* Depths (a walk's new nodes' int32) stay below this: a walk refuses a longer stack. */
#define DEPTH_LIMIT INT32_MAX
#define NODE_LIMIT ((int64_t)1 << 32)
/* Children a node keeps in its list; the rest are found through a hash table. (Both sizes can be set
 * when building, e.g. -DLIST=2 to put the hash tables to work on small trees.) */
#ifndef LIST
#define LIST 8
#endif
/* Stacks walked down the stored tree side by side, so the memory latency of their reads overlaps. */
#ifndef GROUP
#define GROUP 16
#endif
/* A walk keeps its scratch for the next one up to this many new nodes' worth (~26 bytes each). */
#define KEEP_SCRATCH_NODES (1 << 20)
/* ... and its looked-up frames up to this many (8 bytes each). */
#define KEEP_MAPPED_FRAMES (1 << 20)

/* No frame and no count of a node's children. The frame is the tree's function column (int32, by node id), which
 * the caller passes in and commit() and add() write. Its list is full (LIST entries) exactly when some of its
 * children may be in the wide table, and a list of at most LIST entries is counted in as many steps. Each new
 * node is written to fresh memory, whose pages cost a fault each: 8 bytes a node rather than 16 is half as many. */
typedef struct {
    uint32_t first_child;  /* 0: none (the root is no one's child) */
    uint32_t next_sibling; /* 0: none */
} Node;

/* A hash table of (parent, frame) keys packed as parent << 31 | frame; an id of 0 marks an empty slot. */
typedef struct {
    uint64_t key;
    uint64_t id;
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
    Py_ssize_t used;
} Wide;

/*
 * The nodes one walk makes (new node j gets id next_id + j) and how a later stack of the batch finds them
 * again: the same lists as the index's (first_child, next_sibling: 1 + j, 0 for none) and a wide table of
 * its own. Parents already stored get their list of new children through a small table keyed by their id
 * (at most one a stack: a stack leaves the stored tree once). Kept between walks, so a steady stream of
 * batches reuses memory already faulted in.
 *
 * A stored parent's count of new children starts at the length of its list in the index (at most LIST), so
 * a new node goes into its parent's list in the batch exactly when it will go into the parent's list in the
 * index at commit (listed[j]): the commit then counts no lists, whose stored entries are scattered over the
 * node array (counting them cost more than the 4 bytes a node saved).
 */
typedef struct {
    /* 32-bit, as the tree's columns are (ids below 2**32, frames below 2**31, depths below 2**31): a churny
     * profile's ~54,000 new nodes are written here by the walk and read again by segment_columns and commit. */
    uint32_t *parent;
    int32_t *frame;
    int32_t *depth;
    uint8_t *recursive;
    uint8_t *listed; /* 1: into its parent's list at commit, 0: into the wide table */
    uint32_t *first_child;
    uint32_t *next_sibling;
    uint32_t *children;
    Py_ssize_t room;
    /* Stored parents with new children: record r is stored[r], its list and count (from the length of its list
     * in the index); table holds 1 + r. */
    int64_t *stored;
    uint32_t *stored_first;
    uint32_t *stored_children;
    uint32_t *stored_table;
    uint64_t stored_mask;
    Py_ssize_t stored_count, stored_room;
    Wide wide; /* ids are 1 + j */
} Batch;

typedef struct {
    PyObject_HEAD
    Node *nodes; /* by id; nodes[0] is the root */
    /* A bit by id, set for every indexed node (ids garbage collection left out, and the root, have it clear),
     * for present_room ids (at least room). */
    uint8_t *present;
    Py_ssize_t present_room;
    Py_ssize_t room;
    int64_t high; /* the highest id indexed (0: none): the function column must cover it */
    Py_ssize_t used; /* nodes indexed, the root excluded */
    Wide wide;
    Batch batch;
    /* The last walk: its number (0: none yet), the id of its first new node and how many it made. Its nodes
     * stay in the batch until the next walk, for the segment's column bytes and for commit(). */
    uint64_t walks;
    int64_t batch_first;
    Py_ssize_t batch_made;
    /* Calls of add() so far, and their number at the last walk: a commit after another add() (which may have
     * lengthened the lists the walk saw) counts the lists again rather than trust the batch's listed[]. */
    uint64_t adds, batch_adds;
    /* A walk given frame_of: its frames looked up there, one after another (walk_frames), kept for the next walk
     * up to KEEP_MAPPED_FRAMES of them, as the batch's scratch is. */
    int64_t *mapped;
    Py_ssize_t mapped_room;
} IndexObject;

static inline uint64_t
pack(int64_t parent, int64_t frame)
{
    return ((uint64_t)parent << FRAME_BITS) | (uint64_t)frame;
}

/* --- the wide tables ------------------------------------------------------- */

static inline uint64_t
wide_find(const Wide *w, uint64_t key)
{
    if (w->used == 0) {
        return 0;
    }
    for (uint64_t at = mix64(key) & w->mask;; at = (at + 1) & w->mask) {
        if (w->slots[at].id == 0) {
            return 0;
        }
        if (w->slots[at].key == key) {
            return w->slots[at].id;
        }
    }
}

/* Keeps the table at most half full; the key must not be there yet. */
static int
wide_put(Wide *w, uint64_t key, uint64_t id)
{
    if ((uint64_t)(w->used + 1) * 2 > (w->slots ? w->mask + 1 : 0)) {
        uint64_t slots = w->slots ? (w->mask + 1) * 2 : 1024;
        Slot *bigger = PyMem_RawCalloc((size_t)slots, sizeof(Slot));
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (uint64_t old = 0; w->slots && old <= w->mask; old++) {
            if (w->slots[old].id) {
                uint64_t at = mix64(w->slots[old].key) & (slots - 1);
                while (bigger[at].id) {
                    at = (at + 1) & (slots - 1);
                }
                bigger[at] = w->slots[old];
            }
        }
        PyMem_RawFree(w->slots);
        w->slots = bigger;
        w->mask = slots - 1;
    }
    uint64_t at = mix64(key) & w->mask;
    while (w->slots[at].id) {
        at = (at + 1) & w->mask;
    }
    w->slots[at].key = key;
    w->slots[at].id = id;
    w->used++;
    return 0;
}

static void
wide_clear(Wide *w)
{
    if (w->used) {
        memset(w->slots, 0, (size_t)(w->mask + 1) * sizeof(Slot));
        w->used = 0;
    }
}

static void
wide_free(Wide *w)
{
    PyMem_RawFree(w->slots);
    memset(w, 0, sizeof(*w));
}

/* --- the stored tree ------------------------------------------------------- */

/* The child of stored node `parent` with `frame`, 0 if none; when none, *listed is the length of the parent's
 * list (at most LIST). `function` is the tree's frame by node id, covering every indexed id. */
static inline uint32_t
index_child(const IndexObject *self, const int32_t *function, int64_t parent, int64_t frame, uint32_t *listed)
{
    uint32_t length = 0;
    if (parent < self->room) {
        const int32_t wanted = (int32_t)frame; /* below 2**31 */
        for (uint32_t c = self->nodes[parent].first_child; c; c = self->nodes[c].next_sibling) {
            if (function[c] == wanted) {
                return c;
            }
            length++;
        }
    }
    *listed = length;
    /* Only a full list has children past it. */
    return length >= LIST ? (uint32_t)wide_find(&self->wide, pack(parent, frame)) : 0;
}

/* Whether stored node `parent`'s list has room for another child (it holds fewer than LIST). */
static inline int
index_list_open(const IndexObject *self, int64_t parent)
{
    int listed = 0;
    for (uint32_t c = self->nodes[parent].first_child; c && listed < LIST; c = self->nodes[c].next_sibling) {
        listed++;
    }
    return listed < LIST;
}

static inline int
index_present(const IndexObject *self, int64_t id)
{
    return id < self->room && (self->present[id >> 3] >> (id & 7)) & 1;
}

/* Sets the presence bits of ids [from, to): whole bytes at once between the ends. */
static void
present_range(uint8_t *present, int64_t from, int64_t to)
{
    for (; from < to && (from & 7); from++) {
        present[from >> 3] |= (uint8_t)(1u << (from & 7));
    }
    if (to - from >= 8) {
        memset(present + (from >> 3), 0xFF, (size_t)((to - from) >> 3));
        from += (to - from) & ~(int64_t)7;
    }
    for (; from < to; from++) {
        present[from >> 3] |= (uint8_t)(1u << (from & 7));
    }
}

/* Link node `id` (its entry still empty) as the child of `parent` (< id) with `frame`: at the head of the parent's
 * list (`into_list`: the list has room), else in the wide table. -1 with MemoryError set. The bookkeeping (its
 * presence bit, high, used) is the caller's: index_put's for one node, commit's for a walk's run of them. */
static inline int
index_link(IndexObject *self, int64_t parent, int64_t frame, int64_t id, int into_list)
{
    if (into_list) {
        self->nodes[id].next_sibling = self->nodes[parent].first_child;
        self->nodes[parent].first_child = (uint32_t)id;
        return 0;
    }
    return wide_put(&self->wide, pack(parent, frame), (uint64_t)id);
}

/* Index node `id` (its entry still empty; its frame is the function column's, which the caller writes) as the
 * child of `parent` (< id) with `frame` (index_link). -1 with MemoryError set. */
static inline int
index_put(IndexObject *self, int64_t parent, int64_t frame, int64_t id, int into_list)
{
    if (index_link(self, parent, frame, id, into_list) < 0) {
        return -1;
    }
    self->present[id >> 3] |= (uint8_t)(1u << (id & 7));
    self->high = id > self->high ? id : self->high;
    self->used++;
    return 0;
}

/*
 * The memory of the node array and the presence bits (`old_size` bytes grown to `size`). On Linux each is a
 * mapping of its own, grown with mremap: the kernel moves the pages (no copy) and the new room is untouched
 * zero pages, faulted in only when a node is written there (so reserving room for 2**32 ids costs address
 * space, not memory). Through malloc, growing copied the array and zeroed the new half at once: twice a node's
 * bytes of page traffic a node, not once, and page faults cost 2-5 us each on the virtual machines measured
 * (docs/storage-history.md).
 */
static void *
zeroed_grown(void *old, size_t old_size, size_t size)
{
#ifdef __linux__
    void *at = old == NULL ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                           : mremap(old, old_size, size, MREMAP_MAYMOVE);
    return at == MAP_FAILED ? NULL : at;
#else
    char *grown = PyMem_RawRealloc(old, size);
    if (grown != NULL) {
        memset(grown + old_size, 0, size - old_size);
    }
    return grown;
#endif
}

static void
zeroed_free(void *memory, size_t size)
{
    if (memory == NULL) {
        return;
    }
#ifdef __linux__
    munmap(memory, size);
#else
    PyMem_RawFree(memory);
#endif
}

/*
 * Fault in, with one system call, the pages under [start, start + length) that a commit is about to write:
 * MADV_POPULATE_WRITE (Linux 5.14) maps them as a write would, zeroed pages for untouched ones, without a trap
 * a page. A churny profile's commit writes ~48,000 new nodes into fresh memory (18 bytes each over the node
 * array and the four columns, ~220 pages); a page's first write cost 2.1-2.4 us here and populating 1.6
 * (docs/storage-history.md): in paired runs of the twelve churn captures, 0.18-0.33 ms a profile. Nothing is
 * written, so memory already there is untouched; where the kernel refuses (older than 5.14, or the range
 * is not writable private memory), the writes fault the pages in as before.
 */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static void
prefault(void *start, size_t length)
{
#ifdef __linux__
    static uintptr_t page = 0; /* rounded out to whole pages: madvise takes a page-aligned start */
    if (page == 0) {
        long size = sysconf(_SC_PAGESIZE);
        page = size > 0 ? (uintptr_t)size : 4096;
    }
    uintptr_t from = (uintptr_t)start & ~(page - 1);
    uintptr_t to = ((uintptr_t)start + length + page - 1) & ~(page - 1);
    if (length > 0) {
        (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
    }
#else
    (void)start;
    (void)length;
#endif
}

/* Room for node ids below `size`, the new entries empty. */
static int
index_room(IndexObject *self, Py_ssize_t size)
{
    Py_ssize_t room = self->room ? self->room : 1024;

    if (size <= self->room) {
        return 0;
    }
    while (room < size) {
        room *= 2;
    }
    if ((size_t)room > PY_SSIZE_T_MAX / sizeof(Node)) {
        PyErr_NoMemory();
        return -1;
    }
    if (self->present_room < room) { /* rooms are 1024 << k: whole bytes of bits */
        uint8_t *present = zeroed_grown(self->present, (size_t)self->present_room / 8, (size_t)room / 8);
        if (present == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->present = present;
        self->present_room = room;
    }
    Node *nodes = zeroed_grown(self->nodes, (size_t)self->room * sizeof(Node), (size_t)room * sizeof(Node));
    if (nodes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->nodes = nodes;
    self->room = room;
    return 0;
}

/* --- argument buffers ------------------------------------------------------ */

/* The tree's function column (writable int32, by node id) as the frames of the indexed nodes: it must cover
 * every id indexed, and `size` more. */
static int
get_function(const IndexObject *self, PyObject *obj, Py_buffer *view, Py_ssize_t size)
{
    return get_column(obj, view, 4, 1, size > self->high + 1 ? size : (Py_ssize_t)self->high + 1, "function");
}

/* --- Index methods --------------------------------------------------------- */

static PyObject *
index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":Index", keywords)) {
        return NULL;
    }
    IndexObject *self = (IndexObject *)type->tp_alloc(type, 0);
    if (self != NULL && index_room(self, 1) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
free_scratch(IndexObject *self)
{
    Batch *b = &self->batch;

    PyMem_RawFree(b->parent);
    PyMem_RawFree(b->frame);
    PyMem_RawFree(b->depth);
    PyMem_RawFree(b->recursive);
    PyMem_RawFree(b->listed);
    PyMem_RawFree(b->first_child);
    PyMem_RawFree(b->next_sibling);
    PyMem_RawFree(b->children);
    PyMem_RawFree(b->stored);
    PyMem_RawFree(b->stored_first);
    PyMem_RawFree(b->stored_children);
    PyMem_RawFree(b->stored_table);
    wide_free(&b->wide);
    memset(b, 0, sizeof(*b));
}

static void
index_dealloc(PyObject *op)
{
    IndexObject *self = (IndexObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    zeroed_free(self->nodes, (size_t)self->room * sizeof(Node));
    zeroed_free(self->present, (size_t)self->present_room / 8);
    wide_free(&self->wide);
    free_scratch(self);
    PyMem_RawFree(self->mapped);
    type->tp_free(op);
    Py_DECREF(type);
}

static Py_ssize_t
index_length(PyObject *op)
{
    return ((IndexObject *)op)->used;
}

static PyObject *
index_capacity(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(((IndexObject *)op)->room);
}

static PyObject *
index_reserve(PyObject *op, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);

    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0 || size > NODE_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "reserve() needs a size in [0, 2**32]");
        return NULL;
    }
    if (index_room((IndexObject *)op, size) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
index_add(PyObject *op, PyObject *args)
{
    IndexObject *self = (IndexObject *)op;
    PyObject *objs[4];
    Py_buffer views[4];
    static const char *names[3] = {"parents", "frames", "ids"};
    int got = 0;

    if (!PyArg_ParseTuple(args, "OOOO:add", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    for (; got < 3; got++) {
        if (get_words(objs[got], &views[got], names[got]) < 0) {
            release_all(views, got);
            return NULL;
        }
    }
    Py_ssize_t count = views[0].len / 8;
    const int64_t *parents = views[0].buf, *frames = views[1].buf, *ids = views[2].buf;
    if (views[1].len / 8 != count || views[2].len / 8 != count) {
        PyErr_SetString(PyExc_ValueError, "add() needs parents, frames and ids of one length");
        goto fail;
    }
    /* Checked whole first, so a bad segment changes nothing. */
    int64_t last = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        last = ids[i] > last ? ids[i] : last;
        if (ids[i] < 1 || ids[i] >= NODE_LIMIT || parents[i] < 0 || parents[i] >= ids[i]) {
            PyErr_Format(PyExc_ValueError, "stack node %lld under %lld: ids must be in [1, 2**32), parents below them",
                         (long long)ids[i], (long long)parents[i]);
            goto fail;
        }
        if (frames[i] < 0 || frames[i] >= FRAME_LIMIT) {
            PyErr_SetString(PyExc_ValueError, "stack frame ids must be in [0, 2**31)");
            goto fail;
        }
        if (index_present(self, ids[i])) {
            PyErr_Format(PyExc_ValueError, "stack node %lld is indexed already", (long long)ids[i]);
            goto fail;
        }
    }
    if (get_function(self, objs[3], &views[3], (Py_ssize_t)last + 1) < 0) {
        goto fail;
    }
    got = 4;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (index_room(self, ids[i] + 1) < 0) {
            goto fail;
        }
    }
    self->adds++;
    int32_t *function = views[3].buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        function[ids[i]] = (int32_t)frames[i];
        /* parent < id < room */
        if (index_put(self, parents[i], frames[i], ids[i], index_list_open(self, parents[i])) < 0) {
            goto fail;
        }
    }
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

static PyObject *
index_lookup(PyObject *op, PyObject *args)
{
    IndexObject *self = (IndexObject *)op;
    PyObject *objs[3];
    Py_buffer views[3];
    PyObject *result;

    if (!PyArg_ParseTuple(args, "OOO:lookup", &objs[0], &objs[1], &objs[2])) {
        return NULL;
    }
    if (get_words(objs[0], &views[0], "parents") < 0) {
        return NULL;
    }
    if (get_words(objs[1], &views[1], "frames") < 0) {
        release_all(views, 1);
        return NULL;
    }
    if (get_function(self, objs[2], &views[2], 0) < 0) {
        release_all(views, 2);
        return NULL;
    }
    Py_ssize_t count = views[0].len / 8;
    if (views[1].len / 8 != count) {
        PyErr_SetString(PyExc_ValueError, "lookup() needs parents and frames of one length");
        release_all(views, 3);
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, count * 8);
    if (result != NULL) {
        const int64_t *parents = views[0].buf, *frames = views[1].buf;
        const int32_t *function = views[2].buf;
        int64_t *out = (int64_t *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < count; i++) {
            int valid = parents[i] >= 0 && parents[i] < NODE_LIMIT && frames[i] >= 0 && frames[i] < FRAME_LIMIT;
            uint32_t listed;
            uint32_t id = valid ? index_child(self, function, parents[i], frames[i], &listed) : 0;
            out[i] = id ? (int64_t)id : -1;
        }
    }
    release_all(views, 3);
    return result;
}

/* --- walk ------------------------------------------------------------------ */

/* *array with room for `room` elements of `size` bytes (its contents kept); -1 with MemoryError set. */
static int
resize(void *array, Py_ssize_t room, size_t size)
{
    void **at = (void **)array;
    void *bigger = PyMem_RawRealloc(*at, (size_t)room * size);

    if (bigger == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *at = bigger;
    return 0;
}

/* Room for `need` new nodes. */
static int
batch_room(Batch *b, Py_ssize_t need)
{
    Py_ssize_t room = b->room ? b->room : 4096;

    if (need <= b->room) {
        return 0;
    }
    while (room < need) {
        room *= 2;
    }
    if (resize(&b->parent, room, 4) < 0 || resize(&b->frame, room, 4) < 0 || resize(&b->depth, room, 4) < 0 ||
        resize(&b->recursive, room, 1) < 0 || resize(&b->listed, room, 1) < 0 || resize(&b->first_child, room, 4) < 0 ||
        resize(&b->next_sibling, room, 4) < 0 || resize(&b->children, room, 4) < 0) {
        return -1;
    }
    b->room = room;
    return 0;
}

/* Empty, with room for the stored parents of `stacks` stacks (one each at most). */
static int
batch_reset(Batch *b, Py_ssize_t stacks)
{
    uint64_t slots = 64;

    while ((uint64_t)stacks * 2 > slots) {
        slots <<= 1;
    }
    if (stacks > b->stored_room) {
        if (resize(&b->stored, stacks, 8) < 0 || resize(&b->stored_first, stacks, 4) < 0 ||
            resize(&b->stored_children, stacks, 4) < 0) {
            return -1;
        }
        b->stored_room = stacks;
    }
    if (slots > b->stored_mask + 1 || b->stored_table == NULL) {
        if (resize(&b->stored_table, (Py_ssize_t)slots, 4) < 0) {
            return -1;
        }
    }
    else {
        slots = b->stored_mask + 1; /* the table kept from a bigger batch: cleared whole, as it is probed whole */
    }
    memset(b->stored_table, 0, (size_t)slots * 4);
    b->stored_mask = slots - 1;
    b->stored_count = 0;
    wide_clear(&b->wide);
    return batch_room(b, 1);
}

/* The record of stored parent `node`, made with no new children (and `listed` in its list in the index) if it has
 * none yet. */
static inline Py_ssize_t
batch_stored(Batch *b, int64_t node, uint32_t listed)
{
    uint64_t at = mix64((uint64_t)node) & b->stored_mask;

    for (;; at = (at + 1) & b->stored_mask) {
        uint32_t entry = b->stored_table[at];
        if (entry == 0) {
            break;
        }
        if (b->stored[entry - 1] == node) {
            return (Py_ssize_t)entry - 1;
        }
    }
    Py_ssize_t r = b->stored_count++;
    b->stored[r] = node;
    b->stored_first[r] = 0;
    b->stored_children[r] = listed;
    b->stored_table[at] = (uint32_t)(r + 1);
    return r;
}

/* The frames above the current position of one stack: generation-stamped, so no clearing between stacks. */
typedef struct {
    int64_t *frames;
    uint32_t *stamps;
    uint64_t mask;
    uint32_t generation;
} FrameSet;

/*
 * For a stack of at most SHORT frames, a 4096-bit filter of the frames above the current one stands in for
 * the set: a clear bit (nearly always, since recursion is rare) says "not above" at the cost of a multiply,
 * and a set bit is confirmed by scanning the frames above. Longer stacks use the set, so a deep stack of
 * frames that share bits cannot make the scans quadratic.
 */
#define SHORT 256
#define FILTER_WORDS 64

static inline uint32_t
filter_bit(int64_t frame)
{
    return (uint32_t)(((uint64_t)frame * 0x9e3779b97f4a7c15ULL) >> 52);
}

/* Inserts frame; returns whether it was there already. */
static inline int
frameset_put(FrameSet *set, int64_t frame)
{
    for (uint64_t i = mix64((uint64_t)frame) & set->mask;; i = (i + 1) & set->mask) {
        if (set->stamps[i] != set->generation) {
            set->stamps[i] = set->generation;
            set->frames[i] = frame;
            return 0;
        }
        if (set->frames[i] == frame) {
            return 1;
        }
    }
}

PyDoc_STRVAR(index_walk_doc,
             "walk(frames, offsets, next_id, function, /, *, leaf_first=False, nodes=True, frame_of=None)\n--\n\n"
             "Resolve stacks frames[offsets[i]:offsets[i + 1]] (root first, or leaf first) against the index, whose\n"
             "nodes' frames are the tree's function column (int32 by node id, covering every indexed id). With\n"
             "frame_of (int64), frames holds positions in it, and frame_of[p] is the frame: a profile's frames are\n"
             "a few thousand line entries used ~80,000 times, looked up here into the index's own scratch rather\n"
             "than gathered by the caller into a new array.\n\n"
             "Returns (leaves, parents, frames, depths, recursive) as bytes: every stack's leaf id (int64; 0 for\n"
             "an empty stack), then the columns of the nodes the stacks lack (int64, int64, int64, uint8), whose\n"
             "ids are next_id, next_id + 1, ... in that order. With nodes=False, (leaves, made, walk): no copy of\n"
             "the new nodes, which stay in the index's scratch until the next walk, numbered `walk` for\n"
             "segment_columns() and commit(). The index is not changed. ValueError for a stack of 2**31 frames\n"
             "or more (a walk's depths are int32); OverflowError when the new nodes would pass id 2**32 - 1.");

/* (leaves, parents, frames, depths, recursive): the batch's `made` new nodes copied out, the columns widened to
 * int64 as walk() returns them. */
static PyObject *
copied_nodes(const Batch *b, Py_ssize_t made, PyObject *leaves)
{
    PyObject *parents = PyBytes_FromStringAndSize(NULL, made * 8);
    PyObject *frames = PyBytes_FromStringAndSize(NULL, made * 8);
    PyObject *depths = PyBytes_FromStringAndSize(NULL, made * 8);
    PyObject *result = NULL;

    if (parents != NULL && frames != NULL && depths != NULL) {
        int64_t *p = (int64_t *)PyBytes_AS_STRING(parents), *f = (int64_t *)PyBytes_AS_STRING(frames);
        int64_t *d = (int64_t *)PyBytes_AS_STRING(depths);
        for (Py_ssize_t j = 0; j < made; j++) {
            p[j] = b->parent[j];
            f[j] = b->frame[j];
            d[j] = b->depth[j];
        }
        result = Py_BuildValue("(OOOOy#)", leaves, parents, frames, depths, (const char *)b->recursive, made);
    }
    Py_XDECREF(parents);
    Py_XDECREF(frames);
    Py_XDECREF(depths);
    return result;
}

/* Whether every one of the n values is in [0, limit). */
static int
all_within(const int64_t *values, Py_ssize_t n, int64_t limit)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (values[i] < 0 || values[i] >= limit) {
            return 0;
        }
    }
    return 1;
}

/*
 * The frames a walk reads: `frames` itself, or with frame_of (positions in it, checked), each position's frame
 * looked up in one pass into the index's kept scratch. NULL with MemoryError set.
 *
 * Why a pass of its own: the walk reads a stack's frames several times over (down the stored tree, into the
 * recursion filter, and for the nodes it makes), and a lookup in frame_of (~7,700 line entries, 62 KB) on
 * each read put a dependent load in front of every step; the pass's lookups are independent and overlap. On
 * a churny profile's ~82,000 frames the walk took 0.10-0.17 ms less; inside ingest, a profile's median fell
 * 0.09-0.32 ms in three paired runs. The scratch is kept because fresh memory costs a page fault a 4 KB page:
 * allocated a walk, the pass saved ~0.03 ms (docs/storage-history.md).
 */
static const int64_t *
walk_frames(IndexObject *self, const int64_t *frames, const int64_t *frame_of, Py_ssize_t n_frames)
{
    if (frame_of == NULL || n_frames == 0) {
        return frames; /* (no frames: nothing to look up, and the scratch may not be there) */
    }
    if (self->mapped_room < n_frames) {
        if (resize(&self->mapped, n_frames, sizeof(int64_t)) < 0) {
            return NULL;
        }
        self->mapped_room = n_frames;
    }
    for (Py_ssize_t i = 0; i < n_frames; i++) {
        self->mapped[i] = frame_of[frames[i]];
    }
    return self->mapped;
}

static PyObject *
index_walk(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"", "", "", "", "leaf_first", "nodes", "frame_of", NULL};
    IndexObject *self = (IndexObject *)op;
    PyObject *frames_obj, *offsets_obj, *function_obj, *frame_of_obj = Py_None;
    long long next_id;
    int leaf_first = 0, copy_nodes = 1, n_views = 3;
    Py_buffer views[4];
    PyObject *leaves_obj = NULL, *result = NULL;
    FrameSet set = {NULL, NULL, 0, 0};
    uint64_t filter[FILTER_WORDS];
    Batch *b = &self->batch;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOLO|$ppO:walk", keywords, &frames_obj, &offsets_obj, &next_id,
                                     &function_obj, &leaf_first, &copy_nodes, &frame_of_obj)) {
        return NULL;
    }
    if (next_id < 1 || next_id >= NODE_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "next_id must be in [1, 2**32)");
        return NULL;
    }
    if (get_words(frames_obj, &views[0], "frames") < 0) {
        return NULL;
    }
    if (get_words(offsets_obj, &views[1], "offsets") < 0) {
        release_all(views, 1);
        return NULL;
    }
    if (get_function(self, function_obj, &views[2], 0) < 0) {
        release_all(views, 2);
        return NULL;
    }
    if (frame_of_obj != Py_None) {
        if (get_words(frame_of_obj, &views[3], "frame_of") < 0) {
            release_all(views, 3);
            return NULL;
        }
        n_views = 4;
    }
    const int64_t *frames = views[0].buf, *offsets = views[1].buf;
    const int64_t *frame_of = n_views == 4 ? views[3].buf : NULL;
    Py_ssize_t n_map = n_views == 4 ? views[3].len / 8 : 0;
    const int32_t *function = views[2].buf;
    Py_ssize_t n_frames = views[0].len / 8, n_offsets = views[1].len / 8;
    Py_ssize_t n_stacks = n_offsets ? n_offsets - 1 : 0;
    int64_t longest = 0;

    /* Checked before anything is walked, so a bad batch is refused whole. */
    if (n_offsets == 0 || offsets[0] != 0 || offsets[n_stacks] != n_frames) {
        PyErr_SetString(PyExc_ValueError, "offsets must start at 0 and end at the number of frames");
        goto done;
    }
    for (Py_ssize_t s = 0; s < n_stacks; s++) {
        int64_t length = offsets[s + 1] - offsets[s];
        if (length < 0) {
            PyErr_SetString(PyExc_ValueError, "offsets must not decrease");
            goto done;
        }
        longest = length > longest ? length : longest;
    }
    if (longest > DEPTH_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "stacks must be shorter than 2**31 frames (a walk's depths are int32)");
        goto done;
    }
    /* With frame_of, frames are positions in it and its values the frames. */
    if (!all_within(frame_of != NULL ? frame_of : frames, frame_of != NULL ? n_map : n_frames, FRAME_LIMIT)) {
        PyErr_SetString(PyExc_ValueError, "stack frame ids must be in [0, 2**31)");
        goto done;
    }
    if (frame_of != NULL && !all_within(frames, n_frames, n_map)) {
        PyErr_SetString(PyExc_ValueError, "stack entries must be positions in frame_of");
        goto done;
    }
    /* From here on, frames holds the frames themselves. */
    frames = walk_frames(self, frames, frame_of, n_frames);
    if (frames == NULL) {
        goto done;
    }
    leaves_obj = PyBytes_FromStringAndSize(NULL, n_stacks * 8);
    self->walks++; /* from here on, what the batch held is gone */
    self->batch_first = next_id;
    self->batch_made = 0;
    self->batch_adds = self->adds;
    if (leaves_obj != NULL && (b->room > KEEP_SCRATCH_NODES || b->stored_room > KEEP_SCRATCH_NODES)) {
        free_scratch(self); /* a big batch left by a walk with nodes=False */
    }
    if (leaves_obj == NULL || batch_reset(b, n_stacks) < 0) {
        goto done;
    }
    set.mask = 15;
    while ((int64_t)set.mask + 1 < longest * 2) {
        set.mask = set.mask * 2 + 1;
    }
    set.frames = PyMem_RawMalloc((set.mask + 1) * sizeof(int64_t));
    set.stamps = PyMem_RawCalloc(set.mask + 1, sizeof(uint32_t));
    if (set.frames == NULL || set.stamps == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    int64_t *leaves = (int64_t *)PyBytes_AS_STRING(leaves_obj);
    Py_ssize_t made = 0;
    for (Py_ssize_t group = 0; group < n_stacks; group += GROUP) {
        Py_ssize_t members = n_stacks - group < GROUP ? n_stacks - group : GROUP;
        const int64_t *base[GROUP];
        Py_ssize_t step = leaf_first ? -1 : 1;
        int64_t node[GROUP], depth[GROUP], length[GROUP];
        uint32_t listed[GROUP]; /* where a stack leaves the stored tree: the length of that node's list */
        Py_ssize_t active[GROUP], n_active = 0;

        /* Down the stored tree, the group's stacks a level at a time: each stack's next node is prefetched
         * as soon as it is known and read a round later, so the misses of up to GROUP stacks overlap. */
        for (Py_ssize_t m = 0; m < members; m++) {
            int64_t start = offsets[group + m];
            length[m] = offsets[group + m + 1] - start;
            /* Root first: frame k of the stack is at start + k, or at its end - 1 - k when given leaf first. */
            base[m] = leaf_first && length[m] ? frames + start + length[m] - 1 : frames + start;
            node[m] = 0;
            depth[m] = 0;
            listed[m] = 0;
            if (length[m] > 0) {
                active[n_active++] = m;
            }
        }
        while (n_active) {
            Py_ssize_t still = 0;
            for (Py_ssize_t a = 0; a < n_active; a++) {
                Py_ssize_t m = active[a];
                uint32_t child =
                    index_child(self, function, node[m], base[m][depth[m] * step], &listed[m]);
                if (child) {
                    node[m] = child;
                    if (++depth[m] < length[m]) {
                        uint32_t next = self->nodes[child].first_child;
                        __builtin_prefetch(&self->nodes[next]);
                        __builtin_prefetch(&function[next]);
                        active[still++] = m;
                    }
                }
            }
            n_active = still;
        }

        /* The rest of each stack, in stack order: nodes of this walk, met before or made now. */
        for (Py_ssize_t m = 0; m < members; m++) {
            int64_t k = depth[m];
            const int64_t *stack = base[m];
            int64_t at_node = node[m];
            if (k < length[m]) {
                int exact = length[m] > SHORT;
                if (exact) {
                    set.generation++;
                    if (set.generation == 0) { /* wrapped: every stamp is stale again */
                        memset(set.stamps, 0, (set.mask + 1) * sizeof(uint32_t));
                        set.generation = 1;
                    }
                    for (int64_t above = 0; above < k; above++) {
                        frameset_put(&set, stack[above * step]);
                    }
                }
                else {
                    memset(filter, 0, sizeof(filter));
                    for (int64_t above = 0; above < k; above++) {
                        uint32_t bit = filter_bit(stack[above * step]);
                        filter[bit >> 6] |= (uint64_t)1 << (bit & 63);
                    }
                }
                /* Room for every node the rest of the stack can make, once (it may move the lists below). */
                if (batch_room(b, made + (length[m] - k)) < 0) {
                    goto done;
                }
                /* Once the stack has made a node, it is the parent of the next: one with no children yet, so
                 * the rest of the stack makes a node a frame with no lookup. */
                int made_here = 0;
                for (; k < length[m]; k++) {
                    int64_t frame = stack[k * step];
                    int seen = 0;
                    if (exact) {
                        seen = frameset_put(&set, frame);
                    }
                    else {
                        uint32_t bit = filter_bit(frame);
                        if ((filter[bit >> 6] >> (bit & 63)) & 1) {
                            for (int64_t above = 0; above < k && !seen; above++) {
                                seen = stack[above * step] == frame;
                            }
                        }
                        filter[bit >> 6] |= (uint64_t)1 << (bit & 63);
                    }
                    Py_ssize_t j;
                    if (made_here) { /* the parent is the node made for the frame before: its first child */
                        Py_ssize_t up = (Py_ssize_t)(at_node - next_id);
                        j = made++;
                        b->first_child[up] = (uint32_t)(j + 1);
                        b->children[up] = 1;
                        b->listed[j] = 1;
                        b->next_sibling[j] = 0;
                    }
                    else {
                        uint32_t *first, *count;
                        if (at_node < next_id) {
                            Py_ssize_t r = batch_stored(b, at_node, listed[m]);
                            first = &b->stored_first[r];
                            count = &b->stored_children[r];
                        }
                        else {
                            first = &b->first_child[at_node - next_id];
                            count = &b->children[at_node - next_id];
                        }
                        j = -1;
                        for (uint32_t e = *first; e; e = b->next_sibling[e - 1]) {
                            if (b->frame[e - 1] == (int32_t)frame) {
                                j = (Py_ssize_t)e - 1;
                                break;
                            }
                        }
                        if (j < 0 && *count > LIST) {
                            j = (Py_ssize_t)wide_find(&b->wide, pack(at_node, frame)) - 1;
                        }
                        if (j >= 0) { /* made by an earlier stack of the batch */
                            at_node = next_id + j;
                            continue;
                        }
                        j = made++;
                        made_here = 1;
                        b->listed[j] = *count < LIST;
                        b->next_sibling[j] = 0;
                        if (*count < LIST) {
                            b->next_sibling[j] = *first;
                            *first = (uint32_t)(j + 1);
                        }
                        else if (wide_put(&b->wide, pack(at_node, frame), (uint64_t)j + 1) < 0) {
                            goto done;
                        }
                        (*count)++;
                    }
                    if (next_id + j >= NODE_LIMIT) { /* OverflowError: the store is full, not the batch wrong */
                        PyErr_SetString(PyExc_OverflowError, "the stack tree has passed 2**32 nodes");
                        goto done;
                    }
                    b->parent[j] = (uint32_t)at_node; /* an id below NODE_LIMIT */
                    b->frame[j] = (int32_t)frame;     /* below FRAME_LIMIT: checked above */
                    b->depth[j] = (int32_t)(k + 1);   /* at most the longest stack, below DEPTH_LIMIT */
                    b->recursive[j] = (uint8_t)seen;
                    b->first_child[j] = 0;
                    b->children[j] = 0;
                    at_node = next_id + j;
                }
            }
            leaves[group + m] = at_node;
        }
    }
    self->batch_made = made;
    if (copy_nodes) {
        result = copied_nodes(b, made, leaves_obj);
    }
    else {
        result = Py_BuildValue("(OnK)", leaves_obj, made, (unsigned long long)self->walks);
    }
done:
    if (result == NULL) {
        self->batch_made = 0;
    }
    /* A big batch's scratch is freed, unless its nodes are still to be committed. */
    if ((copy_nodes || result == NULL) && (b->room > KEEP_SCRATCH_NODES || b->stored_room > KEEP_SCRATCH_NODES)) {
        free_scratch(self);
    }
    if (self->mapped_room > KEEP_MAPPED_FRAMES) { /* a big batch's frames (a migration's, say) are not kept */
        PyMem_RawFree(self->mapped);
        self->mapped = NULL;
        self->mapped_room = 0;
    }
    PyMem_RawFree(set.frames);
    PyMem_RawFree(set.stamps);
    Py_XDECREF(leaves_obj);
    release_all(views, n_views);
    return result;
}


/* --- a walk's new nodes: the segment's column bytes, and the commit ------------------------------------ */

/* The batch of walk number `walk`, or -1 with ValueError set when a later walk has replaced it. */
static int
batch_of(IndexObject *self, unsigned long long walk)
{
    if (walk == 0 || walk != self->walks) {
        PyErr_SetString(PyExc_ValueError, "another walk has replaced that walk's nodes");
        return -1;
    }
    return 0;
}

#define WIDE_IDS 1
#define WIDE_PARENTS 2
#define WIDE_FRAMES 4
#define U32_MAX INT64_C(4294967295)

PyDoc_STRVAR(index_segment_columns_doc,
             "segment_columns(walk, /)\n--\n\n"
             "The uncompressed column bytes of a segment of walk number `walk`'s new nodes (ids from its next_id\n"
             "on, consecutive) and the flags naming its 64-bit columns: server.store.stackcodec's layout, the\n"
             "same bytes columns() makes from the nodes' arrays, without making those arrays.");

static PyObject *
index_segment_columns(PyObject *op, PyObject *arg)
{
    IndexObject *self = (IndexObject *)op;
    unsigned long long walk = PyLong_AsUnsignedLongLong(arg);

    if ((walk == (unsigned long long)-1 && PyErr_Occurred()) || batch_of(self, walk) < 0) {
        return NULL;
    }
    const Batch *b = &self->batch;
    Py_ssize_t count = self->batch_made;
    int64_t first = self->batch_first;
    /* Ids are consecutive (deltas 0, 1, 1, ...: 32-bit), frames below 2**31 and parent gaps below 2**32 (a new
     * id is below NODE_LIMIT, walk() checks, and its parent at least 0): every column is 32-bit. */
    Py_ssize_t bitmap = (count + 7) / 8;
    PyObject *raw = PyBytes_FromStringAndSize(NULL, count * 12 + bitmap);
    if (raw == NULL) {
        return NULL;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(raw);
    memset(out, 0, (size_t)count * 4); /* the id deltas' planes: 0 for the first, 1 for the rest */
    if (count > 1) {
        memset(out + 1, 1, (size_t)count - 1);
    }
    /* The parent gaps' and the frames' planes in one pass (where a pass a column went through the gaps' width
     * byte by byte), each of the eight planes written in order. */
    uint8_t *gaps = out + count * 4, *frames = gaps + count * 4;
    for (Py_ssize_t j = 0; j < count; j++) {
        uint32_t gap = (uint32_t)(first + j - (int64_t)b->parent[j]);
        uint32_t frame = (uint32_t)b->frame[j];
        gaps[j] = (uint8_t)gap;
        gaps[count + j] = (uint8_t)(gap >> 8);
        gaps[2 * count + j] = (uint8_t)(gap >> 16);
        gaps[3 * count + j] = (uint8_t)(gap >> 24);
        frames[j] = (uint8_t)frame;
        frames[count + j] = (uint8_t)(frame >> 8);
        frames[2 * count + j] = (uint8_t)(frame >> 16);
        frames[3 * count + j] = (uint8_t)(frame >> 24);
    }
    out = frames + count * 4;
    memset(out, 0, (size_t)bitmap);
    for (Py_ssize_t j = 0; j < count; j++) {
        if (b->recursive[j]) {
            out[j >> 3] |= (uint8_t)(0x80u >> (j & 7));
        }
    }
    return Py_BuildValue("(Ni)", raw, 0);
}

PyDoc_STRVAR(index_commit_doc,
             "commit(walk, parent, function, recursive, known, /)\n--\n\n"
             "Index walk number `walk`'s new nodes (once their segment has committed) and write them into the\n"
             "tree's columns by node id: parent (uint32), function (int32), recursive and known (bool),\n"
             "each writable with room for the last new id. One pass over the nodes the walk made, where add() needs\n"
             "their arrays made, checked and the columns written one by one. ValueError, with nothing changed,\n"
             "if a later walk replaced them, or a column is too short or of another type.");

static PyObject *
index_commit(PyObject *op, PyObject *args)
{
    IndexObject *self = (IndexObject *)op;
    unsigned long long walk;
    PyObject *objs[4];
    Py_buffer views[4];
    static const char *names[4] = {"parent", "function", "recursive", "known"};
    static const Py_ssize_t sizes[4] = {4, 4, 1, 1};
    static const int integers[4] = {UNSIGNED, SIGNED, BOOLS, BOOLS};
    int got = 0;

    if (!PyArg_ParseTuple(args, "KOOOO:commit", &walk, &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    if (batch_of(self, walk) < 0) {
        return NULL;
    }
    const Batch *b = &self->batch;
    Py_ssize_t count = self->batch_made;
    int64_t first = self->batch_first;
    Py_ssize_t end = (Py_ssize_t)first + count; /* one past the last new id */
    for (; got < 4; got++) {
        if (get_column(objs[got], &views[got], sizes[got], integers[got], end, names[got]) < 0) {
            goto fail;
        }
    }
    if (count == 0) {
        release_all(views, got);
        Py_RETURN_NONE;
    }
    if (index_present(self, first)) {
        PyErr_Format(PyExc_ValueError, "stack node %lld is indexed already", (long long)first);
        goto fail;
    }
    if (index_room(self, end) < 0) {
        goto fail;
    }
    uint32_t *parent = views[0].buf;
    int32_t *function = views[1].buf;
    uint8_t *recursive = views[2].buf, *known = views[3].buf;
    /* The columns first, a sequential copy each: the segment holding the nodes has committed, so they are
     * stored whatever the index does below. The scratch has the columns' widths and ranges: parents below their
     * ids (below NODE_LIMIT), frames below FRAME_LIMIT (walk() checks), flags 0 or 1. (One node at a time, the
     * four columns and the index entry were six interleaved streams of fresh memory.) */
    prefault(self->nodes + first, (size_t)count * sizeof(Node));
    prefault(parent + first, (size_t)count * sizeof(uint32_t));
    prefault(function + first, (size_t)count * sizeof(int32_t));
    prefault(recursive + first, (size_t)count);
    prefault(known + first, (size_t)count);
    memcpy(parent + first, b->parent, (size_t)count * sizeof(uint32_t));
    memcpy(function + first, b->frame, (size_t)count * sizeof(int32_t));
    memcpy(recursive + first, b->recursive, (size_t)count);
    memset(known + first, 1, (size_t)count);
    int trusted = self->adds == self->batch_adds; /* the lists are as the walk saw them */
    Py_ssize_t indexed = 0;
    for (; indexed < count; indexed++) {
        int64_t up = (int64_t)b->parent[indexed];
        int into_list = trusted ? b->listed[indexed] : index_list_open(self, up);
        if (index_link(self, up, b->frame[indexed], first + indexed, into_list) < 0) {
            break; /* out of memory: what is indexed so far stays (as add() leaves it) */
        }
    }
    /* index_put's bookkeeping, for the ids indexed: consecutive, and above every id indexed before. */
    present_range(self->present, first, first + indexed);
    if (indexed > 0) {
        self->high = first + indexed - 1 > self->high ? first + indexed - 1 : self->high;
        self->used += indexed;
    }
    if (indexed < count) {
        goto fail;
    }
    self->walks++; /* committed once only */
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

static PyMethodDef index_methods[] = {
    {"reserve", index_reserve, METH_O,
     "reserve(size, /)\n--\n\nRoom for node ids below `size`, so adding nodes up to it never grows the array."},
    {"add", index_add, METH_VARARGS,
     "add(parents, frames, ids, function, /)\n--\n\nIndex nodes (buffers of int64), parents before their children,\n"
     "writing their frames into the tree's function column (writable int32 by node id); an id indexed already is\n"
     "refused. Each (parent, frame) must be new: walk() makes only missing ones."},
    {"lookup", index_lookup, METH_VARARGS,
     "lookup(parents, frames, function, /)\n--\n\nThe id of each (parent, frame) as int64 bytes, -1 where there is\n"
     "none; function is the tree's function column."},
    {"walk", (PyCFunction)(void (*)(void))index_walk, METH_VARARGS | METH_KEYWORDS, index_walk_doc},
    {"segment_columns", index_segment_columns, METH_O, index_segment_columns_doc},
    {"commit", index_commit, METH_VARARGS, index_commit_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef index_getset[] = {
    {"capacity", index_capacity, NULL, "node ids the array has room for (it doubles when an id passes it)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot index_slots[] = {
    {Py_tp_new, index_new},
    {Py_tp_dealloc, index_dealloc},
    {Py_tp_methods, index_methods},
    {Py_tp_getset, index_getset},
    {Py_sq_length, index_length},
    {Py_tp_doc, "Index()\n--\n\nStack node ids by (parent, frame): the tree as child lists by node id, 8 bytes a node\n"
                "(their frames are the tree's function column)."},
    {0, NULL},
};

static PyType_Spec index_spec = {
    .name = "server.store._treeindex.Index",
    .basicsize = sizeof(IndexObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = index_slots,
};

static int
treeindex_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &index_spec, NULL);
    int result;

    if (type == NULL) {
        return -1;
    }
    result = PyModule_AddObjectRef(module, "Index", type);
    Py_DECREF(type);
    return result;
}

static PyModuleDef_Slot treeindex_slots[] = {
    {Py_mod_exec, treeindex_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

/* --- mark_known and depths ------------------------------------------------ */

PyDoc_STRVAR(treeindex_mark_known_doc,
             "mark_known(known, parents, ids, /)\n--\n\n"
             "Set known[id] for nodes given in increasing id order, each under a parent that is known or an\n"
             "earlier node of the call: how a loaded segment's nodes are checked before any column takes them.\n"
             "known is a writable bool column by node id, long enough for every id. ValueError, with nothing\n"
             "written, for ids that do not increase, leave the column or are not above their parents, or a\n"
             "parent that is neither known nor an earlier node of the call.");

PyDoc_STRVAR(treeindex_depths_doc,
             "depths(depth, known, parents, ids, /)\n--\n\n"
             "mark_known(known, parents, ids), and depth[id] = depth[parent] + 1 for each node, in one pass (the\n"
             "store keeps no depth column; a migration that rebuilds line data works depths out with it). depth\n"
             "is a writable int32 column as long as known. ValueError, with nothing written, as mark_known, or\n"
             "if a depth could reach 2**31.");

/* Whether `node` is among ids[0:count] (increasing). */
static int
among(const int64_t *ids, Py_ssize_t count, int64_t node)
{
    Py_ssize_t low = 0, high = count;

    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (ids[middle] < node) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    return low < count && ids[low] == node;
}

/* Nodes given in increasing id order (ids < size, each above its parent), each parent known or an earlier node
 * of the call. -1 with ValueError set. */
static int
segment_ok(const uint8_t *known, Py_ssize_t size, const int64_t *parents, const int64_t *ids, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        if (ids[i] < 1 || ids[i] >= size || (i && ids[i] <= ids[i - 1]) || parents[i] < 0 || parents[i] >= ids[i]) {
            PyErr_SetString(PyExc_ValueError, "stack node ids must increase, within the columns, above their parents");
            return -1;
        }
    }
    /* Consecutive ids (every segment but one garbage collection rewrote): an earlier node is any id from the
     * first on, with no search. */
    int dense = count && ids[count - 1] - ids[0] == count - 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t parent = parents[i];
        if (!known[parent] && !(dense ? parent >= ids[0] : among(ids, i, parent))) {
            PyErr_SetString(PyExc_ValueError, "a stack segment names a parent node that is not stored");
            return -1;
        }
    }
    return 0;
}

/* The shared arguments of mark_known and depths: (known, parents, ids) from objs[0..3) into views[0..3). -1 with
 * the views released. */
static int
segment_arguments(PyObject **objs, Py_buffer *views)
{
    if (get_column(objs[0], &views[0], 1, BOOLS, 0, "known") < 0) {
        return -1;
    }
    if (get_words(objs[1], &views[1], "parents") < 0) {
        release_all(views, 1);
        return -1;
    }
    if (get_words(objs[2], &views[2], "ids") < 0) {
        release_all(views, 2);
        return -1;
    }
    if (views[2].len != views[1].len) {
        PyErr_SetString(PyExc_ValueError, "parents and ids must be of one length");
        release_all(views, 3);
        return -1;
    }
    return 0;
}

static PyObject *
treeindex_mark_known(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[3];
    Py_buffer views[3];

    if (!PyArg_ParseTuple(args, "OOO:mark_known", &objs[0], &objs[1], &objs[2]) ||
        segment_arguments(objs, views) < 0) {
        return NULL;
    }
    uint8_t *known = views[0].buf;
    const int64_t *parents = views[1].buf, *ids = views[2].buf;
    Py_ssize_t count = views[1].len / 8;
    if (segment_ok(known, views[0].len, parents, ids, count) < 0) {
        release_all(views, 3);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        known[ids[i]] = 1;
    }
    release_all(views, 3);
    Py_RETURN_NONE;
}

static PyObject *
treeindex_depths(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[4];
    Py_buffer views[4];

    if (!PyArg_ParseTuple(args, "OOOO:depths", &objs[3], &objs[0], &objs[1], &objs[2]) ||
        segment_arguments(objs, views) < 0) {
        return NULL;
    }
    if (get_column(objs[3], &views[3], 4, SIGNED, 0, "depth") < 0) {
        release_all(views, 3);
        return NULL;
    }
    uint8_t *known = views[0].buf;
    const int64_t *parents = views[1].buf, *ids = views[2].buf;
    int32_t *depth = views[3].buf;
    Py_ssize_t count = views[1].len / 8;
    if (views[3].len / 4 != views[0].len) {
        PyErr_SetString(PyExc_ValueError, "depths() needs depth and known of one length");
        goto fail;
    }
    if (segment_ok(known, views[0].len, parents, ids, count) < 0) {
        goto fail;
    }
    int64_t deepest = 0; /* of the known parents: no node of the call is deeper than it plus `count` */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (known[parents[i]]) {
            deepest = depth[parents[i]] > deepest ? depth[parents[i]] : deepest;
        }
    }
    if (deepest + count > DEPTH_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "a stack segment's nodes could be 2**31 deep (depth is int32)");
        goto fail;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        depth[ids[i]] = depth[parents[i]] + 1;
        known[ids[i]] = 1;
    }
    release_all(views, 4);
    Py_RETURN_NONE;
fail:
    release_all(views, 4);
    return NULL;
}

PyDoc_STRVAR(treeindex_columns_doc,
             "columns(ids, parents, frames, recursive, /)\n--\n\n"
             "The uncompressed column bytes of a stack segment (layout in server.store.stackcodec) and the flags\n"
             "naming its 64-bit columns: id deltas, id - parent and frames as byte planes, then the recursive\n"
             "flags as a bitmap (first node in the high bit, as numpy.packbits). ids, parents and frames are int64\n"
             "buffers of one length, recursive a bool buffer of it. ValueError for ids not positive and increasing\n"
             "or a parent not below its node.");

/* One column's byte planes: every value's low byte, then every value's next byte, ... (little endian). */
static void
write_planes(uint8_t *out, const int64_t *ids, const int64_t *parents, const int64_t *frames, Py_ssize_t count,
             int column, int width)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t value;
        if (column == 0) {
            value = (uint64_t)(i ? ids[i] - ids[i - 1] : 0);
        }
        else if (column == 1) {
            value = (uint64_t)(ids[i] - parents[i]);
        }
        else {
            value = (uint64_t)frames[i];
        }
        for (int b = 0; b < width; b++) {
            out[(Py_ssize_t)b * count + i] = (uint8_t)(value >> (8 * b));
        }
    }
}

/* Why in C: numpy built the same bytes with a diff, an astype and a transposed copy per column, a packbits
 * and a join, each a pass and a fresh array; on a churny profile's new nodes that was a third of the
 * segment's encoding time, beside the compressor. */
static PyObject *
treeindex_columns(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[4];
    Py_buffer views[4];
    int got = 0;
    PyObject *raw = NULL;

    if (!PyArg_ParseTuple(args, "OOOO:columns", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    static const char *names[3] = {"ids", "parents", "frames"};
    for (; got < 3; got++) {
        if (get_words(objs[got], &views[got], names[got]) < 0) {
            goto fail;
        }
    }
    if (PyObject_GetBuffer(objs[3], &views[3], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        goto fail;
    }
    got = 4;
    Py_ssize_t count = views[0].len / 8;
    if (views[3].itemsize != 1 || views[1].len / 8 != count || views[2].len / 8 != count || views[3].len != count) {
        PyErr_SetString(PyExc_ValueError, "columns() needs ids, parents, frames and recursive flags of one length");
        goto fail;
    }
    const int64_t *ids = views[0].buf, *parents = views[1].buf, *frames = views[2].buf;
    const uint8_t *recursive = views[3].buf;
    uint64_t most_delta = 0, most_gap = 0;
    int64_t least_frame = 0, most_frame = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (ids[i] < 1 || (i && ids[i] <= ids[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "stack segment ids must be positive and increasing");
            goto fail;
        }
        if (parents[i] < 0 || parents[i] >= ids[i]) {
            PyErr_SetString(PyExc_ValueError, "every stack node's parent must be the root or a node with a smaller id");
            goto fail;
        }
        uint64_t delta = i ? (uint64_t)(ids[i] - ids[i - 1]) : 0, gap = (uint64_t)(ids[i] - parents[i]);
        most_delta = delta > most_delta ? delta : most_delta;
        most_gap = gap > most_gap ? gap : most_gap;
        least_frame = frames[i] < least_frame ? frames[i] : least_frame;
        most_frame = frames[i] > most_frame ? frames[i] : most_frame;
    }
    int flags = (most_delta > (uint64_t)U32_MAX ? WIDE_IDS : 0) | (most_gap > (uint64_t)U32_MAX ? WIDE_PARENTS : 0) |
                (least_frame < 0 || most_frame > U32_MAX ? WIDE_FRAMES : 0);
    int widths[3] = {flags & WIDE_IDS ? 8 : 4, flags & WIDE_PARENTS ? 8 : 4, flags & WIDE_FRAMES ? 8 : 4};
    Py_ssize_t bitmap = (count + 7) / 8;
    raw = PyBytes_FromStringAndSize(NULL, count * (widths[0] + widths[1] + widths[2]) + bitmap);
    if (raw == NULL) {
        goto fail;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(raw);
    for (int column = 0; column < 3; column++) {
        write_planes(out, ids, parents, frames, count, column, widths[column]);
        out += (Py_ssize_t)widths[column] * count;
    }
    memset(out, 0, (size_t)bitmap);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (recursive[i]) {
            out[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
        }
    }
    release_all(views, got);
    PyObject *result = Py_BuildValue("(Ni)", raw, flags);
    return result;
fail:
    release_all(views, got);
    return NULL;
}

PyDoc_STRVAR(treeindex_closure_doc,
             "closure(mark, parent, leaves, /)\n--\n\n"
             "Set mark[n] for every node n of `leaves` and every ancestor of them, the root (0) excluded: each\n"
             "leaf's path is walked up through the tree's parent column (uint32, by node id) until it meets a\n"
             "marked node, so each node is visited once. mark is a writable bool column; parent must have room\n"
             "for every id below len(mark); leaves an int64 buffer. ValueError, before anything is marked, for a\n"
             "leaf outside [0, len(mark)); ValueError, part marked, for a parent not below its node.");

/* Why in C: numpy walked the paths a level at a time, a fancy index, a dedup by scratch array and a mask per
 * level over the whole frontier (0.84 s for the 17 M nodes a churny day's leaves reach); one walk up per leaf
 * that stops at the first marked node touches each node once. */
static PyObject *
treeindex_closure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[3];
    Py_buffer views[3];
    int got = 0;

    if (!PyArg_ParseTuple(args, "OOO:closure", &objs[0], &objs[1], &objs[2])) {
        return NULL;
    }
    if (get_column(objs[0], &views[0], 1, BOOLS, 0, "mark") < 0) {
        return NULL;
    }
    got = 1;
    Py_ssize_t size = views[0].len;
    if (get_column(objs[1], &views[1], 4, UNSIGNED, size, "parent") < 0) {
        goto fail;
    }
    got = 2;
    if (get_words(objs[2], &views[2], "leaves") < 0) {
        goto fail;
    }
    got = 3;
    uint8_t *mark = views[0].buf;
    const uint32_t *parent = views[1].buf;
    const int64_t *leaves = views[2].buf;
    Py_ssize_t count = views[2].len / 8;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (leaves[i] < 0 || leaves[i] >= size) {
            PyErr_SetString(PyExc_ValueError, "closure() needs leaves in [0, len(mark))");
            goto fail;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t node = leaves[i];
        while (node > 0 && !mark[node]) {
            mark[node] = 1;
            int64_t up = (int64_t)parent[node];
            if (up >= node) {
                PyErr_SetString(PyExc_ValueError, "a stack node's parent is not below it: the tree's columns are broken");
                goto fail;
            }
            node = up;
        }
    }
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

PyDoc_STRVAR(treeindex_gather_doc,
             "gather(mark, parent, function, recursive, position, node_ids, parents, functions, flags, /)\n--\n\n"
             "A call tree's arrays over the marked nodes, in id order, in one pass: node_ids (int64, or None:\n"
             "not written; an export alone reads them, 8 bytes a node of a query's peak), each node's\n"
             "parent as an index into them (int32, -1 for the root's children), its function (int32) and\n"
             "recursive flag (bool), read from the tree's columns by id (parent uint32, function int32,\n"
             "recursive bool, each with room for every id below len(mark)); position (int32, as long) gets each\n"
             "marked id's index. The four outputs have one entry per marked node. ValueError, before anything is\n"
             "written, for outputs of another length; part written, for a marked node whose parent is not marked.");

/* Why in C: numpy made the same arrays with a flatnonzero, a running count over every stored id, five gathers,
 * three casts and a where, each a pass and a fresh array over the nodes reached (0.2 s of a churny day's 0.76 s
 * flame graph). */
static PyObject *
treeindex_gather(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[9];
    Py_buffer views[9];
    int got = 0;

    if (!PyArg_ParseTuple(args, "OOOOOOOOO:gather", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5],
                          &objs[6], &objs[7], &objs[8])) {
        return NULL;
    }
    if (get_column(objs[0], &views[0], 1, BOOLS, 0, "mark") < 0) {
        return NULL;
    }
    got = 1;
    Py_ssize_t size = views[0].len;
    static const char *names[8] = {"parent", "function", "recursive", "position", "node_ids", "parents", "functions",
                                   "flags"};
    static const Py_ssize_t sizes[8] = {4, 4, 1, 4, 8, 4, 4, 1};
    static const int integers[8] = {UNSIGNED, SIGNED, BOOLS, SIGNED, SIGNED, SIGNED, SIGNED, BOOLS};
    int with_ids = objs[5] != Py_None;
    for (; got < 9; got++) {
        if (got == 5 && !with_ids) {
            views[5].buf = NULL; /* released as an empty view: get_column is not called for it */
            views[5].obj = NULL;
            views[5].len = 0;
            continue;
        }
        if (get_column(objs[got], &views[got], sizes[got - 1], integers[got - 1], got <= 4 ? size : 0,
                       names[got - 1]) < 0) {
            goto fail;
        }
    }
    const uint8_t *mark = views[0].buf;
    const uint32_t *parent = views[1].buf;
    const int32_t *function = views[2].buf;
    const uint8_t *recursive = views[3].buf;
    int32_t *position = views[4].buf;
    int64_t *node_ids = views[5].buf;
    int32_t *parents = views[6].buf, *functions = views[7].buf; /* positions below 2**31 (checked), frames too */
    uint8_t *flags = views[8].buf;
    Py_ssize_t count = 0;
    for (Py_ssize_t id = 1; id < size; id++) {
        count += mark[id] != 0;
    }
    if (count > INT32_MAX || (with_ids && views[5].len / 8 != count) || views[6].len / 4 != count ||
        views[7].len / 4 != count || views[8].len != count) {
        PyErr_SetString(PyExc_ValueError, "gather() needs node_ids, parents, functions and flags of one entry a mark");
        goto fail;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t id = 1; id < size; id++) {
        if (!mark[id]) {
            continue;
        }
        uint32_t up = parent[id];
        if (up != 0 && ((Py_ssize_t)up >= id || !mark[up])) {
            PyErr_SetString(PyExc_ValueError, "gather() needs every marked node's parent marked (the closure)");
            goto fail;
        }
        position[id] = (int32_t)at;
        if (node_ids != NULL) {
            node_ids[at] = id;
        }
        parents[at] = up == 0 ? -1 : position[up];
        functions[at] = function[id];
        flags[at] = recursive[id];
        at++;
    }
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

static PyMethodDef treeindex_methods[] = {
    {"columns", treeindex_columns, METH_VARARGS, treeindex_columns_doc},
    {"mark_known", treeindex_mark_known, METH_VARARGS, treeindex_mark_known_doc},
    {"depths", treeindex_depths, METH_VARARGS, treeindex_depths_doc},
    {"closure", treeindex_closure, METH_VARARGS, treeindex_closure_doc},
    {"gather", treeindex_gather, METH_VARARGS, treeindex_gather_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef treeindex_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.store._treeindex",
    .m_doc = "The stack prefix tree's (parent, frame) -> node index, the batch walk, a segment's check, a "
              "segment's column bytes, and a query's closure of stored nodes and their gathering into a call "
              "tree's arrays (see server.store.stacks and server.store.stackcodec).",
    .m_size = 0,
    .m_methods = treeindex_methods,
    .m_slots = treeindex_slots,
};

PyMODINIT_FUNC
PyInit__treeindex(void)
{
    return PyModuleDef_Init(&treeindex_module);
}
