/* expand.h: ${VAR} substitution from the environment in flow values, and
 * the registration of substituted values as secrets.
 *
 * `${NAME}` is replaced by the variable's value; `${NAME:-default}` uses
 * DEFAULT when NAME is unset or empty; `$$` is a literal `$`. A `$` followed by
 * anything else is kept as is. Values are not expanded again, so a variable
 * that contains `${...}` is taken literally (no recursion, no cycles). A
 * missing variable is an error naming it, never an empty string.
 *
 * Which substitutions are secrets (the callers decide, this is the rule):
 * a value taken from the environment into a request's query parameters
 * (source.query, the query part of a manual source.url), headers
 * (source.headers), request body (source.body) or a sink's text options
 * (except options that name a file or directory: path, *_path, *_dir,
 * *_file) is registered for log redaction (pf_log_add_secret: 3 bytes at
 * least). Substitutions elsewhere (base URLs, paths, state and sink file
 * locations, template parameters) are not: a ${HOME} in a path would
 * otherwise turn every path in every message into "***". A template
 * parameter declared `secret: true` is registered whatever its origin, and
 * so are the credentials themselves (auth.secret, secret_file) and sink
 * options whose name says they hold a credential (sink/registry.c). A
 * default (`${NAME:-default}`) is text of the flow file, not a secret.
 * A consequence worth knowing: such a value that a server echoes in a next
 * link or cursor keeps that link out of the checkpoint (engine/paging.c). */
#ifndef PF_FLOW_EXPAND_H
#define PF_FLOW_EXPAND_H

#include <stddef.h>

#include "util/buf.h"
#include "util/status.h"

/* Expands S into OUT (appended). On a missing or malformed reference returns
 * PF_ECONFIG with a message naming the variable, and stores in *ERR_OFF the
 * byte offset of the `$` in S (ERR_OFF may be NULL). OUT may hold partial
 * output on failure. */
pf_status pf_expand_env(const char *s, pf_buf *out, size_t *err_off, pf_error *err);

/* As pf_expand_env, and registers with pf_log_add_weak_secret the environment
 * value substituted for every reference that starts at byte SECRET_FROM of S
 * or later (0: every reference; SIZE_MAX: none); defaults are not
 * registered. Returns also PF_ENOMEM ("cannot register a value of ${NAME}
 * for log redaction") when registration fails. */
pf_status pf_expand_env_secret(const char *s, size_t secret_from, pf_buf *out, size_t *err_off,
                               pf_error *err);

/* 1 when S contains a ${...} reference. */
int pf_expand_has_ref(const char *s);

#endif
