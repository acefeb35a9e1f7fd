/*
 * server/store/_words.h: how the store's C extensions (_treeindex.c, _keyindex.c) take their
 * array arguments. Each takes numpy int64 arrays through the buffer protocol, with no copy; a
 * buffer of any other shape or format must be refused before a byte of it is read as a word.
 */
#ifndef STACKYARD_WORDS_H
#define STACKYARD_WORDS_H

#include <Python.h> /* after the includer's PY_SSIZE_T_CLEAN */

#include <string.h>

/* A C-contiguous buffer of 64-bit integers (numpy int64 or uint64, array.array('q')...). Any other object
 * is a TypeError that names the argument (numpy's own for a strided array, a ValueError, does not). */
static int
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

#endif
