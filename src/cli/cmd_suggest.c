/* cmd_suggest.c: `ppflow suggest`: candidate record paths from a sample
 * response, read from a file (or stdin) or fetched once for a flow. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "engine/sample.h"
#include "engine/suggest.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/timeutil.h"

#define MAX_SETS 64
#define SAMPLE_MAX (256u << 20) /* largest sample file read */
#define DEFAULT_LIMIT 20
#define FIELDS_WIDTH 60 /* bytes of field names shown per line */

static void usage(FILE *f)
{
    fputs("usage: ppflow suggest [options] SAMPLE.json\n"
          "       ppflow suggest [options] FLOW.yaml\n"
          "\n"
          "Lists the JSONPath record paths a response offers, best first: each with\n"
          "the number of records it yields in the sample, the fields its records\n"
          "share, and a key path when they share an identifier (GUID, id, *_id...)\n"
          "whose values are unique. Arrays of objects come first, then arrays mixing\n"
          "objects and other values, empty arrays, arrays of scalars, and single\n"
          "objects; fewer [*] before more. The paths work as `records:` and `key:` in\n"
          "a flow and with `ppflow jsonpath`.\n"
          "\n"
          "A file ending in .yaml or .yml is a flow: one sample is fetched the way\n"
          "`ppflow test` would (the latest window of the template's shortest length,\n"
          "the first page, or the single request; a source.file flow reads its file).\n"
          "Nothing is written. Any other file is read as a JSON sample; \"-\" reads\n"
          "standard input.\n"
          "\n"
          "options:\n"
          "      --json             print the candidates as a JSON array of\n"
          "                         {path, records, kind, fields, key[, elements]}\n"
          "  -n, --limit N          show at most N candidates (default 20 for text,\n"
          "                         all for --json; 0: all)\n"
          "  -w, --window DURATION  time-window flows: sample a window this long (e.g.\n"
          "                         1h; kept within the template's bounds)\n"
          "  -o, --save FILE        flows: also write the fetched sample to FILE (0600)\n"
          "  -s, --set NAME=VALUE   flows: override a template parameter\n"
          "  -v, --verbose          log the request\n"
          "  -h, --help             this help\n"
          "\n"
          "Exit codes: 0 done (also when the sample offers no path), 1 the fetch\n"
          "failed or the sample is not JSON, 2 usage or configuration error.\n",
          f);
}

static int is_flow_path(const char *p)
{
    size_t n = strlen(p);
    return (n > 5 && strcmp(p + n - 5, ".yaml") == 0) || (n > 4 && strcmp(p + n - 4, ".yml") == 0);
}

/* The display form of member NAME in B: the dot or bracket segment
 * (".name", "['x y']"); returns its length, 0 on failure. */
static size_t field_text(const char *name, pf_buf *b)
{
    pf_buf_reset(b);
    if (pf_suggest_member_segment(b, name, strlen(name)) != PF_OK) return 0;
    return b->len;
}

static void print_fields(const pf_suggestion *s)
{
    pf_buf b;
    pf_buf_init(&b, 0);
    size_t used = 0, shown = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        size_t n = field_text(s->fields[i], &b);
        if (!n) break;
        /* ".name" prints as name, "['x y']" as 'x y'. */
        const char *t = b.data + 1;
        size_t tl = b.data[0] == '.' ? n - 1 : n - 2;
        if (shown && used + tl + 2 > FIELDS_WIDTH) break;
        printf("%s%.*s", shown ? ", " : "", (int)tl, t);
        used += tl + 2;
        shown++;
    }
    if (shown < s->nfields) printf(", ... (+%zu more)", s->nfields - shown);
    pf_buf_free(&b);
}

/* Characters (not bytes) in UTF-8 text S. */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

static void print_text(const pf_suggestions *all, size_t limit)
{
    size_t n = limit && limit < all->count ? limit : all->count;
    int pw = 0, rw = 0;
    for (size_t i = 0; i < n; i++) {
        int l = width(all->items[i].path);
        if (l > pw) pw = l;
        char num[32];
        int d = snprintf(num, sizeof num, "%zu", all->items[i].records);
        if (d > rw) rw = d;
    }
    if (pw > 60) pw = 60;
    for (size_t i = 0; i < n; i++) {
        const pf_suggestion *s = &all->items[i];
        int pad = pw - width(s->path);
        printf("%s%*s  %*zu record%s  ", s->path, pad > 0 ? pad : 0, "", rw, s->records,
               s->records == 1 ? " " : "s");
        switch (s->kind) {
        case PF_SUGGEST_OBJECTS:
        case PF_SUGGEST_SINGLE:
            if (s->nfields)
                print_fields(s);
            else
                fputs(s->records > 1 ? "(objects with no member in common)" : "(empty object)",
                      stdout);
            break;
        case PF_SUGGEST_MIXED:
            printf("(mixed: %zu objects, %zu other values) ", s->objects, s->records - s->objects);
            print_fields(s);
            break;
        case PF_SUGGEST_EMPTY:
            fputs("(empty in this sample)", stdout);
            break;
        case PF_SUGGEST_SCALARS:
            printf("(%s)", s->elements);
            break;
        }
        if (s->key) printf("  key: %s", s->key);
        putchar('\n');
    }
    if (n < all->count) printf("(%zu more; --limit 0 shows all)\n", all->count - n);
}

static int print_json(const pf_suggestions *all, size_t limit)
{
    size_t n = limit && limit < all->count ? limit : all->count;
    json_object *arr = json_object_new_array();
    int bad = !arr;
    for (size_t i = 0; i < n && !bad; i++) {
        const pf_suggestion *s = &all->items[i];
        json_object *o = json_object_new_object(), *f = json_object_new_array();
        if (!o || !f) {
            json_object_put(o);
            json_object_put(f);
            bad = 1;
            break;
        }
        json_object_object_add(o, "path", json_object_new_string(s->path));
        json_object_object_add(o, "records", json_object_new_int64((int64_t)s->records));
        json_object_object_add(o, "kind", json_object_new_string(pf_suggest_kind_name(s->kind)));
        if (s->elements) json_object_object_add(o, "elements", json_object_new_string(s->elements));
        for (size_t j = 0; j < s->nfields; j++)
            json_object_array_add(f, json_object_new_string(s->fields[j]));
        json_object_object_add(o, "fields", f);
        json_object_object_add(o, "key", s->key ? json_object_new_string(s->key) : NULL);
        if (json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            bad = 1;
        }
    }
    const char *text = bad ? NULL
                           : json_object_to_json_string_ext(
                                 arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = text && printf("%s\n", text) >= 0 ? 0 : -1;
    json_object_put(arr);
    return rc;
}

/* Reads standard input whole (at most SAMPLE_MAX bytes). */
static pf_status read_stdin(pf_buf *b, pf_error *err)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        pf_status st = pf_buf_append(b, chunk, n);
        if (st == PF_ETOOBIG)
            return pf_error_set(err, st, "standard input is larger than %u bytes", SAMPLE_MAX);
        if (st != PF_OK) return pf_error_set(err, st, "out of memory reading standard input");
    }
    if (ferror(stdin)) return pf_error_set(err, PF_EIO, "cannot read standard input");
    return PF_OK;
}

static pf_status load_sample(const char *path, pf_buf *body, pf_error *err)
{
    if (strcmp(path, "-") == 0) return read_stdin(body, err);
    char *text = NULL;
    size_t len = 0;
    pf_status st = pf_read_file(path, SAMPLE_MAX, &text, &len, err);
    if (st != PF_OK) return st;
    st = pf_buf_append(body, text, len);
    free(text);
    return st == PF_OK ? PF_OK : pf_error_set(err, st, "cannot buffer %s", path);
}

typedef struct opts {
    int json;
    long limit; /* -1: default */
    int64_t window_ms;
    const char *save;
    pf_flow_override sets[MAX_SETS];
    size_t nsets;
} opts;

/* Fetches the sample of flow PATH into SMP (saving it when asked) and
 * describes it on stderr; returns an exit code. */
static int flow_sample(const opts *op, const char *path, pf_sample *smp, pf_error *err)
{
    int code = PF_EXIT_OK;
    pf_flow *f = pf_cli_load_flow(path, op->sets, op->nsets, &code);
    if (!f) return code;
    if (f->format == PF_RESPONSE_SYSLOG) {
        fprintf(stderr,
                "ppflow suggest: %s requests SIEM syslog: every line becomes one record (see "
                "docs/templates/tap-siem-syslog.md), so there is no record path to choose; "
                "use format json to see the JSON structure\n",
                path);
        pf_flow_free(f);
        return PF_EXIT_USAGE;
    }
    pf_cli_install_signals();
    pf_sample_opts so = {op->window_ms, 0};
    pf_status st = pf_sample_fetch(f, &so, smp, err);
    if (st != PF_OK) {
        pf_cli_print_error("suggest", err);
        code = pf_cli_exit_code(st);
        if (st == PF_ECONFIG || st == PF_EINVAL) code = PF_EXIT_USAGE;
        pf_flow_free(f);
        return code;
    }
    char extra[200] = "";
    if (smp->windowed) {
        char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
        pf_time_format(smp->start_ms, a);
        pf_time_format(smp->end_ms, b);
        snprintf(extra, sizeof extra, ", window %s/%s", a, b);
    }
    char status[32] = "";
    if (smp->status) snprintf(status, sizeof status, ", HTTP %ld", smp->status);
    fprintf(stderr, "sample: %s%s%s, %zu bytes\n", smp->where, extra, status, smp->body.len);
    if (op->save) {
        pf_error se;
        pf_error_clear(&se);
        if (pf_mkdirs_for(op->save, &se) != PF_OK ||
            pf_write_file_atomic(op->save, smp->body.data ? smp->body.data : "", smp->body.len,
                                 &se) != PF_OK) {
            pf_cli_print_error("suggest", &se);
            pf_flow_free(f);
            return PF_EXIT_FAIL;
        }
        fprintf(stderr, "sample written to %s\n", op->save);
    }
    pf_flow_free(f);
    return PF_EXIT_OK;
}

int pf_cmd_suggest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},         {"limit", required_argument, NULL, 'n'},
        {"window", required_argument, NULL, 'w'}, {"save", required_argument, NULL, 'o'},
        {"set", required_argument, NULL, 's'},    {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    opts op;
    memset(&op, 0, sizeof op);
    op.limit = -1;
    optind = 0; /* full restart of GNU getopt, which permutes: options anywhere */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "n:w:o:s:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            op.json = 1;
            break;
        case 'n': {
            char *end;
            op.limit = strtol(optarg, &end, 10);
            if (!*optarg || *end || op.limit < 0) {
                fprintf(stderr, "ppflow suggest: --limit needs a number >= 0, got '%s'\n", optarg);
                return PF_EXIT_USAGE;
            }
            break;
        }
        case 'w': {
            pf_error e;
            if (pf_duration_parse(optarg, &op.window_ms, &e) != PF_OK || op.window_ms <= 0) {
                fprintf(stderr,
                        "ppflow suggest: --window needs a duration such as 30s or 1h, "
                        "got '%s'\n",
                        optarg);
                return PF_EXIT_USAGE;
            }
            break;
        }
        case 'o':
            op.save = optarg;
            break;
        case 's':
            if (op.nsets == MAX_SETS) {
                fprintf(stderr, "ppflow suggest: at most %d --set options\n", MAX_SETS);
                return PF_EXIT_USAGE;
            }
            if (pf_cli_parse_set(optarg, &op.sets[op.nsets]) != 0) return PF_EXIT_USAGE;
            op.nsets++;
            break;
        case 'v':
            pf_log_set_level(PF_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return PF_EXIT_OK;
        default:
            fprintf(stderr, "ppflow suggest: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ppflow suggest: give exactly one sample file or flow\n");
        usage(stderr);
        return PF_EXIT_USAGE;
    }
    const char *path = argv[optind];
    int flow = is_flow_path(path);
    if (!flow && (op.nsets || op.save || op.window_ms)) {
        fprintf(stderr, "ppflow suggest: --set, --save and --window apply to flows (.yaml)\n");
        return PF_EXIT_USAGE;
    }

    pf_error err;
    pf_error_clear(&err);
    pf_sample smp;
    memset(&smp, 0, sizeof smp);
    const char *label = path;
    if (flow) {
        int code = flow_sample(&op, path, &smp, &err);
        if (code != PF_EXIT_OK) {
            pf_sample_free(&smp);
            return code;
        }
        label = "the sample";
    } else {
        pf_buf_init(&smp.body, SAMPLE_MAX);
        pf_status st = load_sample(path, &smp.body, &err);
        if (st != PF_OK) {
            pf_cli_print_error("suggest", &err);
            pf_sample_free(&smp);
            return st == PF_ENOTFOUND ? PF_EXIT_USAGE : PF_EXIT_FAIL;
        }
        if (strcmp(path, "-") == 0) label = "standard input";
    }

    pf_suggestions all;
    pf_status st = pf_suggest_text(smp.body.data ? smp.body.data : "", smp.body.len, &all, &err);
    pf_sample_free(&smp);
    if (st != PF_OK) {
        pf_error_prefix(&err, "%s", label);
        pf_cli_print_error("suggest", &err);
        return PF_EXIT_FAIL;
    }
    if (all.depth_capped)
        fprintf(stderr,
                "ppflow suggest: note: parts nested deeper than %d levels were not "
                "examined\n",
                PF_SUGGEST_MAX_DEPTH);
    if (all.work_capped)
        fprintf(stderr, "ppflow suggest: note: the sample is too large to examine fully; the "
                        "paths shown are exact, others may be missing\n");
    if (all.count == 0)
        fprintf(stderr, "ppflow suggest: %s holds no array or object to take records from\n",
                label);
    size_t limit = op.limit >= 0 ? (size_t)op.limit : op.json ? 0 : DEFAULT_LIMIT;
    int rc = 0;
    if (op.json)
        rc = print_json(&all, limit);
    else if (all.count)
        print_text(&all, limit);
    pf_suggestions_free(&all);
    if (rc != 0 || fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "ppflow suggest: cannot write the output\n");
        return PF_EXIT_FAIL;
    }
    return PF_EXIT_OK;
}
