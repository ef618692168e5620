/* keyledger.c: a hash set of recently delivered records, each tagged with
 * its window end (open addressing, linear probing), the count of records
 * per window (for the exact size of its JSON), and the room-making that
 * keeps that JSON within its limit (see keyledger.h). */
#include "engine/keyledger.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t h; /* 0: empty (a real hash of 0 is stored as 1) */
    int64_t end_ms;
} slot;

/* A window end and how many entries carry it. */
typedef struct win {
    int64_t end_ms;
    size_t n;  /* 0: no entry left (the slot stays until the next rebuild) */
    int used; /* the slot holds a window */
} win;

struct pf_keyledger {
    slot *slots;
    size_t cap; /* power of two */
    size_t count;
    win *wins;
    size_t wcap;  /* power of two */
    size_t wused; /* slots holding a window, with or without entries */
    size_t wlive; /* windows with entries */
    size_t frames; /* JSON bytes of the live windows' framing, without commas */
    size_t max_json;
    int has_horizon;
    int64_t horizon_ms;
};

/* {"v":1,"windows":[]} */
#define JSON_BASE 20
/* "horizon":MS, (without the digits) */
#define JSON_HORIZON 11
/* {"end":MS,"keys":""} (without the digits) */
#define JSON_FRAME 18
/* A horizon that may still have to be written: always kept free. */
#define HORIZON_ROOM (JSON_HORIZON + 20)

static size_t digits(int64_t v)
{
    size_t n = v < 0 ? 2 : 1;
    for (uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; u >= 10; u /= 10)
        n++;
    return n;
}

size_t pf_keyledger_json_size(const pf_keyledger *l)
{
    return JSON_BASE + (l->has_horizon ? JSON_HORIZON + digits(l->horizon_ms) : 0) + l->frames +
           (l->wlive ? l->wlive - 1 : 0) + 16 * l->count;
}

/* The bytes the entries may take: the limit less room for a horizon. */
static size_t budget(const pf_keyledger *l)
{
    return l->max_json - HORIZON_ROOM;
}

pf_keyledger *pf_keyledger_new_limited(size_t max_json)
{
    pf_keyledger *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->cap = 1024;
    l->wcap = 64;
    l->slots = calloc(l->cap, sizeof *l->slots);
    l->wins = calloc(l->wcap, sizeof *l->wins);
    if (!l->slots || !l->wins) {
        pf_keyledger_free(l);
        return NULL;
    }
    l->max_json = max_json < PF_KEYLEDGER_MIN_JSON ? PF_KEYLEDGER_MIN_JSON : max_json;
    return l;
}

pf_keyledger *pf_keyledger_new(void)
{
    return pf_keyledger_new_limited(PF_KEYLEDGER_MAX_JSON);
}

void pf_keyledger_free(pf_keyledger *l)
{
    if (!l) return;
    free(l->slots);
    free(l->wins);
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

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

uint64_t pf_keyledger_hash(const char *stream, const char *key, size_t key_len, const char *json,
                           size_t json_len)
{
    uint64_t h = 1469598103934665603ULL;
    h = fnv(h, stream ? stream : "", stream ? strlen(stream) + 1 : 1);
    h = key ? fnv(fnv(h, "k", 1), key, key_len) : fnv(fnv(h, "j", 1), json, json_len);
    /* Final mix, so that nearby keys spread over the table. */
    h = mix(h);
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

/* ---- windows ------------------------------------------------------------ */

static size_t find_win(const win *w, size_t wcap, int64_t end_ms)
{
    size_t mask = wcap - 1, i = (size_t)mix((uint64_t)end_ms) & mask;
    while (w[i].used && w[i].end_ms != end_ms)
        i = (i + 1) & mask;
    return i;
}

/* Makes room for one more window slot. */
static pf_status reserve_win(pf_keyledger *l)
{
    if ((l->wused + 1) * 2 <= l->wcap) return PF_OK;
    size_t ncap = l->wcap * 2;
    win *nw = calloc(ncap, sizeof *nw);
    if (!nw) return PF_ENOMEM;
    for (size_t i = 0; i < l->wcap; i++)
        if (l->wins[i].used) nw[find_win(nw, ncap, l->wins[i].end_ms)] = l->wins[i];
    free(l->wins);
    l->wins = nw;
    l->wcap = ncap;
    return PF_OK;
}

/* The window END_MS, or NULL when L has none with entries. */
static win *live_win(const pf_keyledger *l, int64_t end_ms)
{
    win *w = &l->wins[find_win(l->wins, l->wcap, end_ms)];
    return w->used && w->n ? w : NULL;
}

/* One more entry in window END_MS (its slot was reserved). */
static void win_inc(pf_keyledger *l, int64_t end_ms)
{
    win *w = &l->wins[find_win(l->wins, l->wcap, end_ms)];
    if (!w->used) {
        *w = (win){end_ms, 0, 1};
        l->wused++;
    }
    if (w->n++ == 0) {
        l->wlive++;
        l->frames += JSON_FRAME + digits(end_ms);
    }
}

static void win_dec(pf_keyledger *l, int64_t end_ms)
{
    win *w = &l->wins[find_win(l->wins, l->wcap, end_ms)];
    if (--w->n == 0) {
        l->wlive--;
        l->frames -= JSON_FRAME + digits(end_ms);
    }
}

/* Bytes one more window of END_MS adds to the JSON (its framing and comma). */
static size_t window_cost(const pf_keyledger *l, int64_t end_ms)
{
    return JSON_FRAME + digits(end_ms) + (l->wlive ? 1 : 0);
}

/* ---- growth, pruning, room --------------------------------------------- */

static pf_status grow(pf_keyledger *l)
{
    size_t ncap = l->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return PF_ENOMEM;
    slot *old = l->slots;
    size_t ocap = l->cap;
    l->slots = ns;
    l->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].h) l->slots[find(l, old[i].h)] = old[i];
    free(old);
    return PF_OK;
}

/* Keeps only the entries whose window ends at or after KEEP_FROM, rebuilding
 * the table and the windows. PF_ENOMEM with L unchanged. */
static pf_status rebuild(pf_keyledger *l, int64_t keep_from)
{
    size_t wcap = 64, live = 0;
    for (size_t i = 0; i < l->wcap; i++)
        if (l->wins[i].used && l->wins[i].n && l->wins[i].end_ms >= keep_from) live++;
    while (wcap < 2 * (live + 1))
        wcap *= 2;
    slot *ns = calloc(l->cap, sizeof *ns);
    win *nw = calloc(wcap, sizeof *nw);
    if (!ns || !nw) {
        free(ns);
        free(nw);
        return PF_ENOMEM;
    }
    slot *old = l->slots;
    free(l->wins);
    l->slots = ns;
    l->wins = nw;
    l->wcap = wcap;
    l->count = l->wused = l->wlive = l->frames = 0;
    for (size_t i = 0; i < l->cap; i++) {
        if (old[i].h && old[i].end_ms >= keep_from) {
            l->slots[find(l, old[i].h)] = old[i];
            l->count++;
            win_inc(l, old[i].end_ms);
        }
    }
    free(old);
    return PF_OK;
}

void pf_keyledger_prune(pf_keyledger *l, int64_t before_ms)
{
    if (rebuild(l, before_ms) != PF_OK) return; /* stale entries stay, which is harmless */
    if (l->has_horizon && l->horizon_ms < before_ms) l->has_horizon = 0;
}

static int cmp_end(const void *a, const void *b)
{
    const win *x = a, *y = b;
    return x->end_ms < y->end_ms ? -1 : x->end_ms > y->end_ms;
}

static void set_horizon(pf_keyledger *l, int64_t end_ms)
{
    if (!l->has_horizon || end_ms > l->horizon_ms) l->horizon_ms = end_ms;
    l->has_horizon = 1;
}

/* Forgets whole windows ending before END_MS, oldest first, until NEED
 * more bytes fit with an eighth of the limit to spare (or no such window
 * is left). PF_ENOMEM with L unchanged. */
static pf_status make_room(pf_keyledger *l, int64_t end_ms, size_t need)
{
    size_t n = 0;
    for (size_t i = 0; i < l->wcap; i++)
        if (l->wins[i].used && l->wins[i].n && l->wins[i].end_ms < end_ms) n++;
    if (n == 0) return PF_OK;
    win *v = malloc(n * sizeof *v);
    if (!v) return PF_ENOMEM;
    n = 0;
    for (size_t i = 0; i < l->wcap; i++)
        if (l->wins[i].used && l->wins[i].n && l->wins[i].end_ms < end_ms) v[n++] = l->wins[i];
    qsort(v, n, sizeof *v, cmp_end);
    size_t target = budget(l) - budget(l) / 8, size = pf_keyledger_json_size(l);
    size_t k = 0;
    int64_t last = 0;
    /* (The sizes here are estimates, one comma per window; the rebuild
     * counts exactly.) */
    while (k < n && size + need > target) {
        size_t freed = 16 * v[k].n + JSON_FRAME + digits(v[k].end_ms) + 1;
        size = freed < size ? size - freed : 0;
        last = v[k++].end_ms;
    }
    free(v);
    if (k == 0) return PF_OK;
    pf_status st = rebuild(l, last + 1);
    if (st == PF_OK) set_horizon(l, last);
    return st;
}

pf_status pf_keyledger_add(pf_keyledger *l, uint64_t h, int64_t end_ms, pf_error *err)
{
    if (!h) h = 1;
    size_t i = find(l, h);
    if (l->slots[i].h) {
        /* Already there: keep the later end, if moving it to that window
         * fits (it can only need the window's framing). */
        int64_t old = l->slots[i].end_ms;
        if (end_ms <= old) return PF_OK;
        size_t need = live_win(l, end_ms) ? 0 : window_cost(l, end_ms);
        if (pf_keyledger_json_size(l) + need > budget(l)) return PF_OK;
        if (reserve_win(l) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory growing the record ledger");
        i = find(l, h);
        win_dec(l, old);
        win_inc(l, end_ms);
        l->slots[i].end_ms = end_ms;
        return PF_OK;
    }
    size_t need = 16 + (live_win(l, end_ms) ? 0 : window_cost(l, end_ms));
    if (pf_keyledger_json_size(l) + need > budget(l)) {
        /* Full. A record no newer than the horizon is not worth a search. */
        if (l->has_horizon && end_ms <= l->horizon_ms) return PF_OK;
        if (make_room(l, end_ms, need) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory making room in the record ledger");
        need = 16 + (live_win(l, end_ms) ? 0 : window_cost(l, end_ms));
        if (pf_keyledger_json_size(l) + need > budget(l)) {
            /* Nothing older to forget: this window is not remembered whole. */
            set_horizon(l, end_ms);
            return PF_OK;
        }
        i = find(l, h);
    }
    if (reserve_win(l) != PF_OK)
        return pf_error_set(err, PF_ENOMEM, "out of memory growing the record ledger");
    if ((l->count + 1) * 4 > l->cap * 3) {
        if (grow(l) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory growing the record ledger");
        i = find(l, h);
    }
    l->slots[i].h = h;
    l->slots[i].end_ms = end_ms;
    l->count++;
    win_inc(l, end_ms);
    return PF_OK;
}

size_t pf_keyledger_count(const pf_keyledger *l)
{
    return l->count;
}

int pf_keyledger_horizon(const pf_keyledger *l, int64_t *end_ms)
{
    if (l->has_horizon) *end_ms = l->horizon_ms;
    return l->has_horizon;
}

/* ---- JSON --------------------------------------------------------------- */

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
    size_t size = pf_keyledger_json_size(l);
    char *s = malloc(size + 1);
    if (!v || !s) {
        free(v);
        free(s);
        return pf_error_set(err, PF_ENOMEM, "out of memory saving the record ledger");
    }
    size_t n = 0;
    for (size_t i = 0; i < l->cap; i++)
        if (l->slots[i].h) v[n++] = l->slots[i];
    qsort(v, n, sizeof *v, cmp_slot);
    /* SIZE is exact: every snprintf below fits. */
    size_t o = 0, cap = size + 1;
    o += (size_t)snprintf(s + o, cap - o, "{\"v\":1,");
    if (l->has_horizon)
        o += (size_t)snprintf(s + o, cap - o, "\"horizon\":%lld,", (long long)l->horizon_ms);
    o += (size_t)snprintf(s + o, cap - o, "\"windows\":[");
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

/* 1 and *OUT when V is an integer from 0 to PF_STATE_MAX_COUNT. */
static int get_time(json_object *v, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int)) return 0;
    int64_t n = json_object_get_int64(v);
    if (n < 0 || n > PF_STATE_MAX_COUNT) return 0;
    *out = n;
    return 1;
}

pf_status pf_keyledger_from_json_limited(const char *text, size_t len, size_t max_json,
                                         pf_keyledger **out, pf_error *err)
{
    *out = NULL;
    if (len > INT32_MAX) return pf_error_set(err, PF_ESTATE, "the record ledger is too large");
    json_tokener *tok = json_tokener_new_ex(8);
    if (!tok) return pf_error_set(err, PF_ENOMEM, "out of memory reading the record ledger");
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    int good = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    json_object *v, *wins;
    int64_t horizon = 0;
    pf_keyledger *l = NULL;
    if (!good || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "v", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) != 1 || !json_object_object_get_ex(root, "windows", &wins) ||
        !json_object_is_type(wins, json_type_array))
        goto bad;
    if (json_object_object_get_ex(root, "horizon", &v) && !get_time(v, &horizon)) goto bad;
    if (!(l = pf_keyledger_new_limited(max_json))) {
        json_object_put(root);
        return pf_error_set(err, PF_ENOMEM, "out of memory reading the record ledger");
    }
    if (json_object_object_get_ex(root, "horizon", &v)) set_horizon(l, horizon);
    for (size_t i = 0; i < json_object_array_length(wins); i++) {
        json_object *w = json_object_array_get_idx(wins, i), *end, *keys;
        int64_t end_ms;
        if (!json_object_is_type(w, json_type_object) ||
            !json_object_object_get_ex(w, "end", &end) || !get_time(end, &end_ms) ||
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
            pf_status st = pf_keyledger_add(l, h, end_ms, err);
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

pf_status pf_keyledger_from_json(const char *text, size_t len, pf_keyledger **out, pf_error *err)
{
    return pf_keyledger_from_json_limited(text, len, PF_KEYLEDGER_MAX_JSON, out, err);
}
