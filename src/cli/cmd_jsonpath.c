/* cmd_jsonpath.c: `ppflow jsonpath [--paths] [--] QUERY [FILE]`: evaluates an
 * RFC 9535 query against a JSON document (FILE or stdin) and prints the
 * selected values, or their normalized paths, as one JSON array.
 * Exit status: 0 success; 1 unreadable or invalid document, evaluation
 * failure or write error; 2 invalid query or usage. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "jsonpath/jsonpath.h"
#include "util/buf.h"

#define DOC_MAX_BYTES (1024UL * 1024 * 1024) /* json-c takes an int length */
#define DOC_MAX_DEPTH 1000                   /* json-c frees and prints recursively */

static void usage(FILE *f)
{
    fputs("usage: ppflow jsonpath [--paths] [--] QUERY [FILE]\n"
          "\n"
          "Evaluates the RFC 9535 JSONPath QUERY against the JSON document in FILE\n"
          "(default, or \"-\": standard input) and prints the selected values as one\n"
          "JSON array.\n"
          "\n"
          "  --paths     print the normalized paths of the selected nodes instead\n"
          "  -h, --help  print this help\n"
          "\n"
          "Exit status: 0 success, 1 unreadable or invalid document, 2 invalid query\n"
          "or usage. See docs/jsonpath.md for the dialect and its limits.\n",
          f);
}

/* Prints "error: MSG at offset N", then the query with a caret under the
 * offending character when the query is one printable line. */
static void report_query_error(const char *query, const pf_error *err)
{
    char msg[PF_ERROR_MSG_MAX + 64];
    pf_error_format(err, msg, sizeof msg);
    fprintf(stderr, "error: %s\n", msg);
    size_t len = strlen(query);
    if (err->offset < 0 || (size_t)err->offset > len || len > 200) return;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)query[i] < 0x20 || query[i] == 0x7F) return;
    size_t col = 0; /* characters, not bytes, before the offset */
    for (size_t i = 0; i < (size_t)err->offset; i++)
        if (((unsigned char)query[i] & 0xC0) != 0x80) col++;
    fprintf(stderr, "  %s\n  %*s^\n", query, (int)col, "");
}

static int read_all(FILE *f, pf_buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        pf_status st = pf_buf_append(b, chunk, n);
        if (st != PF_OK) {
            errno = st == PF_ETOOBIG ? EFBIG : ENOMEM;
            return -1;
        }
    }
    return ferror(f) ? -1 : 0;
}

/* Parses the whole of B as one JSON text. Returns 0 and *DOC, or -1 with a
 * message in MSG. */
static int parse_doc(const pf_buf *b, struct json_object **doc, char *msg, size_t msgn)
{
    *doc = NULL;
    struct json_tokener *tok = json_tokener_new_ex(DOC_MAX_DEPTH);
    if (!tok) {
        snprintf(msg, msgn, "out of memory");
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    const char *s = pf_buf_str(b);
    struct json_object *o = json_tokener_parse_ex(tok, s, (int)b->len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!o && e == json_tokener_continue) {
        /* a top-level number or an unterminated value: feed the end */
        o = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
        if (!o && e == json_tokener_continue) e = json_tokener_error_parse_eof;
        end = b->len;
    }
    if (e == json_tokener_success && end < b->len) {
        size_t i = end;
        while (i < b->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
            i++;
        if (i < b->len) {
            snprintf(msg, msgn, "invalid JSON at byte %zu: trailing data after the document", i);
            json_object_put(o);
            json_tokener_free(tok);
            return -1;
        }
    }
    if (e != json_tokener_success) {
        if (b->len == 0)
            snprintf(msg, msgn, "invalid JSON: the document is empty");
        else
            snprintf(msg, msgn, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(e));
        json_object_put(o);
        json_tokener_free(tok);
        return -1;
    }
    json_tokener_free(tok);
    *doc = o;
    return 0;
}

int pf_cmd_jsonpath(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"paths", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int want_paths = 0, c;
    optind = 0; /* restart getopt (GNU): argv[0] is "jsonpath" */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            want_paths = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "ppflow jsonpath: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        fprintf(stderr, "ppflow jsonpath: expected QUERY and an optional FILE\n");
        usage(stderr);
        return 2;
    }
    const char *query = argv[optind];
    const char *file = argc - optind == 2 ? argv[optind + 1] : "-";

    pf_error err;
    pf_error_clear(&err);
    pf_jsonpath *q = NULL;
    if (pf_jsonpath_compile(query, strlen(query), &q, &err) != PF_OK) {
        report_query_error(query, &err);
        return 2;
    }

    int rc = 1;
    struct json_object *doc = NULL, *arr = NULL;
    pf_jp_nodelist nodes = {0};
    pf_buf b;
    pf_buf_init(&b, DOC_MAX_BYTES);
    int from_stdin = strcmp(file, "-") == 0;
    const char *name = from_stdin ? "<stdin>" : file;
    FILE *f = from_stdin ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "ppflow jsonpath: %s: %s\n", name, strerror(errno));
        goto out;
    }
    int rd = read_all(f, &b);
    int rerr = errno;
    if (!from_stdin) fclose(f);
    if (rd != 0) {
        fprintf(stderr, "ppflow jsonpath: %s: %s\n", name,
                rerr == EFBIG ? "document larger than 1 GiB" : strerror(rerr));
        goto out;
    }
    char msg[256];
    if (parse_doc(&b, &doc, msg, sizeof msg) != 0) {
        fprintf(stderr, "ppflow jsonpath: %s: %s\n", name, msg);
        goto out;
    }
    if (pf_jsonpath_eval(q, doc, want_paths, &nodes, &err) != PF_OK) {
        pf_error_format(&err, msg, sizeof msg);
        fprintf(stderr, "ppflow jsonpath: evaluation failed: %s\n", msg);
        goto out;
    }
    arr = json_object_new_array_ext((int)(nodes.count ? nodes.count : 1));
    if (!arr) goto nomem;
    for (size_t i = 0; i < nodes.count; i++) {
        struct json_object *v = want_paths ? json_object_new_string(nodes.nodes[i].path)
                                           : json_object_get(nodes.nodes[i].value);
        if (want_paths && !v) goto nomem;
        if (json_object_array_add(arr, v) != 0) {
            json_object_put(v);
            goto nomem;
        }
    }
    const char *text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text) goto nomem;
    if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "ppflow jsonpath: writing the result: %s\n", strerror(errno));
        goto out;
    }
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, "ppflow jsonpath: out of memory\n");
out:
    json_object_put(arr);
    pf_jp_nodelist_free(&nodes);
    json_object_put(doc);
    pf_buf_free(&b);
    pf_jsonpath_free(q);
    return rc;
}
