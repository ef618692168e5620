/* suggest.c: record path suggestions from a sample response (contract in
 * suggest.h). A breadth-first walk over path patterns with an explicit
 * queue, below PF_SUGGEST_MAX_DEPTH and within PF_SUGGEST_MAX_WORK visits. */
#include "engine/suggest.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *pf_suggest_kind_name(pf_suggest_kind k)
{
    switch (k) {
    case PF_SUGGEST_OBJECTS:
        return "objects";
    case PF_SUGGEST_MIXED:
        return "mixed";
    case PF_SUGGEST_EMPTY:
        return "empty";
    case PF_SUGGEST_SCALARS:
        return "scalars";
    case PF_SUGGEST_SINGLE:
        return "object";
    }
    return "?";
}

/* ---- small helpers ------------------------------------------------------ */

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], lo = 0x80, hi = 0xBF;
        size_t need;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (n - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (s[i + k] < l || s[i + k] > h) return 0;
        }
        i += need + 1;
    }
    return 1;
}

static int is_ident(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9')) return 0;
    }
    return 1;
}

pf_status pf_suggest_member_segment(pf_buf *b, const char *name, size_t len)
{
    if (is_ident(name, len)) {
        pf_buf seg;
        pf_buf_init(&seg, 0);
        pf_status st = pf_buf_putc(&seg, '.');
        if (st == PF_OK) st = pf_buf_append(&seg, name, len);
        if (st == PF_OK) st = pf_buf_append(b, seg.data, seg.len);
        pf_buf_free(&seg);
        return st;
    }
    pf_buf seg;
    pf_buf_init(&seg, 0);
    pf_status st = pf_buf_puts(&seg, "['");
    for (size_t i = 0; i < len && st == PF_OK; i++) {
        unsigned char c = (unsigned char)name[i];
        switch (c) {
        case '\'':
            st = pf_buf_puts(&seg, "\\'");
            break;
        case '\\':
            st = pf_buf_puts(&seg, "\\\\");
            break;
        case '\b':
            st = pf_buf_puts(&seg, "\\b");
            break;
        case '\f':
            st = pf_buf_puts(&seg, "\\f");
            break;
        case '\n':
            st = pf_buf_puts(&seg, "\\n");
            break;
        case '\r':
            st = pf_buf_puts(&seg, "\\r");
            break;
        case '\t':
            st = pf_buf_puts(&seg, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                st = pf_buf_printf(&seg, "\\u%04x", c);
            } else if (c == 0xC2 && i + 1 < len && (unsigned char)name[i + 1] < 0xA0) {
                /* C1 controls (U+0080..U+009F) too, so a path is safe to print. */
                st = pf_buf_printf(&seg, "\\u%04x", (unsigned char)name[i + 1]);
                i++;
            } else {
                st = pf_buf_putc(&seg, (char)c);
            }
        }
    }
    if (st == PF_OK) st = pf_buf_puts(&seg, "']");
    if (st == PF_OK) st = pf_buf_append(b, seg.data, seg.len);
    pf_buf_free(&seg);
    return st;
}

static uint64_t hash_bytes(const char *s, size_t n, uint64_t seed)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* An open-addressing set of (tag, bytes) entries, borrowed pointers. */
typedef struct hset {
    struct hent {
        const char *s;
        size_t n;
        uint64_t h;
        int tag;
        size_t val;
    } * e;
    size_t cap, count;
} hset;

static void hset_free(hset *h)
{
    free(h->e);
    memset(h, 0, sizeof *h);
}

/* Finds (TAG, S[0..N)); when absent and INS, inserts it with VAL. Returns
 * the entry, NULL when absent (or on allocation failure with *OOM set). */
static struct hent *hset_get(hset *h, int tag, const char *s, size_t n, int ins, size_t val,
                             int *oom)
{
    if (ins && (h->count + 1) * 2 > h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        struct hent *ne = calloc(nc, sizeof *ne);
        if (!ne) {
            *oom = 1;
            return NULL;
        }
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->e[i].s) continue;
            size_t j = h->e[i].h & (nc - 1);
            while (ne[j].s)
                j = (j + 1) & (nc - 1);
            ne[j] = h->e[i];
        }
        free(h->e);
        h->e = ne;
        h->cap = nc;
    }
    if (!h->cap) return NULL;
    uint64_t hv = hash_bytes(s, n, (uint64_t)tag);
    size_t j = hv & (h->cap - 1);
    while (h->e[j].s) {
        struct hent *x = &h->e[j];
        if (x->h == hv && x->tag == tag && x->n == n && memcmp(x->s, s, n) == 0) return x;
        j = (j + 1) & (h->cap - 1);
    }
    if (!ins) return NULL;
    /* An empty name still needs a non-NULL pointer to mark the slot used. */
    h->e[j] = (struct hent){s ? s : "", n, hv, tag, val};
    h->count++;
    return &h->e[j];
}

/* ---- groups of nodes reached by one path pattern ------------------------ */

typedef struct group {
    char *path;
    size_t depth;   /* segments after $ */
    size_t nesting; /* [*] segments */
    int elems;      /* reached by [*]: the nodes are array elements */
    json_object **nodes;
    size_t n, cap;
} group;

typedef struct walk {
    group *q;
    size_t qn, qcap, head;
    pf_suggestion *items;
    size_t count, cap;
    int depth_capped;
    int work_capped;
    unsigned long long work;
    int oom;
} walk;

/* Appends a new group (path PATH, taken) to the queue; returns its index or
 * (size_t)-1 (PATH freed). */
static size_t new_group(walk *w, char *path, size_t depth, size_t nesting, int elems)
{
    if (w->qn == w->qcap) {
        size_t nc = w->qcap ? w->qcap * 2 : 64;
        group *p = realloc(w->q, nc * sizeof *p);
        if (!p) {
            free(path);
            w->oom = 1;
            return (size_t)-1;
        }
        w->q = p;
        w->qcap = nc;
    }
    w->q[w->qn] = (group){path, depth, nesting, elems, NULL, 0, 0};
    return w->qn++;
}

/* Adds V to group GI. Returns -1 (with oom or work_capped set) to stop. */
static int push_node(walk *w, size_t gi, json_object *v)
{
    group *g = &w->q[gi];
    if (w->work++ >= PF_SUGGEST_MAX_WORK) {
        w->work_capped = 1;
        return -1;
    }
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 8;
        json_object **p = realloc(g->nodes, nc * sizeof *p);
        if (!p) {
            w->oom = 1;
            return -1;
        }
        g->nodes = p;
        g->cap = nc;
    }
    g->nodes[g->n++] = v;
    return 0;
}

static pf_suggestion *new_item(walk *w)
{
    if (w->count == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        pf_suggestion *p = realloc(w->items, nc * sizeof *p);
        if (!p) {
            w->oom = 1;
            return NULL;
        }
        w->items = p;
        w->cap = nc;
    }
    pf_suggestion *s = &w->items[w->count++];
    memset(s, 0, sizeof *s);
    return s;
}

/* ---- candidates ---------------------------------------------------------- */

static int ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
    }
    return *a == *b;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && memcmp(s + a - b, suffix, b) == 0;
}

/* 1 for names that usually identify a record (id, uuid), 2 for guid (which
 * can name what several records share: a TAP SIEM message's events, one per
 * recipient, share its GUID), 3 for *_id / *Id / *ID and the like, 0 for
 * others. */
static int id_rank(const char *name)
{
    if (ieq(name, "id") || ieq(name, "uuid")) return 1;
    if (ieq(name, "guid")) return 2;
    static const char *const suffixes[] = {"_id",  "Id",    "ID",   "_guid", "Guid",
                                           "GUID", "_uuid", "Uuid", "UUID"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(name, suffixes[i])) return 3;
    return 0;
}

/* 1 when member NAME of every node is a non-empty string or an integer and
 * no two are equal. */
static int unique_ids(json_object **nodes, size_t n, const char *name, int *oom)
{
    hset seen = {0};
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        json_object *v = NULL;
        if (!json_object_object_get_ex(nodes[i], name, &v)) {
            ok = 0;
            break;
        }
        json_type t = json_object_get_type(v);
        if (t != json_type_string && t != json_type_int) {
            ok = 0;
            break;
        }
        const char *s = json_object_get_string(v);
        size_t sl = t == json_type_string ? (size_t)json_object_get_string_len(v) : strlen(s);
        if (sl == 0 || hset_get(&seen, (int)t, s, sl, 0, 0, oom)) {
            ok = 0;
            break;
        }
        if (!hset_get(&seen, (int)t, s, sl, 1, 0, oom)) ok = 0;
    }
    hset_free(&seen);
    return ok && !*oom;
}

static char *key_path(const char *name)
{
    pf_buf b;
    pf_buf_init(&b, 0);
    if (pf_buf_putc(&b, '$') != PF_OK ||
        pf_suggest_member_segment(&b, name, strlen(name)) != PF_OK) {
        pf_buf_free(&b);
        return NULL;
    }
    return pf_buf_steal(&b);
}

/* Fills S's fields with the member names every object of NODES shares. */
static int shared_fields(pf_suggestion *s, json_object **nodes, size_t n)
{
    json_object *first = NULL;
    size_t fi = 0;
    for (; fi < n; fi++)
        if (json_object_is_type(nodes[fi], json_type_object)) {
            first = nodes[fi];
            break;
        }
    if (!first) return 0;
    size_t m = (size_t)json_object_object_length(first);
    if (m == 0) return 0;
    const char **names = malloc(m * sizeof *names);
    if (!names) return -1;
    size_t k = 0;
    json_object_object_foreach(first, name, val)
    {
        (void)val;
        if (k < m && utf8_valid((const unsigned char *)name, strlen(name))) names[k++] = name;
    }
    for (size_t i = fi + 1; i < n && k; i++) {
        if (!json_object_is_type(nodes[i], json_type_object)) continue;
        size_t keep = 0;
        for (size_t j = 0; j < k; j++)
            if (json_object_object_get_ex(nodes[i], names[j], NULL)) names[keep++] = names[j];
        k = keep;
    }
    int rc = 0;
    if (k) {
        s->fields = calloc(k, sizeof *s->fields);
        if (!s->fields) rc = -1;
        for (size_t j = 0; j < k && rc == 0; j++) {
            if (!(s->fields[j] = strdup(names[j])))
                rc = -1;
            else
                s->nfields++;
        }
    }
    free(names);
    return rc;
}

/* Picks a key for an all-objects candidate among its shared fields. */
static int pick_key(pf_suggestion *s, json_object **nodes, size_t n)
{
    int oom = 0;
    for (int rank = 1; rank <= 3 && !s->key; rank++) {
        for (size_t j = 0; j < s->nfields && !s->key; j++) {
            if (id_rank(s->fields[j]) != rank) continue;
            if (unique_ids(nodes, n, s->fields[j], &oom)) {
                if (!(s->key = key_path(s->fields[j]))) return -1;
            }
            if (oom) return -1;
        }
    }
    return 0;
}

static void array_candidate(walk *w, group *g)
{
    pf_suggestion *s = new_item(w);
    if (!s) return;
    s->records = g->n;
    s->nesting = g->nesting;
    s->order = (size_t)(g - w->q);
    size_t strs = 0, nums = 0, bools = 0, nulls = 0, arrays = 0;
    for (size_t i = 0; i < g->n; i++) {
        switch (json_object_get_type(g->nodes[i])) {
        case json_type_object:
            s->objects++;
            break;
        case json_type_array:
            arrays++;
            break;
        case json_type_string:
            strs++;
            break;
        case json_type_int:
        case json_type_double:
            nums++;
            break;
        case json_type_boolean:
            bools++;
            break;
        case json_type_null:
            nulls++;
            break;
        }
    }
    if (g->n == 0)
        s->kind = PF_SUGGEST_EMPTY;
    else if (s->objects == g->n)
        s->kind = PF_SUGGEST_OBJECTS;
    else if (s->objects)
        s->kind = PF_SUGGEST_MIXED;
    else {
        s->kind = PF_SUGGEST_SCALARS;
        s->elements = strs == g->n     ? "strings"
                      : nums == g->n   ? "numbers"
                      : bools == g->n  ? "booleans"
                      : nulls == g->n  ? "nulls"
                      : arrays == g->n ? "arrays"
                                       : "values";
    }
    if (!(s->path = strdup(g->path))) {
        w->oom = 1;
        return;
    }
    if (shared_fields(s, g->nodes, g->n) != 0 ||
        (s->kind == PF_SUGGEST_OBJECTS && pick_key(s, g->nodes, g->n) != 0))
        w->oom = 1;
}

static void single_candidate(walk *w, const char *path, json_object *obj, size_t order)
{
    pf_suggestion *s = new_item(w);
    if (!s) return;
    s->kind = PF_SUGGEST_SINGLE;
    s->records = 1;
    s->objects = 1;
    s->order = order;
    if (!(s->path = strdup(path)) || shared_fields(s, &obj, 1) != 0) w->oom = 1;
}

/* ---- the walk ------------------------------------------------------------ */

/* Child path of G: G's path + SEG (a member segment or "[*]"). */
static char *child_path(const group *g, const char *name, size_t len, int elems)
{
    pf_buf b;
    pf_buf_init(&b, PF_SUGGEST_MAX_PATH);
    pf_status st = pf_buf_puts(&b, g->path);
    if (st == PF_OK) st = elems ? pf_buf_puts(&b, "[*]") : pf_suggest_member_segment(&b, name, len);
    if (st != PF_OK) {
        pf_buf_free(&b);
        return NULL;
    }
    return pf_buf_steal(&b);
}

/* Expands group GI into its child groups, with JSONPath's semantics so that
 * every count is what the path selects: "P.name" takes that member of the
 * objects, and "P[*]" (made only when some node is an array) takes the
 * elements of the arrays and the member values of the objects. A node can
 * then be in two groups, so the pushes are budgeted (PF_SUGGEST_MAX_WORK). */
static void expand(walk *w, size_t gi)
{
    hset children = {0};
    size_t elems = (size_t)-1;
    int any_array = 0, any_container = 0;
    for (size_t i = 0; i < w->q[gi].n; i++) {
        json_type t = json_object_get_type(w->q[gi].nodes[i]);
        any_array |= t == json_type_array;
        any_container |= t == json_type_array || t == json_type_object;
    }
    if (any_container && w->q[gi].depth >= PF_SUGGEST_MAX_DEPTH) {
        w->depth_capped = 1;
        return;
    }
    if (any_array) {
        char *p = child_path(&w->q[gi], NULL, 0, 1);
        if (p) /* else the path is too long: not followed */
            elems = new_group(w, p, w->q[gi].depth + 1, w->q[gi].nesting + 1, 1);
    }
    for (size_t i = 0; i < w->q[gi].n && !w->oom && !w->work_capped; i++) {
        json_object *v = w->q[gi].nodes[i];
        json_type t = json_object_get_type(v);
        if (t == json_type_array) {
            size_t len = json_object_array_length(v);
            for (size_t k = 0; k < len && elems != (size_t)-1; k++)
                if (push_node(w, elems, json_object_array_get_idx(v, k)) != 0) break;
            continue;
        }
        if (t != json_type_object) continue;
        json_object_object_foreach(v, name, val)
        {
            if (elems != (size_t)-1 && push_node(w, elems, val) != 0) break;
            size_t nl = strlen(name);
            struct hent *e = hset_get(&children, 0, name, nl, 0, 0, &w->oom);
            size_t ci;
            if (e) {
                ci = e->val;
            } else {
                if (!utf8_valid((const unsigned char *)name, nl)) continue;
                char *p = child_path(&w->q[gi], name, nl, 0);
                if (!p) continue;
                ci = new_group(w, p, w->q[gi].depth + 1, w->q[gi].nesting, 0);
                if (ci == (size_t)-1) break;
                if (!hset_get(&children, 0, name, nl, 1, ci, &w->oom)) break;
            }
            if (push_node(w, ci, val) != 0) break;
        }
    }
    hset_free(&children);
}

/* Rank groups: objects, mixed, empty arrays of records (one [*]), scalars,
 * empty nested arrays, single objects. */
static int rank(const pf_suggestion *s)
{
    switch (s->kind) {
    case PF_SUGGEST_OBJECTS:
        return 0;
    case PF_SUGGEST_MIXED:
        return 1;
    case PF_SUGGEST_EMPTY:
        return s->nesting <= 1 ? 2 : 4;
    case PF_SUGGEST_SCALARS:
        return 3;
    case PF_SUGGEST_SINGLE:
        return 5;
    }
    return 6;
}

static int cmp_items(const void *a, const void *b)
{
    const pf_suggestion *x = a, *y = b;
    int rx = rank(x), ry = rank(y);
    if (rx != ry) return rx < ry ? -1 : 1;
    if (x->nesting != y->nesting) return x->nesting < y->nesting ? -1 : 1;
    if (x->records != y->records) return x->records > y->records ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void pf_suggestions_free(pf_suggestions *out)
{
    if (!out) return;
    for (size_t i = 0; i < out->count; i++) {
        pf_suggestion *s = &out->items[i];
        free(s->path);
        for (size_t j = 0; j < s->nfields; j++)
            free(s->fields[j]);
        free(s->fields);
        free(s->key);
    }
    free(out->items);
    memset(out, 0, sizeof *out);
}

pf_status pf_suggest(json_object *doc, pf_suggestions *out, pf_error *err)
{
    memset(out, 0, sizeof *out);
    walk w = {0};
    char *root = strdup("$");
    if (!root) return pf_error_set(err, PF_ENOMEM, "out of memory suggesting paths");
    size_t r = new_group(&w, root, 0, 0, 0);
    if (r != (size_t)-1) push_node(&w, r, doc);
    /* A group is complete once the walk reaches it; after the work cap the
     * groups still queued may be incomplete, so they are dropped. */
    for (w.head = 0; w.head < w.qn && !w.oom && !w.work_capped; w.head++) {
        group *g = &w.q[w.head];
        if (g->elems)
            array_candidate(&w, g);
        else if (g->depth == 1 && g->n == 1 && json_object_is_type(g->nodes[0], json_type_object))
            single_candidate(&w, g->path, g->nodes[0], w.head);
        if (!w.oom) expand(&w, w.head);
        /* Candidates are done with this group's nodes once it is expanded. */
        free(w.q[w.head].nodes);
        w.q[w.head].nodes = NULL;
        w.q[w.head].n = w.q[w.head].cap = 0;
    }
    if (!w.oom && json_object_is_type(doc, json_type_object))
        single_candidate(&w, "$", doc, SIZE_MAX);
    for (size_t i = 0; i < w.qn; i++) {
        free(w.q[i].path);
        free(w.q[i].nodes);
    }
    free(w.q);
    pf_suggestions res = {w.items, w.count, w.depth_capped, w.work_capped};
    if (w.oom) {
        pf_suggestions_free(&res);
        return pf_error_set(err, PF_ENOMEM, "out of memory suggesting paths");
    }
    if (res.count > 1) qsort(res.items, res.count, sizeof *res.items, cmp_items);
    *out = res;
    return PF_OK;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

pf_status pf_suggest_text(const char *text, size_t len, pf_suggestions *out, pf_error *err)
{
    memset(out, 0, sizeof *out);
    size_t start = 0;
    while (start < len && is_ws(text[start]))
        start++;
    if (start == len) return pf_error_set(err, PF_EDATA, "the sample is empty");
    if (len > INT32_MAX) return pf_error_set(err, PF_ETOOBIG, "the sample is over 2 GiB");
    json_tokener *tok = json_tokener_new_ex(PF_SUGGEST_MAX_NESTING);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory parsing the sample");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    if (je == json_tokener_continue) {
        /* A number at the very end waits for more digits: one blank ends it
         * (and leaves anything really truncated unfinished). */
        doc = json_tokener_parse_ex(tok, " ", 1);
        je = json_tokener_get_error(tok);
        off = len;
    }
    json_tokener_free(tok);
    if (je != json_tokener_success) {
        json_object_put(doc);
        if (je == json_tokener_error_depth)
            return pf_error_off(err, PF_EDEPTH, (long)off,
                                "the sample is nested deeper than %d "
                                "levels",
                                PF_SUGGEST_MAX_NESTING);
        if (je == json_tokener_continue)
            return pf_error_off(err, PF_EDATA, (long)len, "the sample is truncated JSON");
        return pf_error_off(err, PF_EDATA, (long)off, "the sample is not valid JSON: %s",
                            json_tokener_error_desc(je));
    }
    while (off < len && is_ws(text[off]))
        off++;
    if (off < len) {
        json_object_put(doc);
        return pf_error_off(err, PF_EDATA, (long)off, "the sample has data after its JSON value");
    }
    pf_status st = pf_suggest(doc, out, err);
    json_object_put(doc);
    return st;
}
