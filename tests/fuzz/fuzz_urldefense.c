/* fuzz_urldefense.c: libFuzzer target for the URL Defense decoder.
 *
 * For each input it checks:
 *   1. the bytes as a whole URL, and behind each of the v1, v2 and v3 prefixes:
 *      no fault; on success the output is valid UTF-8 without NUL, the version
 *      is 1-3 and the length is bounded; on failure OUT is untouched, the code
 *      is PF_EDATA or PF_ETOOBIG and there is a message;
 *   2. the same decode into a small capped buffer succeeds exactly when the
 *      result fits, and otherwise leaves the buffer unchanged;
 *   3. round trip: the bytes, taken as a target URL, are v3-encoded the way
 *      Proofpoint does it (byte-level cutting, runs chunked at 65, unpadded
 *      base64url) and must decode back to themselves.
 * Any violation aborts, which libFuzzer reports as a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proofpoint/urldefense.h"
#include "util/buf.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (n - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (s[i + k] < l || s[i + k] > h) return 0;
        }
        i += need + 1;
    }
    return 1;
}

/* Property 1 and 2 for IN[0..LEN). */
static void check_decode(const char *in, size_t len)
{
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error err;
    int version = -1;
    pf_status st = pf_urldefense_decode(in, len, &out, &version, &err);
    CHECK(version >= 0 && version <= 3);
    if (st == PF_OK) {
        CHECK(version >= 1);
        CHECK(out.len <= 2 * len + 16);
        CHECK(out.len == 0 || memchr(out.data, 0, out.len) == NULL);
        CHECK(utf8_ok((const unsigned char *)pf_buf_str(&out), out.len));
    } else {
        CHECK(st == PF_EDATA || st == PF_ETOOBIG);
        CHECK(out.len == 0 && out.data == NULL);
        CHECK(err.code == st && err.msg[0] != '\0');
    }

    /* The same decode into a capped buffer that already holds one byte. */
    size_t cap = (len & 31) + 1;
    pf_buf small;
    pf_buf_init(&small, cap);
    CHECK(pf_buf_putc(&small, '>') == PF_OK);
    pf_status st2 = pf_urldefense_decode(in, len, &small, NULL, NULL);
    if (st == PF_OK && out.len + 1 <= cap) {
        CHECK(st2 == PF_OK);
        CHECK(small.len == out.len + 1 && memcmp(small.data + 1, out.data, out.len) == 0);
    } else if (st == PF_OK) {
        CHECK(st2 == PF_ETOOBIG);
    } else {
        CHECK(st2 == st);
    }
    if (st2 != PF_OK) CHECK(small.len == 1 && small.data[0] == '>');
    pf_buf_free(&small);
    pf_buf_free(&out);
}

static void check_with_prefix(const char *prefix, const uint8_t *data, size_t size)
{
    size_t pl = strlen(prefix);
    char *u = malloc(pl + size + 1);
    if (!u) return;
    memcpy(u, prefix, pl);
    if (size) memcpy(u + pl, data, size);
    check_decode(u, pl + size);
    free(u);
}

/* ---- property 3: v3 round trip ---- */

static int is_cut(unsigned char c)
{
    return c < 0x20 || c >= 0x7f || strchr("#%*[]+\"{}|\\^`<> ", c) != NULL;
}

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Offset after "scheme:/" when the mangled target M[0..N) gets the
 * single-slash repair, else 0. */
static size_t repair_at(const char *m, size_t n)
{
    size_t i = 0;
    while (i < n && (((m[i] | 0x20) >= 'a' && (m[i] | 0x20) <= 'z') ||
                     (m[i] >= '0' && m[i] <= '9') || m[i] == '+' || m[i] == '.' || m[i] == '-'))
        i++;
    if (i == 0 || n < i + 4 || m[i] != ':' || m[i + 1] != '/' || m[i + 2] == '/') return 0;
    return i + 2;
}

static void check_round_trip(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 8192 || !utf8_ok(data, size) || memchr(data, 0, size)) return;

    pf_buf m, cut, url, out;
    pf_buf_init(&m, 0);
    pf_buf_init(&cut, 0);
    pf_buf_init(&url, 0);
    pf_buf_init(&out, 0);
    size_t i = 0;
    int ok = 1;
    while (i < size && ok) {
        if (!is_cut(data[i])) {
            ok = pf_buf_putc(&m, (char)data[i++]) == PF_OK;
            continue;
        }
        size_t j = i;
        while (j < size && is_cut(data[j]))
            j++;
        ok = pf_buf_append(&cut, data + i, j - i) == PF_OK;
        for (size_t k = j - i; k > 0 && ok;) {
            if (k == 1) {
                ok = pf_buf_putc(&m, '*') == PF_OK;
                k = 0;
            } else {
                size_t c = k < 65 ? k : 65;
                ok = pf_buf_printf(&m, "**%c", B64URL[c - 2]) == PF_OK;
                k -= c;
            }
        }
        i = j;
    }
    /* A mangled target containing "__;" cannot be represented: the format ends
     * the target at the first "__;". Besides a literal "__;" this happens when
     * a run marker with code '_' (65 bytes) meets a literal "_;". */
    for (size_t k = 0; ok && k + 3 <= m.len; k++)
        if (memcmp(m.data + k, "__;", 3) == 0) ok = 0;
    ok = ok && pf_buf_puts(&url, "https://urldefense.com/v3/__") == PF_OK &&
         pf_buf_append(&url, m.data, m.len) == PF_OK && pf_buf_puts(&url, "__;") == PF_OK;
    const unsigned char *cb = (const unsigned char *)pf_buf_str(&cut);
    for (size_t k = 0; ok && k < cut.len; k += 3) {
        uint32_t v = (uint32_t)cb[k] << 16;
        size_t left = cut.len - k;
        if (left > 1) v |= (uint32_t)cb[k + 1] << 8;
        if (left > 2) v |= cb[k + 2];
        char q[4] = {B64URL[(v >> 18) & 63], B64URL[(v >> 12) & 63], B64URL[(v >> 6) & 63],
                     B64URL[v & 63]};
        ok = pf_buf_append(&url, q, left > 2 ? 4 : left + 1) == PF_OK;
    }
    ok = ok && pf_buf_puts(&url, "!!AbCd!Ef$") == PF_OK;
    if (ok && url.len <= PF_URLDEFENSE_MAX_INPUT) {
        int version = 0;
        pf_status st = pf_urldefense_decode(url.data, url.len, &out, &version, NULL);
        CHECK(st == PF_OK && version == 3);
        /* The single-slash repair adds one '/' after "scheme:/". */
        size_t at = repair_at(m.data, m.len);
        if (at) {
            CHECK(out.len == size + 1 && out.data[at] == '/');
            CHECK(memcmp(out.data, data, at) == 0);
            CHECK(memcmp(out.data + at + 1, data + at, size - at) == 0);
        } else {
            CHECK(out.len == size && memcmp(out.data, data, size) == 0);
        }
    }
    pf_buf_free(&m);
    pf_buf_free(&cut);
    pf_buf_free(&url);
    pf_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so that any overread is caught by ASan. */
    char *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    check_decode(copy, size);
    free(copy);
    check_with_prefix("https://urldefense.com/v3/__", data, size);
    check_with_prefix("https://urldefense.proofpoint.com/v2/url?u=", data, size);
    check_with_prefix("https://urldefense.proofpoint.com/v1/url?u=", data, size);
    check_round_trip(data, size);
    return 0;
}
