/* jp_value.h: values as filter expressions see them, and the RFC 9535
 * comparison rules over them (internal to src/jsonpath). */
#ifndef PF_JSONPATH_JP_VALUE_H
#define PF_JSONPATH_JP_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "jsonpath/jp_ast.h"

struct json_object;

typedef enum pf_jp_vkind {
    PF_JP_V_NOTHING, /* no value: empty nodelist or the special result Nothing */
    PF_JP_V_NULL,
    PF_JP_V_BOOL,
    PF_JP_V_INT,
    PF_JP_V_DOUBLE,
    PF_JP_V_STRING,
    PF_JP_V_ARRAY,
    PF_JP_V_OBJECT,
} pf_jp_vkind;

typedef struct pf_jp_value {
    pf_jp_vkind kind;
    int b;                 /* BOOL */
    int64_t i;             /* INT */
    double d;              /* DOUBLE */
    const char *s;         /* STRING, borrowed */
    size_t slen;           /* STRING */
    struct json_object *j; /* ARRAY / OBJECT, borrowed */
} pf_jp_value;

/* Views JSON value J (NULL = JSON null); borrows from J. */
void pf_jp_value_of_json(pf_jp_value *v, struct json_object *j);

/* Views literal LIT; borrows from LIT. */
void pf_jp_value_of_literal(pf_jp_value *v, const pf_jp_literal *lit);

/* Evaluates "A OP B" per RFC 9535 section 2.3.5.2.2 into *RESULT (0/1).
 * Deep equality of arrays and objects uses an explicit stack; each pair of
 * values compared adds one to *WORK, and passing MAX_WORK stops with
 * PF_ETOOBIG. Fails with PF_ENOMEM or PF_ETOOBIG only. */
pf_status pf_jp_compare(const pf_jp_value *a, pf_jp_cmp_op op, const pf_jp_value *b, int *result,
                        unsigned long long *work, unsigned long long max_work);

#endif
