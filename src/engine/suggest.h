/* suggest.h: candidate record paths from a sample response (`ppflow suggest`).
 *
 * The document is walked breadth-first with an explicit queue (no recursion),
 * grouping nodes by the path pattern that reaches them: "$.a[*].b" collects
 * the "b" member of every element of "a". Groups follow JSONPath exactly, so
 * every count is what the path selects: where a pattern reaches arrays and
 * objects alike, "P[*]" also takes the objects' member values, as JSONPath
 * does. Every pattern "P[*]" over at least one array is a candidate, with the number of records it
 * yields, what its elements are, the member names every object element shares (in the first
 * element's order) and, when one of those looks like an identifier and its values are unique, a key
 * path. Members of the root that are objects, and the root itself, are candidates too (one record
 * each).
 *
 * Order, best first: arrays of objects, arrays mixing objects and other
 * values, empty arrays with one [*] (a record array empty in this sample),
 * arrays of scalars or arrays, empty nested arrays, then single objects;
 * within each group fewer [*] first, then more records, then the order the
 * walk met them. Paths are RFC 9535 queries `ppflow jsonpath` accepts:
 * member names that are ASCII identifiers use dot notation, others bracket
 * notation with the normalized-path escapes ($['a b'][*]). Member names that
 * are not valid UTF-8 are not followed. */
#ifndef PF_ENGINE_SUGGEST_H
#define PF_ENGINE_SUGGEST_H

#include <stddef.h>

#include "util/buf.h"
#include "util/status.h"

struct json_object;

/* Patterns deeper than this many segments are not walked. */
#define PF_SUGGEST_MAX_DEPTH 32
/* Nesting accepted when parsing a sample (pf_suggest_text). */
#define PF_SUGGEST_MAX_NESTING 1000
/* Longest path suggested, in bytes; longer ones are skipped. */
#define PF_SUGGEST_MAX_PATH 4096
/* Node visits at most (a node is visited once per group that holds it). */
#define PF_SUGGEST_MAX_WORK 50000000ULL

typedef enum pf_suggest_kind {
    PF_SUGGEST_OBJECTS, /* an array whose elements are all objects */
    PF_SUGGEST_MIXED,   /* an array with objects and other values */
    PF_SUGGEST_EMPTY,   /* an array that is empty in the sample */
    PF_SUGGEST_SCALARS, /* an array of strings, numbers, booleans, nulls or arrays */
    PF_SUGGEST_SINGLE,  /* one object: a member of the root, or the root itself */
} pf_suggest_kind;

/* "objects", "mixed", "empty", "scalars", "object". */
const char *pf_suggest_kind_name(pf_suggest_kind k);

typedef struct pf_suggestion {
    char *path; /* owned; e.g. "$.messagesDelivered[*]" */
    pf_suggest_kind kind;
    size_t records; /* nodes the path selects in the sample */
    size_t objects; /* how many of them are objects */
    char **fields;  /* owned; member names every object shares, first object's order */
    size_t nfields;
    char *key;            /* owned key path ("$.GUID"), or NULL */
    const char *elements; /* static: for SCALARS, "strings", "numbers", "booleans",
                             "nulls", "arrays" or "values" (a mix); else NULL */
    size_t nesting;       /* number of [*] in path */
    size_t order;         /* when the walk met it */
} pf_suggestion;

typedef struct pf_suggestions {
    pf_suggestion *items; /* owned, best first */
    size_t count;
    int depth_capped; /* 1 when some part of the document was deeper than the walk goes */
    int work_capped;  /* 1 when the walk stopped at PF_SUGGEST_MAX_WORK: the suggestions
                         made before are exact, later ones are missing */
} pf_suggestions;

/* Suggests record paths for DOC (borrowed; NULL is JSON null, which has
 * none). OUT: zero-initialised by the caller; filled on success and left
 * empty on failure. Returns PF_OK (possibly with no suggestion) or
 * PF_ENOMEM. ERR may be NULL. */
pf_status pf_suggest(struct json_object *doc, pf_suggestions *out, pf_error *err);

/* Parses TEXT (LEN bytes) as one strict JSON document and suggests for it.
 * PF_EDATA with the byte offset for text that is not JSON (or has data
 * after the value), PF_EDEPTH over PF_SUGGEST_MAX_NESTING, PF_EDATA for an
 * empty text, PF_ETOOBIG over 2 GiB, PF_ENOMEM. */
pf_status pf_suggest_text(const char *text, size_t len, pf_suggestions *out, pf_error *err);

/* Frees everything OUT owns and zeroes it. NULL accepted. */
void pf_suggestions_free(pf_suggestions *out);

/* Appends to B the path segment selecting member NAME[0..LEN): ".name" for
 * an ASCII identifier, else "['...']" with ' and \ escaped and control
 * characters as \b \f \n \r \t or \u00XX (DEL and U+0080..U+009F too, so
 * the path is safe to print on a terminal). NAME must be valid UTF-8.
 * Returns PF_OK, or B's failure (B unchanged). */
pf_status pf_suggest_member_segment(pf_buf *b, const char *name, size_t len);

#endif
