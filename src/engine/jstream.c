/* jstream.c: the incremental JSON tokenizer (state machine, explicit stack,
 * silencing, minified capture). See jstream.h for the contract. */
#include "engine/jstream.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum js_state {
    S_VALUE,        /* a value must come (start, after ':', after ',' in an array) */
    S_VALUE_OR_END, /* after '[' */
    S_NAME_OR_END,  /* after '{' */
    S_NAME,         /* after ',' in an object */
    S_COLON,        /* after a member name */
    S_AFTER,        /* after a value inside a container */
    S_DONE,         /* after the top-level value */
    S_STR,          /* inside a string */
    S_ESC,          /* after a backslash */
    S_HEX,          /* inside the four hex digits of \u */
    S_LOW_BS,       /* after a high surrogate escape: '\' must follow */
    S_LOW_U,        /* ... then 'u' */
    S_UTF8,         /* inside a multi-byte UTF-8 sequence */
    S_NUM_MINUS,
    S_NUM_ZERO,
    S_NUM_INT,
    S_NUM_DOT,
    S_NUM_FRAC,
    S_NUM_E,
    S_NUM_ESIGN,
    S_NUM_EXP,
    S_LIT, /* inside true, false or null */
    S_FAILED,
    S_EOF,
};

enum text_mode { TM_NONE, TM_CHUNK, TM_SCRATCH, TM_CAPTURE };

#define NO_QUIET SIZE_MAX
#define JS_DEFAULT_MAX_TOKEN ((size_t)1 << 20)

struct pf_js {
    size_t max_depth, max_token;
    unsigned char *stack; /* 1: object, 0: array; max_depth entries */
    size_t depth;

    /* input */
    const unsigned char *in;
    size_t in_len, pos;
    int chunk_done;          /* the end of this chunk was reached (token text and capture saved) */
    unsigned long long base; /* absolute offset of in[0] */
    int at_end;

    enum js_state state;
    int seen_value;

    /* string / number / literal in progress */
    int tok_active;
    pf_js_token tok;
    unsigned long long tok_off;
    size_t tok_depth;
    int tok_quiet, tok_escaped;
    enum text_mode tok_mode;
    size_t tok_ptr;       /* TM_CHUNK: index in the chunk of the first text byte */
    size_t tok_cap_start; /* TM_CAPTURE: index in the capture buffer */
    pf_buf scratch;       /* TM_SCRATCH */
    unsigned hex_acc;
    int hex_left, want_low;
    int u8_need;
    unsigned char u8_lo, u8_hi;
    const char *lit;
    int lit_i;

    /* silencing */
    size_t quiet_from;    /* tokens at this depth or deeper produce no events */
    int quiet_end;        /* the END at quiet_from - 1 is silent too */
    int skip_next;        /* the next value is silent */
    pf_js_token last_tok; /* the last event returned (for skip/capture calls) */
    size_t last_depth;
    unsigned long long last_off;

    /* capture */
    pf_buf *cap;
    size_t cap_depth;
    unsigned long long cap_off;
    size_t run; /* index in the chunk of the first byte not yet copied */

    pf_error err;
};

/* Byte classes inside strings: 0 plain, 1 '"', 2 '\', 3 control, 4 non-ASCII. */
static const unsigned char str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* The first byte in [P, E) that is not plain inside a string (a quote, a
 * backslash, a control character or a non-ASCII byte), or E. Eight bytes at
 * a time where the byte order allows: a byte is flagged when it is below
 * 0x20, equal to '"' or '\', or has its high bit set. A subtraction only
 * borrows from a byte that is itself flagged, so the lowest flagged byte is
 * exact. */
static const unsigned char *scan_plain(const unsigned char *p, const unsigned char *e)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, sizeof w);
        uint64_t t =
            ((w - 0x20 * ones) | ((w ^ ('"' * ones)) - ones) | ((w ^ ('\\' * ones)) - ones) | w) &
            high;
        if (t) return p + (__builtin_ctzll(t) >> 3);
        p += 8;
    }
#endif
    while (p < e && str_class[*p] == 0)
        p++;
    return p;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

pf_js *pf_js_new(size_t max_depth, size_t max_token, pf_error *err)
{
    if (max_depth == 0) {
        pf_error_set(err, PF_EINVAL, "pf_js_new: MAX_DEPTH is 0");
        return NULL;
    }
    pf_js *js = calloc(1, sizeof *js);
    unsigned char *stack = malloc(max_depth);
    if (!js || !stack) {
        free(js);
        free(stack);
        pf_error_set(err, PF_ENOMEM, "out of memory creating a JSON tokenizer");
        return NULL;
    }
    js->stack = stack;
    js->max_depth = max_depth;
    js->max_token = max_token ? max_token : JS_DEFAULT_MAX_TOKEN;
    pf_buf_init(&js->scratch, js->max_token);
    pf_js_reset(js);
    return js;
}

void pf_js_reset(pf_js *js)
{
    /* Everything but the limits, the stack's and the scratch buffer's
     * memory goes back to its initial value, so nothing of the previous
     * document (an escape half read, a pending surrogate, a capture) can
     * reach the next one. */
    unsigned char *stack = js->stack;
    size_t max_depth = js->max_depth, max_token = js->max_token;
    pf_buf scratch = js->scratch;
    memset(js, 0, sizeof *js);
    js->stack = stack;
    js->max_depth = max_depth;
    js->max_token = max_token;
    js->scratch = scratch;
    pf_buf_reset(&js->scratch);
    js->in = (const unsigned char *)"";
    js->state = S_VALUE;
    js->tok_mode = TM_NONE;
    js->quiet_from = NO_QUIET;
    js->last_tok = PF_JS_NONE;
    pf_error_clear(&js->err);
}

void pf_js_free(pf_js *js)
{
    if (!js) return;
    pf_buf_free(&js->scratch);
    free(js->stack);
    free(js);
}

void pf_js_input(pf_js *js, const char *data, size_t len)
{
    js->base += js->in_len;
    js->in = (const unsigned char *)(data ? data : "");
    js->in_len = data ? len : 0;
    js->pos = 0;
    js->run = 0;
    js->chunk_done = 0;
}

void pf_js_end_input(pf_js *js)
{
    js->at_end = 1;
}

int pf_js_capturing(const pf_js *js)
{
    return js->cap != NULL;
}

int pf_js_empty(const pf_js *js)
{
    return js->state == S_EOF && !js->seen_value;
}

unsigned long long pf_js_offset(const pf_js *js)
{
    return js->base + js->pos;
}

void pf_js_skip_value(pf_js *js)
{
    if (js->last_tok == PF_JS_NAME) js->skip_next = 1;
}

void pf_js_skip_contents(pf_js *js, int report_end)
{
    if ((js->last_tok == PF_JS_OBJECT_BEGIN || js->last_tok == PF_JS_ARRAY_BEGIN) &&
        js->quiet_from == NO_QUIET) {
        js->quiet_from = js->last_depth + 1;
        js->quiet_end = !report_end;
    }
}

pf_status pf_js_capture(pf_js *js, pf_buf *out, pf_error *err)
{
    if (js->cap || (js->last_tok != PF_JS_OBJECT_BEGIN && js->last_tok != PF_JS_ARRAY_BEGIN))
        return pf_error_set(err, PF_EINVAL, "pf_js_capture: not right after a container begins");
    pf_status st = pf_buf_putc(out, js->last_tok == PF_JS_OBJECT_BEGIN ? '{' : '[');
    if (st != PF_OK)
        return pf_error_off(err, st, (long)js->last_off, "a captured value does not fit");
    js->cap = out;
    js->cap_depth = js->last_depth;
    js->cap_off = js->last_off;
    js->run = js->pos;
    return PF_OK;
}

/* ---- errors ------------------------------------------------------------ */

static pf_status fail(pf_js *js, pf_error *err, pf_status code, unsigned long long off,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static pf_status fail(pf_js *js, pf_error *err, pf_status code, unsigned long long off,
                      const char *fmt, ...)
{
    char msg[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pf_error_off(&js->err, code, (long)off, "%s", msg);
    js->state = S_FAILED;
    js->cap = NULL;
    if (err) *err = js->err;
    return code;
}

/* "'x'" for a printable byte, "byte 0xNN" otherwise. */
static const char *show(unsigned char c, char *buf, size_t n)
{
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else if (c == ' ')
        snprintf(buf, n, "a space");
    else
        snprintf(buf, n, "byte 0x%02X", c);
    return buf;
}

static pf_status unexpected(pf_js *js, pf_error *err, const unsigned char *p, const char *what)
{
    char b[16];
    return fail(js, err, PF_EDATA, js->base + (size_t)(p - js->in),
                "not valid JSON: expected %s, found %s", what, show(*p, b, sizeof b));
}

/* ---- capture and token text -------------------------------------------- */

/* Copies the chunk bytes [run, to) into the capture buffer. */
static pf_status cap_flush(pf_js *js, size_t to, pf_error *err)
{
    if (!js->cap || to <= js->run) return PF_OK;
    pf_status st = pf_buf_append(js->cap, js->in + js->run, to - js->run);
    js->run = to;
    if (st == PF_ETOOBIG)
        return fail(js, err, PF_ETOOBIG, js->cap_off, "value is larger than %zu bytes",
                    js->cap->cap);
    if (st != PF_OK) return fail(js, err, st, js->cap_off, "out of memory capturing a value");
    return PF_OK;
}

/* Starts a name, string, number or literal whose text (if any) begins at
 * chunk index TEXT_AT. */
static void tok_begin(pf_js *js, pf_js_token t, unsigned long long off, size_t text_at, int quiet)
{
    js->tok_active = 1;
    js->tok = t;
    js->tok_off = off;
    js->tok_depth = js->depth;
    js->tok_quiet = quiet;
    js->tok_escaped = 0;
    if (quiet || t == PF_JS_TRUE || t == PF_JS_FALSE || t == PF_JS_NULL) {
        js->tok_mode = TM_NONE;
    } else if (js->cap) {
        js->tok_mode = TM_CAPTURE;
        js->tok_cap_start = js->cap->len + (text_at - js->run);
    } else {
        js->tok_mode = TM_CHUNK;
        js->tok_ptr = text_at;
    }
}

/* The chunk ends inside a token: keep the text seen so far. */
static pf_status tok_save(pf_js *js, pf_error *err)
{
    size_t from;
    if (js->tok_mode == TM_CHUNK) {
        pf_buf_reset(&js->scratch);
        from = js->tok_ptr;
        js->tok_mode = TM_SCRATCH;
    } else if (js->tok_mode == TM_SCRATCH) {
        from = 0;
    } else {
        return PF_OK;
    }
    pf_status st = pf_buf_append(&js->scratch, js->in + from, js->in_len - from);
    if (st == PF_ETOOBIG)
        return fail(js, err, PF_ETOOBIG, js->tok_off, "token is longer than %zu bytes",
                    js->max_token);
    if (st != PF_OK) return fail(js, err, st, js->tok_off, "out of memory reading a token");
    return PF_OK;
}

/* The token's text ends at chunk index END (exclusive). Fills EV. */
static pf_status tok_text(pf_js *js, size_t end, pf_js_event *ev, pf_error *err)
{
    switch (js->tok_mode) {
    case TM_NONE:
        ev->text = NULL;
        ev->len = 0;
        return PF_OK;
    case TM_CHUNK:
        ev->text = (const char *)js->in + js->tok_ptr;
        ev->len = end - js->tok_ptr;
        return PF_OK;
    case TM_SCRATCH: {
        pf_status st = pf_buf_append(&js->scratch, js->in, end);
        if (st == PF_ETOOBIG)
            return fail(js, err, PF_ETOOBIG, js->tok_off, "token is longer than %zu bytes",
                        js->max_token);
        if (st != PF_OK) return fail(js, err, st, js->tok_off, "out of memory reading a token");
        ev->text = js->scratch.data;
        ev->len = js->scratch.len;
        return PF_OK;
    }
    case TM_CAPTURE: {
        pf_status st = cap_flush(js, end, err);
        if (st != PF_OK) return st;
        ev->text = js->cap->data + js->tok_cap_start;
        ev->len = js->cap->len - js->tok_cap_start;
        return PF_OK;
    }
    }
    return PF_OK;
}

/* ---- the state machine ------------------------------------------------- */

/* A value just ended at the current depth. */
static void value_done(pf_js *js)
{
    js->state = js->depth == 0 ? S_DONE : S_AFTER;
}

/* Whether a value starting now at the current depth is silent; consumes a
 * pending skip. SILENCE_CONTENTS: the value is a container. */
static int value_quiet(pf_js *js, int container)
{
    if (js->depth >= js->quiet_from) return 1;
    if (!js->skip_next) return 0;
    js->skip_next = 0;
    if (container) {
        js->quiet_from = js->depth + 1;
        js->quiet_end = 1;
    }
    return 1;
}

static void emit(pf_js *js, pf_js_event *ev, pf_js_token t, size_t depth, unsigned long long off)
{
    ev->token = t;
    ev->depth = depth;
    ev->offset = off;
    ev->escaped = 0;
    if (t != PF_JS_NAME && t != PF_JS_STRING && t != PF_JS_NUMBER) {
        ev->text = NULL;
        ev->len = 0;
    }
    js->last_tok = t;
    js->last_depth = depth;
    js->last_off = off;
}

/* Ends the token in progress at chunk index END (exclusive of any closing
 * quote already consumed); returns 1 when an event was produced. */
static pf_status tok_end(pf_js *js, size_t text_end, pf_js_event *ev, int *produced, pf_error *err)
{
    js->tok_active = 0;
    *produced = 0;
    if (js->tok_quiet) return PF_OK;
    pf_status st = tok_text(js, text_end, ev, err);
    if (st != PF_OK) return st;
    if (ev->len > js->max_token)
        return fail(js, err, PF_ETOOBIG, js->tok_off, "token is longer than %zu bytes",
                    js->max_token);
    const char *text = ev->text;
    size_t len = ev->len;
    emit(js, ev, js->tok, js->tok_depth, js->tok_off);
    ev->text = text;
    ev->len = len;
    ev->escaped = js->tok_escaped;
    *produced = 1;
    return PF_OK;
}

static pf_status at_end_of_input(pf_js *js, pf_js_event *ev, pf_error *err)
{
    unsigned long long total = js->base + js->in_len;
    switch (js->state) {
    case S_DONE:
        js->state = S_EOF;
        emit(js, ev, PF_JS_EOF, 0, total);
        return PF_OK;
    case S_EOF:
        emit(js, ev, PF_JS_EOF, 0, total);
        return PF_OK;
    case S_VALUE:
        if (js->depth == 0 && !js->seen_value) {
            js->state = S_EOF;
            emit(js, ev, PF_JS_EOF, 0, total);
            return PF_OK;
        }
        break;
    case S_NUM_ZERO:
    case S_NUM_INT:
    case S_NUM_FRAC:
    case S_NUM_EXP:
        if (js->depth == 0) {
            int produced;
            js->state = S_DONE;
            pf_status st = tok_end(js, 0, ev, &produced, err);
            if (st != PF_OK) return st;
            if (produced) return PF_OK;
            js->state = S_EOF;
            emit(js, ev, PF_JS_EOF, 0, total);
            return PF_OK;
        }
        break;
    default:
        break;
    }
    return fail(js, err, PF_EDATA, total, "truncated JSON (%llu bytes)", total);
}

pf_status pf_js_next(pf_js *js, pf_js_event *ev, pf_error *err)
{
    if (js->state == S_FAILED) {
        if (err) *err = js->err;
        return js->err.code;
    }
    const unsigned char *const in = js->in;
    const unsigned char *p = in + js->pos;
    const unsigned char *const e = in + js->in_len;
    pf_status st;
    char b[16];

#define POS ((size_t)(p - in))
#define OFF (js->base + POS)
#define RETURN_EVENT()                                                                             \
    do {                                                                                           \
        js->pos = POS;                                                                             \
        return PF_OK;                                                                              \
    } while (0)

    for (;;) {
        if (p == e) {
            if (!js->chunk_done) {
                if (js->tok_active && (st = tok_save(js, err)) != PF_OK) return st;
                if (js->cap && (st = cap_flush(js, js->in_len, err)) != PF_OK) return st;
                js->chunk_done = 1;
            }
            js->pos = js->in_len;
            if (!js->at_end) {
                emit(js, ev, PF_JS_NONE, js->depth, OFF);
                js->last_tok = PF_JS_NONE;
                return PF_OK;
            }
            return at_end_of_input(js, ev, err);
        }
        unsigned char c = *p;
        switch (js->state) {
        case S_STR: {
            p = scan_plain(p, e);
            if (p == e) continue;
            c = *p;
            switch (str_class[c]) {
            case 1: { /* closing quote */
                size_t text_end = POS;
                p++;
                int is_name = js->tok == PF_JS_NAME, produced;
                if (is_name)
                    js->state = S_COLON;
                else
                    value_done(js);
                st = tok_end(js, text_end, ev, &produced, err);
                if (st != PF_OK) return st;
                if (produced) RETURN_EVENT();
                continue;
            }
            case 2:
                js->tok_escaped = 1;
                js->state = S_ESC;
                p++;
                continue;
            case 3:
                return fail(js, err, PF_EDATA, OFF,
                            "not valid JSON: unescaped control character U+%04X in a string", c);
            default:
                if (c >= 0xC2 && c <= 0xDF) {
                    js->u8_need = 1;
                    js->u8_lo = 0x80;
                    js->u8_hi = 0xBF;
                } else if (c >= 0xE0 && c <= 0xEF) {
                    js->u8_need = 2;
                    js->u8_lo = c == 0xE0 ? 0xA0 : 0x80;
                    js->u8_hi = c == 0xED ? 0x9F : 0xBF;
                } else if (c >= 0xF0 && c <= 0xF4) {
                    js->u8_need = 3;
                    js->u8_lo = c == 0xF0 ? 0x90 : 0x80;
                    js->u8_hi = c == 0xF4 ? 0x8F : 0xBF;
                } else {
                    return fail(js, err, PF_EDATA, OFF,
                                "not valid JSON: invalid UTF-8 byte 0x%02X in a string", c);
                }
                p++;
                /* The common case: the whole sequence is in this chunk. */
                while (js->u8_need && p < e) {
                    if (*p < js->u8_lo || *p > js->u8_hi)
                        return fail(js, err, PF_EDATA, OFF,
                                    "not valid JSON: invalid UTF-8 byte 0x%02X in a string", *p);
                    js->u8_lo = 0x80;
                    js->u8_hi = 0xBF;
                    js->u8_need--;
                    p++;
                }
                if (js->u8_need) js->state = S_UTF8;
                continue;
            }
        }
        case S_UTF8:
            if (c < js->u8_lo || c > js->u8_hi)
                return fail(js, err, PF_EDATA, OFF,
                            "not valid JSON: invalid UTF-8 byte 0x%02X in a string", c);
            js->u8_lo = 0x80;
            js->u8_hi = 0xBF;
            if (--js->u8_need == 0) js->state = S_STR;
            p++;
            continue;
        case S_ESC:
            switch (c) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                js->state = S_STR;
                break;
            case 'u':
                js->state = S_HEX;
                js->hex_left = 4;
                js->hex_acc = 0;
                break;
            default:
                return fail(js, err, PF_EDATA, OFF,
                            "not valid JSON: invalid escape in a string (backslash then %s)",
                            show(c, b, sizeof b));
            }
            p++;
            continue;
        case S_HEX: {
            int v = hex_val(c);
            if (v < 0)
                return fail(js, err, PF_EDATA, OFF,
                            "not valid JSON: \\u must be followed by four hex digits");
            js->hex_acc = js->hex_acc * 16 + (unsigned)v;
            p++;
            if (--js->hex_left) continue;
            unsigned u = js->hex_acc;
            if (js->want_low) {
                js->want_low = 0;
                if (u < 0xDC00 || u > 0xDFFF)
                    return fail(js, err, PF_EDATA, OFF - 6,
                                "not valid JSON: \\u%04X after a high surrogate is not a low "
                                "surrogate",
                                u);
                js->state = S_STR;
            } else if (u >= 0xD800 && u <= 0xDBFF) {
                js->state = S_LOW_BS;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return fail(js, err, PF_EDATA, OFF - 6,
                            "not valid JSON: unpaired surrogate \\u%04X in a string", u);
            } else {
                js->state = S_STR;
            }
            continue;
        }
        case S_LOW_BS:
        case S_LOW_U:
            if (c != (js->state == S_LOW_BS ? '\\' : 'u'))
                return fail(js, err, PF_EDATA, OFF,
                            "not valid JSON: unpaired surrogate \\u%04X in a string", js->hex_acc);
            if (js->state == S_LOW_BS) {
                js->state = S_LOW_U;
            } else {
                js->state = S_HEX;
                js->hex_left = 4;
                js->hex_acc = 0;
                js->want_low = 1;
            }
            p++;
            continue;

        case S_NUM_MINUS:
            if (c == '0')
                js->state = S_NUM_ZERO;
            else if (c >= '1' && c <= '9')
                js->state = S_NUM_INT;
            else
                return unexpected(js, err, p, "a digit after '-'");
            p++;
            continue;
        case S_NUM_INT:
            while (p < e && *p >= '0' && *p <= '9')
                p++;
            if (p == e) continue;
            c = *p;
            /* fall through */
        case S_NUM_ZERO:
            if (c == '.') {
                js->state = S_NUM_DOT;
                p++;
                continue;
            }
            if (c == 'e' || c == 'E') {
                js->state = S_NUM_E;
                p++;
                continue;
            }
            if (c >= '0' && c <= '9')
                return fail(js, err, PF_EDATA, OFF, "not valid JSON: leading zero in a number");
            goto number_end;
        case S_NUM_DOT:
            if (c < '0' || c > '9') return unexpected(js, err, p, "a digit after '.'");
            js->state = S_NUM_FRAC;
            p++;
            continue;
        case S_NUM_FRAC:
            while (p < e && *p >= '0' && *p <= '9')
                p++;
            if (p == e) continue;
            c = *p;
            if (c == 'e' || c == 'E') {
                js->state = S_NUM_E;
                p++;
                continue;
            }
            goto number_end;
        case S_NUM_E:
            if (c == '+' || c == '-') {
                js->state = S_NUM_ESIGN;
                p++;
                continue;
            }
            /* fall through */
        case S_NUM_ESIGN:
            if (c < '0' || c > '9') return unexpected(js, err, p, "a digit in the exponent");
            js->state = S_NUM_EXP;
            p++;
            continue;
        case S_NUM_EXP:
            while (p < e && *p >= '0' && *p <= '9')
                p++;
            if (p == e) continue;
            goto number_end;
        number_end : {
            int produced;
            value_done(js);
            st = tok_end(js, POS, ev, &produced, err);
            if (st != PF_OK) return st;
            if (produced) RETURN_EVENT();
            continue;
        }

        case S_LIT:
            if (c != (unsigned char)js->lit[js->lit_i])
                return fail(js, err, PF_EDATA, OFF, "not valid JSON: expected '%s'", js->lit);
            p++;
            if (js->lit[++js->lit_i] == '\0') {
                int produced;
                value_done(js);
                st = tok_end(js, POS, ev, &produced, err);
                if (st != PF_OK) return st;
                if (produced) RETURN_EVENT();
            }
            continue;

        default:
            break;
        }

        /* Structural states: skip whitespace (it is never captured). */
        if (is_ws(c)) {
            if (js->cap && (st = cap_flush(js, POS, err)) != PF_OK) return st;
            do
                p++;
            while (p < e && is_ws(*p));
            js->run = POS;
            continue;
        }

        switch (js->state) {
        case S_VALUE_OR_END:
            if (c == ']') goto close_container;
            /* fall through */
        case S_VALUE: {
            unsigned long long off = OFF;
            js->seen_value = 1;
            if (c == '{' || c == '[') {
                size_t d = js->depth;
                if (d >= js->max_depth)
                    return fail(js, err, PF_EDEPTH, off, "nested deeper than %zu levels",
                                js->max_depth);
                int quiet = value_quiet(js, 1);
                js->stack[d] = c == '{';
                js->depth = d + 1;
                js->state = c == '{' ? S_NAME_OR_END : S_VALUE_OR_END;
                p++;
                if (!quiet) {
                    emit(js, ev, c == '{' ? PF_JS_OBJECT_BEGIN : PF_JS_ARRAY_BEGIN, d, off);
                    RETURN_EVENT();
                }
                continue;
            }
            if (c == '"') {
                p++;
                tok_begin(js, PF_JS_STRING, off, POS, value_quiet(js, 0));
                js->state = S_STR;
                continue;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                tok_begin(js, PF_JS_NUMBER, off, POS, value_quiet(js, 0));
                js->state = c == '-' ? S_NUM_MINUS : c == '0' ? S_NUM_ZERO : S_NUM_INT;
                p++;
                continue;
            }
            if (c == 't' || c == 'f' || c == 'n') {
                pf_js_token t = c == 't' ? PF_JS_TRUE : c == 'f' ? PF_JS_FALSE : PF_JS_NULL;
                tok_begin(js, t, off, POS, value_quiet(js, 0));
                js->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                js->lit_i = 1;
                js->state = S_LIT;
                p++;
                continue;
            }
            return unexpected(js, err, p,
                              js->state == S_VALUE_OR_END ? "a value or ']'" : "a value");
        }
        case S_NAME_OR_END:
            if (c == '}') goto close_container;
            /* fall through */
        case S_NAME:
            if (c != '"')
                return unexpected(js, err, p,
                                  js->state == S_NAME ? "a member name" : "a member name or '}'");
            p++;
            tok_begin(js, PF_JS_NAME, OFF - 1, POS, js->depth >= js->quiet_from);
            js->state = S_STR;
            continue;
        case S_COLON:
            if (c != ':') return unexpected(js, err, p, "':' after a member name");
            js->state = S_VALUE;
            p++;
            continue;
        case S_AFTER:
            if (c == ',') {
                js->state = js->stack[js->depth - 1] ? S_NAME : S_VALUE;
                p++;
                continue;
            }
            if (c == (js->stack[js->depth - 1] ? '}' : ']')) goto close_container;
            return unexpected(js, err, p,
                              js->stack[js->depth - 1] ? "',' or '}' after an object member"
                                                       : "',' or ']' after an array element");
        case S_DONE:
            return fail(js, err, PF_EDATA, OFF, "data after the JSON value (%s)",
                        show(c, b, sizeof b));
        default:
            return fail(js, err, PF_EDATA, OFF, "internal tokenizer state");
        }

    close_container : {
        unsigned long long off = OFF;
        size_t d = --js->depth;
        int quiet = d >= js->quiet_from;
        if (js->quiet_from != NO_QUIET && d + 1 == js->quiet_from) {
            quiet = js->quiet_end;
            js->quiet_from = NO_QUIET;
            js->quiet_end = 0;
        }
        p++;
        if (js->cap && d == js->cap_depth) {
            if ((st = cap_flush(js, POS, err)) != PF_OK) return st;
            js->cap = NULL;
        }
        value_done(js);
        if (!quiet) {
            emit(js, ev, c == '}' ? PF_JS_OBJECT_END : PF_JS_ARRAY_END, d, off);
            RETURN_EVENT();
        }
        continue;
    }
    }
#undef POS
#undef OFF
#undef RETURN_EVENT
}

size_t pf_js_unescape(const char *raw, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)raw[i];
        if (c != '\\') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        char x = raw[i + 1];
        i += 2;
        switch (x) {
        case 'b':
            out[o++] = '\b';
            continue;
        case 'f':
            out[o++] = '\f';
            continue;
        case 'n':
            out[o++] = '\n';
            continue;
        case 'r':
            out[o++] = '\r';
            continue;
        case 't':
            out[o++] = '\t';
            continue;
        case 'u':
            break;
        default:
            out[o++] = x;
            continue;
        }
        unsigned long u = 0;
        for (int k = 0; k < 4; k++)
            u = u * 16 + (unsigned)hex_val((unsigned char)raw[i + k]);
        i += 4;
        if (u >= 0xD800 && u <= 0xDBFF && i + 6 <= len && raw[i] == '\\' && raw[i + 1] == 'u') {
            unsigned long lo = 0;
            for (int k = 0; k < 4; k++)
                lo = lo * 16 + (unsigned)hex_val((unsigned char)raw[i + 2 + k]);
            i += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xC0 | (u >> 6));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[o++] = (char)(0xE0 | (u >> 12));
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (u >> 18));
            out[o++] = (char)(0x80 | ((u >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    return o;
}
