/* yaml.h: YAML files as a small tree of positioned nodes.
 *
 * libyaml parses; this module builds a tree whose every node remembers the
 * file, line and column it came from, so that flow and template validation can
 * report `FILE:LINE:COL: message`. The tree is built without recursion, with a
 * nesting limit; aliases and anchors are refused (they buy nothing in a flow
 * and open the door to "billion laughs" documents); duplicate mapping keys are
 * errors ("duplicate key 'k' (first at line N)" at the second one), found in
 * linear expected time however large the map. A file must hold exactly one
 * document. */
#ifndef PF_FLOW_YAML_H
#define PF_FLOW_YAML_H

#include <stddef.h>

#include "util/status.h"

#define PF_YAML_MAX_DEPTH 64
#define PF_YAML_MAX_BYTES (4u * 1024u * 1024u)

typedef enum pf_ykind { PF_Y_SCALAR, PF_Y_MAP, PF_Y_SEQ } pf_ykind;

typedef struct pf_ynode pf_ynode;
struct pf_ynode {
    pf_ykind kind;
    int line, col;     /* 1-based position of the node's first character */
    const char *file;  /* borrowed from the owning pf_ydoc */
    char *value;       /* scalar text, NUL-terminated (may contain NUL: see len) */
    size_t len;        /* scalar length */
    int plain;         /* 1 for an unquoted scalar (null/true/42 are typed only when plain) */
    pf_ynode **items;  /* map: key0, value0, key1, value1...; seq: the elements */
    size_t count;      /* number of entries in items */
    size_t alloc;
};

typedef struct pf_ydoc {
    char *file;      /* the name used in messages */
    pf_ynode *root;  /* NULL for an empty document */
} pf_ydoc;

/* Parses LEN bytes of TEXT (named FILE in messages). On success *OUT owns a
 * new document. On failure returns PF_ESYNTAX (with position), PF_EDEPTH,
 * PF_ETOOBIG or PF_ENOMEM, and leaves *OUT NULL. */
pf_status pf_yaml_parse(const char *file, const char *text, size_t len, pf_ydoc **out,
                        pf_error *err);

/* Reads and parses PATH (at most PF_YAML_MAX_BYTES). PF_EIO / PF_ENOTFOUND when
 * the file cannot be read. */
pf_status pf_yaml_load_file(const char *path, pf_ydoc **out, pf_error *err);

/* Frees the document and every node. NULL is accepted. */
void pf_ydoc_free(pf_ydoc *d);

/* Map lookup: the value node for KEY, or NULL when absent (or N not a map). */
pf_ynode *pf_ymap_get(const pf_ynode *n, const char *key);

/* The key node of the value at ITEMS index I (maps only). */
static inline const pf_ynode *pf_ymap_key(const pf_ynode *n, size_t i)
{
    return n->items[2 * i];
}
static inline pf_ynode *pf_ymap_val(const pf_ynode *n, size_t i)
{
    return n->items[2 * i + 1];
}
static inline size_t pf_ymap_size(const pf_ynode *n)
{
    return n && n->kind == PF_Y_MAP ? n->count / 2 : 0;
}

/* True for a plain `null`, `~` or empty plain scalar. */
int pf_ynode_is_null(const pf_ynode *n);

/* Fills ERR with code CODE positioned at N, returns CODE. */
pf_status pf_ynode_error(const pf_ynode *n, pf_error *err, pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Creates a detached scalar node (used for command-line overrides); FILE is
 * borrowed and must outlive the node. Free with pf_ynode_free. */
pf_ynode *pf_ynode_new_scalar(const char *file, int line, int col, const char *value);

/* Creates an empty map node. */
pf_ynode *pf_ynode_new_map(const char *file, int line, int col);

/* Sets KEY to VALUE in map M, replacing (and freeing) an existing value.
 * Takes ownership of VALUE on success. PF_ENOMEM on failure (VALUE untouched). */
pf_status pf_ymap_set(pf_ynode *m, const char *key, pf_ynode *value);

/* Frees N and its children (no recursion). NULL accepted. */
void pf_ynode_free(pf_ynode *n);

#endif
