/* yaml.c: libyaml event stream → positioned node tree (iterative, capped;
 * duplicate keys found in linear expected time). */
#include "flow/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "util/safefile.h"

static pf_ynode *node_new(pf_ykind kind, const char *file, int line, int col)
{
    pf_ynode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

static int node_push(pf_ynode *parent, pf_ynode *child)
{
    if (parent->count == parent->alloc) {
        size_t na = parent->alloc ? parent->alloc * 2 : 8;
        pf_ynode **p = realloc(parent->items, na * sizeof *p);
        if (!p) return -1;
        parent->items = p;
        parent->alloc = na;
    }
    parent->items[parent->count++] = child;
    return 0;
}

void pf_ynode_free(pf_ynode *n)
{
    /* Iterative: detach children onto an explicit stack. */
    if (!n) return;
    size_t cap = 16, top = 0;
    pf_ynode **stack = malloc(cap * sizeof *stack);
    if (!stack) {
        /* Degrade gracefully: leak rather than recurse. */
        return;
    }
    stack[top++] = n;
    while (top) {
        pf_ynode *cur = stack[--top];
        for (size_t i = 0; i < cur->count; i++) {
            if (top == cap) {
                pf_ynode **p = realloc(stack, cap * 2 * sizeof *p);
                if (!p) break;
                stack = p;
                cap *= 2;
            }
            stack[top++] = cur->items[i];
        }
        free(cur->items);
        free(cur->value);
        free(cur);
    }
    free(stack);
}

void pf_ydoc_free(pf_ydoc *d)
{
    if (!d) return;
    pf_ynode_free(d->root);
    free(d->file);
    free(d);
}

pf_status pf_ynode_error(const pf_ynode *n, pf_error *err, pf_status code, const char *fmt, ...)
{
    char msg[PF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!n) return pf_error_set(err, code, "%s", msg);
    return pf_error_at(err, code, n->file, n->line, n->col, "%s", msg);
}

static int scalar_eq(const pf_ynode *n, const char *s)
{
    return n->kind == PF_Y_SCALAR && strlen(s) == n->len && memcmp(n->value, s, n->len) == 0;
}

pf_ynode *pf_ymap_get(const pf_ynode *n, const char *key)
{
    if (!n || n->kind != PF_Y_MAP) return NULL;
    for (size_t i = 0; i + 1 < n->count; i += 2)
        if (scalar_eq(n->items[i], key)) return n->items[i + 1];
    return NULL;
}

int pf_ynode_is_null(const pf_ynode *n)
{
    if (!n || n->kind != PF_Y_SCALAR || !n->plain) return 0;
    return n->len == 0 || scalar_eq(n, "null") || scalar_eq(n, "~") || scalar_eq(n, "Null") ||
           scalar_eq(n, "NULL");
}

pf_ynode *pf_ynode_new_scalar(const char *file, int line, int col, const char *value)
{
    pf_ynode *n = node_new(PF_Y_SCALAR, file, line, col);
    if (!n) return NULL;
    n->len = strlen(value);
    n->value = strdup(value);
    n->plain = 1;
    if (!n->value) {
        free(n);
        return NULL;
    }
    return n;
}

pf_ynode *pf_ynode_new_map(const char *file, int line, int col)
{
    return node_new(PF_Y_MAP, file, line, col);
}

pf_status pf_ymap_set(pf_ynode *m, const char *key, pf_ynode *value)
{
    for (size_t i = 0; i + 1 < m->count; i += 2) {
        if (scalar_eq(m->items[i], key)) {
            pf_ynode_free(m->items[i + 1]);
            m->items[i + 1] = value;
            return PF_OK;
        }
    }
    pf_ynode *k = pf_ynode_new_scalar(value->file, value->line, value->col, key);
    if (!k) return PF_ENOMEM;
    if (node_push(m, k) != 0) {
        pf_ynode_free(k);
        return PF_ENOMEM;
    }
    if (node_push(m, value) != 0) {
        m->count--;
        pf_ynode_free(k);
        return PF_ENOMEM;
    }
    return PF_OK;
}

/* Duplicate keys: a map's first KEYSET_MIN keys are compared one by one;
 * beyond that the map gets an index of its keys (open addressing, each slot
 * the key's pair number + 1, 0 for empty), so a map of n keys is checked in
 * O(n) expected time instead of O(n^2). */
#define KEYSET_MIN 16

typedef struct keyset {
    size_t *slots;
    size_t cap; /* a power of two, or 0 before the index is built */
} keyset;

static size_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 32));
}

static int key_eq(const pf_ynode *a, const pf_ynode *b)
{
    return a->len == b->len && memcmp(a->value, b->value, a->len) == 0;
}

static void keyset_free(keyset *ks)
{
    free(ks->slots);
    ks->slots = NULL;
    ks->cap = 0;
}

/* Looks up key node K (pair PAIR of map M) in KS; returns the earlier key
 * equal to it, or NULL after adding it. */
static const pf_ynode *keyset_add(keyset *ks, const pf_ynode *m, const pf_ynode *k, size_t pair)
{
    size_t mask = ks->cap - 1;
    for (size_t i = key_hash(k->value, k->len) & mask;; i = (i + 1) & mask) {
        size_t s = ks->slots[i];
        if (!s) {
            ks->slots[i] = pair + 1;
            return NULL;
        }
        if (key_eq(m->items[2 * (s - 1)], k)) return m->items[2 * (s - 1)];
    }
}

/* Checks the key just completed in map M (at index count-1) against earlier
 * keys, indexed in KS once the map is large. Returns 0 and sets *DUP to the
 * earlier equal key (or NULL), or -1 when out of memory. */
static int duplicate_key(const pf_ynode *m, keyset *ks, const pf_ynode **dup)
{
    const pf_ynode *k = m->items[m->count - 1];
    size_t pair = (m->count - 1) / 2; /* earlier keys: pairs 0 .. pair-1, all distinct */
    *dup = NULL;
    if (!ks->cap && pair < KEYSET_MIN) {
        for (size_t i = 0; i < pair; i++)
            if (key_eq(m->items[2 * i], k)) return *dup = m->items[2 * i], 0;
        return 0;
    }
    if ((pair + 1) * 2 > ks->cap) {
        /* (Re)build at a load factor of at most 1/2. */
        size_t cap = ks->cap ? ks->cap : 64;
        while ((pair + 1) * 2 > cap)
            cap *= 2;
        size_t *slots = calloc(cap, sizeof *slots);
        if (!slots) return -1;
        keyset_free(ks);
        ks->slots = slots;
        ks->cap = cap;
        for (size_t i = 0; i < pair; i++)
            (void)keyset_add(ks, m, m->items[2 * i], i);
    }
    *dup = keyset_add(ks, m, k, pair);
    return 0;
}

pf_status pf_yaml_parse(const char *file, const char *text, size_t len, pf_ydoc **out,
                        pf_error *err)
{
    *out = NULL;
    if (len > PF_YAML_MAX_BYTES)
        return pf_error_at(err, PF_ETOOBIG, file, 0, 0, "file is larger than %u bytes",
                           PF_YAML_MAX_BYTES);
    pf_ydoc *doc = calloc(1, sizeof *doc);
    if (!doc || !(doc->file = strdup(file))) {
        free(doc);
        return pf_error_set(err, PF_ENOMEM, "out of memory loading %s", file);
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        pf_ydoc_free(doc);
        return pf_error_set(err, PF_ENOMEM, "out of memory loading %s", file);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);

    pf_ynode *stack[PF_YAML_MAX_DEPTH + 1];
    keyset keys[PF_YAML_MAX_DEPTH + 1] = {{0}}; /* keys[i]: of stack[i] when a map */
    int depth = 0, docs = 0, done = 0;
    pf_status st = PF_OK;
    const char *f = doc->file;

    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            int line = (int)p.problem_mark.line + 1, col = (int)p.problem_mark.column + 1;
            size_t at = p.problem_mark.index;
            if (p.error == YAML_MEMORY_ERROR)
                st = pf_error_set(err, PF_ENOMEM, "out of memory loading %s", f);
            else if (at < len && text[at] == '\t')
                /* libyaml's words ("found character that cannot start any
                 * token") do not say what is wrong with a tab. */
                st = pf_error_at(err, PF_ESYNTAX, f, line, col,
                                 "a tab character here: YAML indents with spaces only; replace "
                                 "the tab with spaces");
            else
                st = pf_error_at(err, PF_ESYNTAX, f, line, col, "YAML %s%s%s",
                                 p.problem ? p.problem : "syntax error",
                                 p.context ? " " : "", p.context ? p.context : "");
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        pf_ynode *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                st = pf_error_at(err, PF_ESYNTAX, f, line, col,
                                 "only one YAML document is allowed per file");
            break;
        case YAML_ALIAS_EVENT:
            st = pf_error_at(err, PF_ESYNTAX, f, line, col,
                             "YAML aliases (*%s) are not supported", (char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            const unsigned char *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                          : ev.type == YAML_MAPPING_START_EVENT
                                              ? ev.data.mapping_start.anchor
                                              : ev.data.sequence_start.anchor;
            if (anchor) {
                st = pf_error_at(err, PF_ESYNTAX, f, line, col,
                                 "YAML anchors (&%s) are not supported", (const char *)anchor);
                break;
            }
            if (ev.type == YAML_SCALAR_EVENT) {
                n = node_new(PF_Y_SCALAR, f, line, col);
                if (n) {
                    n->len = ev.data.scalar.length;
                    n->value = malloc(n->len + 1);
                    if (n->value) {
                        memcpy(n->value, ev.data.scalar.value, n->len);
                        n->value[n->len] = '\0';
                    }
                    n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                }
                if (!n || !n->value) {
                    pf_ynode_free(n);
                    n = NULL;
                    st = pf_error_set(err, PF_ENOMEM, "out of memory loading %s", f);
                    break;
                }
            } else {
                if (depth >= PF_YAML_MAX_DEPTH) {
                    st = pf_error_at(err, PF_EDEPTH, f, line, col,
                                     "nesting deeper than %d levels", PF_YAML_MAX_DEPTH);
                    break;
                }
                n = node_new(ev.type == YAML_MAPPING_START_EVENT ? PF_Y_MAP : PF_Y_SEQ, f, line,
                             col);
                if (!n) {
                    st = pf_error_set(err, PF_ENOMEM, "out of memory loading %s", f);
                    break;
                }
            }
            /* Attach to the parent, or make it the root. */
            if (depth == 0) {
                doc->root = n;
            } else {
                pf_ynode *parent = stack[depth - 1];
                if (node_push(parent, n) != 0) {
                    pf_ynode_free(n);
                    st = pf_error_set(err, PF_ENOMEM, "out of memory loading %s", f);
                    break;
                }
                if (parent->kind == PF_Y_MAP && parent->count % 2 == 1) {
                    if (n->kind != PF_Y_SCALAR) {
                        st = pf_error_at(err, PF_ESYNTAX, f, line, col,
                                         "mapping keys must be plain scalars");
                        break;
                    }
                    const pf_ynode *dup;
                    if (duplicate_key(parent, &keys[depth - 1], &dup) != 0) {
                        st = pf_error_set(err, PF_ENOMEM, "out of memory loading %s", f);
                        break;
                    }
                    if (dup) {
                        st = pf_error_at(err, PF_ECONFIG, f, line, col,
                                         "duplicate key '%s' (first at line %d)", n->value,
                                         dup->line);
                        break;
                    }
                }
            }
            if (n->kind != PF_Y_SCALAR) stack[depth++] = n;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) keyset_free(&keys[--depth]);
            break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (st != PF_OK) break;
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < depth; i++)
        keyset_free(&keys[i]);
    if (st != PF_OK) {
        pf_ydoc_free(doc);
        return st;
    }
    *out = doc;
    return PF_OK;
}

pf_status pf_yaml_load_file(const char *path, pf_ydoc **out, pf_error *err)
{
    *out = NULL;
    /* Never blocking, and only a regular file: a FIFO given as a flow or
     * template file is refused instead of hanging the command. */
    pf_error oe;
    pf_error_clear(&oe);
    int fd = pf_open_regular(path, &oe);
    FILE *fp = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!fp) {
        int e = errno;
        if (fd >= 0) close(fd);
        /* pf_open_regular's message says "... PATH: REASON"; keep REASON. */
        const char *at = fd >= 0 ? NULL : strstr(oe.msg, path);
        const char *why = at ? at + strlen(path) + (at[strlen(path)] == ':' ? 2 : 0) : strerror(e);
        return pf_error_at(err, oe.code == PF_ENOTFOUND ? PF_ENOTFOUND : PF_EIO, path, 0, 0,
                           "cannot open: %s", why);
    }
    size_t cap = PF_YAML_MAX_BYTES + 1, len = 0;
    char *text = malloc(cap);
    if (!text) {
        fclose(fp);
        return pf_error_set(err, PF_ENOMEM, "out of memory reading %s", path);
    }
    len = fread(text, 1, cap, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(text);
        return pf_error_at(err, PF_EIO, path, 0, 0, "read error");
    }
    pf_status st = pf_yaml_parse(path, text, len, out, err);
    free(text);
    return st;
}
