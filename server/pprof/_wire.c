/*
 * server.pprof._wire: one pass from pprof protobuf bytes to flat columns.
 *
 * Why this exists: reading a profile through upb message objects creates a
 * Python wrapper for every Sample, Location and Line, which costs 15-30 ms on
 * a production profile. Here the wire format of perftools.profiles.Profile
 * (see profile.proto) is walked once in C, appending every scalar to a
 * growable buffer of 64-bit words; each buffer is handed to Python as a
 * read-only buffer object (Column) that numpy.frombuffer wraps without a copy.
 *
 * Why it streams and counts: a 255 KiB gzip upload can inflate to 256 MiB of
 * empty samples, and each 2-byte empty sample costs 24 bytes of columns, so a
 * parser that checks its limits only at the end needs gigabytes to refuse it.
 * A Parser is fed the inflated bytes as they come (feed), parses every
 * complete top-level field at once and keeps only an incomplete one, and
 * enforces its limits on the record that would pass them:
 *   - samples, locations and sample types, each counted as it is read;
 *   - a memory budget: every byte a column or the string table reserves, plus
 *     a fixed charge per string for the str object it will become, so what a
 *     profile costs in memory is bounded whatever its shape;
 *   - the length of one top-level record (a sample, a location, a string...),
 *     refused as soon as it is read: it bounds the bytes kept waiting for the
 *     rest of a field, and a 128 MiB "sample" is refused before it inflates.
 * Parsing needs no Python object (the string table is kept as bytes until
 * finish), so feed releases the GIL on large inputs: a long parse in a worker
 * thread does not stop the server's event loop.
 *
 * Safety rules, since this parses untrusted uploads:
 *   - every read goes through a Reader whose [pos, end) is checked first, and
 *     a length-delimited field gets a sub-Reader clipped to its own length, so
 *     nothing can run past its enclosing message;
 *   - buffer growth checks for size overflow before multiplying, and the
 *     budget before allocating;
 *   - while parsing, errors are recorded in a Failure (no Python API without
 *     the GIL) and turned into the exception by the caller, which frees
 *     everything on every path.
 *
 * Deliberately the same as upb where both accept an input, so the pure-Python
 * fallback in columns.py produces identical columns: last value wins for
 * singular fields, the singular message period_type merges field by field,
 * repeated scalars may be packed or not, bits of a 10-byte varint beyond 64
 * are dropped, and tags longer than 5 bytes or above 2^32 are rejected.
 * Deliberately stricter than upb: groups, and known fields sent with the wrong
 * wire type (upb keeps those as unknown fields; here they mean corrupt data).
 * Deliberately more lenient than upb: the string table is decoded as UTF-8
 * with errors="replace", because Go does not promise valid UTF-8; a NUL
 * becomes U+FFFD too (the fallback does the same after upb), since no
 * database column Stackyard writes to may hold one on PostgreSQL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_mix.h"

/* Inputs at least this long are parsed with the GIL released; shorter ones
 * take less time than handing the GIL over and back can cost. */
#define RELEASE_GIL_BYTES (64 * 1024)

/* The str objects of the string table are made with the GIL held; every this
 * many, other threads get a turn. */
#define STRINGS_PER_TURN 65536

/* What one string of the table is charged against the budget besides its
 * bytes: about what CPython's str object and the list's pointer take. */
#define STRING_OBJECT_COST 64

/* ------------------------------------------------------------------------ */
/* Failures, limits and the memory budget of one parse                       */
/* ------------------------------------------------------------------------ */

typedef enum {
    FAIL_NONE,
    FAIL_MALFORMED, /* ValueError("<problem> at offset N") */
    FAIL_NOMEM,     /* MemoryError */
    FAIL_LIMIT,     /* LimitError(text, name, limit) */
} FailKind;

typedef struct {
    FailKind kind;
    char text[200];
    const char *limit_name;
    Py_ssize_t limit;
} Failure;

typedef struct {
    Failure failure;
    size_t used;   /* bytes reserved so far, with the per-string charge */
    size_t budget; /* the most `used` may reach */
    Py_ssize_t max_samples;
    Py_ssize_t max_locations;
    Py_ssize_t max_sample_types;
    Py_ssize_t max_record; /* bytes of one top-level field: what may wait for the rest of it */
} Context;

/* Only the first failure is kept: it is the one that stopped the parse. */
static int
fail_limit(Context *ctx, const char *name, Py_ssize_t limit, const char *text)
{
    if (ctx->failure.kind == FAIL_NONE) {
        ctx->failure.kind = FAIL_LIMIT;
        ctx->failure.limit_name = name;
        ctx->failure.limit = limit;
        snprintf(ctx->failure.text, sizeof(ctx->failure.text), "%s", text);
    }
    return -1;
}

static int
fail_budget(Context *ctx)
{
    return fail_limit(ctx, "profile_decoded_bytes", (Py_ssize_t)ctx->budget, "decoded size past the budget");
}

static int
fail_nomem(Context *ctx)
{
    if (ctx->failure.kind == FAIL_NONE) {
        ctx->failure.kind = FAIL_NOMEM;
    }
    return -1;
}

/* How many more bytes the budget allows. */
static size_t
budget_room(const Context *ctx)
{
    return ctx->used < ctx->budget ? ctx->budget - ctx->used : 0;
}

/* ------------------------------------------------------------------------ */
/* Growable buffers of 64-bit words and of bytes                             */
/* ------------------------------------------------------------------------ */

/* Holds the raw 64-bit two's complement words of int64 and uint64 fields
 * alike: a decoded varint already is that word, so no conversion happens here
 * and Python picks the signedness through the dtype. Memory comes from
 * PyMem_Raw*, which needs no GIL. */
typedef struct {
    uint64_t *data;
    size_t len;
    size_t cap;
    Context *ctx;
} Int64Buf;

#define INT64BUF_MIN_CAP 16

/* A Column's buffer needs cap * 8 <= PY_SSIZE_T_MAX. */
#define INT64BUF_MAX_CAP ((size_t)PY_SSIZE_T_MAX / sizeof(uint64_t))

/* Makes room for `extra` more words, at least doubling the capacity so that
 * a run of pushes costs amortized O(1), but never past the budget: near it,
 * the buffer grows only by what the budget has left. With `soft`, running out
 * of budget returns 1 without recording a failure (the caller has a slower way). */
static int
int64buf_reserve(Int64Buf *buf, size_t extra, int soft)
{
    size_t need, new_cap, room;
    uint64_t *data;

    if (extra <= buf->cap - buf->len) {
        return 0;
    }
    if (extra > INT64BUF_MAX_CAP - buf->len) {
        return soft ? 1 : fail_budget(buf->ctx);
    }
    need = buf->len + extra;
    new_cap = buf->cap <= INT64BUF_MAX_CAP / 2 ? buf->cap * 2 : INT64BUF_MAX_CAP;
    if (new_cap < need) {
        new_cap = need;
    }
    if (new_cap < INT64BUF_MIN_CAP) {
        new_cap = INT64BUF_MIN_CAP;
    }
    room = budget_room(buf->ctx) / sizeof(uint64_t);
    if (new_cap - buf->cap > room) {
        if (need - buf->cap > room) {
            return soft ? 1 : fail_budget(buf->ctx);
        }
        new_cap = buf->cap + room;
    }
    data = PyMem_RawRealloc(buf->data, new_cap * sizeof(uint64_t));
    if (data == NULL) {
        return fail_nomem(buf->ctx);
    }
    buf->ctx->used += (new_cap - buf->cap) * sizeof(uint64_t);
    buf->data = data;
    buf->cap = new_cap;
    return 0;
}

static inline int
int64buf_push(Int64Buf *buf, uint64_t value)
{
    if (buf->len == buf->cap && int64buf_reserve(buf, 1, 0) != 0) {
        return -1;
    }
    buf->data[buf->len++] = value;
    return 0;
}

static void
int64buf_free(Int64Buf *buf)
{
    PyMem_RawFree(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

/* Bytes: the string table's text (charged to the budget) and the part of the
 * input waiting for the rest of its field (not charged: the caller's limit on
 * the inflated size bounds it). */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    Context *ctx;
    int charged;
} ByteBuf;

static int
bytebuf_append(ByteBuf *buf, const uint8_t *bytes, size_t n)
{
    size_t need, new_cap;
    uint8_t *data;

    if (n > buf->cap - buf->len) {
        if (n > (size_t)PY_SSIZE_T_MAX - buf->len) {
            return buf->charged ? fail_budget(buf->ctx) : fail_nomem(buf->ctx);
        }
        need = buf->len + n;
        new_cap = buf->cap <= (size_t)PY_SSIZE_T_MAX / 2 ? buf->cap * 2 : (size_t)PY_SSIZE_T_MAX;
        if (new_cap < need) {
            new_cap = need;
        }
        if (new_cap < 256) {
            new_cap = 256;
        }
        if (buf->charged) {
            size_t room = budget_room(buf->ctx);
            if (new_cap - buf->cap > room) {
                if (need - buf->cap > room) {
                    return fail_budget(buf->ctx);
                }
                new_cap = buf->cap + room;
            }
        }
        data = PyMem_RawRealloc(buf->data, new_cap);
        if (data == NULL) {
            return fail_nomem(buf->ctx);
        }
        if (buf->charged) {
            buf->ctx->used += new_cap - buf->cap;
        }
        buf->data = data;
        buf->cap = new_cap;
    }
    if (n) {
        memcpy(buf->data + buf->len, bytes, n);
    }
    buf->len += n;
    return 0;
}

static void
bytebuf_free(ByteBuf *buf)
{
    PyMem_RawFree(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
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
    const uint8_t *origin; /* start of the bytes in hand: only for error offsets */
    Py_ssize_t base;       /* offset of `origin` in the whole input */
    const uint8_t *pos;
    const uint8_t *end;  /* end of the message being read, not of the input */
    const char *message; /* message type name, for error messages */
    Context *ctx;
} Reader;

typedef struct {
    uint32_t field;
    int wire;
    const uint8_t *at; /* where the tag starts */
} Tag;

static int
fail_at(const Reader *r, const uint8_t *at, const char *problem)
{
    Failure *failure = &r->ctx->failure;

    if (failure->kind == FAIL_NONE) {
        failure->kind = FAIL_MALFORMED;
        snprintf(failure->text, sizeof(failure->text), "%s at offset %zd", problem, r->base + (at - r->origin));
    }
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

static inline int
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
static inline int
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
    *sub = *r;
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
    Failure *failure = &r->ctx->failure;

    if (failure->kind == FAIL_NONE) {
        failure->kind = FAIL_MALFORMED;
        snprintf(failure->text, sizeof(failure->text), "wire type %d for field %u of %s (expected %s) at offset %zd",
                 tag->wire, (unsigned)tag->field, r->message, expected, r->base + (tag->at - r->origin));
    }
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
static inline int
read_repeated_varint(Reader *r, const Tag *tag, Int64Buf *out)
{
    uint64_t value;
    int reserved;

    if (tag->wire == WIRE_VARINT) {
        return read_varint(r, &value) < 0 ? -1 : int64buf_push(out, value);
    }
    if (tag->wire == WIRE_LEN) {
        Reader packed;
        if (read_submessage(r, r->message, &packed) < 0) {
            return -1;
        }
        /* Each varint takes at least one byte: reserving one word per byte
         * lets the loop below store without checking capacity. When the
         * budget cannot cover that worst case, count word by word instead. */
        reserved = int64buf_reserve(out, (size_t)(packed.end - packed.pos), 1);
        if (reserved < 0) {
            return -1;
        }
        if (reserved == 0) {
            /* The buffer and its length in locals: stored through out->data, a uint64_t may be out->len itself as
             * far as the compiler knows, which kept the length in memory (a store and a load a value). */
            uint64_t *data = out->data;
            size_t len = out->len;
            const uint8_t *p = packed.pos, *end = packed.end;
            while (p < end) {
                if (p[0] < 0x80) {
                    data[len++] = p[0];
                    p++;
                }
                else if (end - p >= 2 && p[1] < 0x80) {
                    data[len++] = (uint64_t)(p[0] & 0x7f) | (uint64_t)p[1] << 7;
                    p += 2;
                }
                else {
                    packed.pos = p;
                    if (read_varint_slow(&packed, &value) < 0) {
                        out->len = len;
                        return -1;
                    }
                    p = packed.pos;
                    data[len++] = value;
                }
            }
            out->len = len;
            return 0;
        }
        while (!reader_done(&packed)) {
            if (read_varint(&packed, &value) < 0) {
                return -1;
            }
            if (reserved == 0) {
                out->data[out->len++] = value;
            }
            else if (int64buf_push(out, value) < 0) {
                return -1;
            }
        }
        return 0;
    }
    return wrong_wire_type(r, tag, "0 or 2");
}

/* Reads a message whose known fields are all singular varints numbered
 * 1..n_fields, into values[field - 1]. Fields absent from the bytes keep what
 * values[] held, which is both proto3's default (callers zero it) and the
 * merge semantics of a repeated singular message (callers pass the old one). */
static inline int
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
    ByteBuf string_bytes;    /* the string table's text, one entry after another */
    Int64Buf string_ends;    /* where each entry ends in string_bytes */
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
static inline int
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

    if ((Py_ssize_t)(prof->col[COL_SAMPLE_TYPE].len / 2) >= r->ctx->max_sample_types) {
        return fail_limit(r->ctx, "profile_sample_types", r->ctx->max_sample_types, "too many sample types");
    }
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

    /* The offsets column starts with a 0, so it holds one entry per sample more. */
    if ((Py_ssize_t)(prof->col[COL_SAMPLE_LOC_OFFSETS].len - 1) >= r->ctx->max_samples) {
        return fail_limit(r->ctx, "profile_samples", r->ctx->max_samples, "too many samples");
    }
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

    if ((Py_ssize_t)prof->col[COL_LOCATION_ID].len >= r->ctx->max_locations) {
        return fail_limit(r->ctx, "profile_locations", r->ctx->max_locations, "too many locations");
    }
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

/* The text is kept as bytes; the str objects are made at the end, with the GIL. */
static int
append_string(Reader *r, Profile *prof)
{
    Context *ctx = r->ctx;

    if (budget_room(ctx) < STRING_OBJECT_COST) {
        return fail_budget(ctx);
    }
    ctx->used += STRING_OBJECT_COST;
    if (bytebuf_append(&prof->string_bytes, r->pos, (size_t)(r->end - r->pos)) < 0) {
        return -1;
    }
    return int64buf_push(&prof->string_ends, (uint64_t)prof->string_bytes.len);
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
/* Streaming: whole top-level fields are parsed as soon as they are in hand  */
/* ------------------------------------------------------------------------ */

/* 1: a varint was read; 0: the bytes end inside it; -1: longer than 10 bytes. */
static int
scan_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t value = 0;

    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (q >= end) {
            return 0;
        }
        if (shift < 64) {
            value |= (uint64_t)(*q & 0x7f) << shift;
        }
        if ((*q++ & 0x80) == 0) {
            *p = q;
            *out = value;
            return 1;
        }
    }
    return -1;
}

/* How many leading bytes of [start, start + len) are whole top-level fields.
 * A field the parser will refuse (a bad tag or varint) counts as whole, so
 * the parser gets to it now and names the problem exactly as it would in one
 * buffer; a field cut off by the end of the bytes does not. A length-delimited
 * field longer than `max_record` stops the scan at its start, with *oversized
 * set: it is refused as soon as its length is known, before its bytes come. */
static size_t
complete_prefix(const uint8_t *start, size_t len, Py_ssize_t max_record, int *oversized)
{
    const uint8_t *p = start;
    const uint8_t *end = start + len;

    *oversized = 0;
    while (p < end) {
        const uint8_t *field = p;
        uint64_t tag, n;
        int rc = scan_varint(&p, end, &tag);

        if (rc == 0) {
            return (size_t)(field - start);
        }
        if (rc < 0 || p - field > 5 || tag > UINT32_MAX || (tag >> 3) == 0) {
            return len;
        }
        switch (tag & 7) {
        case WIRE_VARINT:
            rc = scan_varint(&p, end, &n);
            if (rc <= 0) {
                return rc == 0 ? (size_t)(field - start) : len;
            }
            break;
        case WIRE_I64:
            if (end - p < 8) {
                return (size_t)(field - start);
            }
            p += 8;
            break;
        case WIRE_I32:
            if (end - p < 4) {
                return (size_t)(field - start);
            }
            p += 4;
            break;
        case WIRE_LEN:
            rc = scan_varint(&p, end, &n);
            if (rc <= 0) {
                return rc == 0 ? (size_t)(field - start) : len;
            }
            if (n > (uint64_t)PY_SSIZE_T_MAX) {
                return len; /* no input is that long: the parser names it (runs past the end) */
            }
            if (n > (uint64_t)max_record) {
                *oversized = 1;
                return (size_t)(field - start);
            }
            if (n > (uint64_t)(end - p)) {
                return (size_t)(field - start);
            }
            p += n;
            break;
        default:
            return len;
        }
    }
    return len;
}

/* One parse: its context, the profile so far, and the bytes waiting for the
 * rest of their field. Touches no Python object, so it runs without the GIL. */
typedef struct {
    Context ctx;
    Profile prof;
    ByteBuf pending;
    Py_ssize_t consumed; /* offset in the whole input of the first byte not parsed yet */
    int failed;
} State;

static int
state_init(State *st, Py_ssize_t max_samples, Py_ssize_t max_locations, Py_ssize_t max_sample_types,
           Py_ssize_t max_bytes, Py_ssize_t max_record)
{
    memset(st, 0, sizeof(*st));
    st->ctx.max_record = max_record;
    st->ctx.max_samples = max_samples;
    st->ctx.max_locations = max_locations;
    st->ctx.max_sample_types = max_sample_types;
    st->ctx.budget = (size_t)max_bytes;
    for (int i = 0; i < N_COLUMNS; i++) {
        st->prof.col[i].ctx = &st->ctx;
    }
    st->prof.string_bytes.ctx = &st->ctx;
    st->prof.string_bytes.charged = 1;
    st->prof.string_ends.ctx = &st->ctx;
    st->pending.ctx = &st->ctx;
    /* Every offsets column starts at 0 and gains one entry per record. */
    if (int64buf_push(&st->prof.col[COL_SAMPLE_LOC_OFFSETS], 0) < 0 ||
        int64buf_push(&st->prof.col[COL_SAMPLE_VALUE_OFFSETS], 0) < 0 ||
        int64buf_push(&st->prof.col[COL_SAMPLE_LABEL_OFFSETS], 0) < 0 ||
        int64buf_push(&st->prof.col[COL_LOCATION_LINE_OFFSETS], 0) < 0) {
        st->failed = 1;
        return -1;
    }
    return 0;
}

static void
state_clear(State *st)
{
    for (int i = 0; i < N_COLUMNS; i++) {
        int64buf_free(&st->prof.col[i]);
    }
    bytebuf_free(&st->prof.string_bytes);
    int64buf_free(&st->prof.string_ends);
    bytebuf_free(&st->pending);
}

static int
state_parse(State *st, const uint8_t *bytes, size_t n)
{
    Reader reader;

    reader.origin = bytes;
    reader.base = st->consumed;
    reader.pos = bytes;
    reader.end = bytes + n;
    reader.message = "Profile";
    reader.ctx = &st->ctx;
    st->consumed += (Py_ssize_t)n;
    return parse_profile(&reader, &st->prof);
}

static int
fail_record(State *st)
{
    st->failed = 1;
    return fail_limit(&st->ctx, "profile_record_bytes", st->ctx.max_record, "a record longer than the limit");
}

/* The next bytes of the input; a field they leave unfinished waits in `pending`. */
static int
state_feed(State *st, const uint8_t *bytes, size_t len)
{
    size_t whole;
    int oversized;

    if (st->failed) {
        return -1;
    }
    if (st->pending.len == 0) {
        whole = complete_prefix(bytes, len, st->ctx.max_record, &oversized);
        if (whole && state_parse(st, bytes, whole) < 0) {
            st->failed = 1;
            return -1;
        }
        if (oversized) {
            return fail_record(st);
        }
        if (whole < len && bytebuf_append(&st->pending, bytes + whole, len - whole) < 0) {
            st->failed = 1;
            return -1;
        }
        return 0;
    }
    if (bytebuf_append(&st->pending, bytes, len) < 0) {
        st->failed = 1;
        return -1;
    }
    whole = complete_prefix(st->pending.data, st->pending.len, st->ctx.max_record, &oversized);
    if (whole) {
        if (state_parse(st, st->pending.data, whole) < 0) {
            st->failed = 1;
            return -1;
        }
        memmove(st->pending.data, st->pending.data + whole, st->pending.len - whole);
        st->pending.len -= whole;
    }
    return oversized ? fail_record(st) : 0;
}

/* The end of the input: what waits in `pending` is parsed as it is, so a
 * field cut short fails exactly as it would have in one buffer. */
static int
state_end(State *st)
{
    if (st->failed) {
        return -1;
    }
    if (st->pending.len && state_parse(st, st->pending.data, st->pending.len) < 0) {
        st->failed = 1;
        return -1;
    }
    bytebuf_free(&st->pending);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Python glue                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject *column_type;
    PyObject *parser_type;
    PyObject *limit_error;
} ModuleState;

static inline ModuleState *
module_state(PyObject *module)
{
    return (ModuleState *)PyModule_GetState(module);
}

/* Sets the Python exception for a failed parse (with the GIL). */
static void
raise_failure(ModuleState *ms, const Failure *failure)
{
    PyObject *args;

    switch (failure->kind) {
    case FAIL_MALFORMED:
        PyErr_SetString(PyExc_ValueError, failure->text);
        return;
    case FAIL_LIMIT:
        args = Py_BuildValue("(ssn)", failure->text, failure->limit_name, failure->limit);
        if (args != NULL) {
            PyErr_SetObject(ms->limit_error, args);
            Py_DECREF(args);
        }
        return;
    case FAIL_NOMEM:
    default:
        PyErr_NoMemory();
    }
}

/* --- Column: a read-only buffer owning one column's words ------------------ */

typedef struct {
    PyObject_HEAD
    uint64_t *data;
    Py_ssize_t nbytes;
} ColumnObject;

static int
column_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    static uint64_t empty[1];
    ColumnObject *column = (ColumnObject *)self;

    return PyBuffer_FillInfo(view, self, column->data ? (void *)column->data : (void *)empty, column->nbytes, 1, flags);
}

static Py_ssize_t
column_length(PyObject *self)
{
    return ((ColumnObject *)self)->nbytes / (Py_ssize_t)sizeof(uint64_t);
}

static void
column_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    PyMem_RawFree(((ColumnObject *)self)->data);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyType_Slot column_slots[] = {
    {Py_bf_getbuffer, column_getbuffer},
    {Py_sq_length, column_length},
    {Py_tp_dealloc, column_dealloc},
    {Py_tp_doc, "One column of a decoded profile: packed little-endian 64-bit words, read-only, "
                "owned here (numpy.frombuffer wraps it without a copy)."},
    {0, NULL},
};

static PyType_Spec column_spec = {
    .name = "server.pprof._wire.Column",
    .basicsize = sizeof(ColumnObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = column_slots,
};

/* Moves the buffer's words into a new Column (the buffer is left empty). */
static PyObject *
column_from(ModuleState *ms, Int64Buf *buf)
{
    ColumnObject *column = PyObject_New(ColumnObject, (PyTypeObject *)ms->column_type);

    if (column == NULL) {
        return NULL;
    }
#if PY_BIG_ENDIAN
    /* The columns are little-endian on every host, so the Python side can name one dtype. */
    for (size_t i = 0; i < buf->len; i++) {
        uint64_t v = buf->data[i];
        uint64_t swapped = 0;
        for (int b = 0; b < 8; b++) {
            swapped = (swapped << 8) | ((v >> (8 * b)) & 0xff);
        }
        buf->data[i] = swapped;
    }
#endif
    /* The room doubling left unused stays with the column: giving it back
     * costs a realloc per column, more than the memory is worth for a profile
     * that is dropped after ingest, and the budget already counts it. */
    column->data = buf->len ? buf->data : NULL;
    column->nbytes = (Py_ssize_t)(buf->len * sizeof(uint64_t));
    if (!buf->len) {
        PyMem_RawFree(buf->data);
    }
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return (PyObject *)column;
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

/* The string table as a list of str, made from the kept bytes. A NUL becomes
 * U+FFFD, as undecodable bytes do: PostgreSQL's text cannot hold NUL, and a
 * profile must be stored the same on every database. *replaced counts the
 * strings that had one. */
static PyObject *
strings_list(Profile *prof, Py_ssize_t *replaced)
{
    size_t n = prof->string_ends.len;
    PyObject *list = PyList_New((Py_ssize_t)n);
    PyObject *nul = NULL, *replacement = NULL;
    size_t start = 0;

    *replaced = 0;
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t end = (size_t)prof->string_ends.data[i];
        const char *text = (const char *)prof->string_bytes.data + start;
        PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)(end - start), "replace");
        if (s != NULL && end > start && memchr(text, 0, end - start) != NULL) {
            PyObject *clean = NULL;
            if ((nul != NULL || (nul = PyUnicode_FromOrdinal(0)) != NULL) &&
                (replacement != NULL || (replacement = PyUnicode_FromOrdinal(0xFFFD)) != NULL)) {
                clean = PyUnicode_Replace(s, nul, replacement, -1);
            }
            Py_SETREF(s, clean);
            ++*replaced;
        }
        if (s == NULL) {
            Py_XDECREF(nul);
            Py_XDECREF(replacement);
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, s);
        start = end;
        if ((i + 1) % STRINGS_PER_TURN == 0) {
            Py_BEGIN_ALLOW_THREADS
            Py_END_ALLOW_THREADS
        }
    }
    Py_XDECREF(nul);
    Py_XDECREF(replacement);
    return list;
}

static PyObject *
profile_to_dict(ModuleState *ms, Profile *prof)
{
    PyObject *dict = PyDict_New();
    Py_ssize_t replaced = 0;

    if (dict == NULL) {
        return NULL;
    }
    if (set_item(dict, "strings", strings_list(prof, &replaced)) < 0 ||
        set_item(dict, "strings_with_nul", PyLong_FromSsize_t(replaced)) < 0) {
        goto error;
    }
    bytebuf_free(&prof->string_bytes);
    int64buf_free(&prof->string_ends);
    for (int i = 0; i < N_COLUMNS; i++) {
        if (set_item(dict, COLUMN_NAMES[i], column_from(ms, &prof->col[i])) < 0) {
            goto error;
        }
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

/* Parses a buffer, without the GIL when it is large. */
static int
feed_buffer(State *st, const Py_buffer *view)
{
    static const uint8_t no_bytes[1] = {0}; /* an empty buffer's pointer may be NULL */
    const uint8_t *bytes = view->len > 0 ? (const uint8_t *)view->buf : no_bytes;
    int rc;

    if (view->len >= RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = state_feed(st, bytes, (size_t)view->len);
        Py_END_ALLOW_THREADS
    }
    else {
        rc = state_feed(st, bytes, (size_t)view->len);
    }
    return rc;
}

/* --- limits, as keyword arguments of Parser and parse ---------------------- */

typedef struct {
    Py_ssize_t samples, locations, sample_types, memory, record;
} Limits;

static int
parse_limits(PyObject *kwargs, Limits *limits)
{
    static char *keywords[] = {"samples", "locations", "sample_types", "memory", "record", NULL};
    PyObject *empty = PyTuple_New(0);
    int ok;

    limits->samples = limits->locations = limits->sample_types = limits->memory = limits->record = PY_SSIZE_T_MAX;
    if (empty == NULL) {
        return -1;
    }
    ok = PyArg_ParseTupleAndKeywords(empty, kwargs, "|$nnnnn", keywords, &limits->samples, &limits->locations,
                                     &limits->sample_types, &limits->memory, &limits->record);
    Py_DECREF(empty);
    if (!ok) {
        return -1;
    }
    if (limits->samples < 0 || limits->locations < 0 || limits->sample_types < 0 || limits->memory < 0 ||
        limits->record < 0) {
        PyErr_SetString(PyExc_ValueError, "limits must not be negative");
        return -1;
    }
    return 0;
}

static int
state_init_py(ModuleState *ms, State *st, const Limits *limits)
{
    if (state_init(st, limits->samples, limits->locations, limits->sample_types, limits->memory, limits->record) < 0) {
        raise_failure(ms, &st->ctx.failure);
        return -1;
    }
    return 0;
}

/* --- Parser: feed the bytes as they come, then finish ---------------------- */

typedef struct {
    PyObject_HEAD
    State state;
    int busy;     /* a feed is running (maybe without the GIL) */
    int finished; /* finish ran: the parser is spent */
} ParserObject;

static PyObject *
parser_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    ModuleState *ms = (ModuleState *)PyType_GetModuleState(type);
    Limits limits;
    ParserObject *self;

    if (ms == NULL) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Parser() takes keyword arguments only");
        return NULL;
    }
    if (parse_limits(kwargs, &limits) < 0) {
        return NULL;
    }
    self = (ParserObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (state_init_py(ms, &self->state, &limits) < 0) {
        state_clear(&self->state);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
parser_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);

    state_clear(&((ParserObject *)self)->state);
    type->tp_free(self);
    Py_DECREF(type);
}

static int
parser_usable(ParserObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the parser is in use by another thread");
        return -1;
    }
    if (self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the parser has finished");
        return -1;
    }
    return 0;
}

static PyObject *
parser_feed(PyObject *op, PyObject *arg)
{
    ParserObject *self = (ParserObject *)op;
    ModuleState *ms = (ModuleState *)PyType_GetModuleState(Py_TYPE(op));
    Py_buffer view;
    int rc;

    if (ms == NULL || parser_usable(self) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    self->busy = 1;
    rc = feed_buffer(&self->state, &view);
    self->busy = 0;
    PyBuffer_Release(&view);
    if (rc < 0) {
        raise_failure(ms, &self->state.ctx.failure);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
parser_finish(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    ParserObject *self = (ParserObject *)op;
    ModuleState *ms = (ModuleState *)PyType_GetModuleState(Py_TYPE(op));
    PyObject *result;

    if (ms == NULL || parser_usable(self) < 0) {
        return NULL;
    }
    self->finished = 1;
    if (state_end(&self->state) < 0) {
        raise_failure(ms, &self->state.ctx.failure);
        state_clear(&self->state);
        return NULL;
    }
    result = profile_to_dict(ms, &self->state.prof);
    state_clear(&self->state);
    return result;
}

static PyObject *
parser_used(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(((ParserObject *)op)->state.ctx.used);
}

static PyMethodDef parser_methods[] = {
    {"feed", parser_feed, METH_O,
     "feed(data, /)\n--\n\nThe next bytes of the (not gzipped) profile. Whole top-level fields are parsed now,\n"
     "without the GIL for large inputs; raises ValueError on malformed data and LimitError past a limit."},
    {"finish", parser_finish, METH_NOARGS,
     "finish()\n--\n\nThe end of the input: the columns, as parse() returns them. The parser is spent after."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef parser_getset[] = {
    {"used", parser_used, NULL, "bytes of the memory budget used so far", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot parser_slots[] = {
    {Py_tp_new, parser_new},
    {Py_tp_dealloc, parser_dealloc},
    {Py_tp_methods, parser_methods},
    {Py_tp_getset, parser_getset},
    {Py_tp_doc, "Parser(*, samples, locations, sample_types, memory, record)\n--\n\n"
                "An incremental decoder of one profile, enforcing its limits on the record that passes them."},
    {0, NULL},
};

static PyType_Spec parser_spec = {
    .name = "server.pprof._wire.Parser",
    .basicsize = sizeof(ParserObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = parser_slots,
};

/* --- parse: the whole input at once --------------------------------------- */

PyDoc_STRVAR(wire_parse_doc,
             "parse(raw, /, *, samples, locations, sample_types, memory, record)\n--\n\n"
             "Decode the raw (not gzipped) bytes of a perftools.profiles.Profile into flat columns.\n\n"
             "Returns a dict: 'strings' is the string table as a list of str (UTF-8, errors and NUL\n"
             "replaced by U+FFFD; 'strings_with_nul' counts the strings that had a NUL);\n"
             "each column is a Column of packed little-endian 64-bit words; the remaining\n"
             "singular fields are ints, plus the bool 'has_period_type'.\n"
             "Raises ValueError naming the problem and its byte offset on malformed wire data, and\n"
             "LimitError(text, name, limit) at the first record past a limit (each unlimited if not given).");

static PyObject *
wire_parse(PyObject *module, PyObject *args, PyObject *kwargs)
{
    ModuleState *ms = module_state(module);
    PyObject *raw;
    PyObject *result = NULL;
    Py_buffer view;
    Limits limits;
    State st;

    if (!PyArg_ParseTuple(args, "O:parse", &raw) || parse_limits(kwargs, &limits) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (state_init_py(ms, &st, &limits) == 0) {
        if (feed_buffer(&st, &view) < 0 || state_end(&st) < 0) {
            raise_failure(ms, &st.ctx.failure);
        }
        else {
            result = profile_to_dict(ms, &st.prof);
        }
    }
    state_clear(&st);
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------------------------------ */
/* Kernels over decoded columns                                              */
/* ------------------------------------------------------------------------ */

/* Work done on a decoded profile's columns once per ingest, where numpy would
 * take one pass (and one temporary array) per step and Python a loop per
 * sample: the validity check of every index and id, and every sample's
 * identity hash (see server.pprof.kernels, which passes the columns and
 * names the Python code each kernel stands in for). The arguments are numpy
 * arrays of 64-bit words in the host's byte order; lengths and offsets are
 * checked here before any index is followed, so a wrong call raises
 * ValueError instead of reading out of bounds. */

#define KERNEL_MAX_ARGS 24

typedef struct {
    Py_buffer view[KERNEL_MAX_ARGS];
    Py_ssize_t held;
} Words;

static void
words_release(Words *w)
{
    for (Py_ssize_t i = 0; i < w->held; i++) {
        PyBuffer_Release(&w->view[i]);
    }
    w->held = 0;
}

static int
words_get(Words *w, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, const char *name)
{
    w->held = 0;
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arrays (%zd given)", name, expected, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (PyObject_GetBuffer(args[i], &w->view[i], PyBUF_C_CONTIGUOUS) < 0) {
            words_release(w);
            return -1;
        }
        w->held++;
        if (w->view[i].len % 8 != 0) {
            PyErr_Format(PyExc_ValueError, "%s(): argument %zd is not an array of 64-bit words", name, i);
            words_release(w);
            return -1;
        }
    }
    return 0;
}

#define U64S(w, i) ((const uint64_t *)(w)->view[i].buf)
#define I64S(w, i) ((const int64_t *)(w)->view[i].buf)
#define LEN(w, i) ((w)->view[i].len / 8)

/* Offsets into a column of n entries: count + 1 of them, from 0, never decreasing, ending at most at n. */
static int
offsets_ok(const int64_t *offsets, Py_ssize_t length, Py_ssize_t count, Py_ssize_t n)
{
    if (length != count + 1 || offsets[0] != 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (offsets[i + 1] < offsets[i]) {
            return 0;
        }
    }
    return offsets[count] <= n;
}

/* Ids 1..n in order: what Go writes, and the only layout the fast paths take. */
static int
dense_ids(const uint64_t *ids, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ids[i] != (uint64_t)i + 1) {
            return 0;
        }
    }
    return 1;
}

/* Position of every id: direct when dense, else a binary search of (id, position) pairs. */
typedef struct {
    Py_ssize_t n;
    uint64_t *pairs; /* NULL when dense */
} IdIndex;

static int
pair_order(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) {
        return x[0] < y[0] ? -1 : 1;
    }
    return x[1] < y[1] ? -1 : (x[1] > y[1]);
}

static int
idindex_init(IdIndex *ix, const uint64_t *ids, Py_ssize_t n)
{
    ix->n = n;
    ix->pairs = NULL;
    if (dense_ids(ids, n)) {
        return 0;
    }
    ix->pairs = PyMem_RawMalloc((size_t)n * 2 * sizeof(uint64_t));
    if (ix->pairs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        ix->pairs[2 * i] = ids[i];
        ix->pairs[2 * i + 1] = (uint64_t)i;
    }
    qsort(ix->pairs, (size_t)n, 2 * sizeof(uint64_t), pair_order);
    return 0;
}

/* The first position holding id (as a stable sort and a left search find it), or -1. */
static inline Py_ssize_t
idindex_find(const IdIndex *ix, uint64_t id)
{
    Py_ssize_t lo = 0, hi = ix->n;

    if (ix->pairs == NULL) {
        return (id >= 1 && id <= (uint64_t)ix->n) ? (Py_ssize_t)(id - 1) : -1;
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (ix->pairs[2 * mid] < id) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return (lo < ix->n && ix->pairs[2 * lo] == id) ? (Py_ssize_t)ix->pairs[2 * lo + 1] : -1;
}

static void
idindex_free(IdIndex *ix)
{
    PyMem_RawFree(ix->pairs);
    ix->pairs = NULL;
}

/* --- valid: the common case of server.pprof.validate, in one pass ---------- */

enum {
    V_HEADER, /* n_strings, then the header's string indices */
    V_SAMPLE_TYPE,
    V_COMMENT,
    V_FUNCTION_NAME,
    V_FUNCTION_SYSTEM_NAME,
    V_FUNCTION_FILENAME,
    V_MAPPING_FILENAME,
    V_MAPPING_BUILD_ID,
    V_LABEL_KEY,
    V_LABEL_STR,
    V_LABEL_NUM_UNIT,
    V_SAMPLE_VALUE_OFFSETS,
    V_SAMPLE_VALUES,
    V_SAMPLE_LOC_OFFSETS,
    V_SAMPLE_LOCS,
    V_FUNCTION_ID,
    V_MAPPING_ID,
    V_LOCATION_ID,
    V_LOCATION_MAPPING_ID,
    V_LINE_FUNCTION_ID,
    V_ARGS
};

/* The largest sum of magnitudes no kept sum may pass (server.pprof.checked.SAFE_MAX). */
#define SAFE_MAX ((uint64_t)INT64_MAX - 1)

static int
strings_in_range(const int64_t *indices, Py_ssize_t n, int64_t n_strings)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= n_strings) {
            return 0;
        }
    }
    return 1;
}

static int
ids_in_range(const uint64_t *ids, Py_ssize_t n, Py_ssize_t count, int zero_allowed)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((ids[i] == 0 && !zero_allowed) || ids[i] > (uint64_t)count) {
            return 0;
        }
    }
    return 1;
}

static int
valid_words(const Words *w)
{
    const int64_t *header = I64S(w, V_HEADER);
    Py_ssize_t n_header = LEN(w, V_HEADER);
    int64_t n_strings;
    Py_ssize_t n_types = LEN(w, V_SAMPLE_TYPE) / 2;
    Py_ssize_t n_samples = LEN(w, V_SAMPLE_VALUE_OFFSETS) - 1;
    const int64_t *value_offsets = I64S(w, V_SAMPLE_VALUE_OFFSETS);
    const int64_t *values = I64S(w, V_SAMPLE_VALUES);
    Py_ssize_t n_values = LEN(w, V_SAMPLE_VALUES);
    uint64_t largest = 0;
    static const int string_columns[] = {V_SAMPLE_TYPE,      V_COMMENT,         V_FUNCTION_NAME, V_FUNCTION_SYSTEM_NAME,
                                         V_FUNCTION_FILENAME, V_MAPPING_FILENAME, V_MAPPING_BUILD_ID, V_LABEL_KEY,
                                         V_LABEL_STR,         V_LABEL_NUM_UNIT};

    if (n_header < 1) {
        return 0;
    }
    n_strings = header[0];
    if (!strings_in_range(header + 1, n_header - 1, n_strings)) {
        return 0;
    }
    for (size_t c = 0; c < sizeof(string_columns) / sizeof(string_columns[0]); c++) {
        if (!strings_in_range(I64S(w, string_columns[c]), LEN(w, string_columns[c]), n_strings)) {
            return 0;
        }
    }
    if (n_samples < 0 || LEN(w, V_SAMPLE_LOC_OFFSETS) != n_samples + 1) {
        return 0;
    }
    if (n_samples && n_types == 0) {
        return 0;
    }
    if (!offsets_ok(value_offsets, n_samples + 1, n_samples, n_values)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n_samples; i++) {
        if (value_offsets[i + 1] - value_offsets[i] != n_types) {
            return 0;
        }
    }
    for (Py_ssize_t i = 0; i < n_values; i++) {
        uint64_t magnitude = values[i] < 0 ? (uint64_t)(-(values[i] + 1)) + 1 : (uint64_t)values[i];
        if (magnitude > largest) {
            largest = magnitude;
        }
    }
    /* Bounded: no sum of the values can pass the range (else the exact check decides). */
    if (n_samples && largest > SAFE_MAX / (uint64_t)n_samples) {
        return 0;
    }
    if (!dense_ids(U64S(w, V_FUNCTION_ID), LEN(w, V_FUNCTION_ID)) ||
        !dense_ids(U64S(w, V_MAPPING_ID), LEN(w, V_MAPPING_ID)) ||
        !dense_ids(U64S(w, V_LOCATION_ID), LEN(w, V_LOCATION_ID))) {
        return 0;
    }
    return ids_in_range(U64S(w, V_LOCATION_MAPPING_ID), LEN(w, V_LOCATION_MAPPING_ID), LEN(w, V_MAPPING_ID), 1) &&
           ids_in_range(U64S(w, V_LINE_FUNCTION_ID), LEN(w, V_LINE_FUNCTION_ID), LEN(w, V_FUNCTION_ID), 0) &&
           ids_in_range(U64S(w, V_SAMPLE_LOCS), LEN(w, V_SAMPLE_LOCS), LEN(w, V_LOCATION_ID), 0);
}

PyDoc_STRVAR(wire_valid_doc,
             "valid(header, sample_type, comment, function_name, function_system_name, function_filename,\n"
             "      mapping_filename, mapping_build_id, label_key, label_str, label_num_unit,\n"
             "      sample_value_offsets, sample_values, sample_loc_offsets, sample_locs, function_id,\n"
             "      mapping_id, location_id, location_mapping_id, line_function_id, /)\n--\n\n"
             "True when the columns surely pass server.pprof.validate: every string index in range, as\n"
             "many values per sample as sample types, values whose sums cannot pass 64 bits, ids 1..N\n"
             "in order and every reference to one resolved. False says only that the full check must\n"
             "decide (a refusal, or ids in another order). header is (n_strings, then the header's\n"
             "string indices).");

static PyObject *
wire_valid(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    int ok;

    if (words_get(&w, args, nargs, V_ARGS, "valid") < 0) {
        return NULL;
    }
    ok = valid_words(&w);
    words_release(&w);
    return PyBool_FromLong(ok);
}

/* --- sample_hashes: server.pprof.identity.sample_keys, exactly -------------- */

enum {
    H_LOCATION_ID,
    H_LOCATION_MAPPING_ID,
    H_LOCATION_ADDRESS,
    H_LOCATION_LINE_OFFSETS,
    H_LINE_FUNCTION_ID,
    H_LINE_LINE,
    H_FUNCTION_ID,
    H_FUNCTION_KEYS, /* the stable id of every function, by position */
    H_MAPPING_ID,
    H_MAPPING_MEMORY_START,
    H_MAPPING_KEYS, /* the identity hash of every mapping, by position */
    H_SAMPLE_LOCS,
    H_SAMPLE_LOC_OFFSETS,
    H_LABELSET_KEYS, /* the stable id of every sample's label set */
    H_ARGS
};

#define H_GOLDEN 0x9E3779B97F4A7C15ULL
#define H_LINE 0xC2B2AE3D27D4EB4FULL
#define H_FRAME 0x165667B19E3779F9ULL
#define H_LABELS 0x27D4EB2F165667C5ULL
#define H_BARE 0x85EBCA77C2B2AE63ULL

/* Fills out (one word per sample); -1 with a ValueError set when an id or an offset is out of place. */
static int
sample_hashes_words(const Words *w, uint64_t *out)
{
    Py_ssize_t n_locations = LEN(w, H_LOCATION_ID), n_lines = LEN(w, H_LINE_FUNCTION_ID);
    Py_ssize_t n_functions = LEN(w, H_FUNCTION_ID), n_mappings = LEN(w, H_MAPPING_ID);
    Py_ssize_t n_samples = LEN(w, H_SAMPLE_LOC_OFFSETS) - 1, n_locs = LEN(w, H_SAMPLE_LOCS);
    const int64_t *line_offsets = I64S(w, H_LOCATION_LINE_OFFSETS), *loc_offsets = I64S(w, H_SAMPLE_LOC_OFFSETS);
    const uint64_t *mapping_of = U64S(w, H_LOCATION_MAPPING_ID), *address = U64S(w, H_LOCATION_ADDRESS);
    const uint64_t *line_function = U64S(w, H_LINE_FUNCTION_ID), *line_line = U64S(w, H_LINE_LINE);
    const uint64_t *function_keys = U64S(w, H_FUNCTION_KEYS), *memory_start = U64S(w, H_MAPPING_MEMORY_START);
    const uint64_t *mapping_keys = U64S(w, H_MAPPING_KEYS), *sample_locs = U64S(w, H_SAMPLE_LOCS);
    const uint64_t *labelset_keys = U64S(w, H_LABELSET_KEYS);
    IdIndex functions = {0, NULL}, mappings = {0, NULL}, locations = {0, NULL};
    uint64_t *location_hash = NULL;
    int rc = -1;

    if (LEN(w, H_LOCATION_MAPPING_ID) != n_locations || LEN(w, H_LOCATION_ADDRESS) != n_locations ||
        LEN(w, H_LINE_LINE) != n_lines || LEN(w, H_FUNCTION_KEYS) < n_functions ||
        LEN(w, H_MAPPING_MEMORY_START) != n_mappings || LEN(w, H_MAPPING_KEYS) != n_mappings || n_samples < 0 ||
        LEN(w, H_LABELSET_KEYS) != n_samples ||
        !offsets_ok(line_offsets, LEN(w, H_LOCATION_LINE_OFFSETS), n_locations, n_lines) ||
        !offsets_ok(loc_offsets, n_samples + 1, n_samples, n_locs)) {
        PyErr_SetString(PyExc_ValueError, "sample_hashes(): columns of inconsistent lengths");
        return -1;
    }
    location_hash = PyMem_RawMalloc((size_t)(n_locations ? n_locations : 1) * sizeof(uint64_t));
    if (location_hash == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (idindex_init(&functions, U64S(w, H_FUNCTION_ID), n_functions) < 0 ||
        idindex_init(&mappings, U64S(w, H_MAPPING_ID), n_mappings) < 0 ||
        idindex_init(&locations, U64S(w, H_LOCATION_ID), n_locations) < 0) {
        goto done;
    }
    /* Locations: mapping-relative address and mapping identity, then the lines in order. */
    for (Py_ssize_t l = 0; l < n_locations; l++) {
        uint64_t at = address[l], mapping_key = 0, lines = 0, power = 1;
        if (mapping_of[l] != 0) {
            Py_ssize_t m = idindex_find(&mappings, mapping_of[l]);
            if (m < 0) {
                PyErr_SetString(PyExc_ValueError, "sample_hashes(): a location refers to no mapping");
                goto done;
            }
            at -= memory_start[m];
            mapping_key = mapping_keys[m];
        }
        if (line_offsets[l] == line_offsets[l + 1]) {
            lines = H_BARE;
        }
        for (int64_t j = line_offsets[l]; j < line_offsets[l + 1]; j++) {
            Py_ssize_t f = idindex_find(&functions, line_function[j]);
            if (f < 0) {
                PyErr_SetString(PyExc_ValueError, "sample_hashes(): a line refers to no function");
                goto done;
            }
            lines += mix64(function_keys[f] * H_LINE ^ line_line[j]) * power;
            power *= H_GOLDEN;
        }
        location_hash[l] = mix64(mix64(at ^ mapping_key) + lines);
    }
    /* Samples: their locations in order, then the label set. */
    for (Py_ssize_t s = 0; s < n_samples; s++) {
        uint64_t stack = 0, power = 1;
        for (int64_t k = loc_offsets[s]; k < loc_offsets[s + 1]; k++) {
            Py_ssize_t l = idindex_find(&locations, sample_locs[k]);
            if (l < 0) {
                PyErr_SetString(PyExc_ValueError, "sample_hashes(): a sample refers to no location");
                goto done;
            }
            stack += location_hash[l] * power;
            power *= H_FRAME;
        }
        out[s] = mix64(stack + mix64(labelset_keys[s] * H_LABELS + (uint64_t)(loc_offsets[s + 1] - loc_offsets[s])));
    }
    rc = 0;

done:
    idindex_free(&functions);
    idindex_free(&mappings);
    idindex_free(&locations);
    PyMem_RawFree(location_hash);
    return rc;
}

PyDoc_STRVAR(wire_sample_hashes_doc,
             "sample_hashes(location_id, location_mapping_id, location_address, location_line_offsets,\n"
             "              line_function_id, line_line, function_id, function_keys, mapping_id,\n"
             "              mapping_memory_start, mapping_keys, sample_locs, sample_loc_offsets,\n"
             "              labelset_keys, /)\n--\n\n"
             "Every sample's 64-bit identity as bytes (one word each, host order): the hash\n"
             "server.pprof.identity computes with numpy, in one pass over validated columns.\n"
             "function_keys: a stable id per function position; mapping_keys: each mapping's identity\n"
             "hash; labelset_keys: a stable id per sample.");

static PyObject *
wire_sample_hashes(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    PyObject *result;

    if (words_get(&w, args, nargs, H_ARGS, "sample_hashes") < 0) {
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, w.view[H_SAMPLE_LOC_OFFSETS].len - 8 > 0
                                                 ? w.view[H_SAMPLE_LOC_OFFSETS].len - 8
                                                 : 0);
    if (result != NULL && sample_hashes_words(&w, (uint64_t *)PyBytes_AS_STRING(result)) < 0) {
        Py_CLEAR(result);
    }
    words_release(&w);
    return result;
}

/* --- label_runs: samples grouped by their label entries ------------------- */

enum {
    L_OFFSETS, /* sample_label_offsets */
    L_KEY,
    L_STR,
    L_NUM,
    L_NUM_UNIT,
    L_SEED, /* one word: the process's hash seed */
    L_ARGS
};

typedef struct {
    const int64_t *offsets, *key, *str, *num, *unit;
} LabelColumns;

static int
same_run(const LabelColumns *c, Py_ssize_t a, Py_ssize_t b)
{
    int64_t length = c->offsets[a + 1] - c->offsets[a];

    if (length != c->offsets[b + 1] - c->offsets[b]) {
        return 0;
    }
    for (int64_t k = 0; k < length; k++) {
        int64_t i = c->offsets[a] + k, j = c->offsets[b] + k;
        if (c->key[i] != c->key[j] || c->str[i] != c->str[j] || c->num[i] != c->num[j] || c->unit[i] != c->unit[j]) {
            return 0;
        }
    }
    return 1;
}

/* Fills groups (one per sample, -1 for a sample without labels) and firsts (the first sample of each group,
 * *n_groups of them). Returns 1, or 0 when the probes pass their budget (a hostile set of runs that collide:
 * the caller groups another way, so the time stays linear), or -1 with an exception set. */
static int
label_runs_words(const Words *w, int64_t *groups, int64_t *firsts, Py_ssize_t *n_groups)
{
    LabelColumns c = {I64S(w, L_OFFSETS), I64S(w, L_KEY), I64S(w, L_STR), I64S(w, L_NUM), I64S(w, L_NUM_UNIT)};
    Py_ssize_t n_samples = LEN(w, L_OFFSETS) - 1, n_entries = LEN(w, L_KEY);
    uint64_t seed = LEN(w, L_SEED) == 1 ? U64S(w, L_SEED)[0] : 0;
    size_t capacity = 16, mask, probes = 0, budget;
    int64_t *slots; /* the first sample of a group, -1 for an empty slot */
    uint64_t *hashes;

    if (n_samples < 0 || LEN(w, L_STR) != n_entries || LEN(w, L_NUM) != n_entries ||
        LEN(w, L_NUM_UNIT) != n_entries || LEN(w, L_SEED) != 1 ||
        !offsets_ok(c.offsets, n_samples + 1, n_samples, n_entries)) {
        PyErr_SetString(PyExc_ValueError, "label_runs(): columns of inconsistent lengths");
        return -1;
    }
    while (capacity < 2 * (size_t)n_samples) {
        capacity *= 2;
    }
    mask = capacity - 1;
    budget = 64 * (size_t)n_samples + 1024;
    slots = PyMem_RawMalloc(capacity * sizeof(int64_t));
    hashes = PyMem_RawMalloc(capacity * sizeof(uint64_t));
    if (slots == NULL || hashes == NULL) {
        PyMem_RawFree(slots);
        PyMem_RawFree(hashes);
        PyErr_NoMemory();
        return -1;
    }
    memset(slots, 0xff, capacity * sizeof(int64_t));
    *n_groups = 0;
    for (Py_ssize_t s = 0; s < n_samples; s++) {
        uint64_t h = seed;
        size_t at;
        if (c.offsets[s] == c.offsets[s + 1]) {
            groups[s] = -1;
            continue;
        }
        for (int64_t i = c.offsets[s]; i < c.offsets[s + 1]; i++) {
            h = mix64(h ^ (uint64_t)c.key[i]);
            h = mix64(h ^ (uint64_t)c.str[i]);
            h = mix64(h ^ (uint64_t)c.num[i]);
            h = mix64(h ^ (uint64_t)c.unit[i]);
        }
        h = mix64(h ^ (uint64_t)(c.offsets[s + 1] - c.offsets[s]));
        for (at = h & mask;; at = (at + 1) & mask) {
            if (++probes > budget) {
                PyMem_RawFree(slots);
                PyMem_RawFree(hashes);
                return 0;
            }
            if (slots[at] < 0) {
                slots[at] = s;
                hashes[at] = h;
                firsts[*n_groups] = s;
                groups[s] = (*n_groups)++;
                break;
            }
            if (hashes[at] == h && same_run(&c, slots[at], s)) {
                groups[s] = groups[slots[at]];
                break;
            }
        }
    }
    PyMem_RawFree(slots);
    PyMem_RawFree(hashes);
    return 1;
}

PyDoc_STRVAR(wire_label_runs_doc,
             "label_runs(sample_label_offsets, label_key, label_str, label_num, label_num_unit, seed, /)\n--\n\n"
             "Samples grouped by their label entries, compared exactly (in order): (groups, firsts) as bytes of\n"
             "host-order int64 words, groups one per sample (-1: no labels), numbered in order of first\n"
             "appearance, firsts the first sample of each group. None when colliding hashes made the probes pass\n"
             "their budget (linear in the samples): the caller groups another way. seed: one word, the\n"
             "process's own, so that which runs collide cannot be chosen from outside.");

static PyObject *
wire_label_runs(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    PyObject *groups = NULL, *firsts = NULL, *result = NULL;
    Py_ssize_t n_samples, n_groups = 0;
    int rc;

    if (words_get(&w, args, nargs, L_ARGS, "label_runs") < 0) {
        return NULL;
    }
    n_samples = LEN(&w, L_OFFSETS) > 0 ? LEN(&w, L_OFFSETS) - 1 : 0;
    groups = PyBytes_FromStringAndSize(NULL, n_samples * 8);
    firsts = PyBytes_FromStringAndSize(NULL, n_samples * 8);
    if (groups != NULL && firsts != NULL) {
        rc = label_runs_words(&w, (int64_t *)PyBytes_AS_STRING(groups), (int64_t *)PyBytes_AS_STRING(firsts),
                              &n_groups);
        if (rc > 0 && _PyBytes_Resize(&firsts, n_groups * 8) == 0) {
            result = PyTuple_Pack(2, groups, firsts);
        }
        else if (rc == 0) {
            result = Py_NewRef(Py_None);
        }
    }
    Py_XDECREF(groups);
    Py_XDECREF(firsts);
    words_release(&w);
    return result;
}

/* --- expand_frames: server.pprof.frames.expand_numpy for chosen samples ----- */

enum {
    E_LOCATION_ID,
    E_LOCATION_LINE_OFFSETS,
    E_LINE_FUNCTION_ID,
    E_LINE_LINE,
    E_FUNCTION_ID,
    E_NAME_OF_LOCATION, /* per location: its unsymbolized name's index, -1 when it has lines */
    E_SAMPLE_LOCS,
    E_SAMPLE_LOC_OFFSETS,
    E_WHICH, /* the samples to expand, positions in the sample columns */
    E_ARGS
};

/* No more frames than this in one call (bytes of one output column stay addressable). */
#define E_MAX_FRAMES ((int64_t)(PY_SSIZE_T_MAX / 16))

/* The outputs, allocated by expand_frames_words once the frames are counted. */
typedef struct {
    PyObject *entries, *offsets, *entry_functions, *entry_lines, *entry_inlined;
} Expanded;

static void
expanded_clear(Expanded *e)
{
    Py_CLEAR(e->entries);
    Py_CLEAR(e->offsets);
    Py_CLEAR(e->entry_functions);
    Py_CLEAR(e->entry_lines);
    Py_CLEAR(e->entry_inlined);
}

#define WORDS(obj) ((int64_t *)PyBytes_AS_STRING(obj))

/* Frames of the chosen samples, leaf first: each location's line entries in order (an unsymbolized location is one
 * entry of its own), numbered among the entries these frames use in the order of their first use; 0, or -1 with an
 * exception set when an argument is out of place. */
static int
expand_frames_words(const Words *w, Expanded *out)
{
    Py_ssize_t n_locations = LEN(w, E_LOCATION_ID), n_lines = LEN(w, E_LINE_FUNCTION_ID);
    Py_ssize_t n_functions = LEN(w, E_FUNCTION_ID), n_locs = LEN(w, E_SAMPLE_LOCS);
    Py_ssize_t n_samples = LEN(w, E_SAMPLE_LOC_OFFSETS) - 1, n_which = LEN(w, E_WHICH);
    const int64_t *line_offsets = I64S(w, E_LOCATION_LINE_OFFSETS), *loc_offsets = I64S(w, E_SAMPLE_LOC_OFFSETS);
    const int64_t *line_line = I64S(w, E_LINE_LINE), *name_of = I64S(w, E_NAME_OF_LOCATION);
    const int64_t *which = I64S(w, E_WHICH);
    const uint64_t *line_function = U64S(w, E_LINE_FUNCTION_ID), *sample_locs = U64S(w, E_SAMPLE_LOCS);
    IdIndex functions = {0, NULL}, locations = {0, NULL};
    Py_ssize_t n_global = n_lines + n_locations, n_used = 0, capacity;
    int64_t n_frames = 0, f = 0;
    int64_t *rank = NULL; /* per line entry, then per location (its entry when it has no lines) */
    int64_t *entries_out, *offsets_out, *entry_functions, *entry_lines, *entry_inlined;
    int rc = -1;

    if (LEN(w, E_LINE_LINE) != n_lines || LEN(w, E_NAME_OF_LOCATION) != n_locations || n_samples < 0 ||
        !offsets_ok(line_offsets, LEN(w, E_LOCATION_LINE_OFFSETS), n_locations, n_lines) ||
        !offsets_ok(loc_offsets, n_samples + 1, n_samples, n_locs)) {
        PyErr_SetString(PyExc_ValueError, "expand_frames(): columns of inconsistent lengths");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n_which; i++) {
        if (which[i] < 0 || which[i] >= n_samples) {
            PyErr_SetString(PyExc_ValueError, "expand_frames(): a chosen sample is out of range");
            return -1;
        }
    }
    if (idindex_init(&functions, U64S(w, E_FUNCTION_ID), n_functions) < 0 ||
        idindex_init(&locations, U64S(w, E_LOCATION_ID), n_locations) < 0) {
        goto done;
    }
    /* Count the frames, checking every reference on the way. */
    for (Py_ssize_t i = 0; i < n_which; i++) {
        for (int64_t k = loc_offsets[which[i]]; k < loc_offsets[which[i] + 1]; k++) {
            Py_ssize_t l = idindex_find(&locations, sample_locs[k]);
            int64_t count;
            if (l < 0) {
                PyErr_SetString(PyExc_ValueError, "expand_frames(): a sample refers to no location");
                goto done;
            }
            count = line_offsets[l + 1] - line_offsets[l];
            if (count == 0 && (name_of[l] < 0 || name_of[l] > n_locations)) {
                PyErr_SetString(PyExc_ValueError, "expand_frames(): a location without lines has no name");
                goto done;
            }
            n_frames += count ? count : 1;
            if (n_frames > E_MAX_FRAMES) {
                PyErr_SetString(PyExc_MemoryError, "expand_frames(): too many frames");
                goto done;
            }
        }
    }
    /* At most one entry per frame, and per line entry or location. */
    capacity = n_frames < n_global ? (Py_ssize_t)n_frames : n_global;
    rank = PyMem_RawCalloc((size_t)(n_global ? n_global : 1), sizeof(int64_t));
    out->entries = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n_frames * 8);
    out->offsets = PyBytes_FromStringAndSize(NULL, (n_which + 1) * 8);
    out->entry_functions = PyBytes_FromStringAndSize(NULL, capacity * 8);
    out->entry_lines = PyBytes_FromStringAndSize(NULL, capacity * 8);
    out->entry_inlined = PyBytes_FromStringAndSize(NULL, capacity * 8);
    if (rank == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (out->entries == NULL || out->offsets == NULL || out->entry_functions == NULL || out->entry_lines == NULL ||
        out->entry_inlined == NULL) {
        goto done;
    }
    entries_out = WORDS(out->entries);
    offsets_out = WORDS(out->offsets);
    entry_functions = WORDS(out->entry_functions);
    entry_lines = WORDS(out->entry_lines);
    entry_inlined = WORDS(out->entry_inlined);
    /* Every frame's entry, numbered at its first use (rank: 0 unseen, else the number + 1), each entry's function
     * resolved once. */
    offsets_out[0] = 0;
    for (Py_ssize_t i = 0; i < n_which; i++) {
        for (int64_t k = loc_offsets[which[i]]; k < loc_offsets[which[i] + 1]; k++) {
            Py_ssize_t l = idindex_find(&locations, sample_locs[k]);
            int64_t start = line_offsets[l], end = line_offsets[l + 1];
            if (start == end) {
                if (rank[n_lines + l] == 0) {
                    entry_functions[n_used] = n_functions + name_of[l];
                    entry_lines[n_used] = 0;
                    entry_inlined[n_used] = 0;
                    rank[n_lines + l] = ++n_used;
                }
                entries_out[f++] = rank[n_lines + l] - 1;
                continue;
            }
            for (int64_t j = start; j < end; j++) {
                if (rank[j] == 0) {
                    Py_ssize_t at = idindex_find(&functions, line_function[j]);
                    if (at < 0) {
                        PyErr_SetString(PyExc_ValueError, "expand_frames(): a line refers to no function");
                        goto done;
                    }
                    entry_functions[n_used] = at;
                    entry_lines[n_used] = line_line[j];
                    entry_inlined[n_used] = j != end - 1;
                    rank[j] = ++n_used;
                }
                entries_out[f++] = rank[j] - 1;
            }
        }
        offsets_out[i + 1] = f;
    }
    if (_PyBytes_Resize(&out->entry_functions, n_used * 8) < 0 || _PyBytes_Resize(&out->entry_lines, n_used * 8) < 0 ||
        _PyBytes_Resize(&out->entry_inlined, n_used * 8) < 0) {
        goto done;
    }
    rc = 0;

done:
    idindex_free(&functions);
    idindex_free(&locations);
    PyMem_RawFree(rank);
    return rc;
}

PyDoc_STRVAR(wire_expand_frames_doc,
             "expand_frames(location_id, location_line_offsets, line_function_id, line_line, function_id,\n"
             "              name_of_location, sample_locs, sample_loc_offsets, which, /)\n--\n\n"
             "The frames of the samples at positions which, leaf first, as server.pprof.frames.expand_numpy\n"
             "lays them out: (entries, offsets, entry_functions, entry_lines, entry_inlined), each\n"
             "bytes of host-order int64 words. entries number only the line entries these frames use, in the\n"
             "order of their first use; an unsymbolized location (no line) is one entry, function n_functions plus its\n"
             "name_of_location, line 0.");

static PyObject *
wire_expand_frames(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    Expanded e = {NULL, NULL, NULL, NULL, NULL};
    PyObject *result = NULL;

    if (words_get(&w, args, nargs, E_ARGS, "expand_frames") < 0) {
        return NULL;
    }
    if (expand_frames_words(&w, &e) == 0) {
        result = PyTuple_Pack(5, e.entries, e.offsets, e.entry_functions, e.entry_lines, e.entry_inlined);
    }
    expanded_clear(&e);
    words_release(&w);
    return result;
}

/* --- pack_frame_values: a value per frame of chosen samples, packed narrow -- */

enum {
    P_ENTRY_VALUES, /* one value per line entry */
    P_ENTRIES,      /* per frame, its line entry (server.pprof.frames.Frames) */
    P_OFFSETS,      /* sample i's frames are entries[offsets[i]:offsets[i + 1]] */
    P_WHICH,        /* the samples whose frames are wanted, in this order */
    P_ARGS
};

/* Little-endian stores whatever the host's order. */
#if PY_LITTLE_ENDIAN
#define PUT_LE(NAME, TYPE)                                                                                          \
    static inline void NAME(unsigned char *p, uint64_t v)                                                          \
    {                                                                                                                \
        TYPE x = (TYPE)v;                                                                                            \
        memcpy(p, &x, sizeof x);                                                                                     \
    }
#else
#define PUT_LE(NAME, TYPE)                                                                                          \
    static inline void NAME(unsigned char *p, uint64_t v)                                                          \
    {                                                                                                                \
        for (size_t b = 0; b < sizeof(TYPE); b++) {                                                                  \
            p[b] = (unsigned char)(v >> (8 * b));                                                                    \
        }                                                                                                            \
    }
#endif
PUT_LE(put_le8, uint8_t)
PUT_LE(put_le16, uint16_t)
PUT_LE(put_le32, uint32_t)
PUT_LE(put_le64, uint64_t)

static inline uint64_t
get_le(const unsigned char *p, int width)
{
    uint64_t v = 0;
    for (int b = width - 1; b >= 0; b--) {
        v = v << 8 | p[b];
    }
    return v;
}

/* The narrowest width holding values whose bits, or-ed together, are these: 1, 2 or 4 bytes unsigned, else 8
 * signed (a negative value sets the top bit). */
static int
pack_width(uint64_t bits)
{
    return bits < (1 << 8) ? 1 : bits < (1 << 16) ? 2 : bits <= UINT32_MAX ? 4 : 8;
}

/* Each chosen frame's value stored at WIDTH, one after another, their bits or-ed into bits (one dependent
 * operation a frame, where a minimum and a maximum took two compares and moves); a frame whose entry is out of
 * range stops it (bad set). */
#define PACK_FRAMES(STORE, WIDTH)                                                                                   \
    for (Py_ssize_t i = 0; i < n_which && !bad; i++) {                                                             \
        const int64_t *frame = entries + offsets[which[i]], *end = entries + offsets[which[i] + 1];                 \
        for (; frame < end; frame++) {                                                                               \
            int64_t v;                                                                                               \
            if ((uint64_t)*frame >= (uint64_t)n_values) {                                                            \
                bad = 1;                                                                                             \
                break;                                                                                               \
            }                                                                                                        \
            v = values[*frame];                                                                                      \
            bits |= (uint64_t)v;                                                                                     \
            STORE(out, (uint64_t)v);                                                                                 \
            out += (WIDTH);                                                                                          \
        }                                                                                                            \
    }

PyDoc_STRVAR(wire_pack_frame_values_doc,
             "pack_frame_values(entry_values, entries, offsets, which, /)\n--\n\n"
             "entry_values[entries[k]] for every frame k of every sample which[i] (its frames are\n"
             "entries[offsets[which[i]]:offsets[which[i] + 1]]), samples in the order of which: (width, bytes),\n"
             "the values little-endian one after another, unsigned in the narrowest of 1, 2 and 4 bytes that\n"
             "holds them all, else signed in 8 (1 when there are none). Arguments are arrays of host-order int64\n"
             "words; ValueError for offsets, samples or entries out of range.");

/* One pass over the frames: they are packed at the width every entry's value fits, their own range kept on the
 * way, and narrowed after in the rare case that entries no chosen frame uses needed a wider one. */
static PyObject *
wire_pack_frame_values(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    const int64_t *values, *entries, *offsets, *which;
    Py_ssize_t n_values, n_entries, n_samples, n_which;
    int64_t n_frames = 0;
    uint64_t bits = 0;
    int width = 1, exact, bad = 0;
    PyObject *packed = NULL, *result = NULL;
    unsigned char *out;

    if (words_get(&w, args, nargs, P_ARGS, "pack_frame_values") < 0) {
        return NULL;
    }
    values = I64S(&w, P_ENTRY_VALUES);
    entries = I64S(&w, P_ENTRIES);
    offsets = I64S(&w, P_OFFSETS);
    which = I64S(&w, P_WHICH);
    n_values = LEN(&w, P_ENTRY_VALUES);
    n_entries = LEN(&w, P_ENTRIES);
    n_samples = LEN(&w, P_OFFSETS) - 1;
    n_which = LEN(&w, P_WHICH);
    if (n_samples < 0 || !offsets_ok(offsets, n_samples + 1, n_samples, n_entries)) {
        PyErr_SetString(PyExc_ValueError, "pack_frame_values(): offsets do not fit the entries");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_which; i++) {
        if (which[i] < 0 || which[i] >= n_samples) {
            PyErr_SetString(PyExc_ValueError, "pack_frame_values(): a chosen sample is out of range");
            goto done;
        }
        n_frames += offsets[which[i] + 1] - offsets[which[i]];
        if (n_frames > PY_SSIZE_T_MAX / 8) {
            PyErr_SetString(PyExc_MemoryError, "pack_frame_values(): too many frames");
            goto done;
        }
    }
    if (n_frames) {
        for (Py_ssize_t e = 0; e < n_values; e++) {
            bits |= (uint64_t)values[e];
        }
        width = pack_width(bits);
        bits = 0;
    }
    packed = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n_frames * width);
    if (packed == NULL) {
        goto done;
    }
    out = (unsigned char *)PyBytes_AS_STRING(packed);
    switch (width) {
    case 1:
        PACK_FRAMES(put_le8, 1);
        break;
    case 2:
        PACK_FRAMES(put_le16, 2);
        break;
    case 4:
        PACK_FRAMES(put_le32, 4);
        break;
    default:
        PACK_FRAMES(put_le64, 8);
        break;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "pack_frame_values(): a frame refers to no entry");
        goto done;
    }
    exact = pack_width(bits);
    if (exact < width) { /* narrowed in place: each value is written no later than it was */
        unsigned char *bytes = (unsigned char *)PyBytes_AS_STRING(packed);
        for (int64_t k = 0; k < n_frames; k++) {
            uint64_t v = get_le(bytes + k * width, width);
            for (int b = 0; b < exact; b++) {
                bytes[k * exact + b] = (unsigned char)(v >> (8 * b));
            }
        }
        width = exact;
        if (_PyBytes_Resize(&packed, (Py_ssize_t)n_frames * width) < 0) {
            goto done;
        }
    }
    result = Py_BuildValue("(iO)", width, packed);

done:
    Py_XDECREF(packed);
    words_release(&w);
    return result;
}

/* --- function_digests: server.store.symbols.function_digests_numpy in one pass -- */

PyDoc_STRVAR(wire_function_digests_doc,
             "function_digests(strings, names, system_names, filenames, /)\n--\n\n"
             "The digest of every function as server.store.symbols.function_digests_numpy makes it, from\n"
             "Python's hash of its name, system name and file (indexes into the list strings, arrays of\n"
             "int64 words of one length): (first, second), bytes of host-order uint64 words, one per\n"
             "function. Only the strings a function names are hashed. ValueError for an index outside strings.");

static PyObject *
wire_function_digests(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Words w;
    PyObject *first = NULL, *second = NULL, *result = NULL;
    PyObject **strings;
    Py_ssize_t n, n_strings;

    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "function_digests() takes a list of strings and 3 arrays");
        return NULL;
    }
    if (words_get(&w, args + 1, 3, 3, "function_digests") < 0) {
        return NULL;
    }
    n = LEN(&w, 0);
    if (LEN(&w, 1) != n || LEN(&w, 2) != n) {
        PyErr_SetString(PyExc_ValueError, "function_digests(): arrays of different lengths");
        goto done;
    }
    /* The list is only read, with the GIL held and no Python code run between: its items stay put. */
    strings = PySequence_Fast_ITEMS(args[0]);
    n_strings = PyList_GET_SIZE(args[0]);
    first = PyBytes_FromStringAndSize(NULL, n * 8);
    second = PyBytes_FromStringAndSize(NULL, n * 8);
    if (first == NULL || second == NULL) {
        goto done;
    }
    for (Py_ssize_t f = 0; f < n; f++) {
        uint64_t h[3];
        for (int c = 0; c < 3; c++) {
            int64_t at = I64S(&w, c)[f];
            Py_hash_t hashed;
            if (at < 0 || at >= n_strings) {
                PyErr_SetString(PyExc_ValueError, "function_digests(): a string index outside the table");
                goto done;
            }
            hashed = PyObject_Hash(strings[at]);
            if (hashed == -1 && PyErr_Occurred()) {
                goto done;
            }
            h[c] = (uint64_t)hashed;
        }
        ((uint64_t *)PyBytes_AS_STRING(first))[f] = mix64(h[0] * H_GOLDEN + mix64(h[1] + mix64(h[2])));
        ((uint64_t *)PyBytes_AS_STRING(second))[f] =
            mix64(h[2] * H_LINE ^ mix64(h[0] + mix64(h[1] ^ 0x27D4EB2FULL)));
    }
    result = PyTuple_Pack(2, first, second);
done:
    Py_XDECREF(first);
    Py_XDECREF(second);
    words_release(&w);
    return result;
}

static PyMethodDef wire_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))wire_parse, METH_VARARGS | METH_KEYWORDS, wire_parse_doc},
    {"valid", (PyCFunction)(void (*)(void))wire_valid, METH_FASTCALL, wire_valid_doc},
    {"sample_hashes", (PyCFunction)(void (*)(void))wire_sample_hashes, METH_FASTCALL, wire_sample_hashes_doc},
    {"label_runs", (PyCFunction)(void (*)(void))wire_label_runs, METH_FASTCALL, wire_label_runs_doc},
    {"expand_frames", (PyCFunction)(void (*)(void))wire_expand_frames, METH_FASTCALL, wire_expand_frames_doc},
    {"function_digests", (PyCFunction)(void (*)(void))wire_function_digests, METH_FASTCALL,
     wire_function_digests_doc},
    {"pack_frame_values", (PyCFunction)(void (*)(void))wire_pack_frame_values, METH_FASTCALL,
     wire_pack_frame_values_doc},
    {NULL, NULL, 0, NULL},
};

static int
wire_exec(PyObject *module)
{
    ModuleState *ms = module_state(module);

    ms->column_type = PyType_FromModuleAndSpec(module, &column_spec, NULL);
    if (ms->column_type == NULL || PyModule_AddObjectRef(module, "Column", ms->column_type) < 0) {
        return -1;
    }
    ms->parser_type = PyType_FromModuleAndSpec(module, &parser_spec, NULL);
    if (ms->parser_type == NULL || PyModule_AddObjectRef(module, "Parser", ms->parser_type) < 0) {
        return -1;
    }
    ms->limit_error = PyErr_NewExceptionWithDoc(
        "server.pprof._wire.LimitError",
        "A decoding limit passed: args are (text, name, limit), name one of profile_samples, "
        "profile_locations, profile_sample_types, profile_decoded_bytes, profile_record_bytes.",
        PyExc_ValueError, NULL);
    if (ms->limit_error == NULL || PyModule_AddObjectRef(module, "LimitError", ms->limit_error) < 0) {
        return -1;
    }
    return 0;
}

static int
wire_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *ms = module_state(module);

    Py_VISIT(ms->column_type);
    Py_VISIT(ms->parser_type);
    Py_VISIT(ms->limit_error);
    return 0;
}

static int
wire_clear(PyObject *module)
{
    ModuleState *ms = module_state(module);

    Py_CLEAR(ms->column_type);
    Py_CLEAR(ms->parser_type);
    Py_CLEAR(ms->limit_error);
    return 0;
}

static void
wire_free(void *module)
{
    wire_clear((PyObject *)module);
}

static PyModuleDef_Slot wire_slots[] = {
    {Py_mod_exec, wire_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "server.pprof._wire",
    .m_doc = "Incremental decoder from pprof protobuf bytes to flat columns, within limits (see server.pprof.columns).",
    .m_size = sizeof(ModuleState),
    .m_methods = wire_methods,
    .m_slots = wire_slots,
    .m_traverse = wire_traverse,
    .m_clear = wire_clear,
    .m_free = wire_free,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    return PyModuleDef_Init(&wire_module);
}
