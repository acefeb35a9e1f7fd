/*
 * server.query._calltree: passes over a call tree's arrays that numpy could only do a depth level at a time,
 * or with copies as long as the tree. A call tree (server/query/tree.py) holds its nodes in id order, so a
 * parent's index is below its children's: each pass here is one loop over the nodes.
 *
 * sum_up: totals summed up the tree, from the last node.
 * fold: the flame graph's drawn nodes, their parents among them, and each one's "other".
 * widest: the flame graph's max_nodes widest nodes, ties to the lower index.
 *
 * They used to live in the store's _treeindex.c, beside the closure and gathering of stored nodes that make a
 * call tree; they read nothing of the store, so they are the query's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../pprof/_mix.h"
#include "../store/_words.h"

/* Adds a row of `columns` values to another; sums wrap at 64 bits, as numpy's do. */
static inline void
add_row(uint64_t *into, const uint64_t *from, Py_ssize_t columns)
{
    for (Py_ssize_t c = 0; c < columns; c++) {
        into[c] += from[c];
    }
}

PyDoc_STRVAR(calltree_sum_up_doc,
             "sum_up(totals, parent, /)\n--\n\n"
             "Add every node's row of `totals` to its parent's, children before parents: one pass from the last\n"
             "node to the first. totals is a writable C-contiguous int64 array of (nodes, columns); parent\n"
             "(int32 or int64) each node's parent's index, -1 for none, always below the node's own (nodes are in\n"
             "id order, and a parent's id is below its child's). Sums wrap at 64 bits, as numpy's do. ValueError,\n"
             "with nothing changed, for a parent index not in [-1, node) or totals of another length.");

/* Why in C: numpy summed a depth level at a time with np.add.at after sorting the nodes by depth, 1.3 s for the
 * 17 M nodes of a churny day's flame graph; in id order every child comes after its parent, so one pass from
 * the end adds each row once. */
static PyObject *
calltree_sum_up(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[2];
    Py_buffer views[2];
    int got = 0;

    if (!PyArg_ParseTuple(args, "OO:sum_up", &objs[0], &objs[1])) {
        return NULL;
    }
    if (get_column(objs[0], &views[0], 8, SIGNED, 0, "totals") < 0) {
        return NULL;
    }
    got = 1;
    Indices parent;
    if (get_indices(objs[1], &views[1], &parent, "parent") < 0) {
        goto fail;
    }
    got = 2;
    uint64_t *totals = views[0].buf;
    Py_ssize_t count = parent.len;
    Py_ssize_t columns = count ? views[0].len / 8 / count : 0;
    if (count ? views[0].len != count * columns * 8 || columns < 1 : views[0].len != 0) {
        PyErr_SetString(PyExc_ValueError, "sum_up() needs totals of (nodes, columns) for every parent index");
        goto fail;
    }
    if (parents_first(&parent, "sum_up") < 0) { /* checked whole first */
        goto fail;
    }
    /* The loop once for each width of parent index, so neither reads through a branch. */
#define SUM_UP(TYPE)                                                                                                 \
    for (Py_ssize_t i = count - 1; i >= 0; i--) {                                                                   \
        int64_t up = ((const TYPE *)parent.buf)[i];                                                                 \
        if (up >= 0) {                                                                                               \
            add_row(totals + up * columns, totals + i * columns, columns);                                           \
        }                                                                                                            \
    }
    if (parent.wide) {
        SUM_UP(int64_t)
    }
    else {
        SUM_UP(int32_t)
    }
#undef SUM_UP
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

/* The drawn nodes' positions among the drawn, by tree index: an open-addressing table of at least twice as many
 * slots as drawn nodes, keyed by index + 1 (0: empty). A scratch as long as the tree held them before: 4 bytes a
 * node, 69 MB at the peak of a churny day's 17 M-node flame graph, for its 2,048 drawn nodes. */
typedef struct {
    int64_t *keys;
    int32_t *values;
    uint64_t mask;
} Drawn;

static int
drawn_init(Drawn *d, Py_ssize_t drawn)
{
    uint64_t slots = 16;
    while (slots < (uint64_t)drawn * 2) {
        slots <<= 1;
    }
    d->keys = calloc(slots, sizeof(int64_t));
    d->values = malloc(slots * sizeof(int32_t));
    d->mask = slots - 1;
    if (d->keys == NULL || d->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static inline void
drawn_put(Drawn *d, int64_t node, int32_t at)
{
    uint64_t i = mix64((uint64_t)node) & d->mask;
    while (d->keys[i] != 0) {
        i = (i + 1) & d->mask;
    }
    d->keys[i] = node + 1;
    d->values[i] = at;
}

/* The position of drawn node `node` (put before: parents come before their children). */
static inline int32_t
drawn_at(const Drawn *d, int64_t node)
{
    for (uint64_t i = mix64((uint64_t)node) & d->mask;; i = (i + 1) & d->mask) {
        if (d->keys[i] == node + 1 || d->keys[i] == 0) {
            return d->keys[i] == 0 ? -1 : d->values[i];
        }
    }
}

PyDoc_STRVAR(calltree_fold_doc,
             "fold(keep, parent, totals, kept, kept_parent, sums, /)\n--\n\n"
             "A pruned call tree in one pass over its nodes (in id order: parents first). keep (bool) flags the\n"
             "drawn nodes; parent (int32 or int64) each node's parent index (-1 for the root's children); totals is\n"
             "(nodes, columns) int64. Writes: kept (int64) the drawn nodes' indices; kept_parent (int64) each drawn\n"
             "node's parent among the drawn, -1 when that is the root or not drawn; sums ((drawn + 1, columns)\n"
             "int64, zeroed by the caller) adds the totals of every node not drawn whose parent is drawn (row\n"
             "p + 1) or is the root (row 0). Sums wrap at 64 bits, as numpy's do. ValueError, before anything is\n"
             "written, for arrays of other lengths or a parent index not in [-1, the node's own).");

/* Why in C: numpy made the same arrays with a running count, a flatnonzero, four gathers, two masks and an
 * np.add.at over every node of the tree (0.2 s of a churny day's flame graph for 2,048 drawn nodes of 17 M). */
static PyObject *
calltree_fold(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[6];
    Py_buffer views[6];
    int got = 0;
    Drawn positions = {NULL, NULL, 0};

    if (!PyArg_ParseTuple(args, "OOOOOO:fold", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5])) {
        return NULL;
    }
    static const char *names[6] = {"keep", "parent", "totals", "kept", "kept_parent", "sums"};
    static const Py_ssize_t sizes[6] = {1, 8, 8, 8, 8, 8};
    static const int integers[6] = {BOOLS, SIGNED, SIGNED, SIGNED, SIGNED, SIGNED};
    Indices parent;
    for (; got < 6; got++) {
        /* parent and totals are only read: a read-only array will do */
        int failed = got == 1   ? get_indices(objs[got], &views[got], &parent, names[got])
                     : got == 2 ? get_words(objs[got], &views[got], names[got])
                                : get_column(objs[got], &views[got], sizes[got], integers[got], 0, names[got]);
        if (failed < 0) {
            goto fail;
        }
    }
    const uint8_t *keep = views[0].buf;
    const uint64_t *totals = views[2].buf;
    int64_t *kept = views[3].buf, *kept_parent = views[4].buf;
    uint64_t *sums = views[5].buf;
    Py_ssize_t count = views[0].len, drawn = views[3].len / 8;
    Py_ssize_t columns = views[5].len / 8 / (drawn + 1); /* sums has a row more than the drawn, even for none */
    Py_ssize_t flagged = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        flagged += keep[i] != 0;
    }
    if (columns < 1 || parent.len != count || views[2].len != count * columns * 8 || flagged != drawn ||
        drawn > INT32_MAX || views[4].len / 8 != drawn || views[5].len != (drawn + 1) * columns * 8) {
        PyErr_SetString(PyExc_ValueError, "fold() needs arrays of the tree's length, and drawn ones of one entry a "
                                          "drawn node (sums one row more)");
        goto fail;
    }
    if (parents_first(&parent, "fold") < 0) { /* checked whole first */
        goto fail;
    }
    if (drawn_init(&positions, drawn) < 0) {
        goto fail;
    }
    Py_ssize_t at = 0;
    /* The loop once for each width of parent index, so neither reads through a branch. A drawn node's parent,
     * when drawn, came before it: its position is in the table. */
#define FOLD(TYPE)                                                                                                   \
    for (Py_ssize_t i = 0; i < count; i++) {                                                                        \
        int64_t up = ((const TYPE *)parent.buf)[i];                                                                 \
        int up_drawn = up >= 0 && keep[up];                                                                          \
        if (keep[i]) {                                                                                               \
            drawn_put(&positions, i, (int32_t)at);                                                                   \
            kept[at] = i;                                                                                            \
            kept_parent[at] = up_drawn ? drawn_at(&positions, up) : -1;                                              \
            at++;                                                                                                    \
        }                                                                                                            \
        else if (up < 0 || up_drawn) {                                                                               \
            add_row(sums + (up < 0 ? 0 : (Py_ssize_t)drawn_at(&positions, up) + 1) * columns, totals + i * columns,  \
                    columns);                                                                                        \
        }                                                                                                            \
    }
    if (parent.wide) {
        FOLD(int64_t)
    }
    else {
        FOLD(int32_t)
    }
#undef FOLD
    free(positions.keys);
    free(positions.values);
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    free(positions.keys);
    free(positions.values);
    release_all(views, got);
    return NULL;
}

PyDoc_STRVAR(calltree_widest_doc,
             "widest(width, count, out, /)\n--\n\n"
             "Flags in out (bool, one a node, zeroed by the caller) the count nodes of greatest width (int64, one\n"
             "a node), ties going to the lower index: the first count of a sort by (-width, index). One pass,\n"
             "keeping the best so far in a heap of count entries. ValueError, before anything is written, for\n"
             "arrays of other lengths or a negative count.");

/* A heap entry: a node and its width. The heap's top is the worst kept: the narrowest, and of equal widths the
 * highest index. */
typedef struct {
    int64_t width;
    Py_ssize_t node;
} Widest;

static inline int
worse(const Widest *a, const Widest *b)
{
    return a->width < b->width || (a->width == b->width && a->node > b->node);
}

/* Why in C: numpy negated the widths and partitioned a copy of them, two arrays as long as the tree, to find the
 * count-th width; on a churny day's 17 M nodes that was 0.27 GB of the flame graph's peak memory. Nodes are
 * met in index order, so a later node of equal width never displaces a kept one: the ties go to the lower
 * index as the sort would have them. */
static PyObject *
calltree_widest(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[2];
    Py_buffer views[2];
    Py_ssize_t count;
    int got = 0;
    Widest *heap = NULL;

    if (!PyArg_ParseTuple(args, "OnO:widest", &objs[0], &count, &objs[1])) {
        return NULL;
    }
    if (get_words(objs[0], &views[0], "width") < 0) {
        return NULL;
    }
    got = 1;
    if (get_column(objs[1], &views[1], 1, BOOLS, 0, "out") < 0) {
        goto fail;
    }
    got = 2;
    const int64_t *width = views[0].buf;
    uint8_t *out = views[1].buf;
    Py_ssize_t n = views[0].len / 8;
    if (views[1].len != n || count < 0) {
        PyErr_SetString(PyExc_ValueError, "widest() needs width and out of one length and a count >= 0");
        goto fail;
    }
    count = count < n ? count : n;
    heap = PyMem_RawMalloc((size_t)count * sizeof(Widest) + 1);
    if (heap == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i < n && count > 0; i++) {
        Widest entry = {width[i], i};
        Py_ssize_t at;
        if (len < count) { /* up from the end */
            for (at = len++; at > 0 && worse(&entry, &heap[(at - 1) / 2]); at = (at - 1) / 2) {
                heap[at] = heap[(at - 1) / 2];
            }
            heap[at] = entry;
            continue;
        }
        if (!worse(&heap[0], &entry)) {
            continue;
        }
        for (at = 0;;) { /* down from the top, replacing the worst */
            Py_ssize_t child = 2 * at + 1;
            if (child >= len) {
                break;
            }
            if (child + 1 < len && worse(&heap[child + 1], &heap[child])) {
                child++;
            }
            if (!worse(&heap[child], &entry)) {
                break;
            }
            heap[at] = heap[child];
            at = child;
        }
        heap[at] = entry;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        out[heap[i].node] = 1;
    }
    PyMem_RawFree(heap);
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

static PyMethodDef calltree_methods[] = {
    {"sum_up", calltree_sum_up, METH_VARARGS, calltree_sum_up_doc},
    {"fold", calltree_fold, METH_VARARGS, calltree_fold_doc},
    {"widest", calltree_widest, METH_VARARGS, calltree_widest_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot calltree_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef calltree_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.query._calltree",
    .m_doc = "Passes over a call tree's arrays: totals up the tree, the flame graph's pruning (see _calltree.c).",
    .m_size = 0,
    .m_methods = calltree_methods,
    .m_slots = calltree_slots,
};

PyMODINIT_FUNC
PyInit__calltree(void)
{
    return PyModuleDef_Init(&calltree_module);
}
