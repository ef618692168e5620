/* stream_extract.c: the streaming record extractor (path plan, event walk,
 * record capture, key capture) and its buffered fallback. See
 * stream_extract.h for the contract. */
#include "engine/stream_extract.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/extract.h"
#include "engine/jstream.h"
#include "util/buf.h"

#define NO_SLOT SIZE_MAX
#define SELF_SLOT (SIZE_MAX - 1) /* key path $: the record itself */

/* The streams a value is a record of, in template order (a stream can
 * repeat: $['x','x'][*]), with the key slot each one reads. */
typedef struct sx_list {
    size_t n;
    size_t *streams;
    size_t *slot; /* per entry: index into the list's key names, NO_SLOT or SELF_SLOT */
    size_t nslots;
    int has_self;           /* some entry has SELF_SLOT */
    const char **slot_name; /* decoded member names (borrowed from the key paths) */
    size_t *slot_len;
} sx_list;

/* One position of the path plan: the root or a member reached by name. */
typedef struct sx_node {
    const char *name; /* decoded, borrowed from a compiled path; NULL for the root */
    size_t name_len;
    struct sx_node **kids;
    size_t nkids;
    size_t *rec; /* streams whose record is this node's value */
    size_t nrec;
    size_t *wild; /* streams whose records are the members/elements of this node's value */
    size_t nwild;
    sx_list named; /* this node's value: parent's wildcard streams + rec */
    sx_list elem;  /* members/elements of this node's value: wild */
} sx_node;

/* An open container on a path. */
typedef struct sx_frame {
    const sx_node *node;
    int is_object;
    size_t names_start;   /* names arena length when the frame opened */
    size_t entries_start; /* entries count when the frame opened */
    size_t *table;        /* open addressing over entries; SIZE_MAX = empty */
    size_t table_size;    /* power of two, 0 until the first name */
    size_t count;
} sx_frame;

typedef struct sx_entry {
    size_t off, len;
    uint64_t hash;
} sx_entry;

struct pf_sx {
    const pf_template *t;
    pf_sx_record_fn fn;
    void *ud;
    size_t max_record, max_body;
    int streaming;
    int check_only; /* pf_sx_check_body: walk and check, deliver nothing */
    char reason[256];

    sx_node *root;
    size_t max_frames;
    sx_frame *frames;
    size_t nframes;

    pf_js *js;

    /* the role of the next value in an object frame, set by its name */
    const sx_node *pend_node;
    const sx_list *pend_list;

    /* the record being captured */
    int in_rec;
    const sx_list *rec_list;
    size_t rec_depth;
    unsigned long long rec_off;
    pf_buf rec;
    pf_buf *keys; /* one per key slot of rec_list */
    int *key_has;
    size_t nkeys_alloc;
    size_t key_target; /* slot whose value comes next, or NO_SLOT */

    /* member names of the objects on the paths */
    pf_buf names;
    sx_entry *entries;
    size_t nentries, entries_cap;

    pf_buf body; /* buffered mode */

    pf_status failed;
    pf_error err;
    int finished;
    pf_sx_stats stats;
};

/* ---- the plan ---------------------------------------------------------- */

static void list_free(sx_list *l)
{
    free(l->streams);
    free(l->slot);
    free(l->slot_name);
    free(l->slot_len);
    memset(l, 0, sizeof *l);
}

static void node_free(sx_node *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]); /* plan depth is the length of a template path */
    free(n->kids);
    free(n->rec);
    free(n->wild);
    list_free(&n->named);
    list_free(&n->elem);
    free(n);
}

static int push_index(size_t **arr, size_t *n, size_t v)
{
    size_t *p = realloc(*arr, (*n + 1) * sizeof *p);
    if (!p) return -1;
    p[(*n)++] = v;
    *arr = p;
    return 0;
}

static sx_node *child(sx_node *n, const char *name, size_t len, int create)
{
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->name_len == len && memcmp(n->kids[i]->name, name, len) == 0)
            return n->kids[i];
    if (!create) return NULL;
    sx_node *c = calloc(1, sizeof *c);
    sx_node **k = realloc(n->kids, (n->nkids + 1) * sizeof *k);
    if (!c || !k) {
        free(c);
        if (k) n->kids = k;
        return NULL;
    }
    c->name = name;
    c->name_len = len;
    n->kids = k;
    n->kids[n->nkids++] = c;
    return c;
}

/* The key member name of stream S, or NULL (no key, or key path $ when
 * *SELF is set). */
static const char *key_name(const pf_template *t, size_t s, size_t *len, int *self)
{
    pf_jp_shape sh;
    *self = 0;
    if (!t->streams[s].key || !pf_jsonpath_simple_shape(t->streams[s].key, &sh)) return NULL;
    if (sh.nnames == 0) {
        *self = 1;
        return NULL;
    }
    *len = sh.name_lens[0];
    return sh.names[0];
}

/* Builds list L from the stream indices A (NA) merged with B (NB), both in
 * template order. */
static int list_build(const pf_template *t, sx_list *l, const size_t *a, size_t na, const size_t *b,
                      size_t nb)
{
    size_t n = na + nb;
    if (n == 0) return 0;
    l->streams = malloc(n * sizeof *l->streams);
    l->slot = malloc(n * sizeof *l->slot);
    l->slot_name = malloc(n * sizeof *l->slot_name);
    l->slot_len = malloc(n * sizeof *l->slot_len);
    if (!l->streams || !l->slot || !l->slot_name || !l->slot_len) return -1;
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        size_t s = (j >= nb || (i < na && a[i] <= b[j])) ? a[i++] : b[j++];
        size_t k = l->n++;
        l->streams[k] = s;
        l->slot[k] = NO_SLOT;
        size_t klen = 0;
        int self;
        const char *kn = key_name(t, s, &klen, &self);
        if (self) {
            l->slot[k] = SELF_SLOT;
            l->has_self = 1;
        }
        if (!kn) continue;
        for (size_t q = 0; q < l->nslots; q++)
            if (l->slot_len[q] == klen && memcmp(l->slot_name[q], kn, klen) == 0) l->slot[k] = q;
        if (l->slot[k] == NO_SLOT) {
            l->slot_name[l->nslots] = kn;
            l->slot_len[l->nslots] = klen;
            l->slot[k] = l->nslots++;
        }
    }
    return 0;
}

/* Fills the lists of N and its subtree (PARENT NULL for the root) and
 * checks that no record contains another; returns -1 on ENOMEM, 1 with
 * REASON filled on a conflict, else 0. */
static int plan_finish(pf_sx *sx, sx_node *n, const sx_node *parent, size_t *max_depth,
                       size_t depth)
{
    const pf_template *t = sx->t;
    if (list_build(t, &n->named, parent ? parent->wild : NULL, parent ? parent->nwild : 0, n->rec,
                   n->nrec) != 0 ||
        list_build(t, &n->elem, n->wild, n->nwild, NULL, 0) != 0)
        return -1;
    if ((n->nkids || n->nwild) && n->named.n) {
        const char *inner = n->nwild ? t->streams[n->wild[0]].name : NULL;
        for (size_t i = 0; !inner && i < n->nkids; i++) {
            const sx_node *k = n->kids[i];
            if (k->nrec)
                inner = t->streams[k->rec[0]].name;
            else if (k->nwild)
                inner = t->streams[k->wild[0]].name;
            else if (k->nkids)
                inner = "(a deeper stream)";
        }
        snprintf(sx->reason, sizeof sx->reason,
                 "records of stream %s would contain records of stream %s",
                 t->streams[n->named.streams[0]].name, inner ? inner : "?");
        return 1;
    }
    if (depth + 1 > *max_depth) *max_depth = depth + 1;
    for (size_t i = 0; i < n->nkids; i++) {
        int r = plan_finish(sx, n->kids[i], n, max_depth, depth + 1);
        if (r) return r;
    }
    return 0;
}

/* Builds the plan; returns -1 on ENOMEM, 1 (REASON set) when T cannot
 * stream, 0 when it can. */
static int plan(pf_sx *sx)
{
    const pf_template *t = sx->t;
    for (size_t s = 0; s < t->nstreams; s++) {
        const pf_stream_def *sd = &t->streams[s];
        pf_jp_shape sh, kh;
        if (!sd->path || !pf_jsonpath_simple_shape(sd->path, &sh)) {
            snprintf(sx->reason, sizeof sx->reason,
                     "stream %s: path %s is not of the form $.a.b[*]", sd->name,
                     sd->path ? pf_jsonpath_text(sd->path) : "(none)");
            return 1;
        }
        if (sd->key && (!pf_jsonpath_simple_shape(sd->key, &kh) || kh.nnames > 1 ||
                        kh.nunion != 0 || kh.wildcard)) {
            snprintf(sx->reason, sizeof sx->reason,
                     "stream %s: key %s is not $ or a single member name like $.id", sd->name,
                     pf_jsonpath_text(sd->key));
            return 1;
        }
    }
    sx->root = calloc(1, sizeof *sx->root);
    if (!sx->root) return -1;
    for (size_t s = 0; s < t->nstreams; s++) {
        pf_jp_shape sh;
        pf_jsonpath_simple_shape(t->streams[s].path, &sh);
        sx_node *n = sx->root;
        for (size_t i = 0; i < sh.nnames && n; i++)
            n = child(n, sh.names[i], sh.name_lens[i], 1);
        if (!n) return -1;
        if (sh.nunion) {
            for (size_t u = 0; u < sh.nunion; u++) {
                sx_node *c = child(n, sh.union_names[u], sh.union_lens[u], 1);
                if (!c) return -1;
                if (sh.wildcard ? push_index(&c->wild, &c->nwild, s)
                                : push_index(&c->rec, &c->nrec, s))
                    return -1;
            }
        } else if (sh.wildcard ? push_index(&n->wild, &n->nwild, s)
                               : push_index(&n->rec, &n->nrec, s)) {
            return -1;
        }
    }
    size_t depth = 0;
    int r = plan_finish(sx, sx->root, NULL, &depth, 0);
    if (r) return r;
    sx->max_frames = depth + 1;
    return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static pf_sx *sx_create(const pf_template *t, size_t max_record, size_t max_body,
                        pf_sx_record_fn fn, void *ud, int check_only, pf_error *err)
{
    if (!t || (!fn && !check_only) || (t->nstreams == 0 && !check_only)) {
        pf_error_set(err, PF_EINVAL, "pf_sx_new: %s",
                     !t                 ? "no template"
                     : t->nstreams == 0 ? "template has no streams"
                                        : "no record callback");
        return NULL;
    }
    pf_sx *sx = calloc(1, sizeof *sx);
    if (!sx) goto nomem;
    sx->t = t;
    sx->fn = fn;
    sx->ud = ud;
    sx->check_only = check_only;
    sx->max_record = max_record ? max_record : PF_SX_DEFAULT_MAX_RECORD;
    sx->max_body = max_body;
    pf_buf_init(&sx->rec, sx->max_record);
    pf_buf_init(&sx->names, PF_SX_MAX_PATH_NAMES);
    pf_buf_init(&sx->body, max_body);
    int r = plan(sx);
    if (r < 0) goto nomem;
    sx->streaming = r == 0;
    if (sx->streaming) {
        sx->frames = calloc(sx->max_frames, sizeof *sx->frames);
        if (!sx->frames) goto nomem;
    }
    /* In check mode there is no record limit: names on the paths are then
     * only limited by PF_SX_MAX_PATH_NAMES. */
    sx->js = pf_js_new(PF_EXTRACT_MAX_NESTING, check_only ? SIZE_MAX / 4 : sx->max_record, err);
    if (!sx->js) {
        pf_sx_free(sx);
        return NULL;
    }
    pf_sx_reset(sx);
    return sx;
nomem:
    pf_sx_free(sx);
    pf_error_set(err, PF_ENOMEM, "out of memory creating a record extractor");
    return NULL;
}

pf_sx *pf_sx_new(const pf_template *t, size_t max_record, size_t max_body, pf_sx_record_fn fn,
                 void *ud, pf_error *err)
{
    return sx_create(t, max_record, max_body, fn, ud, 0, err);
}

void pf_sx_reset(pf_sx *sx)
{
    pf_js_reset(sx->js);
    for (size_t i = 0; i < sx->nframes; i++) {
        sx_frame *f = &sx->frames[i];
        if (f->table) memset(f->table, 0xff, f->table_size * sizeof *f->table);
        f->count = 0;
    }
    sx->nframes = 0;
    sx->pend_node = NULL;
    sx->pend_list = NULL;
    sx->in_rec = 0;
    sx->key_target = NO_SLOT;
    pf_buf_reset(&sx->rec);
    pf_buf_reset(&sx->names);
    sx->nentries = 0;
    pf_buf_reset(&sx->body);
    sx->failed = PF_OK;
    pf_error_clear(&sx->err);
    sx->finished = 0;
    memset(&sx->stats, 0, sizeof sx->stats);
}

void pf_sx_free(pf_sx *sx)
{
    if (!sx) return;
    pf_js_free(sx->js);
    node_free(sx->root);
    for (size_t i = 0; sx->frames && i < sx->max_frames; i++)
        free(sx->frames[i].table);
    free(sx->frames);
    pf_buf_free(&sx->rec);
    for (size_t i = 0; i < sx->nkeys_alloc; i++)
        pf_buf_free(&sx->keys[i]);
    free(sx->keys);
    free(sx->key_has);
    pf_buf_free(&sx->names);
    free(sx->entries);
    pf_buf_free(&sx->body);
    free(sx);
}

int pf_sx_is_streaming(const pf_sx *sx)
{
    return sx->streaming;
}

const char *pf_sx_buffered_reason(const pf_sx *sx)
{
    return sx->streaming ? "" : sx->reason;
}

void pf_sx_get_stats(const pf_sx *sx, pf_sx_stats *out)
{
    *out = sx->stats;
}

/* ---- errors ------------------------------------------------------------ */

/* Records ERR as the sticky error and returns its code. */
static pf_status sticky(pf_sx *sx, pf_status st, pf_error *err)
{
    if (err) {
        if (err->code != st || err->msg[0] == '\0')
            pf_error_set(err, st, "record extraction stopped: %s", pf_strerror(st));
        sx->err = *err;
    } else {
        pf_error_set(&sx->err, st, "record extraction stopped: %s", pf_strerror(st));
    }
    sx->failed = st;
    return st;
}

/* A tokenizer error, reworded for the response. */
static pf_status js_failed(pf_sx *sx, pf_status st, pf_error *e, pf_error *err)
{
    if (st == PF_ETOOBIG && sx->in_rec) {
        const pf_stream_def *sd = &sx->t->streams[sx->rec_list->streams[0]];
        /* pf_error_format adds " at offset N" (the record's first byte). */
        pf_error_off(e, st, (long)sx->rec_off,
                     "record of stream %s is larger than the record limit (%zu bytes, "
                     "source.http.max_record), the record starting",
                     sd->name, sx->max_record);
    }
    if (err) *err = *e;
    return sticky(sx, st, err ? err : e);
}

/* ---- member names on the paths ----------------------------------------- */

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static pf_status table_grow(pf_sx *sx, sx_frame *f)
{
    size_t ns = f->table_size ? f->table_size * 2 : 16;
    size_t *t = malloc(ns * sizeof *t);
    if (!t) return PF_ENOMEM;
    memset(t, 0xff, ns * sizeof *t);
    for (size_t i = f->entries_start; i < sx->nentries; i++) {
        size_t h = (size_t)sx->entries[i].hash & (ns - 1);
        while (t[h] != SIZE_MAX)
            h = (h + 1) & (ns - 1);
        t[h] = i;
    }
    free(f->table);
    f->table = t;
    f->table_size = ns;
    return PF_OK;
}

/* Adds the decoded name (NAME, LEN, already at the end of the names arena)
 * to frame F; PF_EDATA when F already has it. */
static pf_status name_add(pf_sx *sx, sx_frame *f, size_t off, size_t len)
{
    if ((f->count + 1) * 2 > f->table_size && table_grow(sx, f) != PF_OK) return PF_ENOMEM;
    const char *name = sx->names.data + off;
    uint64_t h = hash_bytes(name, len);
    size_t mask = f->table_size - 1, i = (size_t)h & mask;
    while (f->table[i] != SIZE_MAX) {
        const sx_entry *e = &sx->entries[f->table[i]];
        if (e->hash == h && e->len == len && memcmp(sx->names.data + e->off, name, len) == 0)
            return PF_EDATA;
        i = (i + 1) & mask;
    }
    if (sx->nentries == sx->entries_cap) {
        size_t nc = sx->entries_cap ? sx->entries_cap * 2 : 64;
        sx_entry *ne = realloc(sx->entries, nc * sizeof *ne);
        if (!ne) return PF_ENOMEM;
        sx->entries = ne;
        sx->entries_cap = nc;
    }
    sx->entries[sx->nentries] = (sx_entry){off, len, h};
    f->table[i] = sx->nentries++;
    f->count++;
    return PF_OK;
}

static pf_status frame_push(pf_sx *sx, const sx_node *node, int is_object, pf_error *err)
{
    if (sx->nframes >= sx->max_frames) /* cannot happen: frames follow the plan */
        return sticky(sx, pf_error_set(err, PF_EINVAL, "record extractor: path frames overflow"),
                      err);
    sx_frame *f = &sx->frames[sx->nframes++];
    f->node = node;
    f->is_object = is_object;
    f->names_start = sx->names.len;
    f->entries_start = sx->nentries;
    f->count = 0;
    return PF_OK;
}

static void frame_pop(pf_sx *sx)
{
    sx_frame *f = &sx->frames[--sx->nframes];
    if (f->count && f->table) memset(f->table, 0xff, f->table_size * sizeof *f->table);
    f->count = 0;
    sx->names.len = f->names_start;
    if (sx->names.data) sx->names.data[sx->names.len] = '\0';
    sx->nentries = f->entries_start;
}

/* ---- records ----------------------------------------------------------- */

static pf_status keys_prepare(pf_sx *sx, size_t n, pf_error *err)
{
    if (n > sx->nkeys_alloc) {
        pf_buf *k = realloc(sx->keys, n * sizeof *k);
        if (!k) goto nomem;
        sx->keys = k;
        int *h = realloc(sx->key_has, n * sizeof *h);
        if (!h) goto nomem;
        sx->key_has = h;
        for (size_t i = sx->nkeys_alloc; i < n; i++)
            pf_buf_init(&sx->keys[i], sx->max_record);
        sx->nkeys_alloc = n;
    }
    for (size_t i = 0; i < n; i++)
        sx->key_has[i] = 0;
    return PF_OK;
nomem:
    return sticky(sx, pf_error_set(err, PF_ENOMEM, "out of memory extracting records"), err);
}

/* Hands the record in sx->rec to every stream of L. KEYS_READ: the key
 * slots hold this record's member keys. SELF: for a scalar record, its
 * value as key $ sees it (a string's value or a number's text; NULL when
 * the record has no such key). */
static pf_status deliver(pf_sx *sx, const sx_list *l, int keys_read, const pf_buf *self,
                         pf_error *err)
{
    for (size_t i = 0; i < l->n; i++) {
        const pf_stream_def *sd = &sx->t->streams[l->streams[i]];
        pf_sink_record r = {0};
        r.stream = sd->name;
        r.json = sx->rec.data;
        r.json_len = sx->rec.len;
        size_t slot = l->slot[i];
        if (slot == SELF_SLOT && self) {
            r.key = self->data ? self->data : "";
            r.key_len = self->len;
        } else if (slot != NO_SLOT && slot != SELF_SLOT && keys_read && sx->key_has[slot]) {
            r.key = sx->keys[slot].data ? sx->keys[slot].data : "";
            r.key_len = sx->keys[slot].len;
        } else if (sd->key) {
            sx->stats.missing_keys++;
        }
        sx->stats.records++;
        if (err) pf_error_clear(err);
        pf_status st = sx->fn(sx->ud, &r, err);
        if (st != PF_OK) return sticky(sx, st, err);
    }
    return PF_OK;
}

/* A scalar value that is a record. */
static pf_status scalar_record(pf_sx *sx, const sx_list *l, const pf_js_event *ev, pf_error *err)
{
    if (sx->check_only) return PF_OK;
    pf_buf_reset(&sx->rec);
    pf_status st;
    switch (ev->token) {
    case PF_JS_STRING:
        st = pf_buf_putc(&sx->rec, '"');
        if (st == PF_OK) st = pf_buf_append(&sx->rec, ev->text, ev->len);
        if (st == PF_OK) st = pf_buf_putc(&sx->rec, '"');
        break;
    case PF_JS_NUMBER:
        st = pf_buf_append(&sx->rec, ev->text, ev->len);
        break;
    case PF_JS_TRUE:
        st = pf_buf_puts(&sx->rec, "true");
        break;
    case PF_JS_FALSE:
        st = pf_buf_puts(&sx->rec, "false");
        break;
    default:
        st = pf_buf_puts(&sx->rec, "null");
        break;
    }
    if (st == PF_ETOOBIG)
        return sticky(sx,
                      pf_error_off(err, st, (long)ev->offset,
                                   "record of stream %s is larger than the record limit (%zu "
                                   "bytes, source.http.max_record), the record starting",
                                   sx->t->streams[l->streams[0]].name, sx->max_record),
                      err);
    if (st != PF_OK)
        return sticky(sx, pf_error_set(err, st, "out of memory extracting records"), err);
    /* Key $ of a string or number record: the first key buffer holds it. */
    const pf_buf *self = NULL;
    if ((ev->token == PF_JS_STRING || ev->token == PF_JS_NUMBER) && l->has_self) {
        if ((st = keys_prepare(sx, 1, err)) != PF_OK) return st;
        pf_buf *k = &sx->keys[0];
        pf_buf_reset(k);
        st = pf_buf_append(k, ev->text, ev->len);
        if (st == PF_OK && ev->escaped) {
            k->len = pf_js_unescape(k->data, ev->len, k->data);
            k->data[k->len] = '\0';
        }
        if (st != PF_OK)
            return sticky(sx, pf_error_set(err, PF_ENOMEM, "out of memory reading a record key"),
                          err);
        self = k;
    }
    return deliver(sx, l, 0, self, err);
}

/* ---- the walk ---------------------------------------------------------- */

/* The length of a decoded member name as both paths see it: json-c keeps
 * names as C strings, so a name holding U+0000 (only possible through an
 * escape) ends there. */
static size_t name_len(const char *name, size_t len)
{
    const char *nul = memchr(name, '\0', len);
    return nul ? (size_t)(nul - name) : len;
}

static int is_begin(pf_js_token t)
{
    return t == PF_JS_OBJECT_BEGIN || t == PF_JS_ARRAY_BEGIN;
}

static int is_scalar(pf_js_token t)
{
    return t == PF_JS_STRING || t == PF_JS_NUMBER || t == PF_JS_TRUE || t == PF_JS_FALSE ||
           t == PF_JS_NULL;
}

/* An event inside the record being captured: key member names at the
 * record's first level, their values, and the record's end. */
static pf_status record_event(pf_sx *sx, const pf_js_event *ev, pf_error *err)
{
    const sx_list *l = sx->rec_list;
    if (ev->depth == sx->rec_depth && !is_begin(ev->token)) { /* the record's END */
        sx->in_rec = 0;
        pf_status st = deliver(sx, l, 1, NULL, err);
        pf_buf_reset(&sx->rec);
        return st;
    }
    if (ev->token == PF_JS_NAME) {
        /* Compare the decoded name with the key names. */
        char small[256];
        const char *name = ev->text;
        size_t len = ev->len;
        char *heap = NULL;
        if (ev->escaped) {
            char *dst = len <= sizeof small ? small : (heap = malloc(len));
            if (!dst)
                return sticky(sx, pf_error_set(err, PF_ENOMEM, "out of memory extracting records"),
                              err);
            len = pf_js_unescape(ev->text, ev->len, dst);
            len = name_len(dst, len);
            name = dst;
        }
        sx->key_target = NO_SLOT;
        for (size_t i = 0; i < l->nslots; i++)
            if (l->slot_len[i] == len && memcmp(l->slot_name[i], name, len) == 0) {
                sx->key_target = i;
                sx->key_has[i] = 0; /* the last occurrence wins */
            }
        free(heap);
        if (sx->key_target == NO_SLOT) pf_js_skip_value(sx->js);
        return PF_OK;
    }
    size_t slot = sx->key_target;
    sx->key_target = NO_SLOT;
    if (slot == NO_SLOT) return PF_OK;
    pf_buf *k = &sx->keys[slot];
    pf_buf_reset(k);
    pf_status st = PF_OK;
    if (ev->token == PF_JS_STRING) {
        if (ev->escaped) {
            st = pf_buf_append(k, ev->text, ev->len); /* reserve, then decode in place */
            if (st == PF_OK) {
                k->len = pf_js_unescape(k->data, ev->len, k->data);
                k->data[k->len] = '\0';
            }
        } else {
            st = pf_buf_append(k, ev->text, ev->len);
        }
        sx->key_has[slot] = 1;
    } else if (ev->token == PF_JS_NUMBER) {
        st = pf_buf_append(k, ev->text, ev->len);
        sx->key_has[slot] = 1;
    } else if (is_begin(ev->token)) {
        pf_js_skip_contents(sx->js, 0);
    }
    if (st != PF_OK) {
        sx->key_has[slot] = 0;
        return sticky(sx, pf_error_set(err, PF_ENOMEM, "out of memory reading a record key"), err);
    }
    return PF_OK;
}

/* A value starts where the plan says NODE (may be NULL) and L (may be NULL). */
static pf_status value_start(pf_sx *sx, const pf_js_event *ev, const sx_node *node,
                             const sx_list *l, pf_error *err)
{
    if (l && l->n) {
        if (is_scalar(ev->token)) return scalar_record(sx, l, ev, err);
        if (sx->check_only) {
            pf_js_skip_contents(sx->js, 0);
            return PF_OK;
        }
        pf_buf_reset(&sx->rec);
        pf_error e;
        pf_status st = pf_js_capture(sx->js, &sx->rec, &e);
        sx->in_rec = 1;
        sx->rec_list = l;
        sx->rec_depth = ev->depth;
        sx->rec_off = ev->offset;
        sx->key_target = NO_SLOT;
        if (st != PF_OK) return js_failed(sx, st, &e, err);
        if (l->nslots && (st = keys_prepare(sx, l->nslots, err)) != PF_OK) return st;
        /* Key members are read at the record's first level of an object;
         * otherwise nothing inside the record needs an event. */
        if (ev->token != PF_JS_OBJECT_BEGIN || !l->nslots) pf_js_skip_contents(sx->js, 1);
        return PF_OK;
    }
    if (!is_begin(ev->token)) return PF_OK;
    int obj = ev->token == PF_JS_OBJECT_BEGIN;
    if (node && (obj ? (node->nkids || node->nwild) : node->nwild != 0))
        return frame_push(sx, node, obj, err);
    pf_js_skip_contents(sx->js, 0);
    return PF_OK;
}

/* NAME (LEN bytes of UTF-8) for a message: at most N-1 bytes, cut at a
 * character boundary, control characters shown as '?'. */
static void show_name(const char *name, size_t len, char *out, size_t n)
{
    size_t k = len;
    if (len > n - 1) {
        k = n - 4; /* room for "..." */
        while (k > 0 && ((unsigned char)name[k] & 0xC0) == 0x80)
            k--;
    }
    for (size_t i = 0; i < k; i++)
        out[i] = (unsigned char)name[i] < 0x20 ? '?' : name[i];
    if (k < len) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* A member name in the object frame F. */
static pf_status name_event(pf_sx *sx, sx_frame *f, const pf_js_event *ev, pf_error *err)
{
    size_t off = sx->names.len;
    pf_status st = pf_buf_append(&sx->names, ev->text, ev->len);
    if (st == PF_ETOOBIG)
        return sticky(sx,
                      pf_error_off(err, st, (long)ev->offset,
                                   "an object on a record path has more than %zu bytes of "
                                   "member names, reached with the member",
                                   (size_t)PF_SX_MAX_PATH_NAMES),
                      err);
    if (st != PF_OK)
        return sticky(sx, pf_error_set(err, st, "out of memory extracting records"), err);
    size_t len = ev->len;
    if (ev->escaped) {
        len = pf_js_unescape(sx->names.data + off, ev->len, sx->names.data + off);
        len = name_len(sx->names.data + off, len);
        sx->names.len = off + len;
        sx->names.data[sx->names.len] = '\0';
    }
    st = name_add(sx, f, off, len);
    if (st == PF_EDATA) {
        char shown[80];
        show_name(sx->names.data + off, len, shown, sizeof shown);
        return sticky(sx,
                      pf_error_off(err, st, (long)ev->offset,
                                   "member name \"%s\" appears twice in an object on a record "
                                   "path",
                                   shown),
                      err);
    }
    if (st != PF_OK)
        return sticky(sx, pf_error_set(err, st, "out of memory extracting records"), err);
    const sx_node *c = NULL;
    const sx_node *n = f->node;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->name_len == len &&
            memcmp(n->kids[i]->name, sx->names.data + off, len) == 0) {
            c = n->kids[i];
            break;
        }
    sx->pend_node = c;
    sx->pend_list = c ? &c->named : &n->elem;
    if (sx->pend_list->n == 0 && !(c && (c->nkids || c->nwild))) pf_js_skip_value(sx->js);
    return PF_OK;
}

static pf_status walk_event(pf_sx *sx, const pf_js_event *ev, pf_error *err)
{
    if (sx->in_rec) return record_event(sx, ev, err);
    switch (ev->token) {
    case PF_JS_NAME:
        return name_event(sx, &sx->frames[sx->nframes - 1], ev, err);
    case PF_JS_OBJECT_END:
    case PF_JS_ARRAY_END:
        frame_pop(sx);
        return PF_OK;
    default:
        break;
    }
    /* A value starts. */
    if (sx->nframes == 0) return value_start(sx, ev, sx->root, &sx->root->named, err);
    const sx_frame *f = &sx->frames[sx->nframes - 1];
    if (f->is_object) return value_start(sx, ev, sx->pend_node, sx->pend_list, err);
    return value_start(sx, ev, NULL, &f->node->elem, err);
}

/* Pulls every event of the current chunk (or, after end of input, of the
 * rest of the document). */
static pf_status drain(pf_sx *sx, pf_error *err)
{
    pf_js_event ev;
    pf_error e;
    for (;;) {
        pf_status st = pf_js_next(sx->js, &ev, &e);
        if (st != PF_OK) return js_failed(sx, st, &e, err);
        if (ev.token == PF_JS_NONE || ev.token == PF_JS_EOF) return PF_OK;
        if (!sx->streaming) {
            /* Buffered mode only validates here. */
            if (is_begin(ev.token)) pf_js_skip_contents(sx->js, 0);
            continue;
        }
        st = walk_event(sx, &ev, err);
        if (st != PF_OK) return st;
    }
}

pf_status pf_sx_feed(pf_sx *sx, const char *data, size_t len, pf_error *err)
{
    if (sx->failed != PF_OK) {
        if (err) *err = sx->err;
        return sx->failed;
    }
    if (sx->finished)
        return pf_error_set(err, PF_EINVAL, "pf_sx_feed: the body was already finished");
    if (len == 0) return PF_OK;
    if (!sx->streaming && !sx->check_only) {
        pf_status st = pf_buf_append(&sx->body, data, len);
        if (st == PF_ETOOBIG)
            return sticky(sx,
                          pf_error_off(err, st, (long)sx->max_body,
                                       "response body is larger than max_body (%zu bytes)",
                                       sx->max_body),
                          err);
        if (st != PF_OK)
            return sticky(sx, pf_error_set(err, st, "out of memory buffering a response"), err);
    }
    sx->stats.bytes += len;
    pf_js_input(sx->js, data, len);
    return drain(sx, err);
}

static pf_status record_from_list(void *ud, const pf_sink_record *r, pf_error *err)
{
    pf_sx *sx = ud;
    sx->stats.records++;
    if (err) pf_error_clear(err);
    return sx->fn(sx->ud, r, err);
}

pf_status pf_sx_finish(pf_sx *sx, pf_error *err)
{
    if (sx->failed != PF_OK) {
        if (err) *err = sx->err;
        return sx->failed;
    }
    if (sx->finished)
        return pf_error_set(err, PF_EINVAL, "pf_sx_finish: the body was already finished");
    pf_js_end_input(sx->js);
    pf_status st = drain(sx, err);
    if (st != PF_OK) return st;
    sx->finished = 1;
    if (sx->streaming || sx->check_only) return PF_OK;
    pf_records recs = {0};
    /* The record limit holds on this path too (on the records as json-c
     * prints them), and the document's memory is bounded (extract.h). */
    pf_extract_limits lim = {.max_record = sx->max_record};
    st = pf_extract_records_ex(sx->t, sx->body.data ? sx->body.data : "", sx->body.len, &lim, &recs,
                               err);
    if (st != PF_OK) {
        pf_records_free(&recs); /* the array it may have grown */
        return sticky(sx, st, err);
    }
    sx->stats.missing_keys += recs.missing_keys;
    for (size_t i = 0; i < recs.count && st == PF_OK; i++)
        st = record_from_list(sx, &recs.recs[i], err);
    pf_records_free(&recs);
    if (st != PF_OK) return sticky(sx, st, err);
    return PF_OK;
}

/* ---- the buffered path's check: no object repeats a member name ------- */

/* json-c keeps one value per member name (the last), so a body whose
 * object repeats a name would lose the other values without a word, inside
 * a record as well as on the way to it. The buffered path refuses any such
 * body. Names are compared decoded (RFC 8259: "a" and "\u0061" are the same
 * name) and, as json-c keys are C strings, only up to a U+0000. */

/* Objects with at most this many names are searched linearly; larger ones
 * get a hash table. */
#define DN_SMALL 8
/* Top bit of dn_name.len: the name is in the arena, not in the body. */
#define DN_IN_ARENA ((size_t)1 << (sizeof(size_t) * 8 - 1))
#define DN_EMPTY SIZE_MAX

typedef struct dn_name {
    size_t off; /* in the body, or in the arena (len has DN_IN_ARENA) */
    size_t len; /* decoded length, | DN_IN_ARENA */
    uint64_t hash;
} dn_name;

/* One open container. */
typedef struct dn_level {
    size_t first;       /* index of the object's first name in dn_check.names */
    size_t arena_start; /* arena length when the object opened */
    int hashed;         /* the object's names are in TABLE */
    size_t *table;      /* open addressing over names; DN_EMPTY when free */
    size_t table_size;  /* 0 or a power of two; kept (empty) for the next object here */
} dn_level;

typedef struct dn_check {
    const char *body;
    size_t len;
    dn_level *levels; /* PF_EXTRACT_MAX_NESTING of them */
    size_t nlevels;   /* open containers */
    dn_name *names;   /* names of the open objects, innermost last */
    size_t nnames, cap;
    pf_buf arena; /* decoded escaped names (capped by the body length) */
} dn_check;

static const char *dn_text(const dn_check *c, const dn_name *n)
{
    return (n->len & DN_IN_ARENA) ? c->arena.data + n->off : c->body + n->off;
}

/* Puts names[I] into L's table (which has a free slot). */
static void dn_insert(const dn_check *c, dn_level *l, size_t i)
{
    size_t mask = l->table_size - 1, s = (size_t)c->names[i].hash & mask;
    while (l->table[s] != DN_EMPTY)
        s = (s + 1) & mask;
    l->table[s] = i;
}

/* Gives L (an object whose names are names[first..nnames), not in a
 * table yet unless SIZE is above the table's size) a table of at least SIZE
 * slots holding all its names. */
static pf_status dn_rehash(dn_check *c, dn_level *l, size_t size)
{
    if (size > l->table_size) {
        if (size > SIZE_MAX / sizeof *l->table) return PF_ENOMEM;
        size_t *t = malloc(size * sizeof *t);
        if (!t) return PF_ENOMEM;
        memset(t, 0xff, size * sizeof *t);
        free(l->table);
        l->table = t;
        l->table_size = size;
    } /* else: the table a previous object here left, emptied by dn_unhash */
    for (size_t i = l->first; i < c->nnames; i++)
        dn_insert(c, l, i);
    l->hashed = 1;
    return PF_OK;
}

/* Empties L's table: its names are taken out newest first, so that every
 * probe sequence still leads to the name looked for. O(names). */
static void dn_unhash(const dn_check *c, dn_level *l)
{
    size_t mask = l->table_size - 1;
    for (size_t i = c->nnames; i-- > l->first;) {
        size_t s = (size_t)c->names[i].hash & mask;
        while (l->table[s] != i)
            s = (s + 1) & mask;
        l->table[s] = DN_EMPTY;
    }
    l->hashed = 0;
}

/* The NAME event EV in the innermost open object. */
static pf_status dn_name_event(dn_check *c, const pf_js_event *ev, pf_error *err)
{
    dn_level *l = &c->levels[c->nlevels - 1];
    size_t off, len = ev->len, flag = 0;
    uintptr_t p = (uintptr_t)ev->text, b = (uintptr_t)c->body;
    if (!ev->escaped && p >= b && p - b <= c->len && ev->len <= c->len - (p - b)) {
        off = (size_t)(p - b); /* the name as it stands in the body */
    } else {
        off = c->arena.len;
        if (pf_buf_append(&c->arena, ev->text, ev->len) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory checking member names");
        if (ev->escaped) {
            len = pf_js_unescape(c->arena.data + off, ev->len, c->arena.data + off);
            len = name_len(c->arena.data + off, len);
            c->arena.len = off + len;
            c->arena.data[c->arena.len] = '\0';
        }
        flag = DN_IN_ARENA;
    }
    const char *text = flag ? c->arena.data + off : c->body + off;
    uint64_t h = hash_bytes(text, len);
    size_t count = c->nnames - l->first, dup = DN_EMPTY;
    if (!l->hashed) {
        for (size_t i = l->first; i < c->nnames && dup == DN_EMPTY; i++) {
            const dn_name *n = &c->names[i];
            if (n->hash == h && (n->len & ~DN_IN_ARENA) == len &&
                memcmp(dn_text(c, n), text, len) == 0)
                dup = i;
        }
    } else {
        size_t mask = l->table_size - 1;
        for (size_t s = (size_t)h & mask; l->table[s] != DN_EMPTY; s = (s + 1) & mask) {
            const dn_name *n = &c->names[l->table[s]];
            if (n->hash == h && (n->len & ~DN_IN_ARENA) == len &&
                memcmp(dn_text(c, n), text, len) == 0) {
                dup = l->table[s];
                break;
            }
        }
    }
    if (dup != DN_EMPTY) {
        char shown[80];
        show_name(text, len, shown, sizeof shown);
        return pf_error_off(err, PF_EDATA, (long)ev->offset,
                            "member name \"%s\" appears twice in one object (ppflow refuses "
                            "it rather than keep only one of the values), the second time",
                            shown);
    }
    if (c->nnames == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        dn_name *nn = nc <= SIZE_MAX / sizeof *nn ? realloc(c->names, nc * sizeof *nn) : NULL;
        if (!nn) return pf_error_set(err, PF_ENOMEM, "out of memory checking member names");
        c->names = nn;
        c->cap = nc;
    }
    c->names[c->nnames++] = (dn_name){off, len | flag, h};
    count++;
    if (l->hashed && count * 2 > l->table_size) {
        if (dn_rehash(c, l, l->table_size * 2) != PF_OK) goto nomem;
    } else if (l->hashed) {
        dn_insert(c, l, c->nnames - 1);
    } else if (count > DN_SMALL) {
        size_t size = 32; /* at least twice the names */
        while (size < count * 2)
            size *= 2;
        if (dn_rehash(c, l, size) != PF_OK) goto nomem;
    }
    return PF_OK;
nomem:
    c->nnames--;
    return pf_error_set(err, PF_ENOMEM, "out of memory checking member names");
}

/* Validates BODY as JSON (the tokenizer's checks, with the same errors as
 * pf_sx_feed/pf_sx_finish) and refuses an object with a repeated member
 * name. */
static pf_status check_names(const char *body, size_t len, int *empty, pf_error *err)
{
    pf_status st;
    pf_error e;
    dn_check c = {body, len, NULL, 0, NULL, 0, 0, {0}};
    pf_buf_init(&c.arena, len);
    pf_js *js = pf_js_new(PF_EXTRACT_MAX_NESTING, SIZE_MAX / 4, &e);
    c.levels = calloc(PF_EXTRACT_MAX_NESTING, sizeof *c.levels);
    if (!js || !c.levels) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory checking a response");
        goto out;
    }
    pf_js_input(js, body, len);
    pf_js_end_input(js);
    for (;;) {
        pf_js_event ev;
        st = pf_js_next(js, &ev, &e);
        if (st != PF_OK) {
            if (err) *err = e;
            goto out;
        }
        if (ev.token == PF_JS_EOF || ev.token == PF_JS_NONE) break;
        switch (ev.token) {
        case PF_JS_OBJECT_BEGIN:
        case PF_JS_ARRAY_BEGIN:
            if (c.nlevels == PF_EXTRACT_MAX_NESTING) { /* the tokenizer stops before */
                st = pf_error_off(err, PF_EDEPTH, (long)ev.offset, "nested too deep");
                goto out;
            }
            c.levels[c.nlevels].first = c.nnames;
            c.levels[c.nlevels].arena_start = c.arena.len;
            c.nlevels++;
            break;
        case PF_JS_OBJECT_END:
        case PF_JS_ARRAY_END: {
            dn_level *l = &c.levels[--c.nlevels];
            if (l->hashed) dn_unhash(&c, l);
            c.nnames = l->first;
            c.arena.len = l->arena_start;
            break;
        }
        case PF_JS_NAME:
            if ((st = dn_name_event(&c, &ev, err)) != PF_OK) goto out;
            break;
        default:
            break;
        }
    }
    if (empty) *empty = pf_js_empty(js);
    st = PF_OK;
out:
    for (size_t i = 0; c.levels && i < PF_EXTRACT_MAX_NESTING; i++)
        free(c.levels[i].table);
    free(c.levels);
    free(c.names);
    pf_buf_free(&c.arena);
    pf_js_free(js);
    return st;
}

pf_status pf_sx_check_body(const pf_template *t, const char *body, size_t len, int *empty,
                           pf_error *err)
{
    if (empty) *empty = 0;
    pf_sx *sx = sx_create(t, 0, 0, NULL, NULL, 1, err);
    if (!sx) return err ? err->code : PF_ENOMEM;
    if (!sx->streaming) {
        /* The buffered path: json-c would keep one value per name. */
        pf_sx_free(sx);
        return check_names(body, len, empty, err);
    }
    pf_status st = pf_sx_feed(sx, body, len, err);
    if (st == PF_OK) st = pf_sx_finish(sx, err);
    if (empty) *empty = st == PF_OK && pf_js_empty(sx->js);
    pf_sx_free(sx);
    return st;
}
