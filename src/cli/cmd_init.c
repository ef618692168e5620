/* cmd_init.c: `ppflow init TEMPLATE [-o FILE]`: writes a commented flow for a
 * template, every parameter explained, credentials as ${VAR} references,
 * ready for `ppflow validate`. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "flow/template.h"
#include "util/buf.h"
#include "util/timeutil.h"

/* Set when an append to the output fails (out of memory). */
static int g_oom;
#define PUT(b, ...) (g_oom |= pf_buf_printf((b), __VA_ARGS__) != PF_OK)

static void usage(FILE *f)
{
    fprintf(f, "usage: ppflow init TEMPLATE [-o FILE] [--force]\n\n"
               "Writes a flow for TEMPLATE (see `ppflow templates`): every parameter with its\n"
               "type, bounds and description as comments, the ones the template needs set to\n"
               "a working value, credentials as ${VAR} references to environment variables,\n"
               "an NDJSON sink and a checkpoint path. Edit it, then `ppflow validate`,\n"
               "`ppflow test` and `ppflow run` it.\n\n"
               "options:\n"
               "  -o, --output FILE  write to FILE (refused when it exists, unless --force)\n"
               "                     instead of standard output\n"
               "      --force        replace FILE\n"
               "  -h, --help         this help\n");
}

/* "since_seconds" -> "PP_SINCE_SECONDS" into OUT (size N). */
static void env_name(const char *param, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "PP_");
    for (const char *p = param; *p && o + 1 < n; p++)
        out[o++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    out[o < n ? o : n - 1] = '\0';
}

/* A value of P's type that its bounds accept, as YAML text, into OUT. */
static void example_value(const pf_param_def *p, char *out, size_t n)
{
    int64_t now = pf_time_now_ms(), hour = 3600000;
    char a[PF_TIME_FMT_SIZE], b[PF_TIME_FMT_SIZE];
    switch (p->type) {
    case PF_PT_INTEGER: {
        int64_t v = 1;
        if (p->has_min && v < p->min) v = p->min;
        if (p->has_max && v > p->max) v = p->max;
        snprintf(out, n, "%lld", (long long)v);
        return;
    }
    case PF_PT_BOOLEAN:
        snprintf(out, n, "false");
        return;
    case PF_PT_DATETIME:
        pf_time_format(now / hour * hour - hour, a);
        snprintf(out, n, "%s", a);
        return;
    case PF_PT_DURATION: {
        int64_t v = hour;
        if (p->has_min && v < p->min) v = p->min;
        if (p->has_max && v > p->max) v = p->max;
        snprintf(out, n, "%llds", (long long)(v / 1000 > 0 ? v / 1000 : 1));
        return;
    }
    case PF_PT_INTERVAL:
        pf_time_format(now / hour * hour - 2 * hour, a);
        pf_time_format(now / hour * hour - hour, b);
        snprintf(out, n, "%s/%s", a, b);
        return;
    case PF_PT_ENUM:
        snprintf(out, n, "%s", p->nvalues ? p->values[0] : "\"\"");
        return;
    case PF_PT_LIST:
        snprintf(out, n, "[%s]", p->nvalues ? p->values[0] : "");
        return;
    case PF_PT_STRING:
        break;
    }
    snprintf(out, n, "%s", p->url_path ? "/" : "CHANGE-ME");
}

/* P's default as YAML text (a list for several), or "" when it has none. */
static void default_value(const pf_param_def *p, char *out, size_t n)
{
    out[0] = '\0';
    if (!p->ndefaults) return;
    size_t o = 0;
    if (p->type == PF_PT_LIST || p->ndefaults > 1) o += (size_t)snprintf(out, n, "[");
    for (size_t i = 0; i < p->ndefaults && o < n; i++)
        o += (size_t)snprintf(out + o, n - o, "%s%s", i ? ", " : "", p->defaults[i]);
    if ((p->type == PF_PT_LIST || p->ndefaults > 1) && o < n) snprintf(out + o, n - o, "]");
}

/* 1 when the flow should set P: required, or the chosen member of an
 * exactly-one rule (the first member with a default, else the first). */
static int must_set(const pf_template *t, const pf_param_def *p)
{
    if (p->required) return 1;
    for (size_t i = 0; i < t->nconstraints; i++) {
        const pf_constraint *k = &t->constraints[i];
        if (k->kind != PF_CONSTRAINT_EXACTLY_ONE || !k->nparams) continue;
        const char *pick = k->params[0];
        for (size_t j = 0; j < k->nparams; j++) {
            const pf_param_def *q = pf_template_param(t, k->params[j]);
            if (q && q->ndefaults) {
                pick = k->params[j];
                break;
            }
        }
        if (strcmp(pick, p->name) == 0) return 1;
    }
    return 0;
}

static void put_param(pf_buf *b, const pf_template *t, const pf_param_def *p)
{
    char def[512], ex[128], envv[96];
    default_value(p, def, sizeof def);
    example_value(p, ex, sizeof ex);
    PUT(b, "    # %s: %s, %s", p->name, pf_param_type_name(p->type),
        p->required ? "required" : "optional");
    if (p->has_min || p->has_max) {
        if (p->type == PF_PT_DURATION)
            PUT(b, ", %s%llds..%s%llds", p->has_min ? "" : "?",
                (long long)(p->has_min ? p->min / 1000 : 0), p->has_max ? "" : "?",
                (long long)(p->has_max ? p->max / 1000 : 0));
        else if (p->has_min && p->has_max)
            PUT(b, ", %lld..%lld", (long long)p->min, (long long)p->max);
        else if (p->has_min)
            PUT(b, ", at least %lld", (long long)p->min);
        else
            PUT(b, ", at most %lld", (long long)p->max);
    }
    if (p->nvalues) {
        PUT(b, ", one of:");
        for (size_t i = 0; i < p->nvalues; i++)
            PUT(b, "%s %s", i ? "," : "", p->values[i]);
    }
    if (def[0]) PUT(b, ", default %s", def);
    PUT(b, "\n");
    if (p->description) {
        /* One comment line per line of the description. */
        const char *s = p->description;
        while (*s) {
            size_t l = strcspn(s, "\n");
            PUT(b, "    #   %.*s\n", (int)l, s);
            s += l;
            if (*s) s++;
        }
    }
    if (p->secret) {
        env_name(p->name, envv, sizeof envv);
        PUT(b, "    %s%s: ${%s}  # a secret: from the environment\n", must_set(t, p) ? "" : "# ",
            p->name, envv);
    } else if (must_set(t, p)) {
        PUT(b, "    %s: %s\n", p->name, def[0] ? def : ex);
    } else {
        PUT(b, "    # %s: %s\n", p->name, def[0] ? def : ex);
    }
}

/* The flow for T, named NAME, into B. */
static void write_flow(pf_buf *b, const pf_template *t, const char *name)
{
    PUT(b, "# A flow for template %s: %s\n", t->name, t->description ? t->description : "");
    PUT(b,
        "# Written by `ppflow init %s`. Check it with `ppflow validate FILE`, look "
        "at a\n# few records with `ppflow test FILE`, then `ppflow run FILE`.\n",
        t->name);
    PUT(b, "name: %s\nsource:\n  template: %s\n", name, t->name);
    if (t->manual) {
        PUT(b, "  # The request: any https URL, and where the records are in the "
               "JSON answer\n  # (`ppflow suggest` proposes paths from a sample).\n"
               "  url: https://api.example.com/v1/items\n"
               "  records: $.items[*]\n"
               "  # key: $.id   # what identifies a record (default: its content "
               "hash)\n");
    } else if (!t->base_url || !t->base_url[0]) {
        PUT(b, "  # This API has no fixed host: your tenant's API address.\n"
               "  base_url: https://api.example.com\n");
    }
    if (t->auth != PF_AUTH_NONE) {
        const char *c = t->auth_optional ? "# " : "";
        PUT(b, "  # Credentials come from the environment, never from this file%s.\n",
            t->auth_optional ? " (optional for this endpoint)" : "");
        /* Header auth: only what its headers use. */
        int principal = t->auth == PF_AUTH_BASIC, secret = t->auth == PF_AUTH_BASIC;
        for (size_t i = 0; i < t->nauth_headers; i++) {
            principal |= strstr(t->auth_headers[i].value, "{principal}") != NULL;
            secret |= strstr(t->auth_headers[i].value, "{secret}") != NULL;
        }
        PUT(b, "  %sauth:\n", c);
        if (principal) PUT(b, "  %s  principal: ${PP_PRINCIPAL}\n", c);
        if (secret) PUT(b, "  %s  secret: ${PP_SECRET}   # or secret_file: FILE (mode 0600)\n", c);
    }
    if (t->nparams) {
        int any = 0;
        for (size_t i = 0; i < t->nparams; i++)
            any |= must_set(t, &t->params[i]);
        /* With nothing to set, "params:" stays a comment too: an empty
         * mapping key is not a mapping. */
        PUT(b, any ? "  params:\n" : "  # params:   # uncomment with the parameters you set\n");
        for (size_t i = 0; i < t->nparams; i++)
            put_param(b, t, &t->params[i]);
    }
    PUT(b,
        "sink:\n  type: ndjson   # see `ppflow sinks` for kafka and postgres\n"
        "  path: out/%s/{stream}.ndjson\n"
        "state:\n  path: state/%s.json   # the checkpoint: where the next run "
        "resumes\n"
        "# schedule:   # for `ppflow schedule`\n#   every: 15m\n",
        name, name);
}

int pf_cmd_init(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"force", no_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int force = 0, c;
    optind = 0; /* full restart of GNU getopt, which permutes: options anywhere */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage(stdout);
            return PF_EXIT_OK;
        default:
            fprintf(stderr, "ppflow init: unknown option or missing value '%s'\n\n",
                    argv[optind - 1]);
            usage(stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return PF_EXIT_USAGE;
    }
    pf_diags d = {0};
    pf_template *t = NULL;
    if (pf_template_find(argv[optind], &t, &d) != PF_OK) {
        pf_diags_print(&d, stderr, "");
        pf_diags_free(&d);
        return PF_EXIT_USAGE;
    }
    pf_diags_free(&d);
    pf_buf b;
    pf_buf_init(&b, 1u << 20);
    write_flow(&b, t, t->name);
    pf_template_free(t);
    if (g_oom) {
        pf_buf_free(&b);
        fprintf(stderr, "ppflow init: out of memory\n");
        return PF_EXIT_FAIL;
    }
    int rc = PF_EXIT_OK;
    if (!out) {
        fwrite(pf_buf_str(&b), 1, b.len, stdout);
    } else {
        int fd = open(out, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL),
                      0644);
        FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!fp) {
            fprintf(stderr, "ppflow init: cannot write %s: %s%s\n", out, strerror(errno),
                    errno == EEXIST ? " (--force replaces it)" : "");
            if (fd >= 0) close(fd);
            rc = errno == EEXIST ? PF_EXIT_USAGE : PF_EXIT_FAIL;
        } else {
            size_t w = fwrite(pf_buf_str(&b), 1, b.len, fp);
            if (fclose(fp) != 0 || w != b.len) {
                fprintf(stderr, "ppflow init: cannot write %s: %s\n", out, strerror(errno));
                rc = PF_EXIT_FAIL;
            } else {
                fprintf(stderr, "ppflow init: wrote %s; next: ppflow validate %s\n", out, out);
            }
        }
    }
    pf_buf_free(&b);
    return rc;
}
