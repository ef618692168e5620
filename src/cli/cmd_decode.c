/* cmd_decode.c: `ppflow decode`: URL Defense rewritten URLs, decoded offline
 * with pf_urldefense_decode() or, with --online, by the TAP URL Decoder API
 * (POST /v2/url/decode, {"urls": [...]}, in batches).
 *
 * Each URL given as an argument, or each line of standard input, gives one
 * output line: the decoded URL. With --json the output is one JSON array
 * with an element per URL, {"encoded","decoded"} or {"encoded","error"}
 * (offline adds "version"; online keeps the API's "messageGuid",
 * "clusterName" and "recipientEmail" when it sends them). A URL that fails
 * gives an empty line (plain) and an `error: ...` line on stderr.
 * Online credentials come from a flow (--flow) or from the environment
 * (PPFLOW_PRINCIPAL, PPFLOW_SECRET) or a secret file, never from the
 * command line.
 * Exit status: 0 all decoded, 1 at least one failed (or a request or the
 * output failed), 2 usage or configuration error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "engine/quota.h"
#include "engine/sample.h"
#include "http/http.h"
#include "proofpoint/urldefense.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/status.h"
#include "util/timeutil.h"

/* Longest stdin line kept: the decoder's limit plus room for surrounding blanks. */
#define LINE_CAP (PF_URLDEFENSE_MAX_INPUT + 1024u)
/* How much of a failing input is echoed in an error message. */
#define ECHO_MAX 80

#define DEFAULT_BASE_URL "https://tap-api-v2.proofpoint.com"
#define DECODE_PATH "/v2/url/decode"
/* URLs per API request. Proofpoint documents no maximum (unconfirmed), only
 * a throttle of 1800 requests per 24 hours, so batches save quota. */
#define DEFAULT_BATCH 100
/* The URL Decode API's call budget per credential (Proofpoint's API pages;
 * counted in the flow's call ledger with --flow). */
#define DECODE_POOL "tap-url-decode"
#define DECODE_BUDGET 1800
#define MAX_BATCH 1000
#define SECRET_FILE_MAX 65536
#define ONLINE_MAX_BODY (64u << 20)

/* Outcome of one input: decoded, failed (reported), or fatal (stop). */
enum { ONE_OK = 0, ONE_FAILED = 1, ONE_FATAL = -1 };

/* One input waiting for the next online request. */
typedef struct item {
    char *enc; /* trimmed input, owned */
    size_t len;
    char label[64];
    char *local_err; /* owned; set when the input is not sent (too long, not UTF-8) */
} item;

typedef struct online {
    pf_flow *flow; /* with --flow; owns the credentials then */
    pf_http_client *http;
    pf_buf url;
    const char *user, *pass;
    char *secret_own; /* read from --secret-file */
    item *items;
    size_t n, batch;
    int worst;      /* worst outcome printed so far */
    int fatal_code; /* exit code after a fatal failure (0: none) */
} online;

typedef struct opts {
    int json;
    int online;
    int verbose;
    int allow_insecure_http; /* --allow-insecure-http */
    const char *flow_path, *base_url, *principal, *secret_file;
    long batch;
    online on;
} opts;

static void usage(FILE *f)
{
    fputs("usage: ppflow decode [--json] URL...\n"
          "       ppflow decode [--json] [-]\n"
          "       ppflow decode --online [--flow FLOW.yaml | --base-url URL] [options] URL...\n"
          "\n"
          "Decodes Proofpoint URL Defense rewritten URLs (v1, v2 and v3). By default\n"
          "offline, without contacting Proofpoint. With no URL, or with \"-\", reads\n"
          "URLs from standard input, one per line; blank lines are skipped and blanks\n"
          "around a URL are ignored.\n"
          "\n"
          "Output: one line per URL, the decoded URL. A URL that cannot be decoded\n"
          "gives an empty line and a message on standard error naming it. Control\n"
          "characters in a decoded URL are written as %XX so it stays on one line.\n"
          "\n"
          "Options:\n"
          "  --json             print a JSON array instead, one element per URL:\n"
          "                     {\"encoded\":...,\"decoded\":...,\"version\":3} or\n"
          "                     {\"encoded\":...,\"error\":...}\n"
          "  --online           ask the TAP URL Decoder API (POST /v2/url/decode) instead\n"
          "  --flow FLOW.yaml   online: the base URL, credentials and http settings of\n"
          "                     this TAP flow\n"
          "  --base-url URL     online: the API's base URL (default\n"
          "                     " DEFAULT_BASE_URL "); credentials from\n"
          "                     PPFLOW_PRINCIPAL and PPFLOW_SECRET (or --secret-file);\n"
          "                     none: the API answers without the message details\n"
          "  --principal NAME   online: the service principal (instead of PPFLOW_PRINCIPAL)\n"
          "  --secret-file FILE online: read the secret from FILE (mode 0600)\n"
          "  --allow-insecure-http\n"
          "                     online: send credentials to an http:// base URL (they\n"
          "                     travel in clear; refused otherwise, warned about when\n"
          "                     allowed)\n"
          "  --batch N          online: URLs per request (default 100, at most 1000)\n"
          "  -v, --verbose      log requests\n"
          "  -h, --help         show this help\n"
          "\n"
          "Online, --json objects carry messageGuid, clusterName and recipientEmail when\n"
          "the API sends them (with credentials), and no \"version\". Secrets are never\n"
          "taken from the command line.\n"
          "\n"
          "Exit status: 0 when every URL was decoded, 1 when any failed or a request\n"
          "failed, 2 on a usage or configuration error. docs/urldefense.md describes\n"
          "the formats, the rules applied and the online mode.\n",
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
    fprintf(stderr, "error: ppflow decode: %s ", label);
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

/* Adds KEY: a string of S[0..N) to OBJ with ill-formed UTF-8 shown as U+FFFD;
 * returns -1 on failure. */
static int put_text(json_object *obj, const char *key, const char *s, size_t n)
{
    pf_buf b;
    pf_buf_init(&b, 0);
    int rc = append_utf8_lossy(&b, s, n) == PF_OK
                 ? put(obj, key, json_object_new_string_len(pf_buf_str(&b), (int)b.len))
                 : -1;
    pf_buf_free(&b);
    return rc;
}

/* Elements printed so far into the --json array. */
static size_t json_items;

/* Prints one result as an element of the JSON array. DEC (DEC_LEN bytes) is the decoded URL,
 * or NULL with ERRMSG set; VERSION > 0 is printed; EXTRA's members (strings)
 * are appended (borrowed; may be NULL). */
static int print_json(const char *enc, size_t enc_len, const char *dec, size_t dec_len, int version,
                      const char *errmsg, json_object *extra)
{
    int rc = -1;
    json_object *o = json_object_new_object();
    if (!o || put_text(o, "encoded", enc, enc_len)) goto done;
    if (dec && put_text(o, "decoded", dec, dec_len)) goto done;
    if (version > 0 && put(o, "version", json_object_new_int(version))) goto done;
    if (extra) {
        json_object_object_foreach(extra, k, v)
        {
            if (put(o, k, json_object_get(v))) goto done;
        }
    }
    if (!dec && put(o, "error", json_object_new_string(errmsg ? errmsg : "failed"))) goto done;
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text || printf("%s%s", json_items++ ? ",\n" : "[", text) < 0) goto done;
    rc = 0;
done:
    json_object_put(o);
    return rc;
}

/* Prints the outcome of input ENC (labelled LABEL) and reports a failure on
 * stderr. Returns ONE_OK, ONE_FAILED, or ONE_FATAL when the output failed. */
static int emit(const opts *op, const char *enc, size_t enc_len, const char *dec, size_t dec_len,
                int version, const char *errmsg, json_object *extra, const char *label)
{
    int w = op->json ? print_json(enc, enc_len, dec, dec_len, version, errmsg, extra)
            : dec    ? print_plain(dec, dec_len)
                     : (putchar('\n') == EOF ? -1 : 0);
    if (!dec) report(label, enc, enc_len, errmsg ? errmsg : "failed");
    if (w != 0) {
        fprintf(stderr, "ppflow decode: cannot write the output\n");
        return ONE_FATAL;
    }
    return dec ? ONE_OK : ONE_FAILED;
}

/* Decodes one input S[0..N) (already trimmed) offline. */
static int decode_offline(const opts *op, const char *s, size_t n, const char *label)
{
    pf_buf out;
    pf_buf_init(&out, 0);
    pf_error err;
    pf_error_clear(&err);
    int version = 0;
    pf_status st = pf_urldefense_decode(s, n, &out, &version, &err);
    char msg[PF_ERROR_MSG_MAX + 64] = "";
    if (st != PF_OK) pf_error_format(&err, msg, sizeof msg);
    int o = emit(op, s, n, st == PF_OK ? pf_buf_str(&out) : NULL, out.len, version,
                 st == PF_OK ? NULL : msg, NULL, label);
    pf_buf_free(&out);
    if (st == PF_ENOMEM) return ONE_FATAL;
    return o;
}

/* ---- online ------------------------------------------------------------- */

static void free_items(online *on)
{
    for (size_t i = 0; i < on->n; i++) {
        free(on->items[i].enc);
        free(on->items[i].local_err);
    }
    on->n = 0;
}

static void online_close(online *on)
{
    free_items(on);
    free(on->items);
    pf_http_client_free(on->http);
    pf_buf_free(&on->url);
    if (on->secret_own) {
        volatile char *p = on->secret_own;
        while (*p)
            *p++ = 0;
        free(on->secret_own);
    }
    pf_flow_free(on->flow);
    memset(on, 0, sizeof *on);
}

/* Reads the secret in PATH, refusing a file others can access (as flows do). */
static char *read_secret_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "ppflow decode: cannot read --secret-file %s\n", path);
        return NULL;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        fprintf(stderr,
                "ppflow decode: --secret-file %s is accessible by group or others (mode %03o); "
                "chmod 600 it\n",
                path, (unsigned)(st.st_mode & 0777));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    if (pf_read_file(path, SECRET_FILE_MAX, &text, &len, &e) != PF_OK) {
        pf_cli_print_error("decode", &e);
        return NULL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    return text;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Sets up the client, URL and credentials. Returns an exit code. */
static int online_open(opts *op)
{
    online *on = &op->on;
    pf_http_opts ho;
    pf_http_opts_default(&ho);
    ho.max_body = ONLINE_MAX_BODY;
    const char *base = op->base_url ? op->base_url : DEFAULT_BASE_URL;
    if (op->flow_path) {
        int code = PF_EXIT_OK;
        on->flow = pf_cli_load_flow(op->flow_path, NULL, 0, &code);
        if (!on->flow) return code;
        if (on->flow->tmpl->auth != PF_AUTH_BASIC) {
            fprintf(stderr,
                    "ppflow decode: %s: --online needs a TAP flow (HTTP Basic credentials); "
                    "template %s uses another kind of credentials\n",
                    op->flow_path, on->flow->tmpl->name);
            return PF_EXIT_USAGE;
        }
        if (!on->flow->base_url || !*on->flow->base_url) {
            fprintf(stderr, "ppflow decode: %s has no base URL\n", op->flow_path);
            return PF_EXIT_USAGE;
        }
        base = on->flow->base_url;
        on->user = on->flow->principal;
        on->pass = on->flow->secret;
        pf_sample_http_opts(on->flow, &ho);
        pf_flow_warn_insecure(on->flow); /* the flow loader refused it unless allowed */
    } else {
        on->user = op->principal ? op->principal : env_nonempty("PPFLOW_PRINCIPAL");
        if (op->secret_file) {
            if (!(on->secret_own = read_secret_file(op->secret_file))) return PF_EXIT_USAGE;
            on->pass = on->secret_own;
        } else {
            on->pass = env_nonempty("PPFLOW_SECRET");
        }
        if (on->pass) pf_log_add_secret(on->pass);
        if (!on->user != !on->pass) {
            fprintf(stderr, "ppflow decode: give both a principal (PPFLOW_PRINCIPAL or "
                            "--principal) and a secret (PPFLOW_SECRET or --secret-file), or "
                            "neither\n");
            return PF_EXIT_USAGE;
        }
        if (on->user && strchr(on->user, ':')) {
            fprintf(stderr, "ppflow decode: the principal cannot contain ':'\n");
            return PF_EXIT_USAGE;
        }
        /* No credentials in clear, as for flows (source.allow_insecure_http). */
        if (on->user && strncasecmp(base, "http://", 7) == 0) {
            if (!op->allow_insecure_http) {
                fprintf(stderr,
                        "ppflow decode: --base-url %s: refused to send credentials to an "
                        "http:// URL, where they would travel in clear; use https, or give "
                        "--allow-insecure-http\n",
                        base);
                return PF_EXIT_USAGE;
            }
            pf_log_warn("credentials travel in clear (insecure): --allow-insecure-http sends "
                        "them to %s",
                        base);
        }
    }
    pf_error err;
    pf_error_clear(&err);
    pf_buf_init(&on->url, 8192);
    pf_status st = pf_http_url_join(base, DECODE_PATH, &on->url, &err);
    if (st != PF_OK) {
        pf_error_prefix(&err, "base URL");
        pf_cli_print_error("decode", &err);
        return PF_EXIT_USAGE;
    }
    if ((st = pf_http_client_new(&ho, &on->http, &err)) != PF_OK) {
        pf_cli_print_error("decode", &err);
        return pf_cli_exit_code(st);
    }
    on->batch = op->batch > 0 ? (size_t)op->batch : DEFAULT_BATCH;
    if (!(on->items = calloc(on->batch, sizeof *on->items))) {
        fprintf(stderr, "ppflow decode: out of memory\n");
        return PF_EXIT_FAIL;
    }
    pf_cli_install_signals();
    return PF_EXIT_OK;
}

static int utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

/* The results array of the API's answer BODY for COUNT URLs, or NULL with
 * a message in MSG. *DOC owns it. */
static json_object *parse_answer(const pf_buf *body, size_t count, json_object **doc, char *msg,
                                 size_t msz)
{
    *doc = NULL;
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) {
        snprintf(msg, msz, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, body->data ? body->data : "", (int)body->len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (je != json_tokener_success) {
        json_object_put(o);
        snprintf(msg, msz, "the URL Decoder's answer is not JSON (%s at offset %zu)",
                 json_tokener_error_desc(je), off);
        return NULL;
    }
    json_object *urls = NULL;
    if (!json_object_object_get_ex(o, "urls", &urls) ||
        !json_object_is_type(urls, json_type_array)) {
        json_object_put(o);
        snprintf(msg, msz, "the URL Decoder's answer has no \"urls\" array");
        return NULL;
    }
    if (json_object_array_length(urls) != count) {
        snprintf(msg, msz, "the URL Decoder answered %zu results for %zu URLs",
                 json_object_array_length(urls), count);
        json_object_put(o);
        return NULL;
    }
    *doc = o;
    return urls;
}

/* Prints item IT with its result R (an element of the answer's "urls"). */
static int emit_result(const opts *op, const item *it, json_object *r)
{
    static const char *const extras[] = {"messageGuid", "clusterName", "recipientEmail"};
    json_object *ok = NULL, *dec = NULL, *e = NULL;
    int success = json_object_object_get_ex(r, "success", &ok) &&
                  json_object_is_type(ok, json_type_boolean) && json_object_get_boolean(ok) &&
                  json_object_object_get_ex(r, "decodedUrl", &dec) &&
                  json_object_is_type(dec, json_type_string);
    if (!success) {
        char msg[PF_ERROR_MSG_MAX] = "the URL Decoder could not decode it";
        if (json_object_object_get_ex(r, "error", &e) && json_object_is_type(e, json_type_string) &&
            json_object_get_string_len(e) > 0) {
            /* Redacted whole, then cut to MSG. */
            pf_log_redact(json_object_get_string(e), msg, sizeof msg);
        }
        pf_buf clean;
        pf_buf_init(&clean, 0);
        const char *m =
            append_utf8_lossy(&clean, msg, strlen(msg)) == PF_OK ? pf_buf_str(&clean) : "failed";
        int o = emit(op, it->enc, it->len, NULL, 0, 0, m, NULL, it->label);
        pf_buf_free(&clean);
        return o;
    }
    json_object *extra = op->json ? json_object_new_object() : NULL;
    for (size_t i = 0; extra && i < sizeof extras / sizeof extras[0]; i++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(r, extras[i], &v) && json_object_is_type(v, json_type_string))
            put_text(extra, extras[i], json_object_get_string(v),
                     (size_t)json_object_get_string_len(v));
    }
    pf_buf d;
    pf_buf_init(&d, 0);
    int o = ONE_FATAL;
    if (append_utf8_lossy(&d, json_object_get_string(dec),
                          (size_t)json_object_get_string_len(dec)) == PF_OK)
        o = emit(op, it->enc, it->len, pf_buf_str(&d), d.len, 0, NULL, extra, it->label);
    pf_buf_free(&d);
    json_object_put(extra);
    return o;
}

static void worsen(online *on, int o)
{
    if (o == ONE_FATAL || (o == ONE_FAILED && on->worst == ONE_OK)) on->worst = o;
}

/* Sends the pending inputs (those without a local error) in one request and
 * prints every pending input's outcome in order. */
static int online_flush(opts *op)
{
    online *on = &op->on;
    if (on->n == 0) return ONE_OK;
    json_object *req = json_object_new_object(), *arr = json_object_new_array();
    size_t send = 0;
    int bad = 0;
    if (!req || !arr || json_object_object_add(req, "urls", arr) != 0) {
        json_object_put(arr); /* not owned by req */
        bad = 1;
    }
    for (size_t i = 0; i < on->n && !bad; i++) {
        if (on->items[i].local_err) continue;
        json_object *s = json_object_new_string_len(on->items[i].enc, (int)on->items[i].len);
        if (!s || json_object_array_add(arr, s) != 0) {
            json_object_put(s);
            bad = 1;
        }
        send++;
    }
    json_object *doc = NULL, *results = NULL;
    if (bad) {
        json_object_put(req);
        fprintf(stderr, "ppflow decode: out of memory\n");
        on->fatal_code = PF_EXIT_FAIL;
        free_items(on);
        return ONE_FATAL;
    }
    if (send) {
        const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
        static const char *const headers[] = {"Content-Type: application/json",
                                              "Accept: application/json", NULL};
        pf_http_request hr = {0};
        hr.method = "POST";
        hr.url = pf_buf_str(&on->url);
        hr.headers = headers;
        hr.basic_user = on->user;
        hr.basic_pass = on->pass;
        hr.body = body;
        hr.body_len = body ? strlen(body) : 0;
        pf_http_response resp;
        pf_http_response_init(&resp);
        pf_error err;
        pf_error_clear(&err);
        char logurl[512];
        pf_http_url_for_log(hr.url, logurl, sizeof logurl);
        pf_log_debug("POST %s (%zu URL%s)", logurl, send, send == 1 ? "" : "s");
        char ledger[4200] = "", qkey[PF_QUOTA_KEY_SIZE];
        pf_status st = body ? PF_OK : pf_error_set(&err, PF_ENOMEM, "out of memory");
        if (st == PF_OK && on->flow &&
            pf_quota_path(on->flow->state_path, ledger, sizeof ledger) == 0) {
            /* With --flow the calls count in the flow's call ledger. */
            long used = 0;
            int64_t next = 0, now = pf_time_now_ms();
            pf_quota_key(DECODE_POOL, on->flow->principal, qkey);
            st = pf_quota_usage(ledger, qkey, now, DECODE_BUDGET, &used, &next, &err);
            if (st == PF_OK && used >= DECODE_BUDGET) {
                char at[PF_TIME_FMT_SIZE];
                pf_time_format(next, at);
                st = pf_error_set(&err, PF_ETOOBIG,
                                  "the call budget '" DECODE_POOL "' is used up: %ld calls in the "
                                  "last 24 hours, %d allowed per credential; the next call is "
                                  "possible at %s",
                                  used, DECODE_BUDGET, at);
            }
        } else {
            ledger[0] = '\0';
        }
        if (st == PF_OK) {
            st = pf_http_fetch(on->http, &hr, NULL, NULL, &resp, &err);
            pf_error qe;
            pf_error_clear(&qe);
            if (ledger[0] &&
                pf_quota_record(ledger, qkey, pf_time_now_ms(),
                                resp.attempts > 0 ? resp.attempts : 1, &qe) != PF_OK)
                pf_log_warn("%s", qe.msg);
        }
        char msg[PF_ERROR_MSG_MAX + 64] = "";
        if (st == PF_OK && !(results = parse_answer(&resp.body, send, &doc, msg, sizeof msg)))
            st = pf_error_set(&err, PF_EDATA, "%s", msg);
        pf_http_response_free(&resp);
        if (st != PF_OK) {
            pf_cli_print_error("decode", &err);
            on->fatal_code =
                pf_cli_exit_code(st) == PF_EXIT_USAGE ? PF_EXIT_FAIL : pf_cli_exit_code(st);
            json_object_put(req);
            free_items(on);
            return ONE_FATAL;
        }
    }
    json_object_put(req);
    int worst = ONE_OK;
    size_t j = 0;
    for (size_t i = 0; i < on->n && worst != ONE_FATAL; i++) {
        const item *it = &on->items[i];
        int o = it->local_err
                    ? emit(op, it->enc, it->len, NULL, 0, 0, it->local_err, NULL, it->label)
                    : emit_result(op, it, json_object_array_get_idx(results, j++));
        if (o == ONE_FATAL || o == ONE_FAILED) worst = o;
    }
    json_object_put(doc);
    free_items(on);
    if (worst == ONE_FATAL && !on->fatal_code) on->fatal_code = PF_EXIT_FAIL;
    return worst;
}

/* Queues input S[0..N) for the next request (LOCAL_ERR: it fails without
 * being sent); sends the batch once it is full. */
static int online_add(opts *op, const char *s, size_t n, const char *label, const char *local_err)
{
    online *on = &op->on;
    item *it = &on->items[on->n];
    memset(it, 0, sizeof *it);
    if (!local_err && n > PF_URLDEFENSE_MAX_INPUT)
        local_err = "longer than the 64 KiB accepted";
    else if (!local_err && !utf8_valid(s, n))
        local_err = "not valid UTF-8";
    it->enc = malloc(n + 1);
    it->local_err = local_err ? strdup(local_err) : NULL;
    if (!it->enc || (local_err && !it->local_err)) {
        free(it->enc);
        free(it->local_err);
        fprintf(stderr, "ppflow decode: out of memory\n");
        on->fatal_code = PF_EXIT_FAIL;
        return ONE_FATAL;
    }
    memcpy(it->enc, s, n);
    it->enc[n] = '\0';
    it->len = n;
    snprintf(it->label, sizeof it->label, "%s", label);
    on->n++;
    if (on->n < on->batch) return ONE_OK;
    int o = online_flush(op);
    worsen(on, o);
    return o == ONE_FATAL ? ONE_FATAL : ONE_OK;
}

/* One input, offline or queued for the online decoder. */
static int decode_one(opts *op, const char *s, size_t n, const char *label)
{
    return op->online ? online_add(op, s, n, label, NULL) : decode_offline(op, s, n, label);
}

/* An input that fails before decoding (MSG says why). */
static int fail_one(opts *op, const char *s, size_t n, const char *label, const char *msg)
{
    if (op->online) return online_add(op, s, n, label, msg);
    return emit(op, s, n, NULL, 0, 0, msg, NULL, label);
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
static int decode_stdin(opts *op)
{
    pf_buf line;
    pf_buf_init(&line, LINE_CAP);
    int worst = ONE_OK, too_long, r;
    unsigned long lineno = 0;
    char label[64];
    while ((r = read_line(stdin, &line, &too_long)) == 1) {
        lineno++;
        snprintf(label, sizeof label, "stdin line %lu", lineno);
        int o;
        if (too_long) {
            char msg[128];
            snprintf(msg, sizeof msg, "line is longer than %u bytes", LINE_CAP);
            o = fail_one(op, pf_buf_str(&line), line.len, label, msg);
        } else {
            size_t n = line.len;
            const char *s = trim(pf_buf_str(&line), &n);
            if (n == 0) continue;
            o = decode_one(op, s, n, label);
        }
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

/* Options that take a value; "--name=value" is accepted too. */
static const char *const value_opts[] = {"--flow",        "--base-url", "--principal",
                                         "--secret-file", "--batch",    NULL};

/* When A is a value option, returns its index in value_opts plus one and
 * sets *INLINE_VAL to the value after '=' (NULL when the value is the next
 * argument); else returns 0. */
static size_t value_opt(const char *a, const char **inline_val)
{
    *inline_val = NULL;
    for (size_t i = 0; value_opts[i]; i++) {
        size_t l = strlen(value_opts[i]);
        if (strncmp(a, value_opts[i], l) != 0) continue;
        if (a[l] == '\0') return i + 1;
        if (a[l] == '=') {
            *inline_val = a + l + 1;
            return i + 1;
        }
    }
    return 0;
}

/* Parses the options; returns -1 to go on, else an exit code. *NURLS counts
 * the other arguments. */
static int parse_opts(int argc, char **argv, opts *op, int *nurls)
{
    int opts_done = 0;
    *nurls = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = 1;
            continue;
        }
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            (*nurls)++;
            continue;
        }
        const char *val;
        size_t which = value_opt(a, &val);
        if (which) {
            if (!val) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "ppflow decode: %s needs a value\n", a);
                    return PF_EXIT_USAGE;
                }
                val = argv[++i];
            }
            switch (which - 1) {
            case 0:
                op->flow_path = val;
                break;
            case 1:
                op->base_url = val;
                break;
            case 2:
                op->principal = val;
                break;
            case 3:
                op->secret_file = val;
                break;
            default: {
                char *end;
                op->batch = strtol(val, &end, 10);
                if (!*val || *end || op->batch < 1 || op->batch > MAX_BATCH) {
                    fprintf(stderr,
                            "ppflow decode: --batch needs a number from 1 to %d, got "
                            "'%s'\n",
                            MAX_BATCH, val);
                    return PF_EXIT_USAGE;
                }
            }
            }
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            op->json = 1;
        } else if (strcmp(a, "--online") == 0) {
            op->online = 1;
        } else if (strcmp(a, "--allow-insecure-http") == 0) {
            op->allow_insecure_http = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            op->verbose = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return PF_EXIT_OK;
        } else if (strncmp(a, "--secret", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
            fprintf(stderr, "ppflow decode: secrets are not taken from the command line; set "
                            "PPFLOW_SECRET or use --secret-file\n");
            return PF_EXIT_USAGE;
        } else {
            fprintf(stderr, "ppflow decode: unknown option '%s'\n\n", a);
            usage(stderr);
            return PF_EXIT_USAGE;
        }
    }
    int online_only = op->flow_path || op->base_url || op->principal || op->secret_file ||
                      op->batch || op->allow_insecure_http;
    if (online_only && !op->online) {
        fprintf(stderr, "ppflow decode: --flow, --base-url, --principal, --secret-file, "
                        "--batch and --allow-insecure-http need --online\n");
        return PF_EXIT_USAGE;
    }
    if (op->flow_path && (op->base_url || op->principal || op->secret_file)) {
        fprintf(stderr, "ppflow decode: --flow gives the base URL and credentials; do not "
                        "combine it with --base-url, --principal or --secret-file\n");
        return PF_EXIT_USAGE;
    }
    return -1;
}

int pf_cmd_decode(int argc, char **argv)
{
    opts op;
    memset(&op, 0, sizeof op);
    int nurls = 0;
    int code = parse_opts(argc, argv, &op, &nurls);
    if (code >= 0) return code;
    if (op.verbose) pf_log_set_level(PF_LOG_DEBUG);
    if (op.online && (code = online_open(&op)) != PF_EXIT_OK) {
        online_close(&op.on);
        return code;
    }

    int worst = ONE_OK;
    if (nurls == 0) {
        worst = decode_stdin(&op);
    } else {
        /* Second pass: the URLs, with the same rules for "--" and options. */
        int opts_done = 0;
        for (int i = 1; i < argc && worst != ONE_FATAL; i++) {
            const char *a = argv[i];
            if (!opts_done && strcmp(a, "--") == 0) {
                opts_done = 1;
                continue;
            }
            if (!opts_done && a[0] == '-' && a[1] != '\0') {
                const char *val;
                if (value_opt(a, &val) && !val) i++;
                continue;
            }
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
    if (op.online) {
        if (worst != ONE_FATAL) worsen(&op.on, online_flush(&op));
        if (op.on.worst == ONE_FATAL || (op.on.worst == ONE_FAILED && worst == ONE_OK))
            worst = op.on.worst;
        code = op.on.fatal_code;
        online_close(&op.on);
        if (code) {
            fflush(stdout);
            return code;
        }
    }
    if (op.json && worst != ONE_FATAL) printf("%s]\n", json_items ? "" : "[");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ppflow decode: cannot write the output\n");
        return PF_EXIT_FAIL;
    }
    return worst == ONE_OK ? PF_EXIT_OK : PF_EXIT_FAIL;
}
