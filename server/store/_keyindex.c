/*
 * server.store._keyindex: ids by 64-bit integer key, for the tables that
 * answer dedup from memory (sample keys by their hash, line frames by their
 * packed (function, line, inlined) key).
 *
 * Why this exists: those tables kept their keys in sorted numpy arrays and
 * answered a profile's ~2,000 unsorted probes with a binary search each
 * (~100 ns a probe, branchy, cold cache), and merged new keys in with
 * np.insert, which copies the whole index on every profile with new keys and
 * so costs more the bigger the store grows. A hash table answers a probe
 * with about one cache miss, and adding a key costs the same whatever the
 * table's size (growth by doubling, amortised).
 *
 * Table: open addressing with linear probing over 16-byte slots (key, id),
 * the slot count a power of two. An id of 0 marks an empty slot, so ids must
 * be positive; a key can be any int64 (sample hashes use all 64 bits). Keys
 * are spread by splitmix64's finaliser: the line frames' packed keys are small
 * integers side by side, which the low bits alone would put in runs. The
 * table doubles when it passes MAX_LOAD, so it is between a third and 70 %
 * full: 23 to 46 bytes a key, where the sorted arrays took 16 (and twice
 * that while np.insert copied them).
 *
 * lookup and add prefetch the slot of the key PREFETCH places ahead, so the
 * cache misses of a batch overlap instead of coming one after another.
 *
 * Nothing here keeps a Python object or releases the GIL; the callers hold
 * their table's lock around every call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "../pprof/_mix.h"
#include "_words.h"

/* The table grows (doubles) once more than MAX_LOAD_NUM / MAX_LOAD_DEN of its slots are used. */
#define MAX_LOAD_NUM 7
#define MAX_LOAD_DEN 10
#define MIN_SLOTS 64
/* A table past this many slots (16 bytes each) is refused: 2**40 slots would be 16 TiB. */
#define MAX_SLOTS ((uint64_t)1 << 40)
/* Probes whose slot lookup() asks the cache for ahead of reading it. */
#ifndef PREFETCH
#define PREFETCH 8
#endif

typedef struct {
    int64_t key;
    int64_t id; /* 0: empty */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask; /* slot count - 1; 0 with no slots */
    Py_ssize_t used;
} KeyIndexObject;

/* Whether `used` keys fit in `slots` slots without passing the load limit. */
static inline int
fits(uint64_t used, uint64_t slots)
{
    return used * MAX_LOAD_DEN <= slots * MAX_LOAD_NUM;
}

/* The slot holding `key`, or the empty slot where it would go. The table must have slots. */
static inline uint64_t
find(const KeyIndexObject *self, int64_t key)
{
    uint64_t at = mix64(key) & self->mask;

    while (self->slots[at].id != 0 && self->slots[at].key != key) {
        at = (at + 1) & self->mask;
    }
    return at;
}

/* Room for `want` keys in all; -1 with an exception set. Keys keep their ids, the slots move. */
static int
make_room(KeyIndexObject *self, uint64_t want)
{
    uint64_t slots = self->slots ? self->mask + 1 : 0;

    if (slots && fits(want, slots)) {
        return 0;
    }
    uint64_t bigger = slots ? slots : MIN_SLOTS;
    while (!fits(want, bigger)) {
        bigger *= 2;
        if (bigger > MAX_SLOTS) {
            PyErr_SetString(PyExc_OverflowError, "KeyIndex cannot hold that many keys");
            return -1;
        }
    }
    if (bigger == slots) {
        return 0;
    }
    Slot *grown = PyMem_RawCalloc((size_t)bigger, sizeof(Slot));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t old = 0; old < slots; old++) {
        if (self->slots[old].id != 0) {
            uint64_t at = mix64(self->slots[old].key) & (bigger - 1);
            while (grown[at].id != 0) {
                at = (at + 1) & (bigger - 1);
            }
            grown[at] = self->slots[old];
        }
    }
    PyMem_RawFree(self->slots);
    self->slots = grown;
    self->mask = bigger - 1;
    return 0;
}

/* Empty slot `at` (which holds a key), moving later keys of its run back so every key stays reachable
 * from its home slot without crossing an empty one. */
static void
remove_at(KeyIndexObject *self, uint64_t at)
{
    uint64_t hole = at;

    for (uint64_t next = (hole + 1) & self->mask; self->slots[next].id != 0; next = (next + 1) & self->mask) {
        uint64_t home = mix64(self->slots[next].key) & self->mask;
        /* The key at `next` may fill the hole unless its home lies after the hole, up to `next`. */
        if (((next - home) & self->mask) >= ((next - hole) & self->mask)) {
            self->slots[hole] = self->slots[next];
            hole = next;
        }
    }
    self->slots[hole].id = 0;
    self->slots[hole].key = 0;
}

/* --- KeyIndex methods ------------------------------------------------------ */

static PyObject *
keyindex_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":KeyIndex", keywords)) {
        return NULL;
    }
    return type->tp_alloc(type, 0); /* no slots until the first key */
}

static void
keyindex_dealloc(PyObject *op)
{
    KeyIndexObject *self = (KeyIndexObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    PyMem_RawFree(self->slots);
    self->slots = NULL;
    type->tp_free(op);
    Py_DECREF(type);
}

static Py_ssize_t
keyindex_length(PyObject *op)
{
    return ((KeyIndexObject *)op)->used;
}

static PyObject *
keyindex_capacity(PyObject *op, void *Py_UNUSED(closure))
{
    KeyIndexObject *self = (KeyIndexObject *)op;

    return PyLong_FromUnsignedLongLong(self->slots ? self->mask + 1 : 0);
}

static PyObject *
keyindex_reserve(PyObject *op, PyObject *arg)
{
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);

    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "reserve() needs a size of at least 0");
        return NULL;
    }
    if (size > 0 && make_room((KeyIndexObject *)op, (uint64_t)size) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
keyindex_add(PyObject *op, PyObject *args, PyObject *kwargs)
{
    KeyIndexObject *self = (KeyIndexObject *)op;
    static char *keywords[] = {"", "", "replace", NULL};
    PyObject *key_obj, *id_obj;
    Py_buffer keys_view, ids_view;
    int replace = 0;
    Py_ssize_t i = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$p:add", keywords, &key_obj, &id_obj, &replace)) {
        return NULL;
    }
    if (get_words(key_obj, &keys_view, "keys") < 0) {
        return NULL;
    }
    if (get_words(id_obj, &ids_view, "ids") < 0) {
        PyBuffer_Release(&keys_view);
        return NULL;
    }
    Py_ssize_t count = keys_view.len / 8;
    const int64_t *keys = keys_view.buf, *ids = ids_view.buf;
    if (ids_view.len / 8 != count) {
        PyErr_SetString(PyExc_ValueError, "add() needs keys and ids of one length");
        goto fail;
    }
    if (count == 0) {
        goto done;
    }
    /* Checked whole first, so a refused call changes nothing. */
    for (i = 0; i < count; i++) {
        if (ids[i] < 1) {
            PyErr_Format(PyExc_ValueError, "key %lld: ids must be at least 1, not %lld", (long long)keys[i],
                         (long long)ids[i]);
            goto fail;
        }
    }
    for (i = 0; !replace && self->used > 0 && i < count; i++) {
        if (i + PREFETCH < count) {
            __builtin_prefetch(&self->slots[mix64(keys[i + PREFETCH]) & self->mask]);
        }
        if (self->slots[find(self, keys[i])].id != 0) {
            PyErr_Format(PyExc_ValueError, "key %lld is indexed already", (long long)keys[i]);
            goto fail;
        }
    }
    /* Growing first: no memory error can stop the loop below halfway. */
    if (make_room(self, (uint64_t)self->used + (uint64_t)count) < 0) {
        goto fail;
    }
    for (i = 0; i < count; i++) {
        if (i + PREFETCH < count) {
            __builtin_prefetch(&self->slots[mix64(keys[i + PREFETCH]) & self->mask], 1);
        }
        uint64_t at = find(self, keys[i]);
        if (self->slots[at].id != 0) {
            if (replace) {
                self->slots[at].id = ids[i];
                continue;
            }
            /* None was indexed before the call: a key twice in it. Take out what this call put in. */
            PyErr_Format(PyExc_ValueError, "key %lld is given twice", (long long)keys[i]);
            for (Py_ssize_t back = 0; back < i; back++) {
                remove_at(self, find(self, keys[back]));
            }
            self->used -= i;
            goto fail;
        }
        self->slots[at].key = keys[i];
        self->slots[at].id = ids[i];
        self->used++;
    }
done:
    PyBuffer_Release(&keys_view);
    PyBuffer_Release(&ids_view);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&keys_view);
    PyBuffer_Release(&ids_view);
    return NULL;
}

static PyObject *
keyindex_lookup(PyObject *op, PyObject *arg)
{
    KeyIndexObject *self = (KeyIndexObject *)op;
    Py_buffer view;
    PyObject *result;

    if (get_words(arg, &view, "keys") < 0) {
        return NULL;
    }
    Py_ssize_t count = view.len / 8;
    result = PyBytes_FromStringAndSize(NULL, count * 8);
    if (result != NULL) {
        const int64_t *keys = view.buf;
        int64_t *out = (int64_t *)PyBytes_AS_STRING(result);
        if (self->used == 0) {
            for (Py_ssize_t i = 0; i < count; i++) {
                out[i] = -1;
            }
        }
        else {
            for (Py_ssize_t i = 0; i < count; i++) {
                if (i + PREFETCH < count) {
                    __builtin_prefetch(&self->slots[mix64(keys[i + PREFETCH]) & self->mask]);
                }
                const Slot *slot = &self->slots[find(self, keys[i])];
                out[i] = slot->id != 0 ? slot->id : -1;
            }
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef keyindex_methods[] = {
    {"reserve", keyindex_reserve, METH_O,
     "reserve(size, /)\n--\n\nRoom for `size` keys in all, so adding keys up to that many never grows the table."},
    {"add", (PyCFunction)(void (*)(void))keyindex_add, METH_VARARGS | METH_KEYWORDS,
     "add(keys, ids, /, *, replace=False)\n--\n\nIndex keys with their ids (buffers of int64; ids at least 1).\n"
     "ValueError, with nothing added, for an id below 1, a key indexed already or a key given twice; with\n"
     "replace, such a key takes the id given (the last, if given twice) instead."},
    {"lookup", keyindex_lookup, METH_O,
     "lookup(keys, /)\n--\n\nThe id of each key (a buffer of int64) as int64 bytes, -1 where there is none."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef keyindex_getset[] = {
    {"capacity", keyindex_capacity, NULL, "slots in the table (16 bytes each; it doubles past 70 % full)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot keyindex_slots[] = {
    {Py_tp_new, keyindex_new},
    {Py_tp_dealloc, keyindex_dealloc},
    {Py_tp_methods, keyindex_methods},
    {Py_tp_getset, keyindex_getset},
    {Py_sq_length, keyindex_length},
    {Py_tp_doc, "KeyIndex()\n--\n\nIds (at least 1) by int64 key: an open-addressing hash table, 23 to 46 bytes "
                "a key."},
    {0, NULL},
};

static PyType_Spec keyindex_spec = {
    .name = "server.store._keyindex.KeyIndex",
    .basicsize = sizeof(KeyIndexObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = keyindex_slots,
};

static int
keyindex_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &keyindex_spec, NULL);
    int result;

    if (type == NULL) {
        return -1;
    }
    result = PyModule_AddObjectRef(module, "KeyIndex", type);
    Py_DECREF(type);
    return result;
}

static PyModuleDef_Slot keyindex_module_slots[] = {
    {Py_mod_exec, keyindex_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef keyindex_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.store._keyindex",
    .m_doc = "Ids by int64 key in a hash table: the sample keys' and line frames' dedup index (see "
              "server.store.samplekeys and server.store.lineframes).",
    .m_size = 0,
    .m_slots = keyindex_module_slots,
};

PyMODINIT_FUNC
PyInit__keyindex(void)
{
    return PyModuleDef_Init(&keyindex_module);
}
