/*
 * server.query._filters: the filters' passes over a call tree's nodes that numpy could only do a depth
 * level at a time: the tree of the frames a filter keeps (keep), which nodes have a matching frame on
 * their path (on_paths), and which recursive nodes keep a same-function ancestor below a cut
 * (kept_recursion).
 *
 * What is made is server/query/filters.py's _keep: each kept node hangs off its nearest kept ancestor, and
 * kept nodes that end up with the same path of functions are one new node, numbered by its lowest original
 * node. Nodes come parents first, so one pass in index order finds each node's nearest kept node (itself, or
 * its parent's), and a kept node's path is known once its new parent is: it is (new parent, function), which
 * a hash table turns into the new node, made when first met.
 *
 * Most paths never meet another, so the table holds only the children of new nodes that more than one path
 * can reach (the root; a node with two original nodes; a node that a kept node hangs off past removed frames).
 * The children of any other new node are the children of its one original node, whose functions differ, so
 * each is a new node with no lookup; they are listed under their parent, and enter the table only if it is
 * reached from a second place later. On a high-churn day's 631,619-node tree, looking every node up cost
 * 31-38 ms of a 100 ms show_from, and kept the filters over their 2x of the flame graph (2.32-2.42x), where
 * it is now 1.83-1.86x (hide 2.05-2.18x, now 1.56-1.58x); the table also starts small and doubles, rather
 * than being zeroed at twice the kept nodes' size.
 *
 * Why in C: numpy found the nearest kept nodes by pointer jumping and merged paths in rounds of sorts, one
 * round per depth at which paths met; on the analysis bench's 57,056-node tree that was 2.2-2.9 ms of
 * show_from's 11 ms, the filter closest to its 2x aim.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../pprof/_mix.h"
#include "../store/_words.h"

/* A hash table slot: 32 bits of a (new parent, function) key's hash, and its new node + 1 (0: empty). The key
 * itself is read back from the new node's parent and function when the bits match: with the key in the slot
 * (16 bytes) a 631,619-node tree's table was 32 MB, a cache miss and a fresh page for every node. */
typedef struct {
    uint32_t tag;
    uint32_t node;
} Slot;

/* The new nodes as they are made, and the table that finds those that can be met again. A new node is
 * "shared" once paths from more than one place may reach it: it has two original nodes, or a kept node hangs
 * off it past removed frames. Only a shared node's children are looked up (and entered) in the table; the
 * children of any other are the children of its one original node, whose functions differ, so each is a new
 * node of its own, and is only listed (first_child, next_sibling) in case its parent is shared later. */
typedef struct {
    Indices function;        /* the original nodes' */
    int64_t width;           /* a key is (new parent + 1) * width + function */
    int64_t *nodes;          /* each new node's lowest original node */
    int64_t *new_parent;     /* -1: the root, which is always shared */
    int32_t *first_child;    /* + 1; 0: none (listed only while the parent is not shared) */
    int32_t *next_sibling;
    uint8_t *shared;
    int64_t made;
    Slot *slots;
    uint64_t mask;
    int64_t used;
} Kept;

static inline uint64_t
kept_hash(const Kept *k, int64_t under, int64_t function)
{
    return mix64((uint64_t)((under + 1) * k->width + function));
}

/* The slot of (under, function): its node's, or the empty one where it would go. */
static inline Slot *
kept_slot(const Kept *k, int64_t under, int64_t function, uint64_t hash)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    Slot *slot = k->slots + (hash & k->mask);
    while (slot->node != 0 &&
           (slot->tag != tag || k->new_parent[slot->node - 1] != under || indices_at(&k->function, k->nodes[slot->node - 1]) != function)) {
        slot = k->slots + ((uint64_t)(slot - k->slots + 1) & k->mask);
    }
    return slot;
}

/* Room for one more entry at a load of at most a half: the table doubles, its entries placed again from the
 * keys their nodes hold. -1 with MemoryError set. */
static int
kept_room(Kept *k)
{
    if (2 * (k->used + 1) <= (int64_t)k->mask + 1) {
        return 0;
    }
    uint64_t room = 2 * (k->mask + 1);
    Slot *old = k->slots, *slots = calloc(room, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t old_room = k->mask + 1;
    k->slots = slots;
    k->mask = room - 1;
    for (uint64_t at = 0; at < old_room; at++) {
        if (old[at].node != 0) {
            int64_t node = old[at].node - 1;
            int64_t under = k->new_parent[node], function = indices_at(&k->function, k->nodes[node]);
            *kept_slot(k, under, function, kept_hash(k, under, function)) = old[at];
        }
    }
    free(old);
    return 0;
}

/* Enter new node `node` (not in the table) under its key. -1 with MemoryError set. */
static int
kept_enter(Kept *k, int64_t node)
{
    if (kept_room(k) < 0) {
        return -1;
    }
    int64_t under = k->new_parent[node], function = indices_at(&k->function, k->nodes[node]);
    uint64_t hash = kept_hash(k, under, function);
    *kept_slot(k, under, function, hash) = (Slot){.tag = (uint32_t)(hash >> 32), .node = (uint32_t)(node + 1)};
    k->used++;
    return 0;
}

/* New node `node` may now be reached from more than one place: its children listed so far enter the table,
 * where those that come later are looked up. -1 with MemoryError set. */
static int
kept_share(Kept *k, int64_t node)
{
    k->shared[node] = 1;
    for (int32_t child = k->first_child[node]; child != 0; child = k->next_sibling[child - 1]) {
        if (kept_enter(k, child - 1) < 0) {
            return -1;
        }
    }
    return 0;
}

/* A new node for original node i under `under`; listed as its child unless `under` is shared. */
static inline int64_t
kept_make(Kept *k, Py_ssize_t i, int64_t under)
{
    int64_t node = k->made++;
    k->nodes[node] = i;
    k->new_parent[node] = under;
    k->first_child[node] = 0;
    k->shared[node] = 0;
    if (under >= 0 && !k->shared[under]) {
        k->next_sibling[node] = k->first_child[under];
        k->first_child[under] = (int32_t)(node + 1);
    }
    return node;
}

/* The new node of kept node i, hanging off `under` (-1: the root); `lifted`: its parent was removed. -1 with
 * MemoryError set. */
static int64_t
kept_node(Kept *k, Py_ssize_t i, int64_t under, int lifted)
{
    int64_t function = indices_at(&k->function, i);

    if (under >= 0 && !k->shared[under]) {
        if (!lifted) { /* a child of the one original node under it: no other path reaches here */
            return kept_make(k, i, under);
        }
        if (kept_share(k, under) < 0) {
            return -1;
        }
    }
    Slot *slot = kept_slot(k, under, function, kept_hash(k, under, function));
    if (slot->node != 0) { /* a second original node: paths meet here */
        int64_t node = slot->node - 1;
        if (!k->shared[node] && kept_share(k, node) < 0) {
            return -1;
        }
        return node;
    }
    int64_t node = kept_make(k, i, under);
    return kept_enter(k, node) < 0 ? -1 : node;
}

PyDoc_STRVAR(keep_doc,
             "keep(parent, function, kept, up, /)\n--\n\n"
             "The tree of the kept frames of a call tree: parent (int32 or int64, each in [-1, its own index):\n"
             "parents first), function (int32 or int64, each in [0, 2**31); no two children of one node share\n"
             "one, as in every call tree), kept (bool). up (int64, or None: worked out here) is each node's nearest kept node at\n"
             "or above it (itself when kept), -1 for none; a node it names that is not kept holds no new node\n"
             "(filters.py drops empty nodes after working it out). Returns (new_of, nodes, new_parent) as\n"
             "bytearrays of int64: each original node's new node (its nearest kept node's, -1 without one), each\n"
             "new node's lowest original node (ascending), and each new node's parent (-1: the root). ValueError,\n"
             "before anything is made, for arrays of other lengths or types, or a parent, function or up out of\n"
             "range.");

static PyObject *
filters_keep(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[4];
    Py_buffer views[4];
    int got = 0;
    PyObject *result = NULL;
    int32_t *up = NULL; /* n < 2**31 */
    Kept k = {0};
    PyObject *new_of_bytes = NULL, *nodes_bytes = NULL, *new_parent_bytes = NULL;

    if (!PyArg_ParseTuple(args, "OOOO:keep", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    int given = objs[3] != Py_None;
    Indices parent, function;
    if (get_parent_function(objs, views, &parent, &function) < 0) {
        goto done;
    }
    got = 2;
    static const char *names[2] = {"kept", "up"};
    static const Py_ssize_t sizes[2] = {1, 8};
    static const int integers[2] = {BOOLS, SIGNED};
    if (get_typed_columns(objs + 2, views + 2, 1 + given, sizes, integers, names) < 0) {
        goto done;
    }
    got = 3 + given;
    Py_ssize_t n = parent.len;
    if (function.len != n || views[2].len != n || (given && views[3].len / 8 != n) || n >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "keep() needs parent, function, kept and up of one length, below 2**31");
        goto done;
    }
    const uint8_t *kept = views[2].buf;
    const int64_t *up_given = given ? views[3].buf : NULL;
    int64_t width = 1, count = 0;
    for (Py_ssize_t i = 0; i < n; i++) { /* checked whole first */
        int64_t above = indices_at(&parent, i), f = indices_at(&function, i);
        if (above < -1 || above >= i || f < 0 || f > INT32_MAX ||
            (given && (up_given[i] < -1 || up_given[i] > i || (kept[i] && up_given[i] != i)))) {
            PyErr_SetString(PyExc_ValueError, "keep() needs every parent index in [-1, the node's own), every "
                                              "function in [0, 2**31) and every up in [-1, the node's own] (the "
                                              "node itself when kept)");
            goto done;
        }
        width = f >= width ? f + 1 : width;
        count += kept[i] != 0;
    }
    k.function = function;
    k.width = width;
    k.mask = 1023;
    new_of_bytes = PyByteArray_FromStringAndSize(NULL, n * 8);
    up = given ? NULL : malloc((size_t)n * 4 + 4);
    /* The new nodes' columns are made in the bytearrays returned, cut to length at the end (a copy of each
     * was 5 MB of fresh memory on a 631,619-node tree). */
    nodes_bytes = PyByteArray_FromStringAndSize(NULL, count * 8);
    new_parent_bytes = PyByteArray_FromStringAndSize(NULL, count * 8);
    k.nodes = nodes_bytes == NULL ? NULL : (int64_t *)PyByteArray_AS_STRING(nodes_bytes);
    k.new_parent = new_parent_bytes == NULL ? NULL : (int64_t *)PyByteArray_AS_STRING(new_parent_bytes);
    k.first_child = malloc((size_t)count * 4 + 4);
    k.next_sibling = malloc((size_t)count * 4 + 4);
    k.shared = malloc((size_t)count + 1);
    k.slots = calloc(k.mask + 1, sizeof(Slot));
    if (new_of_bytes == NULL || (!given && up == NULL) || k.nodes == NULL || k.new_parent == NULL ||
        k.first_child == NULL || k.next_sibling == NULL || k.shared == NULL || k.slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* new_of holds each kept node's new node as it is made; a node's nearest kept node comes before it. */
    int64_t *new_of = (int64_t *)PyByteArray_AS_STRING(new_of_bytes);
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t of = indices_at(&parent, i);
        int64_t above = of < 0 ? -1 : given ? up_given[of] : up[of];
        if (!given) {
            up[i] = (int32_t)(kept[i] ? i : above);
        }
        if (!kept[i]) { /* a given up may name a node that is not kept: it has no new node */
            int64_t nearest = given ? up_given[i] : up[i];
            new_of[i] = nearest < 0 || !kept[nearest] ? -1 : new_of[nearest];
            continue;
        }
        /* The nearest kept strict ancestor's new node is the new parent; -1 is the root. */
        int64_t under = above < 0 || !kept[above] ? -1 : new_of[above];
        if ((new_of[i] = kept_node(&k, i, under, above != of)) < 0) {
            goto done;
        }
    }
    if (PyByteArray_Resize(nodes_bytes, k.made * 8) < 0 || PyByteArray_Resize(new_parent_bytes, k.made * 8) < 0) {
        goto done;
    }
    result = PyTuple_Pack(3, new_of_bytes, nodes_bytes, new_parent_bytes);
done:
    release_all(views, got);
    Py_XDECREF(new_of_bytes);
    Py_XDECREF(nodes_bytes);
    Py_XDECREF(new_parent_bytes);
    free(up);
    free(k.first_child);
    free(k.next_sibling);
    free(k.shared);
    free(k.slots);
    return result;
}

PyDoc_STRVAR(on_paths_doc,
             "on_paths(parent, bits, /)\n--\n\n"
             "ORs each node's bits into its children's, from the root down, in place: afterwards bit b of a node is\n"
             "set when any node on its path from the root had it (a pattern matched there). parent is int32 or\n"
             "int64, each in [-1, its own index): parents first; bits is a writable uint8 column of one entry a node.\n"
             "ValueError, before anything is written, for columns of other lengths or types, or a parent out of\n"
             "range.");

/* Why in C: parents come first, so one pass in index order does what numpy did a depth level at a time,
 * after sorting the nodes by depth (1.2-1.4 ms of a 57,056-node tree's 11 ms show_from). */
static PyObject *
filters_on_paths(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[2];
    Py_buffer views[2];
    int got = 0;

    if (!PyArg_ParseTuple(args, "OO:on_paths", &objs[0], &objs[1])) {
        return NULL;
    }
    Indices parent;
    if (get_indices(objs[0], &views[0], &parent, "parent") < 0) {
        return NULL;
    }
    got = 1;
    if (get_column(objs[1], &views[1], 1, UNSIGNED, 0, "bits") < 0) {
        goto fail;
    }
    got = 2;
    uint8_t *bits = views[1].buf;
    Py_ssize_t n = parent.len;
    if (views[1].len != n) {
        PyErr_SetString(PyExc_ValueError, "on_paths() needs parent and bits of one length");
        goto fail;
    }
    if (parents_first(&parent, "on_paths") < 0) { /* checked whole first */
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t up = indices_at(&parent, i);
        if (up >= 0) {
            bits[i] |= bits[up];
        }
    }
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

PyDoc_STRVAR(kept_recursion_doc,
             "kept_recursion(parent, function, kept, nodes, /)\n--\n\n"
             "For each of nodes (int64, each in [0, the tree's size)): whether its nearest ancestor of its own\n"
             "function is kept (false when it has none). parent (int32 or int64, each in [-1, its own index):\n"
             "parents first), function (int32 or int64) and kept (bool) are the tree's, one entry a node.\n"
             "Returns a bytearray of one 0 or 1 a node asked about. ValueError, before anything is read, for columns of other lengths\n"
             "or types, or a parent or node out of range.");

/* Why in C: below a cut (show_from) a recursive node stays recursive only if its nearest same-function
 * ancestor is kept, and finding that ancestor is a walk up the parents. numpy walked all of them a step at a
 * time, a round of array copies a step: 8 ms of a high-churn day's ~100 ms show_from. */
static PyObject *
filters_kept_recursion(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[4];
    Py_buffer views[4];
    int got = 0;
    PyObject *result = NULL;
    static const char *names[2] = {"kept", "nodes"};
    static const Py_ssize_t sizes[2] = {1, 8};
    static const int integers[2] = {BOOLS, SIGNED};
    Indices parent, function;

    if (!PyArg_ParseTuple(args, "OOOO:kept_recursion", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    if (get_parent_function(objs, views, &parent, &function) < 0) {
        goto done;
    }
    got = 2;
    if (get_typed_columns(objs + 2, views + 2, 2, sizes, integers, names) < 0) {
        goto done;
    }
    got = 4;
    Py_ssize_t n = parent.len, asked = views[3].len / 8;
    if (function.len != n || views[2].len != n) {
        PyErr_SetString(PyExc_ValueError, "kept_recursion() needs parent, function and kept of one length");
        goto done;
    }
    const int64_t *nodes = views[3].buf;
    const uint8_t *kept = views[2].buf;
    if (parents_first(&parent, "kept_recursion") < 0) {
        goto done;
    }
    for (Py_ssize_t j = 0; j < asked; j++) {
        if (nodes[j] < 0 || nodes[j] >= n) {
            PyErr_SetString(PyExc_ValueError, "kept_recursion() needs every node in [0, the tree's size)");
            goto done;
        }
    }
    result = PyByteArray_FromStringAndSize(NULL, asked);
    if (result == NULL) {
        goto done;
    }
    uint8_t *stays = (uint8_t *)PyByteArray_AS_STRING(result);
    for (Py_ssize_t j = 0; j < asked; j++) {
        int64_t node = nodes[j], own = indices_at(&function, node), ancestor = indices_at(&parent, node);
        while (ancestor >= 0 && indices_at(&function, ancestor) != own) {
            ancestor = indices_at(&parent, ancestor);
        }
        stays[j] = ancestor >= 0 && kept[ancestor];
    }
done:
    release_all(views, got);
    return result;
}

static PyMethodDef filters_methods[] = {
    {"keep", filters_keep, METH_VARARGS, keep_doc},
    {"on_paths", filters_on_paths, METH_VARARGS, on_paths_doc},
    {"kept_recursion", filters_kept_recursion, METH_VARARGS, kept_recursion_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot filters_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef filters_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.query._filters",
    .m_doc = "The filters' passes over a call tree: the kept frames' tree, the matches on each path (see _filters.c).",
    .m_size = 0,
    .m_methods = filters_methods,
    .m_slots = filters_slots,
};

PyMODINIT_FUNC
PyInit__filters(void)
{
    return PyModuleDef_Init(&filters_module);
}
