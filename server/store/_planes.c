/*
 * server.store._planes: the byte planes of a run of integer rows, as server.store.columncodec stores them.
 *
 * Why this exists: every profile that brings something new writes up to four such segments (its new
 * functions' two, its sample keys', its line vectors' head). Coded with numpy, a segment took a dozen
 * array operations a column whatever its length: ~50 us for a handful of rows, and ~0.6-0.8 ms of a
 * high-churn profile's ingest over the four, most of it the calls themselves. Here each column is two
 * passes over its values: one for the largest zigzag-coded value and step, one writing the planes.
 *
 * The layout is columncodec's (its docstring is the reference): column 0 is the ids' steps from the first
 * id (0, then each id minus the one before), never delta-coded; each other column is its values or, when
 * that needs fewer byte planes, the differences from the row before (wrapping, as the decoder's cumulative
 * sum does), zigzag-coded; then the planes, column after column, plane p holding byte p of every coded
 * value. The extension returns the descriptor bytes and the planes; the caller compresses the planes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_words.h"

#define DELTA 0x10
/* Columns beside the ids: the widest segment written has four (function rows). */
#define MAX_COLUMNS 16

static inline uint64_t
zigzag(uint64_t value)
{
    return (value << 1) ^ ((uint64_t)0 - (value >> 63));
}

/* Byte planes a column whose largest coded value is `top` needs. */
static inline int
planes_of(uint64_t top)
{
    int planes = 0;
    while (top) {
        planes++;
        top >>= 8;
    }
    return planes;
}

/* Writes `planes` byte planes of the coded values of column `values` (deltas from the row before when
 * `delta`; the ids' steps when `ids`) to out. */
static void
write_planes(uint8_t *out, const int64_t *values, Py_ssize_t count, int planes, int delta, int ids)
{
    for (int p = 0; p < planes; p++) {
        uint8_t *plane = out + (Py_ssize_t)p * count;
        int shift = 8 * p;
        uint64_t before = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            uint64_t value = (uint64_t)values[i];
            uint64_t coded;
            if (ids) {
                coded = zigzag(i ? value - before : 0);
            }
            else {
                coded = zigzag(delta ? value - before : value);
            }
            before = value;
            plane[i] = (uint8_t)(coded >> shift);
        }
    }
}

PyDoc_STRVAR(planes_rows_doc,
             "rows(ids, columns, /)\n--\n\n"
             "The descriptor bytes (one a column, the ids' first) and the byte planes of rows ids[i] with\n"
             "columns[c][i], in server.store.columncodec's layout, ready for the compressor. Every argument is a\n"
             "contiguous int64 buffer; ValueError when the ids are not positive and increasing or a column is\n"
             "not one value an id, TypeError for a buffer of another type.");

static PyObject *
planes_rows(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *ids_obj, *columns_obj, *sequence = NULL, *descriptors = NULL, *planes = NULL, *result = NULL;
    Py_buffer views[MAX_COLUMNS + 1];
    int got = 0;

    if (!PyArg_ParseTuple(args, "OO:rows", &ids_obj, &columns_obj)) {
        return NULL;
    }
    sequence = PySequence_Fast(columns_obj, "columns must be a sequence of int64 buffers");
    if (sequence == NULL) {
        return NULL;
    }
    Py_ssize_t width = PySequence_Fast_GET_SIZE(sequence);
    if (width > MAX_COLUMNS) {
        PyErr_Format(PyExc_ValueError, "a segment holds at most %d columns beside its ids", MAX_COLUMNS);
        goto done;
    }
    if (get_words(ids_obj, &views[0], "ids") < 0) {
        goto done;
    }
    got = 1;
    Py_ssize_t count = views[0].len / 8;
    for (Py_ssize_t c = 0; c < width; c++) {
        if (get_words(PySequence_Fast_GET_ITEM(sequence, c), &views[got], "a column") < 0) {
            goto done;
        }
        got++;
        if (views[got - 1].len / 8 != count) {
            PyErr_SetString(PyExc_ValueError, "every column of a segment holds one value per id");
            goto done;
        }
    }
    const int64_t *ids = views[0].buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i == 0 ? ids[0] < 1 : ids[i] <= ids[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "segment ids must be positive and increasing");
            goto done;
        }
    }
    /* First pass: each column's planes, as values and as steps from the row before. */
    uint8_t chosen[MAX_COLUMNS + 1];
    Py_ssize_t total = 0;
    {
        uint64_t top = 0;
        for (Py_ssize_t i = 1; i < count; i++) {
            uint64_t coded = zigzag((uint64_t)ids[i] - (uint64_t)ids[i - 1]);
            top = coded > top ? coded : top;
        }
        chosen[0] = (uint8_t)planes_of(top);
        total += chosen[0];
    }
    for (int c = 1; c < got; c++) {
        const int64_t *values = views[c].buf;
        uint64_t top = 0, top_steps = 0, before = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            uint64_t value = (uint64_t)values[i];
            uint64_t coded = zigzag(value), step = zigzag(value - before);
            top = coded > top ? coded : top;
            top_steps = step > top_steps ? step : top_steps;
            before = value;
        }
        int as_values = planes_of(top), as_steps = planes_of(top_steps);
        /* Steps only pay with two rows or more (one row's step is its value). */
        chosen[c] = (uint8_t)(count > 1 && as_steps < as_values ? as_steps | DELTA : as_values);
        total += chosen[c] & 0x0F;
    }
    descriptors = PyBytes_FromStringAndSize((const char *)chosen, got);
    planes = PyBytes_FromStringAndSize(NULL, total * count);
    if (descriptors == NULL || planes == NULL) {
        goto done;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(planes);
    for (int c = 0; c < got; c++) {
        int used = chosen[c] & 0x0F;
        write_planes(out, views[c].buf, count, used, (chosen[c] & DELTA) != 0, c == 0);
        out += (Py_ssize_t)used * count;
    }
    result = PyTuple_Pack(2, descriptors, planes);
done:
    Py_XDECREF(descriptors);
    Py_XDECREF(planes);
    release_all(views, got);
    Py_DECREF(sequence);
    return result;
}

static PyMethodDef planes_methods[] = {
    {"rows", planes_rows, METH_VARARGS, planes_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef planes_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.store._planes",
    .m_doc = "Byte planes of integer rows, as server.store.columncodec stores them.",
    .m_size = 0,
    .m_methods = planes_methods,
};

PyMODINIT_FUNC
PyInit__planes(void)
{
    return PyModuleDef_Init(&planes_module);
}
