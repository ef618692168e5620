/* state.c: the checkpoint file: reading it as untrusted input (every member
 * checked for type and range, nothing unknown accepted), printing it within
 * PF_STATE_MAX_BYTES (and only what reads back), the atomic replace, and
 * the per-flow lock (with the state directory's check and the removal of
 * stale temporary files). */
#include "state/state.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/safefile.h"
#include "util/timeutil.h"

/* The deepest nesting a checkpoint may have (the sink's resume token is
 * the deepest part). */
#define STATE_MAX_DEPTH 64

pf_status pf_state_set_str(char **field, const char *value)
{
    char *c = NULL;
    if (value && !(c = strdup(value))) return PF_ENOMEM;
    free(*field);
    *field = c;
    return PF_OK;
}

void pf_state_free(pf_state *st)
{
    if (!st) return;
    free(st->flow_name);
    free(st->template_name);
    free(st->page_kind);
    free(st->page_token);
    free(st->ledger);
    free(st->sink_type);
    free(st->sink_token);
    free(st->run_outcome);
    free(st->run_error);
    memset(st, 0, sizeof *st);
}

pf_status pf_state_next_seq(pf_state *st, pf_error *err)
{
    if (st->seq < 0 || st->seq >= PF_STATE_MAX_COUNT)
        return pf_error_set(err, PF_ESTATE,
                            "the checkpoint's seq is at its maximum (%lld): no further commit "
                            "can be numbered; move the checkpoint away to start over",
                            st->seq);
    st->seq++;
    return PF_OK;
}

/* ---- reading ------------------------------------------------------------ */

/* The members a checkpoint may hold, per object; anything else is refused. */
static const char *const top_members[] = {"version",  "flow",    "seq",    "template",
                                          "cursor",   "origin",  "ledger", "sink",
                                          "last_run", "updated", NULL};
static const char *const cursor_members[] = {"time",  "window_end", "page", "offset",
                                             "token", "next",       NULL};
static const char *const sink_members[] = {"type", "resume", NULL};
static const char *const run_members[] = {"started", "ended",   "outcome", "records", "windows",
                                          "bytes",   "retries", "error",   NULL};

/* The advice that ends every refusal of a checkpoint's content. */
#define STATE_ADVICE "restore the file, or move it away to start over"

/* The refusal of member FIELD (value V) of checkpoint PATH, which should be
 * WANT. The value is shown, shortened: a checkpoint holds no secret. */
static pf_status bad_field(const char *path, const char *field, json_object *v, const char *want,
                           pf_error *err)
{
    const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    if (!text) text = "a value";
    size_t n = strlen(text);
    return pf_error_set(err, PF_ESTATE,
                        "checkpoint %s: member %s is %.40s%s, not %s; " STATE_ADVICE, path, field,
                        text, n > 40 ? "..." : "", want);
}

static pf_status missing_field(const char *path, const char *field, const char *want, pf_error *err)
{
    return pf_error_set(err, PF_ESTATE,
                        "checkpoint %s: member %s is missing (it must be %s); " STATE_ADVICE, path,
                        field, want);
}

/* Refuses a member of O (named PREFIX.KEY) that ALLOWED does not list. */
static pf_status check_members(json_object *o, const char *const *allowed, const char *prefix,
                               const char *path, pf_error *err)
{
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (known) continue;
        /* The name as text that cannot disturb a terminal or a log line. */
        char shown[68];
        size_t n = 0;
        for (const unsigned char *k = (const unsigned char *)key; *k && n < 64; k++)
            shown[n++] = *k < 0x20 || *k == 0x7f ? '?' : (char)*k;
        shown[n] = '\0';
        return pf_error_set(
            err, PF_ESTATE,
            "checkpoint %s: member %s%s%s%s is not one ppflow writes; " STATE_ADVICE, path, prefix,
            *prefix ? "." : "", shown, key[n] ? "..." : "");
    }
    return PF_OK;
}

/* Reads string KEY of O (named FIELD in messages) into *OUT (borrowed from
 * O) when present, else *OUT is NULL: a JSON string of at most MAX bytes
 * holding no NUL character (json-c keeps "\u0000" inside the string; a C
 * string would silently end there). */
static pf_status get_text(json_object *o, const char *key, const char *field, const char *path,
                          size_t max, const char **out, pf_error *err)
{
    json_object *v;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v)) return PF_OK;
    if (!json_object_is_type(v, json_type_string))
        return bad_field(path, field, v, "a string", err);
    const char *s = json_object_get_string(v);
    int n = json_object_get_string_len(v);
    if (!s || n < 0 || strlen(s) != (size_t)n)
        return pf_error_set(err, PF_ESTATE,
                            "checkpoint %s: member %s holds a NUL character (\\u0000), which "
                            "ppflow never writes; " STATE_ADVICE,
                            path, field);
    if ((size_t)n > max)
        return pf_error_set(err, PF_ESTATE,
                            "checkpoint %s: member %s is %d bytes long, more than the %zu it "
                            "may be; " STATE_ADVICE,
                            path, field, n, max);
    *out = s;
    return PF_OK;
}

/* Reads count KEY of O (named FIELD in messages) into *OUT when present: a
 * JSON integer from 0 to PF_STATE_MAX_COUNT. json-c clamps integers beyond
 * 64 bits to the int64 or uint64 limits, which are out of that range. */
static pf_status get_count(json_object *o, const char *key, const char *field, const char *path,
                           long long *out, pf_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) return PF_OK;
    int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    if (n < 0 || n > PF_STATE_MAX_COUNT)
        return bad_field(path, field, v,
                         "an integer from 0 to 4611686018427387904 (PF_STATE_MAX_COUNT)", err);
    *out = (long long)n;
    return PF_OK;
}

/* Reads date KEY of O into *MS when present (*PRESENT 1): an RFC 3339
 * string. */
static pf_status get_date(json_object *o, const char *key, const char *field, const char *path,
                          int64_t *ms, int *present, pf_error *err)
{
    json_object *v;
    const char *s;
    pf_status ret;
    if (present) *present = 0;
    if (!json_object_object_get_ex(o, key, &v)) return PF_OK;
    if (!json_object_is_type(v, json_type_string))
        return bad_field(path, field, v, "a date-time", err);
    if ((ret = get_text(o, key, field, path, 64, &s, err)) != PF_OK) return ret;
    if (pf_time_parse(s, ms, NULL) != PF_OK) return bad_field(path, field, v, "a date-time", err);
    if (present) *present = 1;
    return PF_OK;
}

/* Copies string S (NULL: none) into *FIELD; PF_ENOMEM with ERR set. */
static pf_status keep(char **field, const char *s, pf_error *err)
{
    if (pf_state_set_str(field, s) != PF_OK)
        return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
    return PF_OK;
}

/* 1 when S is a flow name ppflow accepts (as flow.c: letters, digits, '-',
 * '_' and '.', 1 to 128 bytes). */
static int flow_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128) return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.')) return 0;
    return 1;
}

pf_status pf_state_load(const char *path, pf_state *st, pf_error *err)
{
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    pf_error_clear(&e);
    pf_status rs = pf_read_file(path, PF_STATE_MAX_BYTES, &text, &len, &e);
    if (rs == PF_ENOTFOUND) return PF_OK;
    if (rs == PF_ENOMEM) return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
    if (rs != PF_OK) return pf_error_set(err, PF_ESTATE, "checkpoint %s: %s", path, e.msg);
    rs = pf_state_parse(text, len, path, st, err);
    free(text);
    return rs;
}

pf_status pf_state_load_for(const char *path, const char *flow_name, pf_state *st, pf_error *err)
{
    pf_error e;
    pf_error_clear(&e);
    if (pf_check_dir_of(path, "state directory", &e) != PF_OK)
        return pf_error_set(err, PF_ESTATE, "%s", e.msg);
    pf_status rs = pf_state_load(path, st, err);
    if (rs == PF_OK && flow_name && st->flow_name && strcmp(st->flow_name, flow_name) != 0) {
        rs = pf_error_set(err, PF_ESTATE,
                          "checkpoint %s: member flow is \"%s\", but the flow being run is %s; "
                          "give each flow its own state.path (if this flow was renamed, set "
                          "\"flow\" in the checkpoint to \"%s\")",
                          path, st->flow_name, flow_name, flow_name);
        pf_state_free(st);
    }
    return rs;
}

/* The "cursor" object of a checkpoint with page progress: {"time"?,
 * "window_end"?, exactly one of "page", "offset", "token", "next"}. */
static pf_status parse_page_cursor(json_object *c, const char *path, pf_state *st, pf_error *err)
{
    static const char *const kinds[] = {"page", "offset", "token", "next"};
    json_object *v;
    pf_status ret;
    int present;
    if ((ret = check_members(c, cursor_members, "cursor", path, err)) != PF_OK) return ret;
    if ((ret = get_date(c, "time", "cursor.time", path, &st->cursor_ms, &present, err)) != PF_OK)
        return ret;
    if (present) st->has_cursor = 1;
    if ((ret = get_date(c, "window_end", "cursor.window_end", path, &st->page_window_end_ms, NULL,
                        err)) != PF_OK)
        return ret;
    const char *found = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!json_object_object_get_ex(c, kinds[i], &v)) continue;
        if (found)
            return pf_error_set(err, PF_ESTATE,
                                "checkpoint %s: member cursor holds both cursor.%s and cursor.%s; "
                                "a checkpoint holds one page position; " STATE_ADVICE,
                                path, found, kinds[i]);
        found = kinds[i];
        char field[32];
        snprintf(field, sizeof field, "cursor.%s", kinds[i]);
        if (i < 2) {
            if ((ret = get_count(c, kinds[i], field, path, &st->page_number, err)) != PF_OK)
                return ret;
        } else {
            const char *tok;
            if ((ret = get_text(c, kinds[i], field, path, PF_STATE_MAX_BYTES, &tok, err)) !=
                    PF_OK ||
                (ret = keep(&st->page_token, tok, err)) != PF_OK)
                return ret;
        }
        if ((ret = keep(&st->page_kind, kinds[i], err)) != PF_OK) return ret;
    }
    if (!found)
        return pf_error_set(err, PF_ESTATE,
                            "checkpoint %s: member cursor is an object without a page position "
                            "(cursor.page, cursor.offset, cursor.token or cursor.next); "
                            "" STATE_ADVICE,
                            path);
    return PF_OK;
}

static pf_status parse_last_run(json_object *run, const char *path, pf_state *st, pf_error *err)
{
    static const char *const outcomes[] = {"ok", "failed", "running", "interrupted", NULL};
    pf_status ret;
    const char *outcome, *error;
    if ((ret = check_members(run, run_members, "last_run", path, err)) != PF_OK ||
        (ret = get_date(run, "started", "last_run.started", path, &st->run_started_ms, NULL,
                        err)) != PF_OK ||
        (ret = get_date(run, "ended", "last_run.ended", path, &st->run_ended_ms, NULL, err)) !=
            PF_OK ||
        (ret = get_count(run, "records", "last_run.records", path, &st->run_records, err)) !=
            PF_OK ||
        (ret = get_count(run, "windows", "last_run.windows", path, &st->run_windows, err)) !=
            PF_OK ||
        (ret = get_count(run, "bytes", "last_run.bytes", path, &st->run_bytes, err)) != PF_OK ||
        (ret = get_count(run, "retries", "last_run.retries", path, &st->run_retries, err)) !=
            PF_OK ||
        (ret = get_text(run, "outcome", "last_run.outcome", path, 32, &outcome, err)) != PF_OK ||
        (ret = get_text(run, "error", "last_run.error", path, PF_STATE_MAX_BYTES, &error, err)) !=
            PF_OK)
        return ret;
    json_object *v;
    if (!outcome)
        return missing_field(path, "last_run.outcome", "ok, failed, running or interrupted", err);
    int known = 0;
    for (const char *const *o = outcomes; *o && !known; o++)
        known = strcmp(*o, outcome) == 0;
    if (!known && json_object_object_get_ex(run, "outcome", &v))
        return bad_field(path, "last_run.outcome", v, "ok, failed, running or interrupted", err);
    if ((ret = keep(&st->run_outcome, outcome, err)) != PF_OK ||
        (ret = keep(&st->run_error, error, err)) != PF_OK)
        return ret;
    return PF_OK;
}

/* The "sink" object: {"type": NAME, "resume": JSON}. */
static pf_status parse_sink(json_object *sink, const char *path, pf_state *st, pf_error *err)
{
    pf_status ret;
    const char *type;
    if ((ret = check_members(sink, sink_members, "sink", path, err)) != PF_OK ||
        (ret = get_text(sink, "type", "sink.type", path, 256, &type, err)) != PF_OK)
        return ret;
    if (!type || !*type) return missing_field(path, "sink.type", "the sink's name", err);
    if ((ret = keep(&st->sink_type, type, err)) != PF_OK) return ret;
    json_object *tokobj;
    if (json_object_object_get_ex(sink, "resume", &tokobj) &&
        !json_object_is_type(tokobj, json_type_null)) {
        /* The sink checks its own resume data when it opens. */
        const char *t = json_object_to_json_string_ext(tokobj, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!t) return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
        if ((ret = keep(&st->sink_token, t, err)) != PF_OK) return ret;
    }
    return PF_OK;
}

pf_status pf_state_parse(const char *text, size_t len, const char *path, pf_state *st,
                         pf_error *err)
{
    if (len > PF_STATE_MAX_BYTES)
        return pf_error_set(err, PF_ESTATE,
                            "checkpoint %s is larger than %zu bytes (PF_STATE_MAX_BYTES); restore "
                            "the file, or move it away to start over",
                            path, PF_STATE_MAX_BYTES);
    json_tokener *tok = json_tokener_new_ex(STATE_MAX_DEPTH);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    int complete = json_tokener_get_error(tok) == json_tokener_success;
    if (complete) {
        /* One JSON value and nothing after it but whitespace. */
        for (size_t end = json_tokener_get_parse_end(tok); end < len; end++)
            if (text[end] != ' ' && text[end] != '\n' && text[end] != '\r' && text[end] != '\t')
                complete = 0;
    }
    json_tokener_free(tok);
    pf_status ret = PF_OK;
    json_object *v;
    const char *s;
    if (!root || !complete || !json_object_is_type(root, json_type_object)) {
        ret = pf_error_set(err, PF_ESTATE,
                           "checkpoint %s is not valid JSON; move it away to "
                           "start over, or restore it",
                           path);
        goto done;
    }
    if (!json_object_object_get_ex(root, "version", &v)) {
        ret = missing_field(path, "version", "the integer 1", err);
        goto done;
    }
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != PF_STATE_VERSION) {
        ret = bad_field(path, "version", v,
                        "the integer 1 (an unsupported version: this ppflow reads version 1)", err);
        goto done;
    }
    if ((ret = check_members(root, top_members, "", path, err)) != PF_OK) goto done;
    if ((ret = get_text(root, "flow", "flow", path, 128, &s, err)) != PF_OK) goto done;
    if (s && !flow_name_ok(s)) {
        json_object_object_get_ex(root, "flow", &v);
        ret = bad_field(path, "flow", v,
                        "a flow name (letters, digits, '-', '_' and '.', at most 128)", err);
        goto done;
    }
    if ((ret = keep(&st->flow_name, s, err)) != PF_OK) goto done;
    if ((ret = get_count(root, "seq", "seq", path, &st->seq, err)) != PF_OK) goto done;
    if ((ret = get_text(root, "template", "template", path, 1024, &s, err)) != PF_OK) goto done;
    if (s && !*s) {
        json_object_object_get_ex(root, "template", &v);
        ret = bad_field(path, "template", v, "a template name", err);
        goto done;
    }
    if ((ret = keep(&st->template_name, s, err)) != PF_OK) goto done;
    if (json_object_object_get_ex(root, "cursor", &v) && json_object_is_type(v, json_type_object)) {
        if ((ret = parse_page_cursor(v, path, st, err)) != PF_OK) goto done;
    } else if (json_object_object_get_ex(root, "cursor", &v) &&
               !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string)) {
            ret = bad_field(path, "cursor", v, "a date-time, a page position object or null", err);
            goto done;
        }
        if ((ret = get_date(root, "cursor", "cursor", path, &st->cursor_ms, NULL, err)) != PF_OK)
            goto done;
        st->has_cursor = 1;
    }
    {
        int present = 0;
        if ((ret = get_date(root, "origin", "origin", path, &st->origin_ms, &present, err)) !=
            PF_OK)
            goto done;
        st->has_origin = present;
    }
    {
        int64_t updated;
        if ((ret = get_date(root, "updated", "updated", path, &updated, NULL, err)) != PF_OK)
            goto done;
    }
    if (json_object_object_get_ex(root, "sink", &v)) {
        if (!json_object_is_type(v, json_type_object)) {
            ret = bad_field(path, "sink", v, "an object", err);
            goto done;
        }
        if ((ret = parse_sink(v, path, st, err)) != PF_OK) goto done;
    }
    if (json_object_object_get_ex(root, "ledger", &v)) {
        /* The ledger's own members are checked by keyledger.c when a
         * re-sweep uses it. */
        if (!json_object_is_type(v, json_type_object)) {
            ret = bad_field(path, "ledger", v, "an object (the late-arrival ledger)", err);
            goto done;
        }
        const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        if (!t) goto oom;
        if ((ret = keep(&st->ledger, t, err)) != PF_OK) goto done;
    }
    if (json_object_object_get_ex(root, "last_run", &v)) {
        if (!json_object_is_type(v, json_type_object)) {
            ret = bad_field(path, "last_run", v, "an object", err);
            goto done;
        }
        if ((ret = parse_last_run(v, path, st, err)) != PF_OK) goto done;
    }
    goto done;
oom:
    ret = pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
done:
    json_object_put(root);
    if (ret != PF_OK) pf_state_free(st);
    return ret;
}

/* ---- writing ------------------------------------------------------------ */

/* The checkpoint is printed here rather than by json-c, whose printer
 * drops what does not fit when memory runs out instead of failing: every
 * append is checked, and the buffer's cap is the size limit. */
typedef struct writer {
    pf_buf b;
    int pretty;
    int depth;
    int first[4]; /* per open object: no member written yet */
    pf_status st;
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (w->st == PF_OK) w->st = pf_buf_append(&w->b, s, n);
}

static void put_s(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A JSON string: '"', '\' and control characters escaped. */
static void put_string(writer *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put(w, run, (size_t)(s - run));
        char esc[7] = {'\\', (char)c, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '"':
        case '\\': break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        put(w, esc, n);
        run = s + 1;
    }
    put(w, run, (size_t)(s - run));
    put(w, "\"", 1);
}

static void put_indent(writer *w)
{
    if (!w->pretty) return;
    put(w, "\n", 1);
    for (int i = 0; i < w->depth; i++)
        put(w, "  ", 2);
}

/* Starts member KEY of the open object. */
static void put_key(writer *w, const char *key)
{
    if (!w->first[w->depth - 1]) put(w, ",", 1);
    w->first[w->depth - 1] = 0;
    put_indent(w);
    put_string(w, key);
    put(w, ":", 1);
}

static void open_object(writer *w, const char *key)
{
    if (key) put_key(w, key);
    put(w, "{", 1);
    w->first[w->depth++] = 1;
}

static void close_object(writer *w)
{
    int empty = w->first[--w->depth];
    if (!empty) put_indent(w);
    put(w, "}", 1);
}

static void put_count(writer *w, const char *key, long long n)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", n);
    put_key(w, key);
    put_s(w, b);
}

static void put_time(writer *w, const char *key, int64_t ms)
{
    char b[PF_TIME_FMT_SIZE];
    pf_time_format(ms, b);
    put_key(w, key);
    put_string(w, b);
}

/* 1 when TEXT is exactly one JSON value (as the loader's parser reads it). */
static int one_json_value(const char *text)
{
    size_t len = strlen(text);
    if (len > INT32_MAX) return 0;
    json_tokener *tok = json_tokener_new_ex(STATE_MAX_DEPTH);
    if (!tok) return 0;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    if (json_tokener_get_error(tok) == json_tokener_continue) { /* a bare number */
        o = json_tokener_parse_ex(tok, " ", 1);
        end = len; /* all of TEXT was taken; the parse end is in " " now */
    }
    int ok = json_tokener_get_error(tok) == json_tokener_success;
    for (; ok && end < len; end++)
        if (text[end] != ' ' && text[end] != '\n' && text[end] != '\r' && text[end] != '\t')
            ok = 0;
    json_object_put(o);
    json_tokener_free(tok);
    return ok;
}

/* PF_ETOOBIG: what makes the checkpoint too large, and what to do. */
static pf_status too_big(const pf_state *st, const char *flow_name, pf_error *err)
{
    struct {
        const char *what, *advice;
        size_t n;
    } parts[] = {
        {"the late-arrival ledger", "shorten source.lookback (0s turns the re-sweep off)",
         st->ledger ? strlen(st->ledger) : 0},
        {"the sink's resume data (sink.resume)", "the sink keeps too much resume data",
         st->sink_token ? strlen(st->sink_token) : 0},
        {"the API's page position (cursor)", "the API's paging token is too long to keep",
         st->page_token ? strlen(st->page_token) : 0},
        {"the last run's error", "shorten the error message", st->run_error ? strlen(st->run_error) : 0},
    };
    size_t big = 0;
    for (size_t i = 1; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].n > parts[big].n) big = i;
    return pf_error_set(err, PF_ETOOBIG,
                        "the checkpoint of flow %s would be larger than %zu bytes "
                        "(PF_STATE_MAX_BYTES), the most a checkpoint can be read back with, so "
                        "it is not written (the previous one stays): %s takes %zu bytes; %s",
                        flow_name, PF_STATE_MAX_BYTES, parts[big].what, parts[big].n,
                        parts[big].advice);
}

pf_status pf_state_to_json(const pf_state *st, const char *flow_name, int pretty, char **out,
                           pf_error *err)
{
    *out = NULL;
    if (st->sink_token && !one_json_value(st->sink_token))
        return pf_error_set(err, PF_ESTATE, "sink resume token is not JSON");
    if (st->ledger && (st->ledger[0] != '{' || !one_json_value(st->ledger)))
        return pf_error_set(err, PF_ESTATE, "the record ledger is not a JSON object");
    writer w;
    memset(&w, 0, sizeof w);
    w.pretty = pretty;
    /* pf_state_save adds a newline. */
    pf_buf_init(&w.b, PF_STATE_MAX_BYTES - 1);
    open_object(&w, NULL);
    put_count(&w, "version", PF_STATE_VERSION);
    put_key(&w, "flow");
    put_string(&w, flow_name);
    put_count(&w, "seq", st->seq);
    if (st->template_name) {
        put_key(&w, "template");
        put_string(&w, st->template_name);
    }
    if (st->page_kind) {
        /* Page progress: {"time"?, "window_end"?, "<kind>": next page}. */
        open_object(&w, "cursor");
        if (st->has_cursor) put_time(&w, "time", st->cursor_ms);
        if (st->page_window_end_ms) put_time(&w, "window_end", st->page_window_end_ms);
        if (strcmp(st->page_kind, "page") == 0 || strcmp(st->page_kind, "offset") == 0) {
            put_count(&w, st->page_kind, st->page_number);
        } else {
            put_key(&w, st->page_kind);
            put_string(&w, st->page_token ? st->page_token : "");
        }
        close_object(&w);
    } else if (st->has_cursor) {
        put_time(&w, "cursor", st->cursor_ms);
    } else {
        put_key(&w, "cursor");
        put_s(&w, "null");
    }
    if (st->has_origin) put_time(&w, "origin", st->origin_ms);
    if (st->ledger) {
        put_key(&w, "ledger");
        put_s(&w, st->ledger);
    }
    if (st->sink_type) {
        open_object(&w, "sink");
        put_key(&w, "type");
        put_string(&w, st->sink_type);
        put_key(&w, "resume");
        put_s(&w, st->sink_token ? st->sink_token : "null");
        close_object(&w);
    }
    if (st->run_outcome) {
        open_object(&w, "last_run");
        put_time(&w, "started", st->run_started_ms);
        if (st->run_ended_ms) put_time(&w, "ended", st->run_ended_ms);
        put_key(&w, "outcome");
        put_string(&w, st->run_outcome);
        put_count(&w, "records", st->run_records);
        put_count(&w, "windows", st->run_windows);
        put_count(&w, "bytes", st->run_bytes);
        put_count(&w, "retries", st->run_retries);
        if (st->run_error) {
            put_key(&w, "error");
            put_string(&w, st->run_error);
        }
        close_object(&w);
    }
    put_time(&w, "updated", pf_time_real_ms());
    close_object(&w);
    pf_status ret = w.st;
    if (ret == PF_ETOOBIG) {
        ret = too_big(st, flow_name, err);
    } else if (ret != PF_OK) {
        ret = pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
    } else {
        /* Never write what cannot be read back: the loader checks it. */
        pf_state back = {0};
        char label[300];
        snprintf(label, sizeof label, "of flow %.200s (as it would be written)", flow_name);
        ret = pf_state_parse(w.b.data, w.b.len, label, &back, err);
        pf_state_free(&back);
    }
    if (ret != PF_OK) {
        pf_buf_free(&w.b);
        return ret;
    }
    *out = pf_buf_steal(&w.b);
    if (!*out) return pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
    return PF_OK;
}

pf_status pf_state_save(const char *path, const pf_state *st, const char *flow_name, pf_error *err)
{
    char *text = NULL;
    pf_status ret = pf_state_to_json(st, flow_name, 1, &text, err);
    if (ret != PF_OK) return ret;
    pf_error e;
    pf_error_clear(&e);
    size_t tl = strlen(text);
    char *withnl = realloc(text, tl + 2);
    if (!withnl) {
        free(text);
        return pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
    }
    withnl[tl] = '\n';
    withnl[tl + 1] = '\0';
    if (pf_write_file_atomic(path, withnl, tl + 1, &e) != PF_OK)
        ret = pf_error_set(err, PF_ESTATE, "cannot write checkpoint: %s", e.msg);
    free(withnl);
    return ret;
}

int pf_state_lock(const char *path, pf_error *err)
{
    char lp[PATH_MAX];
    if (snprintf(lp, sizeof lp, "%s.lock", path) >= (int)sizeof lp) {
        pf_error_set(err, PF_ESTATE, "state.path is too long: %.200s", path);
        return -1;
    }
    pf_error e;
    pf_error_clear(&e);
    /* The directory first: a lock file in a directory others can change
     * protects nothing, and neither does anything else kept there. */
    if (pf_mkdirs_for(lp, &e) != PF_OK || pf_check_dir_of(path, "state directory", &e) != PF_OK) {
        pf_error_set(err, PF_ESTATE, "%s", e.msg);
        return -1;
    }
    int fd = pf_open_private(lp, O_RDWR | O_CREAT, "cannot open lock file", &e);
    if (fd < 0) {
        pf_error_set(err, PF_ESTATE, "%s", e.msg);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        /* Digits only: the lock file's text is not shown as it is. */
        if (pid[strspn(pid, "0123456789")] != '\0') pid[0] = '\0';
        close(fd);
        pf_error_set(err, PF_ESTATE, "flow is being run by another ppflow process%s%s%s (lock %s)",
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", lp);
        return -1;
    }
    /* Every writer of the checkpoint holds this lock: a temporary file of
     * it that is still there belongs to a run that was killed. */
    int stale = pf_remove_stale_temps(path);
    if (stale > 0)
        pf_log_info("removed %d stale temporary file%s of checkpoint %s left by an interrupted run",
                    stale, stale == 1 ? "" : "s", path);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* The pid is informational only. */
    }
    return fd;
}

void pf_state_unlock(int fd)
{
    if (fd >= 0) close(fd);
}
