/*
 * server/store/_words.h: how the C extensions (the store's _treeindex.c and _keyindex.c, the
 * query's _calltree.c, _filters.c and _sandwich.c) take their array arguments. Each takes numpy arrays through the buffer
 * protocol, with no copy; a buffer of any other shape or format must be refused before a byte of
 * it is read as a word.
 *
 * The functions are static inline so that an extension that uses only some of them compiles
 * without warnings about the others.
 */
#ifndef STACKYARD_WORDS_H
#define STACKYARD_WORDS_H

#include <Python.h> /* after the includer's PY_SSIZE_T_CLEAN */

#include <stdint.h>
#include <string.h>

/* A C-contiguous buffer of 64-bit integers (numpy int64 or uint64, array.array('q')...). Any other object
 * is a TypeError that names the argument (numpy's own for a strided array, a ValueError, does not). */
static inline int
get_words(PyObject *obj, Py_buffer *view, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            return -1;
        }
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous buffer of 64-bit integers (%S)", what,
                     value ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    if (*format == '<' || *format == '=' || *format == '@') {
        format++;
    }
    if (view->itemsize != 8 || strchr("qlQLn", *format) == NULL || format[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous buffer of 64-bit integers, not format '%s'", what,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* What a column holds: bools, signed or unsigned integers. */
#define BOOLS 0
#define SIGNED 1
#define UNSIGNED 2

/* Whether `view` holds `itemsize`-byte integers (SIGNED, UNSIGNED) or bools (BOOLS), in native order. */
static inline int
column_type_ok(const Py_buffer *view, Py_ssize_t itemsize, int integer)
{
    static const char *formats[3] = {"?", "bhilqn", "BHILQN"};
    const char *format = view->format ? view->format : "B";
    if (*format == '@' || *format == '=' || *format == '<') {
        format++;
    }
    return view->itemsize == itemsize && format[0] != '\0' && format[1] == '\0' &&
           strchr(formats[integer], format[0]) != NULL;
}

/* A C-contiguous column of `itemsize`-byte integers (SIGNED, UNSIGNED) or bools (BOOLS), writable when
 * `writable` is set, with room for ids below `size`. Any other width or type is refused (ValueError), as its
 * bytes would be misread. */
static inline int
get_typed(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int integer, Py_ssize_t size, int writable,
          const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    static const char *unsigned_names[4] = {"uint8", "uint16", "uint32", "uint64"};
    static const char *signed_names[4] = {"int8", "int16", "int32", "int64"};
    int width = itemsize == 1 ? 0 : itemsize == 2 ? 1 : itemsize == 4 ? 2 : 3;
    const char *type = integer == BOOLS ? "bool" : integer == UNSIGNED ? unsigned_names[width] : signed_names[width];
    const char *kind = writable ? "a writable column" : "a column";
    if (!column_type_ok(view, itemsize, integer)) {
        PyErr_Format(PyExc_ValueError, "%s must be %s of %s, not format '%s'", what, kind, type,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len / itemsize < size) {
        PyErr_Format(PyExc_ValueError, "%s must be %s of %s with room for id %zd", what, kind, type, size - 1);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Read-only columns of any length (get_typed) for objs[0..count): the k-th of sizes[k]-byte integers or bools
 * (integers[k]), named names[k] in a refusal. On a refusal those already got are released, so the caller
 * holds either all `count` views or none. */
static inline int
get_typed_columns(PyObject *const *objs, Py_buffer *views, int count, const Py_ssize_t *sizes, const int *integers,
                  const char *const *names)
{
    for (int got = 0; got < count; got++) {
        if (get_typed(objs[got], &views[got], sizes[got], integers[got], 0, 0, names[got]) < 0) {
            for (int k = 0; k < got; k++) {
                PyBuffer_Release(&views[k]);
            }
            return -1;
        }
    }
    return 0;
}

/* A writable column (get_typed), for the outputs and the tree's columns a call writes. */
static inline int
get_column(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, int integer, Py_ssize_t size, const char *what)
{
    return get_typed(obj, view, itemsize, integer, size, 1, what);
}

/* Releases the first `count` of `views`: every exit of a call that took them. */
static inline void
release_all(Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&views[i]);
    }
}

/*
 * A call tree's parent or function indices: int32 (the trees a query gathers from the store, whose positions and
 * frames are below 2**31: 4 bytes a node where int64 took 8, 137 MB of a churny day's 17 M-node flame graph) or
 * int64 (the trees the filters and the line views make, and callers' own arrays). A kernel reads either through
 * indices_at(); the width is one predictable branch a read, where a copy to int64 would cost the memory saved.
 */
typedef struct {
    const void *buf;
    Py_ssize_t len;
    int wide; /* 1: int64, 0: int32 */
} Indices;

static inline int64_t
indices_at(const Indices *ix, Py_ssize_t i)
{
    return ix->wide ? ((const int64_t *)ix->buf)[i] : (int64_t)((const int32_t *)ix->buf)[i];
}

/* A C-contiguous buffer of int32 or int64 (signed) as Indices, read-only; anything else is a ValueError naming
 * `what`, before a byte of it is read. */
static inline int
get_indices(PyObject *obj, Py_buffer *view, Indices *ix, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    int wide = column_type_ok(view, 8, SIGNED);
    if (!wide && !column_type_ok(view, 4, SIGNED)) {
        PyErr_Format(PyExc_ValueError, "%s must be a column of int32 or int64, not format '%s'", what,
                     view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    ix->buf = view->buf;
    ix->len = view->len / view->itemsize;
    ix->wide = wide;
    return 0;
}

/* A call tree's parent and function columns (objs[0] and objs[1]) as Indices in views[0] and views[1]: both got,
 * or neither (a refusal of the second releases the first). */
static inline int
get_parent_function(PyObject *const *objs, Py_buffer *views, Indices *parent, Indices *function)
{
    if (get_indices(objs[0], &views[0], parent, "parent") < 0) {
        return -1;
    }
    if (get_indices(objs[1], &views[1], function, "function") < 0) {
        PyBuffer_Release(&views[0]);
        return -1;
    }
    return 0;
}

/* Whether every parent index is in [-1, the node's own): the nodes of a call tree's arrays come parents first,
 * which each pass over them relies on. 0, or -1 with a ValueError naming `call`, before anything is written. */
static inline int
parents_first(const Indices *parent, const char *call)
{
    for (Py_ssize_t i = 0; i < parent->len; i++) {
        int64_t up = indices_at(parent, i);
        if (up < -1 || up >= i) {
            PyErr_Format(PyExc_ValueError, "%s() needs every parent index in [-1, the node's own)", call);
            return -1;
        }
    }
    return 0;
}

#endif
