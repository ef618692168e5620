/* cmd_decode.c: `ppflow decode`, offline decoding of URL Defense rewritten URLs.
 *
 * Decodes each URL given as an argument, or each line of standard input, with
 * pf_urldefense_decode() and prints one line per URL: the decoded URL, or with
 * --json one object shaped like an element of the TAP URL Decoder API's
 * response ("encodedUrl", "decodedUrl", "success", "error"), plus "version".
 * Exit status: 0 all decoded, 1 at least one failed (or output failed),
 * 2 usage error. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/commands.h"
#include "proofpoint/urldefense.h"
#include "util/buf.h"
#include "util/status.h"

/* Longest stdin line kept: the decoder's limit plus room for surrounding blanks. */
#define LINE_CAP (PF_URLDEFENSE_MAX_INPUT + 1024u)
/* How much of a failing input is echoed in an error message. */
#define ECHO_MAX 80

typedef struct opts {
    int json;
} opts;

/* Outcome of one input: decoded, failed (reported), or fatal (stop). */
enum { ONE_OK = 0, ONE_FAILED = 1, ONE_FATAL = -1 };

static void usage(FILE *f)
{
    fputs("usage: ppflow decode [--json] URL...\n"
          "       ppflow decode [--json] [-]\n"
          "\n"
          "Decodes Proofpoint URL Defense rewritten URLs (v1, v2 and v3) offline,\n"
          "without contacting Proofpoint. With no URL, or with \"-\", reads URLs from\n"
          "standard input, one per line; blank lines are skipped and blanks around a\n"
          "URL are ignored.\n"
          "\n"
          "Output: one line per URL, the decoded URL. A URL that cannot be decoded\n"
          "gives an empty line and a message on standard error naming it. Control\n"
          "characters in a decoded URL are written as %XX so it stays on one line.\n"
          "\n"
          "Options:\n"
          "  --json      print one JSON object per URL instead:\n"
          "              {\"encodedUrl\":...,\"decodedUrl\":...,\"version\":3,\"success\":true}\n"
          "              {\"encodedUrl\":...,\"success\":false,\"error\":...}\n"
          "  -h, --help  show this help\n"
          "\n"
          "Exit status: 0 when every URL was decoded, 1 when any failed, 2 on a usage\n"
          "error. docs/urldefense.md describes the formats and the rules applied.\n",
          f);
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Narrows S[0..*N) to exclude surrounding blanks; returns the new start. */
static const char *trim(const char *s, size_t *n)
{
    size_t a = 0, b = *n;
    while (a < b && is_blank((unsigned char)s[a]))
        a++;
    while (b > a && is_blank((unsigned char)s[b - 1]))
        b--;
    *n = b - a;
    return s + a;
}

/* Length of the well-formed UTF-8 sequence at S[0..N) (N >= 1), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
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

/* Appends S[0..N) to B with each ill-formed UTF-8 byte replaced by U+FFFD, so
 * that JSON output stays valid whatever the input bytes were. */
static pf_status append_utf8_lossy(pf_buf *b, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        pf_status st = l ? pf_buf_append(b, s + i, l) : pf_buf_puts(b, "\xEF\xBF\xBD");
        if (st != PF_OK) return st;
        i += l ? l : 1;
    }
    return PF_OK;
}

/* Writes a short, terminal-safe echo of S[0..N) for an error message. */
static void echo_input(FILE *f, const char *s, size_t n)
{
    size_t shown = n > ECHO_MAX ? ECHO_MAX : n;
    fputc('"', f);
    for (size_t i = 0; i < shown;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = utf8_len((const unsigned char *)s + i, shown - i);
        if (l > 1) {
            fwrite(s + i, 1, l, f);
            i += l;
            continue;
        }
        fputc(c < 0x20 || c >= 0x7f ? '?' : c, f);
        i++;
    }
    fputs(n > shown ? "...\"" : "\"", f);
}

static void report(const char *label, const char *s, size_t n, const char *msg)
{
    fprintf(stderr, "ppflow decode: %s ", label);
    echo_input(stderr, s, n);
    fprintf(stderr, ": %s\n", msg);
}

/* Prints the decoded URL as one line; control bytes become %XX. */
static int print_plain(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) continue;
        if (fwrite(s + start, 1, i - start, stdout) != i - start) return -1;
        if (printf("%%%02X", c) < 0) return -1;
        start = i + 1;
    }
    if (fwrite(s + start, 1, n - start, stdout) != n - start) return -1;
    return putchar('\n') == EOF ? -1 : 0;
}

/* Adds KEY: VAL to OBJ, taking VAL; returns -1 when VAL is NULL or the add fails. */
static int put(json_object *obj, const char *key, json_object *val)
{
    if (!val) return -1;
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

static int print_json(const char *enc, size_t enc_len, const pf_buf *dec, int version,
                      const char *errmsg)
{
    int rc = -1;
    pf_buf encb;
    pf_buf_init(&encb, 0);
    json_object *o = json_object_new_object();
    if (!o || append_utf8_lossy(&encb, enc, enc_len) != PF_OK) goto done;
    if (put(o, "encodedUrl", json_object_new_string_len(pf_buf_str(&encb), (int)encb.len)))
        goto done;
    if (!errmsg && put(o, "decodedUrl", json_object_new_string_len(pf_buf_str(dec), (int)dec->len)))
        goto done;
    if (version > 0 && put(o, "version", json_object_new_int(version))) goto done;
    if (put(o, "success", json_object_new_boolean(!errmsg))) goto done;
    if (errmsg && put(o, "error", json_object_new_string(errmsg))) goto done;
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text || printf("%s\n", text) < 0) goto done;
    rc = 0;
done:
    json_object_put(o);
    pf_buf_free(&encb);
    return rc;
}

/* Decodes one input S[0..N) (already trimmed); LABEL names it in messages. */
static int decode_one(const opts *op, const char *s, size_t n, const char *label)
{
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error err;
    pf_error_clear(&err);
    int version = 0;
    pf_status st = pf_urldefense_decode(s, n, &out, &version, &err);
    char msg[PF_ERROR_MSG_MAX + 64];
    if (st != PF_OK) pf_error_format(&err, msg, sizeof msg);
    int w = op->json      ? print_json(s, n, &out, version, st == PF_OK ? NULL : msg)
            : st == PF_OK ? print_plain(pf_buf_str(&out), out.len)
                          : (putchar('\n') == EOF ? -1 : 0);
    pf_buf_free(&out);
    if (st != PF_OK) report(label, s, n, msg);
    if (w != 0) {
        fprintf(stderr, "ppflow decode: cannot write the output\n");
        return ONE_FATAL;
    }
    if (st == PF_ENOMEM) return ONE_FATAL;
    return st == PF_OK ? ONE_OK : ONE_FAILED;
}

/* Reads one line of F into LINE (without the '\n'). Returns 1 for a line, 0 at
 * end of input, -1 on a read error or when memory runs out. *TOO_LONG is set
 * when the line exceeded LINE_CAP; the rest of it is consumed and dropped. */
static int read_line(FILE *f, pf_buf *line, int *too_long)
{
    pf_buf_reset(line);
    *too_long = 0;
    int c, any = 0;
    while ((c = getc(f)) != EOF) {
        any = 1;
        if (c == '\n') return 1;
        if (*too_long) continue;
        pf_status st = pf_buf_putc(line, (char)c);
        if (st == PF_ETOOBIG)
            *too_long = 1;
        else if (st != PF_OK)
            return -1;
    }
    if (ferror(f)) return -1;
    return any;
}

/* Decodes every non-blank line of standard input; returns the worst outcome. */
static int decode_stdin(const opts *op)
{
    pf_buf line;
    pf_buf_init(&line, LINE_CAP);
    int worst = ONE_OK, too_long, r;
    unsigned long lineno = 0;
    char label[64];
    while ((r = read_line(stdin, &line, &too_long)) == 1) {
        lineno++;
        snprintf(label, sizeof label, "stdin line %lu", lineno);
        if (too_long) {
            char msg[128];
            snprintf(msg, sizeof msg, "line is longer than %u bytes", LINE_CAP);
            int w = op->json ? print_json(pf_buf_str(&line), line.len, &line, 0, msg)
                             : (putchar('\n') == EOF ? -1 : 0);
            report(label, pf_buf_str(&line), line.len, msg);
            if (w != 0) {
                worst = ONE_FATAL;
                break;
            }
            worst = ONE_FAILED;
            continue;
        }
        size_t n = line.len;
        const char *s = trim(pf_buf_str(&line), &n);
        if (n == 0) continue;
        int o = decode_one(op, s, n, label);
        if (o == ONE_FATAL) {
            worst = ONE_FATAL;
            break;
        }
        if (o == ONE_FAILED) worst = ONE_FAILED;
    }
    if (r < 0) {
        fprintf(stderr, "ppflow decode: cannot read standard input\n");
        worst = ONE_FATAL;
    }
    pf_buf_free(&line);
    return worst;
}

int pf_cmd_decode(int argc, char **argv)
{
    opts op = {0};
    int nurls = 0, opts_done = 0;
    /* First pass: options (anywhere before "--"). */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--json") == 0) {
                op.json = 1;
            } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                usage(stdout);
                return 0;
            } else {
                fprintf(stderr, "ppflow decode: unknown option '%s'\n\n", a);
                usage(stderr);
                return 2;
            }
            continue;
        }
        nurls++;
    }

    int worst = ONE_OK;
    if (nurls == 0) {
        worst = decode_stdin(&op);
    } else {
        /* Second pass: the URLs, with the same rules for "--". */
        opts_done = 0;
        for (int i = 1; i < argc && worst != ONE_FATAL; i++) {
            const char *a = argv[i];
            if (!opts_done && strcmp(a, "--") == 0) {
                opts_done = 1;
                continue;
            }
            if (!opts_done && a[0] == '-' && a[1] != '\0') continue;
            int o;
            if (strcmp(a, "-") == 0) {
                o = decode_stdin(&op);
            } else {
                char label[32];
                snprintf(label, sizeof label, "argument %d", i);
                size_t n = strlen(a);
                const char *s = trim(a, &n);
                o = decode_one(&op, s, n, label);
            }
            if (o == ONE_FATAL || o == ONE_FAILED) worst = o;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ppflow decode: cannot write the output\n");
        return 1;
    }
    return worst == ONE_OK ? 0 : 1;
}
