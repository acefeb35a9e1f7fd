/*
 * server.query._filters: the filters' passes over a call tree's nodes that numpy could only do a depth
 * level at a time: the tree of the frames a filter keeps (keep), and which nodes have a matching frame on
 * their path (on_paths).
 *
 * What is made is server/query/filters.py's _keep: each kept node hangs off its nearest kept ancestor, and
 * kept nodes that end up with the same path of functions are one new node, numbered by its lowest original
 * node. Nodes come parents first, so one pass in index order finds each node's nearest kept node (itself, or
 * its parent's), and a kept node's path is known once its new parent is: it is (new parent, function), which
 * a hash table turns into the new node, made when first met.
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

PyDoc_STRVAR(keep_doc,
             "keep(parent, function, kept, up, /)\n--\n\n"
             "The tree of the kept frames of a call tree: parent (int64, each in [-1, its own index): parents\n"
             "first), function (int64, each in [0, 2**31)), kept (bool). up (int64, or None: worked out here) is\n"
             "each node's nearest kept node at or above it (itself when kept), -1 for none; a node it names that\n"
             "is not kept holds no new node (filters.py drops empty nodes after working it out). Returns\n"
             "(new_of, nodes, new_parent) as bytearrays of int64: each original node's new node (its nearest\n"
             "kept node's, -1 without one), each new node's lowest original node (ascending), and each new\n"
             "node's parent (-1: the root). ValueError, before anything is made, for arrays of other lengths or\n"
             "types, or a parent, function or up out of range.");

static PyObject *
filters_keep(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *objs[4];
    Py_buffer views[4];
    int got = 0;
    PyObject *result = NULL;
    int64_t *up = NULL, *nodes = NULL, *new_parent = NULL;
    Slot *slots = NULL;
    PyObject *new_of_bytes = NULL;

    if (!PyArg_ParseTuple(args, "OOOO:keep", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    int given = objs[3] != Py_None;
    static const char *names[4] = {"parent", "function", "kept", "up"};
    static const Py_ssize_t sizes[4] = {8, 8, 1, 8};
    static const int integers[4] = {SIGNED, SIGNED, BOOLS, SIGNED};
    for (; got < 3 + given; got++) {
        if (get_typed(objs[got], &views[got], sizes[got], integers[got], 0, 0, names[got]) < 0) {
            goto done;
        }
    }
    Py_ssize_t n = views[0].len / 8;
    if (views[1].len / 8 != n || views[2].len != n || (given && views[3].len / 8 != n) || n >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "keep() needs parent, function, kept and up of one length, below 2**31");
        goto done;
    }
    const int64_t *parent = views[0].buf, *function = views[1].buf;
    const uint8_t *kept = views[2].buf;
    const int64_t *up_given = given ? views[3].buf : NULL;
    int64_t width = 1, count = 0;
    for (Py_ssize_t i = 0; i < n; i++) { /* checked whole first */
        if (parent[i] < -1 || parent[i] >= i || function[i] < 0 || function[i] > INT32_MAX ||
            (given && (up_given[i] < -1 || up_given[i] > i || (kept[i] && up_given[i] != i)))) {
            PyErr_SetString(PyExc_ValueError, "keep() needs every parent index in [-1, the node's own), every "
                                              "function in [0, 2**31) and every up in [-1, the node's own] (the "
                                              "node itself when kept)");
            goto done;
        }
        width = function[i] >= width ? function[i] + 1 : width;
        count += kept[i] != 0;
    }
    Py_ssize_t room = 64;
    while (room < 2 * count) {
        room *= 2;
    }
    new_of_bytes = PyByteArray_FromStringAndSize(NULL, n * 8);
    up = given ? NULL : malloc((size_t)n * 8 + 8);
    nodes = malloc((size_t)count * 8 + 8);
    new_parent = malloc((size_t)count * 8 + 8);
    slots = calloc((size_t)room, sizeof(Slot));
    if (new_of_bytes == NULL || (!given && up == NULL) || nodes == NULL || new_parent == NULL || slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* new_of holds each kept node's new node as it is made; a node's nearest kept node comes before it. */
    int64_t *new_of = (int64_t *)PyByteArray_AS_STRING(new_of_bytes);
    uint64_t mask = (uint64_t)room - 1;
    int64_t made = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t above = parent[i] < 0 ? -1 : given ? up_given[parent[i]] : up[parent[i]];
        if (!given) {
            up[i] = kept[i] ? i : above;
        }
        if (!kept[i]) { /* a given up may name a node that is not kept: it has no new node */
            int64_t nearest = given ? up_given[i] : up[i];
            new_of[i] = nearest < 0 || !kept[nearest] ? -1 : new_of[nearest];
            continue;
        }
        /* The nearest kept strict ancestor's new node is the new parent; -1 is the root. */
        int64_t under = above < 0 || !kept[above] ? -1 : new_of[above];
        uint64_t hash = mix64((uint64_t)((under + 1) * width + function[i]));
        uint32_t tag = (uint32_t)(hash >> 32);
        Slot *slot = slots + (hash & mask);
        while (slot->node != 0 && (slot->tag != tag || new_parent[slot->node - 1] != under ||
                                   function[nodes[slot->node - 1]] != function[i])) {
            slot = slots + ((uint64_t)(slot - slots + 1) & mask);
        }
        if (slot->node == 0) {
            nodes[made] = i;
            new_parent[made] = under;
            *slot = (Slot){.tag = tag, .node = (uint32_t)++made};
        }
        new_of[i] = (int64_t)slot->node - 1;
    }
    result = Py_BuildValue("(ONN)", new_of_bytes, PyByteArray_FromStringAndSize((const char *)nodes, made * 8),
                           PyByteArray_FromStringAndSize((const char *)new_parent, made * 8));
done:
    release_all(views, got);
    Py_XDECREF(new_of_bytes);
    free(up);
    free(nodes);
    free(new_parent);
    free(slots);
    return result;
}

PyDoc_STRVAR(on_paths_doc,
             "on_paths(parent, bits, /)\n--\n\n"
             "ORs each node's bits into its children's, from the root down, in place: afterwards bit b of a node is\n"
             "set when any node on its path from the root had it (a pattern matched there). parent is int64, each\n"
             "in [-1, its own index): parents first; bits is a writable uint8 column of one entry a node.\n"
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
    if (get_typed(objs[0], &views[0], 8, SIGNED, 0, 0, "parent") < 0) {
        return NULL;
    }
    got = 1;
    if (get_column(objs[1], &views[1], 1, UNSIGNED, 0, "bits") < 0) {
        goto fail;
    }
    got = 2;
    const int64_t *parent = views[0].buf;
    uint8_t *bits = views[1].buf;
    Py_ssize_t n = views[0].len / 8;
    if (views[1].len != n) {
        PyErr_SetString(PyExc_ValueError, "on_paths() needs parent and bits of one length");
        goto fail;
    }
    if (parents_first(parent, n, "on_paths") < 0) { /* checked whole first */
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parent[i] >= 0) {
            bits[i] |= bits[parent[i]];
        }
    }
    release_all(views, got);
    Py_RETURN_NONE;
fail:
    release_all(views, got);
    return NULL;
}

static PyMethodDef filters_methods[] = {
    {"keep", filters_keep, METH_VARARGS, keep_doc},
    {"on_paths", filters_on_paths, METH_VARARGS, on_paths_doc},
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
