/* keyledger.c: a hash set of recently delivered records, each tagged with
 * its window end (open addressing, linear probing; see keyledger.h). */
#include "engine/keyledger.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t h; /* 0: empty (a real hash of 0 is stored as 1) */
    int64_t end_ms;
} slot;

struct pf_keyledger {
    slot *slots;
    size_t cap; /* power of two */
    size_t count;
};

pf_keyledger *pf_keyledger_new(void)
{
    pf_keyledger *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->cap = 1024;
    l->slots = calloc(l->cap, sizeof *l->slots);
    if (!l->slots) {
        free(l);
        return NULL;
    }
    return l;
}

void pf_keyledger_free(pf_keyledger *l)
{
    if (!l) return;
    free(l->slots);
    free(l);
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t pf_keyledger_hash(const char *stream, const char *key, size_t key_len, const char *json,
                           size_t json_len)
{
    uint64_t h = 1469598103934665603ULL;
    h = fnv(h, stream ? stream : "", stream ? strlen(stream) + 1 : 1);
    h = key ? fnv(fnv(h, "k", 1), key, key_len) : fnv(fnv(h, "j", 1), json, json_len);
    /* Final mix, so that nearby keys spread over the table. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static size_t find(const pf_keyledger *l, uint64_t h)
{
    size_t mask = l->cap - 1, i = (size_t)h & mask;
    while (l->slots[i].h && l->slots[i].h != h)
        i = (i + 1) & mask;
    return i;
}

int pf_keyledger_contains(const pf_keyledger *l, uint64_t h)
{
    if (!h) h = 1;
    return l->slots[find(l, h)].h == h;
}

static pf_status grow(pf_keyledger *l, pf_error *err)
{
    size_t ncap = l->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return pf_error_set(err, PF_ENOMEM, "out of memory growing the record ledger");
    slot *old = l->slots;
    size_t ocap = l->cap;
    l->slots = ns;
    l->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].h) l->slots[find(l, old[i].h)] = old[i];
    free(old);
    return PF_OK;
}

pf_status pf_keyledger_add(pf_keyledger *l, uint64_t h, int64_t end_ms, pf_error *err)
{
    if (!h) h = 1;
    size_t i = find(l, h);
    if (l->slots[i].h) {
        if (end_ms > l->slots[i].end_ms) l->slots[i].end_ms = end_ms;
        return PF_OK;
    }
    if (l->count >= PF_KEYLEDGER_MAX)
        return pf_error_set(err, PF_ETOOBIG,
                            "the late-arrival ledger holds %u records, its limit; shorten the "
                            "look-back",
                            (unsigned)PF_KEYLEDGER_MAX);
    if ((l->count + 1) * 4 > l->cap * 3) {
        pf_status st = grow(l, err);
        if (st != PF_OK) return st;
        i = find(l, h);
    }
    l->slots[i].h = h;
    l->slots[i].end_ms = end_ms;
    l->count++;
    return PF_OK;
}

void pf_keyledger_prune(pf_keyledger *l, int64_t before_ms)
{
    slot *ns = calloc(l->cap, sizeof *ns);
    if (!ns) return; /* out of memory: stale entries stay, which is harmless */
    slot *old = l->slots;
    l->slots = ns;
    l->count = 0;
    for (size_t i = 0; i < l->cap; i++) {
        if (old[i].h && old[i].end_ms >= before_ms) {
            l->slots[find(l, old[i].h)] = old[i];
            l->count++;
        }
    }
    free(old);
}

size_t pf_keyledger_count(const pf_keyledger *l)
{
    return l->count;
}

static int cmp_slot(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    if (x->end_ms != y->end_ms) return x->end_ms < y->end_ms ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

pf_status pf_keyledger_to_json(const pf_keyledger *l, char **out, pf_error *err)
{
    *out = NULL;
    slot *v = malloc((l->count ? l->count : 1) * sizeof *v);
    if (!v) return pf_error_set(err, PF_ENOMEM, "out of memory saving the record ledger");
    size_t n = 0;
    for (size_t i = 0; i < l->cap; i++)
        if (l->slots[i].h) v[n++] = l->slots[i];
    qsort(v, n, sizeof *v, cmp_slot);
    /* {"v":1,"windows":[{"end":MS,"keys":"..."}]}: at most 64 bytes of
     * framing per window plus 16 per key. */
    size_t cap = 32 + n * 80, o = 0;
    char *s = malloc(cap);
    if (!s) {
        free(v);
        return pf_error_set(err, PF_ENOMEM, "out of memory saving the record ledger");
    }
    o += (size_t)snprintf(s + o, cap - o, "{\"v\":1,\"windows\":[");
    for (size_t i = 0; i < n;) {
        o += (size_t)snprintf(s + o, cap - o, "%s{\"end\":%lld,\"keys\":\"", i ? "," : "",
                              (long long)v[i].end_ms);
        int64_t end = v[i].end_ms;
        for (; i < n && v[i].end_ms == end; i++)
            o += (size_t)snprintf(s + o, cap - o, "%016llx", (unsigned long long)v[i].h);
        o += (size_t)snprintf(s + o, cap - o, "\"}");
    }
    snprintf(s + o, cap - o, "]}");
    free(v);
    *out = s;
    return PF_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

pf_status pf_keyledger_from_json(const char *text, size_t len, pf_keyledger **out, pf_error *err)
{
    *out = NULL;
    json_tokener *tok = json_tokener_new_ex(8);
    json_object *root = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    int good = tok && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    json_object *v, *wins;
    pf_keyledger *l = NULL;
    if (!good || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "v", &v) || json_object_get_int(v) != 1 ||
        !json_object_object_get_ex(root, "windows", &wins) ||
        !json_object_is_type(wins, json_type_array))
        goto bad;
    if (!(l = pf_keyledger_new())) {
        json_object_put(root);
        return pf_error_set(err, PF_ENOMEM, "out of memory reading the record ledger");
    }
    for (size_t i = 0; i < json_object_array_length(wins); i++) {
        json_object *w = json_object_array_get_idx(wins, i), *end, *keys;
        if (!json_object_is_type(w, json_type_object) ||
            !json_object_object_get_ex(w, "end", &end) ||
            !json_object_is_type(end, json_type_int) ||
            !json_object_object_get_ex(w, "keys", &keys) ||
            !json_object_is_type(keys, json_type_string))
            goto bad;
        const char *k = json_object_get_string(keys);
        size_t kl = (size_t)json_object_get_string_len(keys);
        if (kl % 16) goto bad;
        for (size_t p = 0; p < kl; p += 16) {
            uint64_t h = 0;
            for (size_t j = 0; j < 16; j++) {
                int d = hexval(k[p + j]);
                if (d < 0) goto bad;
                h = h << 4 | (uint64_t)d;
            }
            pf_status st = pf_keyledger_add(l, h, json_object_get_int64(end), err);
            if (st != PF_OK) {
                pf_keyledger_free(l);
                json_object_put(root);
                return st;
            }
        }
    }
    json_object_put(root);
    *out = l;
    return PF_OK;
bad:
    pf_keyledger_free(l);
    json_object_put(root);
    return pf_error_set(err, PF_ESTATE, "the checkpoint's record ledger is damaged");
}
