/* template.h: endpoint templates (the YAML files in templates/).
 *
 * A template describes one HTTP endpoint: method, base URL and path with
 * `{param}` placeholders, query parameters, headers, an optional body, the
 * auth scheme (declared here, never hard-coded in C), typed parameters and
 * the constraints between them, named record streams (JSONPath for the
 * records and for each record's key), the response format (JSON or SIEM
 * syslog) and the pagination: none, time windows, page/size, offset/limit, a
 * cursor token or a next link taken from the response, with a hard cap on
 * requests per run. Loading validates the whole file and compiles its
 * JSONPath expressions; problems are reported as FILE:LINE:COL.
 *
 * The `manual` template (a file with `manual: true`) leaves the request,
 * auth, records and pagination to the flow: pf_template_apply_flow fills them
 * from the flow's `source` keys, with the flow file's positions in errors. */
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
    char **defaults; /* default value(s) as text; ndefaults == 0: none */
    size_t ndefaults;
    int has_min, has_max;
    int64_t min, max; /* integer bounds; for durations, milliseconds */
    char **values;    /* allowed values for enum/list */
    size_t nvalues;
    char *description;
    int secret;   /* value is redacted from logs and output */
    int url_path; /* a URL path ("/api/v1/alerts"): inserted into request.path
                     without percent-encoding its slashes; checked when set */
} pf_param_def;

/* A name/value pair whose value may hold `{param}` placeholders. */
typedef struct pf_kv {
    char *name;
    char *value;
} pf_kv;

typedef struct pf_stream_def {
    char *name;      /* [a-z0-9_]+, used for `{stream}` in sink paths */
    char *path_text; /* JSONPath to the records */
    pf_jsonpath *path;
    char *key_text; /* JSONPath to the record key inside a record; NULL: none */
    pf_jsonpath *key;
    /* `key` given as a list: the further paths, tried in order when `key`
     * selects nothing (a string's value or a number's text). */
    char **key_alt_text;
    pf_jsonpath **key_alt;
    size_t nkey_alt;
    /* How a record is identified, for sinks (stream_identity in
     * ppflow_sink.h): the key paths joined by " | ", then "sha256", the
     * fallback when none selects a value. Never NULL once loaded. */
    char *identity;
    char *when_param;   /* the stream exists only when this parameter's value is one of */
    char **when_values; /* ... these (NULL when_param: always) */
    size_t nwhen_values;
} pf_stream_def;

typedef enum pf_paging_kind {
    PF_PAGING_NONE,        /* one request */
    PF_PAGING_TIME_WINDOW, /* consecutive time windows; see pf_window_def */
    PF_PAGING_PAGE,        /* page number + page size; stops on a short or empty page */
    PF_PAGING_OFFSET,      /* offset + limit; stops on a short or empty page */
    PF_PAGING_CURSOR,      /* a token from the response, sent back as a query parameter */
    PF_PAGING_NEXT_LINK,   /* a URL from the response, fetched as the next page */
} pf_paging_kind;

/* Returns the YAML spelling of K ("none", "time_window", "page", ...). */
const char *pf_paging_kind_name(pf_paging_kind k);

/* How one unit of work (the whole endpoint, or one time window) is split
 * into pages. kind is PF_PAGING_NONE when it is one request. */
typedef struct pf_pages_def {
    pf_paging_kind kind;  /* NONE, PAGE, OFFSET, CURSOR or NEXT_LINK */
    char *position_param; /* PAGE: query parameter of the page number (default "page");
                             OFFSET: of the offset (default "offset");
                             CURSOR: of the token (required); NEXT_LINK: NULL */
    char *size_param;     /* query parameter of the page size ("size" for PAGE, "limit"
                             for OFFSET); NULL: not sent */
    int64_t first;        /* PAGE: first page number (default 1); OFFSET: first offset (0) */
    int64_t size;         /* page size when given as a number; 0 otherwise */
    char *size_from;      /* page size from this integer parameter; NULL: `size` is used.
                             When the parameter is unset, PAGE and OFFSET make one
                             request without paging parameters. */
    char *from_text;      /* CURSOR/NEXT_LINK: JSONPath (in the response) of the next
                             token or link; nothing there (or null, or "") ends the unit */
    pf_jsonpath *from;
} pf_pages_def;

typedef struct pf_window_def {
    int64_t min_ms;       /* shortest window the API accepts */
    int64_t max_ms;       /* longest window the API accepts */
    int64_t retention_ms; /* how far back the API keeps data; 0: unlimited */
    int64_t margin_ms;    /* start clamps to now - retention + margin */
    int64_t lookback_ms;  /* late arrivals: every run fetches this much before the cursor
                             again and drops what it delivered already; 0: off */
    pf_kv *query;         /* query parameters per window: {window_start}, {window_end} */
    size_t nquery;
} pf_window_def;

typedef enum pf_auth_kind {
    PF_AUTH_NONE,
    PF_AUTH_BASIC,   /* HTTP Basic: flow auth.principal / auth.secret */
    PF_AUTH_HEADERS, /* headers built from {principal} / {secret} */
} pf_auth_kind;

typedef enum pf_response_format {
    PF_RESPONSE_JSON,   /* a JSON document; records by the streams' JSONPath */
    PF_RESPONSE_SYSLOG, /* SIEM syslog lines; one record per line (proofpoint/syslog.h) */
} pf_response_format;

/* A rule between parameters, checked when a flow is loaded. */
typedef enum pf_constraint_kind {
    PF_CONSTRAINT_EXACTLY_ONE, /* exactly one of params is set */
    PF_CONSTRAINT_AT_MOST_ONE, /* at most one of params is set */
    PF_CONSTRAINT_REQUIRES,    /* params[0], when set, needs params[1] set */
} pf_constraint_kind;

typedef struct pf_constraint {
    pf_constraint_kind kind;
    char **params;
    size_t nparams;
} pf_constraint;

/* A call budget: POOL (shared per credential by every template naming it)
 * allows BUDGET calls in any 24 hours. WHEN_SET: applies only when the flow
 * sets this parameter (NULL: always), for endpoints whose throttle depends
 * on what is asked (forensics by threat ID or by campaign ID). */
typedef struct pf_quota_def {
    char *pool;
    int64_t budget;
    char *when_set;
} pf_quota_def;

#define PF_DEFAULT_MAX_PAGES 1000
#define PF_MAX_PAGES_LIMIT 1000000

typedef struct pf_template {
    char *file; /* where it was loaded from */
    char *name;
    char *description;
    int manual; /* 1: request, auth, records and pagination come from the flow */
    char *method;
    char *base_url; /* may hold {param} placeholders; "" when the flow must give
                       source.base_url (the API has no fixed host) */
    char *path;     /* may hold {param} placeholders */
    pf_kv *query;   /* omitted when a referenced param is unset */
    size_t nquery;
    pf_kv *headers;
    size_t nheaders;
    char *body; /* request body with {param} placeholders; NULL: none */
    pf_auth_kind auth;
    pf_kv *auth_headers; /* for PF_AUTH_HEADERS */
    size_t nauth_headers;
    int auth_optional; /* the endpoint works without credentials */
    pf_param_def *params;
    size_t nparams;
    pf_constraint *constraints;
    size_t nconstraints;
    pf_stream_def *streams;
    size_t nstreams;
    pf_response_format format; /* when format_param is NULL */
    char *format_param;        /* the enum parameter (values json, syslog) that decides it */
    long *no_data_status;      /* HTTP statuses that mean "no records here" (e.g. 404) */
    size_t nno_data_status;
    pf_paging_kind paging; /* the outer kind: NONE, TIME_WINDOW, or pages.kind */
    pf_window_def window;  /* for TIME_WINDOW */
    pf_pages_def pages;    /* pages of each unit (alone, or inside each time window) */
    int64_t max_pages;     /* requests per run at most (windows and pages) */
    pf_quota_def *quotas;  /* the call budgets the template declares, in order */
    size_t nquotas;
    const char *quota_pool; /* the budget that applies (borrowed from quotas; NULL: none):
                               the first without when_set, or once a flow is loaded
                               the first whose when_set parameter the flow sets
                               (pf_template_pick_quota); see quota.h */
    int64_t quota_budget;   /* calls allowed per 24 hours in that pool */
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

/* The directories templates are searched in, in order (see
 * pf_template_find); the caller frees them with pf_paths_free. PF_ENOMEM. */
pf_status pf_template_dirs(char ***dirs, size_t *count);

/* Applies what a flow's SOURCE mapping (borrowed; positions are the flow
 * file's) says about T's request. For a manual template: `url`, `method`,
 * `headers`, `query`, `body`, `auth.kind`/`auth.headers`, `records`, `key`,
 * `response` and `pagination` (see docs/flows-and-templates.md). For any
 * template: `streams` (replacing a stream's path and key, for APIs whose
 * response shape is unconfirmed). Every problem goes to DIAGS; returns PF_OK
 * when there was none. T keeps nothing of SOURCE. */
pf_status pf_template_apply_flow(pf_template *t, const pf_ynode *source, pf_diags *diags);

/* Removes stream I of T (freeing it); later streams move down. Nothing
 * happens when T is NULL or I is out of range. */
void pf_template_drop_stream(pf_template *t, size_t i);

/* Chooses T's call budget for a flow: the first of T's quotas without
 * when_set or whose when_set parameter IS_SET(UD, name) says the flow sets;
 * none when no entry applies. */
void pf_template_pick_quota(pf_template *t, int (*is_set)(void *ud, const char *param), void *ud);

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

/* Checks that TEXT (not NULL) is a URL path a `url_path` parameter may hold: starts with
 * '/', only RFC 3986 path characters (and %XX escapes), no "." or ".."
 * segment, no query or fragment. Returns NULL when valid, else a static
 * description of what is wrong. */
const char *pf_url_path_check(const char *text);

#endif
