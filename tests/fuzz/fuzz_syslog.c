/* fuzz_syslog.c: libFuzzer target for the SIEM syslog line parser.
 *
 * For each input, split into lines the way proofpoint/syslog.h describes,
 * it checks:
 *   1. pf_syslog_extract succeeds exactly when no non-blank line holds a NUL
 *      byte (it then fails with PF_EDATA at that byte's offset), and on
 *      failure leaves the records appended before the call untouched;
 *   2. there is one record per non-blank line, in order, each a single line
 *      of valid JSON (parsed by json-c in strict mode with UTF-8 validation)
 *      whose value is an object starting with the string member "raw";
 *   3. "raw" is the line byte for byte, or, when the line is not valid
 *      UTF-8, "raw_base64" decodes to the line byte for byte;
 *   4. a record's key is the string at its stream's key member, and its
 *      stream is the one its "syslog"."event" maps to (else the first one);
 *   5. pf_syslog_line_json on the whole input gives valid JSON too.
 * Any violation aborts, which libFuzzer reports as a crash. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proofpoint/syslog.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

static pf_template tmpl;
static pf_stream_def streams[4];

static void init_template(void)
{
    static const char *const names[] = {"messages_delivered", "messages_blocked",
                                        "clicks_permitted", "clicks_blocked"};
    static const char *const keys[] = {"$.GUID", "$.GUID", "$.id", "$.id"};
    if (tmpl.nstreams) return;
    for (size_t i = 0; i < 4; i++) {
        streams[i].name = (char *)names[i];
        streams[i].key_text = (char *)keys[i];
        CHECK(pf_jsonpath_compile(keys[i], strlen(keys[i]), &streams[i].key, NULL) == PF_OK);
    }
    tmpl.streams = streams;
    tmpl.nstreams = 4;
}

static json_object *parse_strict(const char *s, size_t n)
{
    json_tokener *tok = json_tokener_new_ex(64);
    CHECK(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, s, (int)n);
    CHECK(json_tokener_get_error(tok) == json_tokener_success && o);
    CHECK(json_tokener_get_parse_end(tok) == n);
    json_tokener_free(tok);
    return o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Checks that base64 text S decodes to LINE[0..N). */
static void check_base64(const char *s, const char *line, size_t n)
{
    size_t sl = strlen(s), o = 0;
    CHECK(sl % 4 == 0 && sl / 4 == (n + 2) / 3);
    for (size_t i = 0; i < sl; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' ? 0 : b64val(s[i + k]);
        CHECK(v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[3] >= 0);
        unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int k = 0; k < 3 && o < n; k++, o++)
            CHECK(b[k] == (unsigned char)line[o]);
    }
    CHECK(o == n);
}

static void check_record(const pf_sink_record *r, const char *line, size_t n)
{
    CHECK(r->json && r->json_len > 0 && !memchr(r->json, '\n', r->json_len));
    json_object *o = parse_strict(r->json, r->json_len);
    CHECK(json_object_is_type(o, json_type_object));
    struct json_object_iterator it = json_object_iter_begin(o);
    CHECK(strcmp(json_object_iter_peek_name(&it), "raw") == 0);
    json_object *raw = json_object_iter_peek_value(&it), *b64 = NULL, *sys = NULL, *ev = NULL;
    CHECK(json_object_is_type(raw, json_type_string));
    if (json_object_object_get_ex(o, "raw_base64", &b64)) {
        check_base64(json_object_get_string(b64), line, n);
        CHECK(strstr(json_object_get_string(raw), "\xEF\xBF\xBD"));
    } else {
        CHECK((size_t)json_object_get_string_len(raw) == n);
        CHECK(memcmp(json_object_get_string(raw), line, n) == 0);
    }
    const char *want = NULL;
    if (json_object_object_get_ex(o, "syslog", &sys) &&
        json_object_object_get_ex(sys, "event", &ev))
        want = pf_syslog_kind_stream(json_object_get_string(ev),
                                     (size_t)json_object_get_string_len(ev));
    size_t si = 0;
    for (size_t i = 0; want && i < tmpl.nstreams; i++)
        if (strcmp(tmpl.streams[i].name, want) == 0) si = i;
    CHECK(r->stream == tmpl.streams[si].name);
    json_object *k = NULL;
    const char *kname = si < 2 ? "GUID" : "id";
    if (json_object_object_get_ex(o, kname, &k)) {
        CHECK(json_object_is_type(k, json_type_string));
        CHECK(r->key && r->key_len == (size_t)json_object_get_string_len(k) &&
              memcmp(r->key, json_object_get_string(k), r->key_len) == 0);
    } else {
        CHECK(r->key == NULL);
    }
    json_object_put(o);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_template();
    /* An exact-size copy so that any overread is caught by ASan. */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    if (size) memcpy(body, data, size);

    /* The expected outcome from an independent split. */
    size_t lines = 0;
    long bad = -1;
    for (size_t pos = 0; pos < size && bad < 0;) {
        const char *nl = memchr(body + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - body) : size, n = end - pos;
        if (n && body[end - 1] == '\r') n--;
        if (!blank(body + pos, n)) {
            const char *z = memchr(body + pos, 0, n);
            if (z)
                bad = (long)(z - body);
            else
                lines++;
        }
        pos = end + 1;
    }

    pf_records out = {0};
    pf_error err;
    CHECK(pf_syslog_extract(&tmpl, "CLKPER id=seed\n", 15, &out, NULL) == PF_OK);
    CHECK(out.count == 1);
    pf_status st = pf_syslog_extract(&tmpl, body, size, &out, &err);
    if (bad >= 0) {
        CHECK(st == PF_EDATA && err.offset == bad && err.msg[0]);
        CHECK(out.count == 1 && strcmp(out.recs[0].key, "seed") == 0);
    } else {
        CHECK(st == PF_OK);
        CHECK(out.count == 1 + lines);
        size_t r = 1;
        for (size_t pos = 0; pos < size;) {
            const char *nl = memchr(body + pos, '\n', size - pos);
            size_t end = nl ? (size_t)(nl - body) : size, n = end - pos;
            if (n && body[end - 1] == '\r') n--;
            if (!blank(body + pos, n)) check_record(&out.recs[r++], body + pos, n);
            pos = end + 1;
        }
        CHECK(r == out.count);
    }
    pf_records_free(&out);

    if (size <= PF_SYSLOG_MAX_LINE && !memchr(body, 0, size)) {
        pf_buf b;
        pf_buf_init(&b, 0);
        CHECK(pf_syslog_line_json(body, size, &b, NULL, NULL) == PF_OK);
        json_object *o = parse_strict(b.data, b.len);
        CHECK(json_object_is_type(o, json_type_object));
        json_object_put(o);
        pf_buf_free(&b);
    }
    free(body);
    return 0;
}
