/* flow.h: flow files: which template, with which parameters, credentials,
 * sink and checkpoint.
 *
 * Loading a flow expands ${VAR} references from the environment, loads the
 * named template (completing it from the flow for `template: manual`, and
 * applying `source.streams` overrides), checks every parameter against the
 * template's types, bounds and constraints (exactly one of, at most one of,
 * requires), keeps only the streams whose `when` matches, resolves the
 * response format, the base URL and the page cap, checks the sink's options
 * against the sink's option table, and reports every problem as
 * FILE:LINE:COL. No network access.
 *
 * Credentials never travel in clear: a flow that sends credentials (Basic
 * auth, auth headers, a header with a credential-like name, a secret
 * parameter) to an http:// URL (the template's base URL, source.base_url or
 * a manual flow's source.url; loopback addresses included) is refused,
 * unless `source.allow_insecure_http: true`, and then every run warns
 * (pf_flow_warn_insecure). Flows reading source.file send nothing. */
#ifndef PF_FLOW_FLOW_H
#define PF_FLOW_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "flow/template.h"
#include "sched/schedule.h"
#include "sink/registry.h"
#include "util/diag.h"

/* A parameter value as the flow (or its default) gives it: one or more
 * strings (several only for list parameters). */
typedef struct pf_param_value {
    const pf_param_def *def; /* borrowed from the template */
    char **values;
    size_t count;
    int from_default;
} pf_param_value;

typedef struct pf_flow_http {
    int64_t connect_timeout_ms, timeout_ms, low_speed_time_ms;
    int64_t backoff_ms, backoff_max_ms, retry_after_max_ms;
    int64_t max_attempts;
    uint64_t max_body;
    uint64_t max_record; /* largest single record of a streamed response */
    int verify_tls;
    char *ca_file, *client_cert, *client_key;
} pf_flow_http;

typedef struct pf_flow {
    char *file;
    char *name;
    pf_template *tmpl;      /* owned; already completed by the flow (manual, overrides, when) */
    char *base_url;         /* the flow's override, or the template's with placeholders filled */
    char *local_file;       /* source.file: read responses from this file, no network */
    char *principal;        /* NULL when the flow gives none */
    char *secret;           /* registered for redaction; never printed */
    pf_param_value *params; /* set and defaulted parameters only */
    size_t nparams;
    pf_flow_http http;
    int allow_insecure_http;  /* source.allow_insecure_http: credentials may go over http:// */
    char *clear_credentials;  /* what credentials go over http:// because the flow allows it
                                 ("auth: basic"), for the warning of each run; else NULL */
    pf_response_format format; /* JSON or SIEM syslog, resolved from the template */
    int64_t max_pages;         /* requests per run at most: source.max_pages or the template's */
    int64_t lookback_ms;       /* late-arrival re-sweep: source.lookback or the template's */
    pf_sink_config sink;
    char *state_path;
    pf_schedule *schedule; /* the `schedule:` key; NULL when the flow has none */
    pf_ydoc *doc;
} pf_flow;

/* A `--set NAME=VALUE` override: NAME without a dot is a template parameter
 * (source.params.NAME); a dotted NAME addresses a flow key (sink.path). */
typedef struct pf_flow_override {
    const char *name;
    const char *value;
} pf_flow_override;

/* Loads PATH with overrides SETS (N of them, may be 0). On success *OUT owns
 * the flow. Every problem goes to DIAGS; on failure *OUT is NULL and the
 * first problem's code is returned. */
pf_status pf_flow_load(const char *path, const pf_flow_override *sets, size_t nsets, pf_flow **out,
                       pf_diags *diags);

/* The value of parameter NAME, or NULL when unset. */
const pf_param_value *pf_flow_param(const pf_flow *f, const char *name);

/* The first value of parameter NAME as text, or NULL. */
const char *pf_flow_param_str(const pf_flow *f, const char *name);

void pf_flow_free(pf_flow *f);

/* Logs a warning when F (may be NULL) sends credentials over http:// because
 * source.allow_insecure_http allows it (F->clear_credentials); nothing
 * otherwise. Called by everything that talks to the flow's API, once per run. */
void pf_flow_warn_insecure(const pf_flow *f);

/* Checks TEXT against parameter definition P (type, bounds, values, and the
 * URL-path rules of a url_path parameter); returns NULL when valid, else a
 * static description of what was expected. */
const char *pf_param_check(const pf_param_def *p, const char *text);

#endif
