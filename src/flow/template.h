/* template.h: endpoint templates (the YAML files in templates/).
 *
 * A template describes one HTTP endpoint: method, base URL and path with
 * `{param}` placeholders, query parameters, headers, auth kind, typed
 * parameters, named record streams (JSONPath for the records and for each
 * record's key) and the pagination kind. Loading validates the whole file and
 * compiles its JSONPath expressions; problems are reported as FILE:LINE:COL. */
#ifndef PF_FLOW_TEMPLATE_H
#define PF_FLOW_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "flow/yaml.h"
#include "jsonpath/jsonpath.h"
#include "util/diag.h"

typedef enum pf_param_type {
    PF_PT_STRING,
    PF_PT_INTEGER,
    PF_PT_BOOLEAN,
    PF_PT_DATETIME,
    PF_PT_DURATION,
    PF_PT_INTERVAL,
    PF_PT_ENUM, /* one of `values` */
    PF_PT_LIST, /* zero or more strings, each one of `values` when values are given */
} pf_param_type;

const char *pf_param_type_name(pf_param_type t);

typedef struct pf_param_def {
    char *name;
    pf_param_type type;
    int required;
    char **defaults;   /* default value(s) as text; ndefaults == 0: none */
    size_t ndefaults;
    int has_min, has_max;
    int64_t min, max;  /* integer bounds; for durations, milliseconds */
    char **values;     /* allowed values for enum/list */
    size_t nvalues;
    char *description;
    int secret;        /* value is redacted from logs and output */
} pf_param_def;

/* A name/value pair whose value may hold `{param}` placeholders. */
typedef struct pf_kv {
    char *name;
    char *value;
} pf_kv;

typedef struct pf_stream_def {
    char *name;        /* [a-z0-9_]+, used for `{stream}` in sink paths */
    char *path_text;   /* JSONPath to the records */
    pf_jsonpath *path;
    char *key_text;    /* JSONPath to the record key inside a record; NULL: none */
    pf_jsonpath *key;
} pf_stream_def;

typedef enum pf_paging_kind {
    PF_PAGING_NONE,        /* one request */
    PF_PAGING_TIME_WINDOW, /* consecutive time windows; see pf_window_def */
} pf_paging_kind;

typedef struct pf_window_def {
    int64_t min_ms;        /* shortest window the API accepts */
    int64_t max_ms;        /* longest window the API accepts */
    int64_t retention_ms;  /* how far back the API keeps data; 0: unlimited */
    int64_t margin_ms;     /* start clamps to now - retention + margin */
    pf_kv *query;          /* query parameters per window: {window_start}, {window_end} */
    size_t nquery;
} pf_window_def;

typedef enum pf_auth_kind {
    PF_AUTH_NONE,
    PF_AUTH_BASIC,   /* HTTP Basic: flow auth.principal / auth.secret */
    PF_AUTH_HEADERS, /* headers built from {principal} / {secret} */
} pf_auth_kind;

typedef struct pf_template {
    char *file;            /* where it was loaded from */
    char *name;
    char *description;
    char *method;
    char *base_url;
    char *path;            /* may hold {param} placeholders */
    pf_kv *query;          /* omitted when a referenced param is unset */
    size_t nquery;
    pf_kv *headers;
    size_t nheaders;
    pf_auth_kind auth;
    pf_kv *auth_headers;   /* for PF_AUTH_HEADERS */
    size_t nauth_headers;
    int auth_optional;     /* the endpoint works without credentials */
    pf_param_def *params;
    size_t nparams;
    pf_stream_def *streams;
    size_t nstreams;
    pf_paging_kind paging;
    pf_window_def window;
    pf_ydoc *doc;          /* the parsed file, for positions */
} pf_template;

/* Loads and validates the template at PATH. Every problem is added to DIAGS
 * (positioned); the return is PF_OK only when there were none, in which case
 * *OUT owns a new template. On failure *OUT is NULL. */
pf_status pf_template_load_file(const char *path, pf_template **out, pf_diags *diags);

/* Finds a template by NAME (a bundled template name, or a path when NAME
 * contains '/' or ends in .yaml) and loads it. Directories searched, in order:
 * $PPFLOW_TEMPLATE_PATH (colon-separated), the source tree's templates/ when
 * ppflow runs from its build tree, then the install directory. PF_ENOTFOUND
 * when no file matches. */
pf_status pf_template_find(const char *name, pf_template **out, pf_diags *diags);

/* Lists the template files found on the search path (first one wins for each
 * name), sorted by name. *PATHS is an array of malloc'd strings the caller
 * frees (each, then the array). */
pf_status pf_template_list(char ***paths, size_t *count, pf_error *err);

/* The parameter named NAME, or NULL. */
const pf_param_def *pf_template_param(const pf_template *t, const char *name);

/* The stream named NAME, or NULL. */
const pf_stream_def *pf_template_stream(const pf_template *t, const char *name);

/* Frees T. NULL accepted. */
void pf_template_free(pf_template *t);

/* Frees an array of N pf_kv and their strings. */
void pf_kv_free(pf_kv *kv, size_t n);

/* Calls FN for each `{name}` placeholder in S (with `{{` and `}}` as literal
 * braces). Returns -1 (and stops) on an unterminated or empty placeholder,
 * setting *BAD_OFF to its offset; else 0. */
int pf_placeholders_each(const char *s, void (*fn)(void *ud, const char *name, size_t len),
                         void *ud, size_t *bad_off);

#endif
