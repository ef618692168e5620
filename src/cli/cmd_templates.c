/* cmd_templates.c: `ppflow templates [NAME]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "flow/template.h"
#include "util/paths.h"

static void show_param(const pf_param_def *p)
{
    char bounds[96] = "";
    if (p->has_min && p->has_max)
        snprintf(bounds, sizeof bounds, " [%lld..%lld]", (long long)p->min, (long long)p->max);
    else if (p->has_min)
        snprintf(bounds, sizeof bounds, " [>= %lld]", (long long)p->min);
    else if (p->has_max)
        snprintf(bounds, sizeof bounds, " [<= %lld]", (long long)p->max);
    printf("  %-16s %-9s%s%s", p->name, pf_param_type_name(p->type),
           p->required ? " required" : " optional", bounds);
    if (p->ndefaults) {
        printf(" default:");
        for (size_t i = 0; i < p->ndefaults; i++)
            printf("%s%s", i ? "," : " ", p->defaults[i]);
    }
    if (p->nvalues) {
        printf(" values:");
        for (size_t i = 0; i < p->nvalues; i++)
            printf("%s%s", i ? "," : " ", p->values[i]);
    }
    printf("\n");
    if (p->description) printf("      %s\n", p->description);
}

static int show_one(const char *name)
{
    pf_diags d = {0};
    pf_template *t = NULL;
    if (pf_template_find(name, &t, &d) != PF_OK) {
        pf_diags_print(&d, stderr, "");
        pf_diags_free(&d);
        return PF_EXIT_USAGE;
    }
    pf_diags_free(&d);
    printf("%s: %s\n", t->name, t->description ? t->description : "");
    printf("file:    %s\n", t->file);
    if (t->manual)
        printf("request: given by the flow (source.url, method, headers, records, pagination)\n");
    else if (!t->base_url || !t->base_url[0])
        printf("request: %s <source.base_url>%s (the API has no fixed host: set "
               "source.base_url)\n",
               t->method, t->path);
    else
        printf("request: %s %s%s\n", t->method, t->base_url, t->path);
    printf("auth:    %s%s\n",
           t->auth == PF_AUTH_BASIC     ? "basic (source.auth principal + secret)"
           : t->auth == PF_AUTH_HEADERS ? "headers (source.auth principal/secret)"
                                        : "none",
           t->auth_optional ? ", optional" : "");
    printf("format:  %s\n", t->format_param                   ? "json or syslog (parameter)"
                            : t->format == PF_RESPONSE_SYSLOG ? "syslog"
                                                              : "json");
    if (t->paging == PF_PAGING_TIME_WINDOW) {
        printf("paging:  time windows of %lld s to %lld s", (long long)(t->window.min_ms / 1000),
               (long long)(t->window.max_ms / 1000));
        if (t->window.retention_ms)
            printf(", data kept %lld days", (long long)(t->window.retention_ms / 86400000));
        printf("\n");
    }
    if (t->pages.kind != PF_PAGING_NONE)
        printf("paging:  %s%s%s%s\n", pf_paging_kind_name(t->pages.kind),
               t->pages.position_param ? " (parameter " : "",
               t->pages.position_param ? t->pages.position_param : "",
               t->pages.position_param ? ")" : "");
    if (t->paging != PF_PAGING_NONE || t->pages.kind != PF_PAGING_NONE)
        printf("limit:   %lld requests per run (source.max_pages)\n", (long long)t->max_pages);
    for (size_t i = 0; i < t->nquotas; i++)
        printf("budget:  %lld calls per credential in any 24 hours (pool %s)%s%s\n",
               (long long)t->quotas[i].budget, t->quotas[i].pool ? t->quotas[i].pool : "?",
               t->quotas[i].when_set ? " when the flow sets " : "",
               t->quotas[i].when_set ? t->quotas[i].when_set : "");
    for (size_t i = 0; i < t->nconstraints; i++) {
        const pf_constraint *k = &t->constraints[i];
        if (k->kind == PF_CONSTRAINT_REQUIRES && k->nparams == 2) {
            printf("rule:    %s needs %s\n", k->params[0], k->params[1]);
            continue;
        }
        printf("rule:    %s",
               k->kind == PF_CONSTRAINT_EXACTLY_ONE ? "exactly one of" : "at most one of");
        for (size_t j = 0; j < k->nparams; j++)
            printf("%s%s", j ? ", " : " ", k->params[j]);
        printf("\n");
    }
    printf("streams:\n");
    for (size_t i = 0; i < t->nstreams; i++)
        printf("  %-20s %s  identity %s\n", t->streams[i].name, t->streams[i].path_text,
               t->streams[i].identity ? t->streams[i].identity : "sha256");
    printf("parameters:\n");
    for (size_t i = 0; i < t->nparams; i++)
        show_param(&t->params[i]);
    pf_template_free(t);
    return PF_EXIT_OK;
}

int pf_cmd_templates(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: ppflow templates [NAME]\n\n"
               "Without NAME, lists the templates found with a one-line description each.\n"
               "With NAME, shows its request, streams and parameters (type, required,\n"
               "default, bounds, description). Templates are searched in\n"
               "$PPFLOW_TEMPLATE_PATH (colon-separated), then the bundled directory.\n");
        return PF_EXIT_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "usage: ppflow templates [NAME]\n");
        return PF_EXIT_USAGE;
    }
    if (argc == 2) return show_one(argv[1]);
    char **paths = NULL;
    size_t n = 0;
    pf_error err;
    if (pf_template_list(&paths, &n, &err) != PF_OK) {
        pf_cli_print_error("templates", &err);
        return PF_EXIT_FAIL;
    }
    if (n == 0) {
        /* An install that cannot find its templates is broken: say where it looked. */
        char **dirs = NULL;
        size_t nd = 0;
        fprintf(stderr, "ppflow templates: no templates found; searched:");
        if (pf_template_dirs(&dirs, &nd) == PF_OK) {
            for (size_t i = 0; i < nd; i++)
                fprintf(stderr, "%s %s", i ? "," : "", dirs[i]);
            pf_paths_free(dirs, nd);
        }
        fprintf(stderr, "%s (PPFLOW_TEMPLATE_PATH adds directories)\n", nd ? "" : " nothing");
        free(paths);
        return PF_EXIT_USAGE;
    }
    int rc = PF_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        pf_diags d = {0};
        pf_template *t = NULL;
        if (pf_template_load_file(paths[i], &t, &d) == PF_OK) {
            printf("%-30s %s\n", t->name, t->description ? t->description : "");
        } else {
            pf_diags_print(&d, stderr, "");
            rc = PF_EXIT_USAGE;
        }
        pf_template_free(t);
        pf_diags_free(&d);
        free(paths[i]);
    }
    free(paths);
    return rc;
}
