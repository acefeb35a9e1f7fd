/*
 * server.pprof._wire: one pass from pprof protobuf bytes to flat columns.
 *
 * Why this exists: reading a profile through upb message objects creates a
 * Python wrapper for every Sample, Location and Line, which costs 15-30 ms on
 * a production profile. Here the wire format of perftools.profiles.Profile
 * (see profile.proto) is walked once in C, appending every scalar to a
 * growable buffer of 64-bit words; each buffer becomes one `bytes` object that
 * Python wraps with numpy.frombuffer without a copy.
 *
 * Safety rules, since this parses untrusted uploads:
 *   - every read goes through a Reader whose [pos, end) is checked first, and
 *     a length-delimited field gets a sub-Reader clipped to its own length, so
 *     nothing can run past its enclosing message;
 *   - buffer growth checks for size overflow before multiplying;
 *   - every error sets ValueError("<problem> at offset N") and returns -1, and
 *     the single caller (wire_parse) frees everything on both paths.
 *
 * Deliberately the same as upb where both accept an input, so the pure-Python
 * fallback in columns.py produces identical columns: last value wins for
 * singular fields, the singular message period_type merges field by field,
 * repeated scalars may be packed or not, bits of a 10-byte varint beyond 64
 * are dropped, and tags longer than 5 bytes or above 2^32 are rejected.
 * Deliberately stricter than upb: groups, and known fields sent with the wrong
 * wire type (upb keeps those as unknown fields; here they mean corrupt data).
 * Deliberately more lenient than upb: the string table is decoded as UTF-8
 * with errors="replace", because Go does not promise valid UTF-8.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Growable buffer of 64-bit words                                           */
/* ------------------------------------------------------------------------ */

/* Holds the raw 64-bit two's complement words of int64 and uint64 fields
 * alike: a decoded varint already is that word, so no conversion happens here
 * and Python picks the signedness through the dtype. */
typedef struct {
    uint64_t *data;
    size_t len;
    size_t cap;
} Int64Buf;

#define INT64BUF_MIN_CAP 16

/* The final bytes object needs cap * 8 <= PY_SSIZE_T_MAX. */
#define INT64BUF_MAX_CAP ((size_t)PY_SSIZE_T_MAX / sizeof(uint64_t))

/* Makes room for `extra` more words, at least doubling the capacity so that
 * a run of pushes costs amortized O(1). */
static int
int64buf_reserve(Int64Buf *buf, size_t extra)
{
    size_t new_cap;
    uint64_t *data;

    if (extra <= buf->cap - buf->len) {
        return 0;
    }
    if (extra > INT64BUF_MAX_CAP - buf->len) {
        PyErr_NoMemory();
        return -1;
    }
    new_cap = buf->cap <= INT64BUF_MAX_CAP / 2 ? buf->cap * 2 : INT64BUF_MAX_CAP;
    if (new_cap < buf->len + extra) {
        new_cap = buf->len + extra;
    }
    if (new_cap < INT64BUF_MIN_CAP) {
        new_cap = INT64BUF_MIN_CAP;
    }
    data = PyMem_Realloc(buf->data, new_cap * sizeof(uint64_t));
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = new_cap;
    return 0;
}

static inline int
int64buf_push(Int64Buf *buf, uint64_t value)
{
    if (buf->len == buf->cap && int64buf_reserve(buf, 1) < 0) {
        return -1;
    }
    buf->data[buf->len++] = value;
    return 0;
}

static void
int64buf_free(Int64Buf *buf)
{
    PyMem_Free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

/* The columns are little-endian on every host, so the Python side can name
 * one dtype; on big-endian hosts the words are swapped once, at the end. */
static PyObject *
int64buf_to_bytes(Int64Buf *buf)
{
#if PY_BIG_ENDIAN
    for (size_t i = 0; i < buf->len; i++) {
        uint64_t v = buf->data[i];
        uint64_t swapped = 0;
        for (int b = 0; b < 8; b++) {
            swapped = (swapped << 8) | ((v >> (8 * b)) & 0xff);
        }
        buf->data[i] = swapped;
    }
#endif
    /* len <= cap <= INT64BUF_MAX_CAP: the size cannot overflow. */
    return PyBytes_FromStringAndSize((const char *)buf->data, (Py_ssize_t)(buf->len * sizeof(uint64_t)));
}

/* ------------------------------------------------------------------------ */
/* Reader over one message's bytes                                           */
/* ------------------------------------------------------------------------ */

enum {
    WIRE_VARINT = 0,
    WIRE_I64 = 1,
    WIRE_LEN = 2,
    WIRE_START_GROUP = 3,
    WIRE_END_GROUP = 4,
    WIRE_I32 = 5,
};

typedef struct {
    const uint8_t *origin; /* start of the whole input: only for error offsets */
    const uint8_t *pos;
    const uint8_t *end; /* end of the message being read, not of the input */
    const char *message; /* message type name, for error messages */
} Reader;

typedef struct {
    uint32_t field;
    int wire;
    const uint8_t *at; /* where the tag starts */
} Tag;

static int
fail_at(const Reader *r, const uint8_t *at, const char *problem)
{
    PyErr_Format(PyExc_ValueError, "%s at offset %zd", problem, (Py_ssize_t)(at - r->origin));
    return -1;
}

static inline int
reader_done(const Reader *r)
{
    return r->pos >= r->end;
}

static int
read_varint_slow(Reader *r, uint64_t *out)
{
    const uint8_t *p = r->pos;
    uint64_t value = 0;

    /* Ten bytes carry 70 bits; like upb, the bits past 64 are dropped. */
    for (unsigned shift = 0; shift < 70; shift += 7) {
        uint8_t byte;
        if (p >= r->end) {
            return fail_at(r, r->pos, "truncated varint");
        }
        byte = *p++;
        if (shift < 64) {
            value |= (uint64_t)(byte & 0x7f) << shift;
        }
        if ((byte & 0x80) == 0) {
            r->pos = p;
            *out = value;
            return 0;
        }
    }
    return fail_at(r, r->pos, "varint longer than 10 bytes");
}

/* Most varints in a profile (tags, lengths, ids, line numbers) take one or
 * two bytes; handling those inline saves about 15% of the parse. */
static inline int
read_varint(Reader *r, uint64_t *out)
{
    const uint8_t *p = r->pos;

    if (p < r->end && p[0] < 0x80) {
        *out = p[0];
        r->pos = p + 1;
        return 0;
    }
    if (r->end - p >= 2 && p[1] < 0x80) {
        *out = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
        r->pos = p + 2;
        return 0;
    }
    return read_varint_slow(r, out);
}

static int
read_tag(Reader *r, Tag *tag)
{
    const uint8_t *at = r->pos;
    uint64_t value;

    if (read_varint(r, &value) < 0) {
        return -1;
    }
    /* Same limits as upb: a tag is at most 5 bytes and fits in 32 bits. */
    if (r->pos - at > 5 || value > UINT32_MAX) {
        return fail_at(r, at, "invalid tag");
    }
    if ((value >> 3) == 0) {
        return fail_at(r, at, "invalid field number 0");
    }
    tag->field = (uint32_t)(value >> 3);
    tag->wire = (int)(value & 7);
    tag->at = at;
    switch (tag->wire) {
    case WIRE_VARINT:
    case WIRE_I64:
    case WIRE_LEN:
    case WIRE_I32:
        return 0;
    case WIRE_START_GROUP:
    case WIRE_END_GROUP:
        return fail_at(r, at, "unsupported group wire type");
    default:
        return fail_at(r, at, "invalid wire type");
    }
}

/* Splits off the payload of a length-delimited field as its own Reader. */
static int
read_submessage(Reader *r, const char *message, Reader *sub)
{
    const uint8_t *at = r->pos;
    uint64_t len;

    if (read_varint(r, &len) < 0) {
        return -1;
    }
    if (len > (uint64_t)(r->end - r->pos)) {
        return fail_at(r, at, "length runs past the end of its message");
    }
    sub->origin = r->origin;
    sub->pos = r->pos;
    sub->end = r->pos + len;
    sub->message = message;
    r->pos = sub->end;
    return 0;
}

static int
skip_bytes(Reader *r, const Tag *tag, size_t n)
{
    if ((size_t)(r->end - r->pos) < n) {
        return fail_at(r, tag->at, "truncated fixed-width field");
    }
    r->pos += n;
    return 0;
}

static int
skip_field(Reader *r, const Tag *tag)
{
    uint64_t ignored;
    Reader payload;

    switch (tag->wire) {
    case WIRE_VARINT:
        return read_varint(r, &ignored);
    case WIRE_I64:
        return skip_bytes(r, tag, 8);
    case WIRE_LEN:
        return read_submessage(r, "unknown", &payload);
    case WIRE_I32:
        return skip_bytes(r, tag, 4);
    default: /* read_tag lets no other wire type through */
        return fail_at(r, tag->at, "invalid wire type");
    }
}

static int
wrong_wire_type(const Reader *r, const Tag *tag, const char *expected)
{
    PyErr_Format(PyExc_ValueError, "wire type %d for field %u of %s (expected %s) at offset %zd", tag->wire,
                 (unsigned)tag->field, r->message, expected, (Py_ssize_t)(tag->at - r->origin));
    return -1;
}

static int
read_varint_field(Reader *r, const Tag *tag, uint64_t *out)
{
    if (tag->wire != WIRE_VARINT) {
        return wrong_wire_type(r, tag, "0");
    }
    return read_varint(r, out);
}

static int
read_len_field(Reader *r, const Tag *tag, const char *message, Reader *sub)
{
    if (tag->wire != WIRE_LEN) {
        return wrong_wire_type(r, tag, "2");
    }
    return read_submessage(r, message, sub);
}

/* A repeated varint field: one value, or a packed run of them. */
static int
read_repeated_varint(Reader *r, const Tag *tag, Int64Buf *out)
{
    uint64_t value;

    if (tag->wire == WIRE_VARINT) {
        return read_varint(r, &value) < 0 ? -1 : int64buf_push(out, value);
    }
    if (tag->wire == WIRE_LEN) {
        Reader packed;
        if (read_submessage(r, r->message, &packed) < 0) {
            return -1;
        }
        /* Each varint takes at least one byte: reserving one word per byte
         * lets the loop below store without checking capacity. */
        if (int64buf_reserve(out, (size_t)(packed.end - packed.pos)) < 0) {
            return -1;
        }
        while (!reader_done(&packed)) {
            if (read_varint(&packed, &value) < 0) {
                return -1;
            }
            out->data[out->len++] = value;
        }
        return 0;
    }
    return wrong_wire_type(r, tag, "0 or 2");
}

/* Reads a message whose known fields are all singular varints numbered
 * 1..n_fields, into values[field - 1]. Fields absent from the bytes keep what
 * values[] held, which is both proto3's default (callers zero it) and the
 * merge semantics of a repeated singular message (callers pass the old one). */
static int
read_scalar_message(Reader *r, uint64_t *values, uint32_t n_fields)
{
    Tag tag;

    while (!reader_done(r)) {
        if (read_tag(r, &tag) < 0) {
            return -1;
        }
        if (tag.field <= n_fields) {
            if (read_varint_field(r, &tag, &values[tag.field - 1]) < 0) {
                return -1;
            }
        }
        else if (skip_field(r, &tag) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The columns                                                               */
/* ------------------------------------------------------------------------ */

typedef enum {
    COL_SAMPLE_TYPE,
    COL_SAMPLE_LOC_OFFSETS,
    COL_SAMPLE_LOCS,
    COL_SAMPLE_VALUE_OFFSETS,
    COL_SAMPLE_VALUES,
    COL_SAMPLE_LABEL_OFFSETS,
    COL_LABEL_KEY,
    COL_LABEL_STR,
    COL_LABEL_NUM,
    COL_LABEL_NUM_UNIT,
    COL_MAPPING_ID,
    COL_MAPPING_FILENAME,
    COL_MAPPING_BUILD_ID,
    COL_MAPPING_MEMORY_START,
    COL_MAPPING_MEMORY_LIMIT,
    COL_MAPPING_FILE_OFFSET,
    COL_LOCATION_ID,
    COL_LOCATION_MAPPING_ID,
    COL_LOCATION_ADDRESS,
    COL_LOCATION_LINE_OFFSETS,
    COL_LINE_FUNCTION_ID,
    COL_LINE_LINE,
    COL_FUNCTION_ID,
    COL_FUNCTION_NAME,
    COL_FUNCTION_SYSTEM_NAME,
    COL_FUNCTION_FILENAME,
    COL_FUNCTION_START_LINE,
    COL_COMMENT,
    N_COLUMNS
} Column;

static const char *const COLUMN_NAMES[N_COLUMNS] = {
    [COL_SAMPLE_TYPE] = "sample_type",
    [COL_SAMPLE_LOC_OFFSETS] = "sample_loc_offsets",
    [COL_SAMPLE_LOCS] = "sample_locs",
    [COL_SAMPLE_VALUE_OFFSETS] = "sample_value_offsets",
    [COL_SAMPLE_VALUES] = "sample_values",
    [COL_SAMPLE_LABEL_OFFSETS] = "sample_label_offsets",
    [COL_LABEL_KEY] = "label_key",
    [COL_LABEL_STR] = "label_str",
    [COL_LABEL_NUM] = "label_num",
    [COL_LABEL_NUM_UNIT] = "label_num_unit",
    [COL_MAPPING_ID] = "mapping_id",
    [COL_MAPPING_FILENAME] = "mapping_filename",
    [COL_MAPPING_BUILD_ID] = "mapping_build_id",
    [COL_MAPPING_MEMORY_START] = "mapping_memory_start",
    [COL_MAPPING_MEMORY_LIMIT] = "mapping_memory_limit",
    [COL_MAPPING_FILE_OFFSET] = "mapping_file_offset",
    [COL_LOCATION_ID] = "location_id",
    [COL_LOCATION_MAPPING_ID] = "location_mapping_id",
    [COL_LOCATION_ADDRESS] = "location_address",
    [COL_LOCATION_LINE_OFFSETS] = "location_line_offsets",
    [COL_LINE_FUNCTION_ID] = "line_function_id",
    [COL_LINE_LINE] = "line_line",
    [COL_FUNCTION_ID] = "function_id",
    [COL_FUNCTION_NAME] = "function_name",
    [COL_FUNCTION_SYSTEM_NAME] = "function_system_name",
    [COL_FUNCTION_FILENAME] = "function_filename",
    [COL_FUNCTION_START_LINE] = "function_start_line",
    [COL_COMMENT] = "comment",
};

/* Singular int64 fields of Profile, by field number. */
typedef enum {
    SCALAR_DROP_FRAMES,
    SCALAR_KEEP_FRAMES,
    SCALAR_TIME_NANOS,
    SCALAR_DURATION_NANOS,
    SCALAR_PERIOD,
    SCALAR_DEFAULT_SAMPLE_TYPE,
    N_SCALARS
} Scalar;

static const char *const SCALAR_NAMES[N_SCALARS] = {
    [SCALAR_DROP_FRAMES] = "drop_frames",
    [SCALAR_KEEP_FRAMES] = "keep_frames",
    [SCALAR_TIME_NANOS] = "time_nanos",
    [SCALAR_DURATION_NANOS] = "duration_nanos",
    [SCALAR_PERIOD] = "period",
    [SCALAR_DEFAULT_SAMPLE_TYPE] = "default_sample_type",
};

typedef struct {
    Int64Buf col[N_COLUMNS];
    PyObject *strings; /* list[str] */
    uint64_t scalar[N_SCALARS];
    uint64_t period_type[2]; /* ValueType.type, ValueType.unit */
    int has_period_type;
} Profile;

static int
push_offset(Profile *prof, Column offsets, Column flat)
{
    return int64buf_push(&prof->col[offsets], (uint64_t)prof->col[flat].len);
}

/* ------------------------------------------------------------------------ */
/* One function per message type                                             */
/* ------------------------------------------------------------------------ */

typedef int (*MessageParser)(Reader *r, Profile *prof);

/* A message-typed field: its payload, clipped to its length, goes to parse. */
static int
parse_nested(Reader *r, const Tag *tag, const char *message, MessageParser parse, Profile *prof)
{
    Reader sub;

    if (read_len_field(r, tag, message, &sub) < 0) {
        return -1;
    }
    return parse(&sub, prof);
}

static int
parse_value_type(Reader *r, Profile *prof)
{
    uint64_t v[2] = {0, 0}; /* type, unit */

    if (read_scalar_message(r, v, 2) < 0) {
        return -1;
    }
    if (int64buf_push(&prof->col[COL_SAMPLE_TYPE], v[0]) < 0 || int64buf_push(&prof->col[COL_SAMPLE_TYPE], v[1]) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_label(Reader *r, Profile *prof)
{
    uint64_t v[4] = {0, 0, 0, 0}; /* key, str, num, num_unit */

    if (read_scalar_message(r, v, 4) < 0) {
        return -1;
    }
    if (int64buf_push(&prof->col[COL_LABEL_KEY], v[0]) < 0 || int64buf_push(&prof->col[COL_LABEL_STR], v[1]) < 0 ||
        int64buf_push(&prof->col[COL_LABEL_NUM], v[2]) < 0 || int64buf_push(&prof->col[COL_LABEL_NUM_UNIT], v[3]) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_sample(Reader *r, Profile *prof)
{
    Tag tag;

    while (!reader_done(r)) {
        if (read_tag(r, &tag) < 0) {
            return -1;
        }
        switch (tag.field) {
        case 1: /* repeated uint64 location_id */
            if (read_repeated_varint(r, &tag, &prof->col[COL_SAMPLE_LOCS]) < 0) {
                return -1;
            }
            break;
        case 2: /* repeated int64 value */
            if (read_repeated_varint(r, &tag, &prof->col[COL_SAMPLE_VALUES]) < 0) {
                return -1;
            }
            break;
        case 3: /* repeated Label label */
            if (parse_nested(r, &tag, "Label", parse_label, prof) < 0) {
                return -1;
            }
            break;
        default:
            if (skip_field(r, &tag) < 0) {
                return -1;
            }
        }
    }
    /* The sample's entries are contiguous in the flat columns because it was
     * read to its end before anything else: closing it is one offset each. */
    if (push_offset(prof, COL_SAMPLE_LOC_OFFSETS, COL_SAMPLE_LOCS) < 0 ||
        push_offset(prof, COL_SAMPLE_VALUE_OFFSETS, COL_SAMPLE_VALUES) < 0 ||
        push_offset(prof, COL_SAMPLE_LABEL_OFFSETS, COL_LABEL_KEY) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_mapping(Reader *r, Profile *prof)
{
    /* id, memory_start, memory_limit, file_offset, filename, build_id,
     * has_functions, has_filenames, has_line_numbers, has_inline_frames */
    uint64_t v[10] = {0};

    if (read_scalar_message(r, v, 10) < 0) {
        return -1;
    }
    if (int64buf_push(&prof->col[COL_MAPPING_ID], v[0]) < 0 ||
        int64buf_push(&prof->col[COL_MAPPING_FILENAME], v[4]) < 0 ||
        int64buf_push(&prof->col[COL_MAPPING_BUILD_ID], v[5]) < 0 ||
        int64buf_push(&prof->col[COL_MAPPING_MEMORY_START], v[1]) < 0 ||
        int64buf_push(&prof->col[COL_MAPPING_MEMORY_LIMIT], v[2]) < 0 ||
        int64buf_push(&prof->col[COL_MAPPING_FILE_OFFSET], v[3]) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_line(Reader *r, Profile *prof)
{
    uint64_t v[2] = {0, 0}; /* function_id, line */

    if (read_scalar_message(r, v, 2) < 0) {
        return -1;
    }
    if (int64buf_push(&prof->col[COL_LINE_FUNCTION_ID], v[0]) < 0 ||
        int64buf_push(&prof->col[COL_LINE_LINE], v[1]) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_location(Reader *r, Profile *prof)
{
    uint64_t v[5] = {0}; /* id, mapping_id, address, (line), is_folded */
    Tag tag;

    while (!reader_done(r)) {
        if (read_tag(r, &tag) < 0) {
            return -1;
        }
        switch (tag.field) {
        case 1:
        case 2:
        case 3:
        case 5:
            if (read_varint_field(r, &tag, &v[tag.field - 1]) < 0) {
                return -1;
            }
            break;
        case 4: /* repeated Line line */
            if (parse_nested(r, &tag, "Line", parse_line, prof) < 0) {
                return -1;
            }
            break;
        default:
            if (skip_field(r, &tag) < 0) {
                return -1;
            }
        }
    }
    if (int64buf_push(&prof->col[COL_LOCATION_ID], v[0]) < 0 ||
        int64buf_push(&prof->col[COL_LOCATION_MAPPING_ID], v[1]) < 0 ||
        int64buf_push(&prof->col[COL_LOCATION_ADDRESS], v[2]) < 0 ||
        push_offset(prof, COL_LOCATION_LINE_OFFSETS, COL_LINE_FUNCTION_ID) < 0) {
        return -1;
    }
    return 0;
}

static int
parse_function(Reader *r, Profile *prof)
{
    uint64_t v[5] = {0}; /* id, name, system_name, filename, start_line */

    if (read_scalar_message(r, v, 5) < 0) {
        return -1;
    }
    if (int64buf_push(&prof->col[COL_FUNCTION_ID], v[0]) < 0 ||
        int64buf_push(&prof->col[COL_FUNCTION_NAME], v[1]) < 0 ||
        int64buf_push(&prof->col[COL_FUNCTION_SYSTEM_NAME], v[2]) < 0 ||
        int64buf_push(&prof->col[COL_FUNCTION_FILENAME], v[3]) < 0 ||
        int64buf_push(&prof->col[COL_FUNCTION_START_LINE], v[4]) < 0) {
        return -1;
    }
    return 0;
}

static int
append_string(Reader *r, Profile *prof)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)r->pos, (Py_ssize_t)(r->end - r->pos), "replace");
    int rc;

    if (s == NULL) {
        return -1;
    }
    rc = PyList_Append(prof->strings, s);
    Py_DECREF(s);
    return rc;
}

static int
parse_period_type(Reader *r, Profile *prof)
{
    /* A repeated singular message merges into the one already read. */
    prof->has_period_type = 1;
    return read_scalar_message(r, prof->period_type, 2);
}

static int
parse_profile(Reader *r, Profile *prof)
{
    Tag tag;
    int rc;

    while (!reader_done(r)) {
        if (read_tag(r, &tag) < 0) {
            return -1;
        }
        switch (tag.field) {
        case 1: /* repeated ValueType sample_type */
            rc = parse_nested(r, &tag, "ValueType", parse_value_type, prof);
            break;
        case 2: /* repeated Sample sample */
            rc = parse_nested(r, &tag, "Sample", parse_sample, prof);
            break;
        case 3: /* repeated Mapping mapping */
            rc = parse_nested(r, &tag, "Mapping", parse_mapping, prof);
            break;
        case 4: /* repeated Location location */
            rc = parse_nested(r, &tag, "Location", parse_location, prof);
            break;
        case 5: /* repeated Function function */
            rc = parse_nested(r, &tag, "Function", parse_function, prof);
            break;
        case 6: /* repeated string string_table */
            rc = parse_nested(r, &tag, "string", append_string, prof);
            break;
        case 7:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_DROP_FRAMES]);
            break;
        case 8:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_KEEP_FRAMES]);
            break;
        case 9:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_TIME_NANOS]);
            break;
        case 10:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_DURATION_NANOS]);
            break;
        case 11: /* ValueType period_type */
            rc = parse_nested(r, &tag, "ValueType", parse_period_type, prof);
            break;
        case 12:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_PERIOD]);
            break;
        case 13: /* repeated int64 comment */
            rc = read_repeated_varint(r, &tag, &prof->col[COL_COMMENT]);
            break;
        case 14:
            rc = read_varint_field(r, &tag, &prof->scalar[SCALAR_DEFAULT_SAMPLE_TYPE]);
            break;
        default:
            rc = skip_field(r, &tag);
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Python glue                                                               */
/* ------------------------------------------------------------------------ */

static int
profile_init(Profile *prof)
{
    memset(prof, 0, sizeof(*prof));
    prof->strings = PyList_New(0);
    if (prof->strings == NULL) {
        return -1;
    }
    /* Every offsets column starts at 0 and gains one entry per record. */
    if (int64buf_push(&prof->col[COL_SAMPLE_LOC_OFFSETS], 0) < 0 ||
        int64buf_push(&prof->col[COL_SAMPLE_VALUE_OFFSETS], 0) < 0 ||
        int64buf_push(&prof->col[COL_SAMPLE_LABEL_OFFSETS], 0) < 0 ||
        int64buf_push(&prof->col[COL_LOCATION_LINE_OFFSETS], 0) < 0) {
        return -1;
    }
    return 0;
}

static void
profile_clear(Profile *prof)
{
    for (int i = 0; i < N_COLUMNS; i++) {
        int64buf_free(&prof->col[i]);
    }
    Py_CLEAR(prof->strings);
}

/* Stores value under key, consuming the reference to value (even on error). */
static int
set_item(PyObject *dict, const char *key, PyObject *value)
{
    int rc;

    if (value == NULL) {
        return -1;
    }
    rc = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return rc;
}

static int64_t
as_int64(uint64_t word)
{
    int64_t value;
    memcpy(&value, &word, sizeof(value)); /* two's complement reinterpretation */
    return value;
}

static PyObject *
profile_to_dict(Profile *prof)
{
    PyObject *dict = PyDict_New();

    if (dict == NULL) {
        return NULL;
    }
    Py_INCREF(prof->strings);
    if (set_item(dict, "strings", prof->strings) < 0) {
        goto error;
    }
    for (int i = 0; i < N_COLUMNS; i++) {
        if (set_item(dict, COLUMN_NAMES[i], int64buf_to_bytes(&prof->col[i])) < 0) {
            goto error;
        }
        int64buf_free(&prof->col[i]); /* the bytes object has its own copy */
    }
    for (int i = 0; i < N_SCALARS; i++) {
        if (set_item(dict, SCALAR_NAMES[i], PyLong_FromLongLong(as_int64(prof->scalar[i]))) < 0) {
            goto error;
        }
    }
    if (set_item(dict, "period_type_type", PyLong_FromLongLong(as_int64(prof->period_type[0]))) < 0 ||
        set_item(dict, "period_type_unit", PyLong_FromLongLong(as_int64(prof->period_type[1]))) < 0 ||
        set_item(dict, "has_period_type", PyBool_FromLong(prof->has_period_type)) < 0) {
        goto error;
    }
    return dict;

error:
    Py_DECREF(dict);
    return NULL;
}

PyDoc_STRVAR(wire_parse_doc,
             "parse(raw, /)\n--\n\n"
             "Decode the raw (not gzipped) bytes of a perftools.profiles.Profile into flat columns.\n\n"
             "Returns a dict: 'strings' is the string table as a list of str (UTF-8, errors replaced);\n"
             "each column is a bytes object of packed little-endian 64-bit words; the remaining\n"
             "singular fields are ints, plus the bool 'has_period_type'.\n"
             "Raises ValueError naming the problem and its byte offset on malformed wire data.");

static PyObject *
wire_parse(PyObject *Py_UNUSED(module), PyObject *arg)
{
    static const uint8_t no_bytes[1] = {0}; /* an empty buffer's pointer may be NULL */
    Py_buffer view;
    Profile prof;
    Reader reader;
    PyObject *result = NULL;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (profile_init(&prof) == 0) {
        reader.origin = view.len > 0 ? (const uint8_t *)view.buf : no_bytes;
        reader.pos = reader.origin;
        reader.end = reader.origin + view.len;
        reader.message = "Profile";
        if (parse_profile(&reader, &prof) == 0) {
            result = profile_to_dict(&prof);
        }
    }
    profile_clear(&prof);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef wire_methods[] = {
    {"parse", wire_parse, METH_O, wire_parse_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot wire_slots[] = {
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.pprof._wire",
    .m_doc = "Single-pass decoder from pprof protobuf bytes to flat columns (see server.pprof.columns).",
    .m_size = 0,
    .m_methods = wire_methods,
    .m_slots = wire_slots,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    return PyModuleDef_Init(&wire_module);
}
