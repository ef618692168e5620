/* syslog.c: SIEM syslog lines into JSON records (contract in syslog.h).
 *
 * Each line is first made valid UTF-8 (ill-formed bytes become U+FFFD, the
 * exact bytes go to "raw_base64"), then read left to right without
 * backtracking or recursion: an optional <PRI>, an RFC 5424 header
 * (VERSION TIMESTAMP HOST APP PROCID MSGID SD) or a BSD one (TIMESTAMP HOST
 * [TAG:]), then key=value fields and bare words, one of which may be the
 * event kind token. The record object is built with json-c, whose output
 * escapes control characters, so every record is valid JSON. */
#include "proofpoint/syslog.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpath/jsonpath.h"

/* Event kind tokens and the template streams they feed. Unconfirmed: a
 * third-party parser names CLKPER and MSGDLV; CLKBLK and MSGBLK follow the
 * same pattern. A new kind is one more row here (and in the docs). */
static const struct {
    const char *token;
    const char *stream;
} kinds[] = {
    {"MSGDLV", "messages_delivered"},
    {"MSGBLK", "messages_blocked"},
    {"CLKPER", "clicks_permitted"},
    {"CLKBLK", "clicks_blocked"},
};

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

const char *pf_syslog_kind_stream(const char *token, size_t len)
{
    if (!token) return NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strlen(kinds[i].token) == len && memcmp(kinds[i].token, token, len) == 0)
            return kinds[i].stream;
    return NULL;
}

/* ---- bytes ------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at S[0..N) (N >= 1), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n <= need) return 0;
    for (size_t i = 1; i <= need; i++) {
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (s[i] < l || s[i] > h) return 0;
    }
    return need + 1;
}

/* Copies S[0..N) into OUT with each ill-formed byte replaced by U+FFFD;
 * *REPLACED counts the replacements. */
static pf_status make_utf8(const char *s, size_t n, pf_buf *out, size_t *replaced)
{
    *replaced = 0;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        size_t l;
        while (run < n && (l = utf8_len((const unsigned char *)s + run, n - run)) != 0)
            run += l;
        if (run > i && pf_buf_append(out, s + i, run - i) != PF_OK) return PF_ENOMEM;
        if (run == n) break;
        if (pf_buf_puts(out, "\xEF\xBF\xBD") != PF_OK) return PF_ENOMEM;
        (*replaced)++;
        i = run + 1;
    }
    return PF_OK;
}

static pf_status base64(const unsigned char *s, size_t n, pf_buf *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)s[i] << 16;
        size_t left = n - i;
        if (left > 1) v |= (unsigned long)s[i + 1] << 8;
        if (left > 2) v |= s[i + 2];
        char q[4] = {a[(v >> 18) & 63], a[(v >> 12) & 63], left > 1 ? a[(v >> 6) & 63] : '=',
                     left > 2 ? a[v & 63] : '='};
        if (pf_buf_append(out, q, 4) != PF_OK) return PF_ENOMEM;
    }
    return PF_OK;
}

/* ---- the line reader --------------------------------------------------- */

typedef struct reader {
    const char *s; /* the line, valid UTF-8 */
    size_t n, i;
    json_object *rec, *sys;
    const char *kind; /* stream name of the event kind, once seen */
    size_t nfields;
    pf_buf name, val; /* scratch */
    int oom;
} reader;

static int is_sp(char c)
{
    return c == ' ' || c == '\t';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || is_digit(c) || c == '.' || c == '-';
}

static void skip_sp(reader *r)
{
    while (r->i < r->n && is_sp(r->s[r->i]))
        r->i++;
}

/* End of the token starting at I (the next space or tab, or the end). */
static size_t tok_end(const reader *r, size_t i)
{
    while (i < r->n && !is_sp(r->s[i]))
        i++;
    return i;
}

/* Length of "NAME=" at I (the name's length) when a field starts there, else 0. */
static size_t field_name_at(const reader *r, size_t i)
{
    if (i >= r->n || !is_name_start(r->s[i])) return 0;
    size_t j = i + 1;
    while (j < r->n && is_name_char(r->s[j]))
        j++;
    return j < r->n && r->s[j] == '=' ? j - i : 0;
}

static void put(reader *r, json_object *obj, const char *key, json_object *v)
{
    if (!v || json_object_object_add(obj, key, v) != 0) {
        json_object_put(v);
        r->oom = 1;
    }
}

static void put_str(reader *r, json_object *obj, const char *key, const char *s, size_t n)
{
    put(r, obj, key, json_object_new_string_len(s, (int)n));
}

static void note_kind(reader *r, const char *s, size_t n)
{
    const char *k = r->kind ? NULL : pf_syslog_kind_stream(s, n);
    if (!k) return;
    r->kind = k;
    put_str(r, r->sys, "event", s, n);
}

static void set_error(reader *r, const char *msg)
{
    put(r, r->sys, "error", json_object_new_string(msg));
}

/* <PRI>: 1 to 3 digits, at most 191. Returns 1 when present. */
static int read_pri(reader *r)
{
    size_t j = r->i;
    if (j >= r->n || r->s[j] != '<') return 0;
    int v = 0, d = 0;
    for (j++; j < r->n && is_digit(r->s[j]) && d < 3; j++, d++)
        v = v * 10 + (r->s[j] - '0');
    if (d == 0 || j >= r->n || r->s[j] != '>' || v > 191) return 0;
    put(r, r->sys, "pri", json_object_new_int(v));
    r->i = j + 1;
    return 1;
}

/* RFC 5424 VERSION right after the PRI: 1 to 3 digits, not 0, then a space. */
static int read_version(reader *r)
{
    size_t j = r->i;
    int v = 0, d = 0;
    if (j >= r->n || r->s[j] < '1' || r->s[j] > '9') return 0;
    for (; j < r->n && is_digit(r->s[j]) && d < 3; j++, d++)
        v = v * 10 + (r->s[j] - '0');
    if (j >= r->n || r->s[j] != ' ') return 0;
    put(r, r->sys, "version", json_object_new_int(v));
    r->i = j;
    return 1;
}

/* RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, "-" meaning none. */
static void read_5424_header(reader *r)
{
    static const char *const names[] = {"timestamp", "host", "app", "procid", "msgid"};
    for (size_t k = 0; k < 5; k++) {
        skip_sp(r);
        size_t e = tok_end(r, r->i);
        if (e == r->i) return;
        const char *t = r->s + r->i;
        size_t tl = e - r->i;
        r->i = e;
        if (tl == 1 && t[0] == '-') continue;
        put_str(r, r->sys, names[k], t, tl);
        if (k == 4) note_kind(r, t, tl);
    }
    /* STRUCTURED-DATA: "-" or one or more [id param="value" ...] elements. */
    skip_sp(r);
    if (r->i < r->n && r->s[r->i] == '-' && (r->i + 1 == r->n || is_sp(r->s[r->i + 1]))) {
        r->i++;
    } else if (r->i < r->n && r->s[r->i] == '[') {
        size_t start = r->i, j = r->i;
        int in_elem = 0, in_quote = 0;
        for (; j < r->n; j++) {
            char c = r->s[j];
            if (!in_elem) {
                if (c != '[') break;
                in_elem = 1;
            } else if (in_quote) {
                if (c == '\\' && j + 1 < r->n)
                    j++;
                else if (c == '"')
                    in_quote = 0;
            } else if (c == '"') {
                in_quote = 1;
            } else if (c == ']') {
                in_elem = 0;
            }
        }
        if (in_elem) {
            set_error(r, "unterminated structured data");
            r->i = r->n;
            return;
        }
        put_str(r, r->sys, "structured_data", r->s + start, j - start);
        r->i = j;
    }
    skip_sp(r);
    if (r->n - r->i >= 3 && memcmp(r->s + r->i, "\xEF\xBB\xBF", 3) == 0) r->i += 3; /* BOM */
}

/* Length of a timestamp at I: RFC 3339 (a token starting YYYY-MM-DDT) or
 * BSD "Mmm dd hh:mm:ss" (day space-padded or not); 0 when none. */
static size_t timestamp_at(const reader *r, size_t i)
{
    const char *s = r->s + i;
    size_t n = r->n - i;
    if (n >= 11 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
        s[4] == '-' && is_digit(s[5]) && is_digit(s[6]) && s[7] == '-' && is_digit(s[8]) &&
        is_digit(s[9]) && (s[10] == 'T' || s[10] == 't'))
        return tok_end(r, i) - i;
    if (n < 15) return 0;
    int month = 0;
    for (size_t m = 0; m < 12; m++)
        if (memcmp(s, months[m], 3) == 0) month = 1;
    if (!month || s[3] != ' ' || !(s[4] == ' ' || is_digit(s[4])) || !is_digit(s[5]) ||
        s[6] != ' ' || !is_digit(s[7]) || !is_digit(s[8]) || s[9] != ':' || !is_digit(s[10]) ||
        !is_digit(s[11]) || s[12] != ':' || !is_digit(s[13]) || !is_digit(s[14]))
        return 0;
    return n == 15 || is_sp(s[15]) ? 15 : 0;
}

/* BSD (RFC 3164) header: TIMESTAMP HOST [TAG[PID]:]. */
static void read_bsd_header(reader *r)
{
    skip_sp(r);
    size_t tl = timestamp_at(r, r->i);
    if (!tl) return;
    put_str(r, r->sys, "timestamp", r->s + r->i, tl);
    r->i += tl;
    skip_sp(r);
    size_t e = tok_end(r, r->i);
    if (e == r->i || field_name_at(r, r->i) || pf_syslog_kind_stream(r->s + r->i, e - r->i)) return;
    put_str(r, r->sys, "host", r->s + r->i, e - r->i);
    r->i = e;
    skip_sp(r);
    e = tok_end(r, r->i);
    if (e - r->i < 2 || r->s[e - 1] != ':' || field_name_at(r, r->i)) return;
    size_t al = 0;
    while (r->i + al < e - 1 && r->s[r->i + al] != '[')
        al++;
    if (al) {
        put_str(r, r->sys, "app", r->s + r->i, al);
        note_kind(r, r->s + r->i, al);
    }
    r->i = e;
}

/* One NAME=VALUE at r->i (NL: the name's length). Returns 0 to go on, -1
 * when the rest of the line cannot be read. */
static int read_field(reader *r, size_t nl)
{
    pf_buf_reset(&r->name);
    pf_buf_reset(&r->val);
    if (pf_buf_append(&r->name, r->s + r->i, nl) != PF_OK) {
        r->oom = 1;
        return -1;
    }
    size_t j = r->i + nl + 1;
    if (j < r->n && r->s[j] == '"') {
        size_t k = j + 1, run = k;
        for (;; k++) {
            if (k >= r->n) {
                char msg[96];
                snprintf(msg, sizeof msg, "unterminated quoted value of field %.40s%s",
                         pf_buf_str(&r->name), r->name.len > 40 ? "..." : "");
                set_error(r, msg);
                return -1;
            }
            char c = r->s[k];
            if (c == '"') break;
            if (c != '\\') continue;
            if (k + 1 >= r->n) continue; /* reported as unterminated above */
            char e = r->s[k + 1], u = 0;
            switch (e) {
            case '\\':
                u = '\\';
                break;
            case '"':
                u = '"';
                break;
            case 'n':
                u = '\n';
                break;
            case 'r':
                u = '\r';
                break;
            case 't':
                u = '\t';
                break;
            default:
                break; /* kept as is, backslash included */
            }
            if (!u) {
                k++;
                continue;
            }
            if (pf_buf_append(&r->val, r->s + run, k - run) != PF_OK ||
                pf_buf_putc(&r->val, u) != PF_OK) {
                r->oom = 1;
                return -1;
            }
            k++;
            run = k + 1;
        }
        if (pf_buf_append(&r->val, r->s + run, k - run) != PF_OK) {
            r->oom = 1;
            return -1;
        }
        r->i = k + 1;
    } else {
        size_t e = tok_end(r, j);
        if (pf_buf_append(&r->val, r->s + j, e - j) != PF_OK) {
            r->oom = 1;
            return -1;
        }
        r->i = e;
    }
    const char *name = pf_buf_str(&r->name);
    if (strcmp(name, "raw") == 0 || strcmp(name, "raw_base64") == 0 ||
        strcmp(name, "syslog") == 0 || json_object_object_get_ex(r->rec, name, NULL))
        return 0;
    if (r->nfields == PF_SYSLOG_MAX_FIELDS) {
        char msg[96];
        snprintf(msg, sizeof msg, "more than %d fields; the rest is only in raw",
                 PF_SYSLOG_MAX_FIELDS);
        set_error(r, msg);
        return -1;
    }
    put_str(r, r->rec, name, pf_buf_str(&r->val), r->val.len);
    r->nfields++;
    return r->oom ? -1 : 0;
}

static void read_fields(reader *r)
{
    for (;;) {
        skip_sp(r);
        if (r->i >= r->n || r->oom) return;
        size_t nl = field_name_at(r, r->i);
        if (nl) {
            if (read_field(r, nl) != 0) return;
            continue;
        }
        size_t e = tok_end(r, r->i);
        note_kind(r, r->s + r->i, e - r->i);
        r->i = e;
    }
}

/* Builds the record object of LINE[0..LEN) (no NUL, no LF) into *OUT. */
static pf_status build(const char *line, size_t len, json_object **out, const char **kind,
                       pf_error *err)
{
    *out = NULL;
    pf_buf clean, b64;
    pf_buf_init(&clean, 0);
    pf_buf_init(&b64, 0);
    reader r = {0};
    pf_buf_init(&r.name, 0);
    pf_buf_init(&r.val, 0);
    size_t replaced = 0;
    if (make_utf8(line, len, &clean, &replaced) != PF_OK) goto oom;
    r.s = pf_buf_str(&clean);
    r.n = clean.len;
    if (!(r.rec = json_object_new_object())) goto oom;
    put_str(&r, r.rec, "raw", r.s, r.n);
    if (replaced) {
        if (base64((const unsigned char *)line, len, &b64) != PF_OK) goto oom;
        put_str(&r, r.rec, "raw_base64", pf_buf_str(&b64), b64.len);
    }
    json_object *sys = json_object_new_object();
    if (!sys || json_object_object_add(r.rec, "syslog", sys) != 0) {
        json_object_put(sys);
        goto oom;
    }
    r.sys = sys; /* owned by r.rec from here */
    skip_sp(&r);
    if (read_pri(&r) && read_version(&r))
        read_5424_header(&r);
    else
        read_bsd_header(&r);
    read_fields(&r);
    if (r.oom) goto oom;
    if (json_object_object_length(sys) == 0) json_object_object_del(r.rec, "syslog");
    *out = r.rec;
    if (kind) *kind = r.kind;
    pf_buf_free(&clean);
    pf_buf_free(&b64);
    pf_buf_free(&r.name);
    pf_buf_free(&r.val);
    return PF_OK;
oom:
    json_object_put(r.rec);
    pf_buf_free(&clean);
    pf_buf_free(&b64);
    pf_buf_free(&r.name);
    pf_buf_free(&r.val);
    return pf_error_set(err, PF_ENOMEM, "out of memory parsing a syslog line");
}

static pf_status check_line(const char *line, size_t len, size_t base, pf_error *err)
{
    if (len > PF_SYSLOG_MAX_LINE)
        return pf_error_off(err, PF_EDATA, (long)base,
                            "syslog line is longer than %u bytes (%zu bytes)", PF_SYSLOG_MAX_LINE,
                            len);
    const char *nul = len ? memchr(line, '\0', len) : NULL;
    if (nul)
        return pf_error_off(err, PF_EDATA, (long)(base + (size_t)(nul - line)),
                            "syslog line holds a NUL byte");
    return PF_OK;
}

static const char *json_text(json_object *o)
{
    return json_object_to_json_string_ext(o,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

pf_status pf_syslog_line_json(const char *line, size_t len, pf_buf *out, const char **kind,
                              pf_error *err)
{
    if (kind) *kind = NULL;
    if (!out || (!line && len)) return pf_error_set(err, PF_EINVAL, "no line");
    pf_status st = check_line(line ? line : "", len, 0, err);
    if (st != PF_OK) return st;
    json_object *o = NULL;
    if ((st = build(line ? line : "", len, &o, kind, err)) != PF_OK) return st;
    const char *text = json_text(o);
    st = text ? pf_buf_puts(out, text) : PF_ENOMEM;
    json_object_put(o);
    if (st != PF_OK) {
        if (kind) *kind = NULL;
        return pf_error_set(
            err, st, st == PF_ETOOBIG ? "syslog record exceeds the buffer cap" : "out of memory");
    }
    return PF_OK;
}

/* ---- records ------------------------------------------------------------ */

/* The key of REC under KEY (as extract.c: a string as is, a number as its text). */
static pf_status key_of(const pf_jsonpath *key, json_object *rec, char **out, pf_error *err)
{
    *out = NULL;
    pf_jp_nodelist nl = {0};
    pf_status st = pf_jsonpath_eval(key, rec, 0, &nl, err);
    if (st != PF_OK || nl.count == 0) {
        pf_jp_nodelist_free(&nl);
        return st;
    }
    json_object *v = nl.nodes[0].value;
    pf_jp_nodelist_free(&nl);
    const char *s = NULL;
    switch (json_object_get_type(v)) {
    case json_type_string:
        s = json_object_get_string(v);
        break;
    case json_type_int:
    case json_type_double:
        s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        break;
    default:
        return PF_OK;
    }
    if (!s) return PF_OK;
    *out = strdup(s);
    return *out ? PF_OK : pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
}

static const pf_stream_def *stream_for(const pf_template *t, const char *kind)
{
    for (size_t i = 0; kind && i < t->nstreams; i++)
        if (strcmp(t->streams[i].name, kind) == 0) return &t->streams[i];
    return &t->streams[0];
}

static pf_status add_record(const pf_template *t, const char *line, size_t len, pf_records *out,
                            pf_error *err)
{
    json_object *o = NULL;
    const char *kind = NULL;
    pf_status st = build(line, len, &o, &kind, err);
    if (st != PF_OK) return st;
    const pf_stream_def *sd = stream_for(t, kind);
    if (pf_records_reserve(out, 1, err) != PF_OK) {
        json_object_put(o);
        return PF_ENOMEM;
    }
    pf_sink_record *r = &out->recs[out->count];
    memset(r, 0, sizeof *r);
    r->stream = sd->name;
    const char *text = json_text(o);
    char *json = text ? strdup(text) : NULL;
    char *key = NULL;
    if (!json)
        st = pf_error_set(err, PF_ENOMEM, "out of memory extracting records");
    else if (sd->key)
        st = key_of(sd->key, o, &key, err);
    json_object_put(o);
    if (st != PF_OK) {
        free(json);
        free(key);
        return st;
    }
    r->json = json;
    r->json_len = strlen(json);
    r->key = key;
    r->key_len = key ? strlen(key) : 0;
    if (sd->key && !key) out->missing_keys++;
    out->count++;
    return PF_OK;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

pf_status pf_syslog_extract(const pf_template *t, const char *body, size_t len, pf_records *out,
                            pf_error *err)
{
    if (!t || t->nstreams == 0 || !out || (!body && len))
        return pf_error_set(err, PF_EINVAL, "syslog extraction needs a template with a stream");
    size_t before = out->count, missing_before = out->missing_keys;
    pf_status st = PF_OK;
    size_t pos = 0;
    while (pos < len && st == PF_OK) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t n = end - pos;
        if (n && body[end - 1] == '\r') n--;
        if (!blank(body + pos, n) && (st = check_line(body + pos, n, pos, err)) == PF_OK)
            st = add_record(t, body + pos, n, out, err);
        pos = end + 1;
    }
    if (st != PF_OK) {
        for (size_t i = before; i < out->count; i++) {
            free((char *)out->recs[i].json);
            free((char *)out->recs[i].key);
        }
        out->count = before;
        out->missing_keys = missing_before;
    }
    return st;
}
