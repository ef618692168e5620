/* expand.h: ${VAR} substitution from the environment in flow values.
 *
 * `${NAME}` is replaced by the variable's value; `${NAME:-default}` uses
 * DEFAULT when NAME is unset or empty; `$$` is a literal `$`. A `$` followed by
 * anything else is kept as is. Values are not expanded again, so a variable
 * that contains `${...}` is taken literally (no recursion, no cycles). A
 * missing variable is an error naming it, never an empty string. */
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

/* 1 when S contains a ${...} reference. */
int pf_expand_has_ref(const char *s);

#endif
