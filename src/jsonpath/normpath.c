/* normpath.c: writes normalized-path segments with RFC 9535's canonical
 * escaping (section 2.7). */
#include "jsonpath/jp_normpath.h"

pf_status pf_jp_normpath_name(pf_buf *b, const char *name, size_t len)
{
    size_t mark = b->len;
    pf_status st = pf_buf_append(b, "['", 2);
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; st == PF_OK && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\'':
            esc = "\\'";
            break;
        case '\\':
            esc = "\\\\";
            break;
        default:
            if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (!esc) continue;
        st = pf_buf_append(b, name + run, i - run);
        if (st == PF_OK) st = pf_buf_puts(b, esc);
        run = i + 1;
    }
    if (st == PF_OK) st = pf_buf_append(b, name + run, len - run);
    if (st == PF_OK) st = pf_buf_append(b, "']", 2);
    if (st != PF_OK) b->len = mark;
    if (b->data) b->data[b->len] = '\0';
    return st;
}

pf_status pf_jp_normpath_index(pf_buf *b, size_t index)
{
    return pf_buf_printf(b, "[%zu]", index);
}
