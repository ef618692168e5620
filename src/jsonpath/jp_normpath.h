/* jp_normpath.h: normalized paths (RFC 9535 section 2.7), internal to
 * src/jsonpath: "$" followed by ['name'] and [index] segments. */
#ifndef PF_JSONPATH_JP_NORMPATH_H
#define PF_JSONPATH_JP_NORMPATH_H

#include <stddef.h>

#include "util/buf.h"

/* Appends "['NAME']" with the canonical escaping: \b \f \n \r \t \' \\,
 * other characters below U+0020 as \u00xx (lowercase hex), the rest as is. */
pf_status pf_jp_normpath_name(pf_buf *b, const char *name, size_t len);

/* Appends "[INDEX]". */
pf_status pf_jp_normpath_index(pf_buf *b, size_t index);

#endif
