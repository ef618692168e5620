/* quota.c: the rolling 24-hour call ledger shared by the flows of one state
 * directory (see quota.h): its lock (a private file, see util/safefile.h),
 * reading it as untrusted input and rewriting it atomically. */
#include "engine/quota.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/safefile.h"

#define LEDGER_VERSION 1
#define LEDGER_MAX_BYTES (64u << 20)

void pf_quota_key(const char *pool, const char *principal, char out[PF_QUOTA_KEY_SIZE])
{
    /* FNV-1a: identifies the credential without storing it. */
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)(principal ? principal : ""); *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, PF_QUOTA_KEY_SIZE, "%.80s:%016llx", pool, (unsigned long long)h);
}

int pf_quota_path(const char *state_path, char *out, size_t len)
{
    const char *slash = strrchr(state_path, '/');
    int n =
        slash ? snprintf(out, len, "%.*s/ppflow-quota.json", (int)(slash - state_path), state_path)
              : snprintf(out, len, "ppflow-quota.json");
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Takes the ledger's lock (waiting for other processes); -1 with ERR. The
 * state directory is checked first, the lock file is opened with
 * pf_open_private, and once it is held the ledger's stale temporary files
 * are removed (every writer of the ledger holds this lock). */
static int lock_ledger(const char *ledger, pf_error *err)
{
    char lp[4200];
    if (snprintf(lp, sizeof lp, "%s.lock", ledger) >= (int)sizeof lp) {
        pf_error_set(err, PF_ESTATE, "quota ledger path is too long: %.200s", ledger);
        return -1;
    }
    pf_error e;
    pf_error_clear(&e);
    if (pf_mkdirs_for(lp, err) != PF_OK) return -1;
    if (pf_check_dir_of(ledger, "state directory", &e) != PF_OK) {
        pf_error_set(err, PF_ESTATE, "%s", e.msg);
        return -1;
    }
    int fd = pf_open_private(lp, O_RDWR | O_CREAT, "cannot open quota ledger lock", &e);
    if (fd < 0) {
        pf_error_set(err, PF_ESTATE, "%s", e.msg);
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            pf_error_set(err, PF_ESTATE, "cannot lock %s: %s", lp, strerror(errno));
            close(fd);
            return -1;
        }
    }
    pf_remove_stale_temps(ledger);
    return fd;
}

/* Loads the ledger's "calls" object (a new empty one when missing). */
static pf_status load(const char *ledger, json_object **root, pf_error *err)
{
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    pf_error_clear(&e);
    *root = NULL;
    pf_status st = pf_read_file(ledger, LEDGER_MAX_BYTES, &text, &len, &e);
    if (st == PF_ENOTFOUND) {
        json_object *o = json_object_new_object();
        if (!o) return pf_error_set(err, PF_ENOMEM, "out of memory");
        json_object_object_add(o, "version", json_object_new_int(LEDGER_VERSION));
        json_object_object_add(o, "calls", json_object_new_object());
        *root = o;
        return PF_OK;
    }
    if (st != PF_OK) return pf_error_set(err, PF_ESTATE, "quota ledger %s: %s", ledger, e.msg);
    json_tokener *tok = json_tokener_new_ex(8);
    json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    int good = tok && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    free(text);
    json_object *v, *calls;
    if (!good || !json_object_is_type(o, json_type_object) ||
        !json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) != LEDGER_VERSION ||
        !json_object_object_get_ex(o, "calls", &calls) ||
        !json_object_is_type(calls, json_type_object)) {
        json_object_put(o);
        return pf_error_set(err, PF_ESTATE,
                            "quota ledger %s is damaged; remove it to start counting afresh "
                            "(calls of the last 24 hours are then not known)",
                            ledger);
    }
    *root = o;
    return PF_OK;
}

static json_object *calls_of(json_object *root)
{
    json_object *calls = NULL;
    json_object_object_get_ex(root, "calls", &calls);
    return calls;
}

/* Counts KEY's entries after NOW - 24 h; *OLDEST is the oldest such entry. */
static long count_recent(json_object *arr, int64_t now, int64_t *oldest)
{
    long n = 0;
    *oldest = INT64_MAX;
    size_t len =
        arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < len; i++) {
        int64_t t = json_object_get_int64(json_object_array_get_idx(arr, i));
        if (t > now - PF_QUOTA_PERIOD_MS && t <= now) {
            n++;
            if (t < *oldest) *oldest = t;
        }
    }
    return n;
}

pf_status pf_quota_when_free(const char *ledger, const char *key, int64_t now, long budget,
                             long need, long *used, int64_t *free_at_ms, pf_error *err)
{
    *used = 0;
    *free_at_ms = now;
    if (need < 1) need = 1;
    if (budget > 0 && need > budget) need = budget;
    /* Reading creates nothing: no ledger yet means no calls. */
    if (access(ledger, F_OK) != 0 && errno == ENOENT) return PF_OK;
    int fd = lock_ledger(ledger, err);
    if (fd < 0) return err ? err->code : PF_ESTATE;
    json_object *root = NULL;
    pf_status st = load(ledger, &root, err);
    if (st == PF_OK) {
        json_object *arr = NULL;
        json_object_object_get_ex(calls_of(root), key, &arr);
        int64_t oldest;
        *used = count_recent(arr, now, &oldest);
        if (budget > 0 && *used + need > budget && oldest != INT64_MAX) {
            /* NEED calls fit once the (used + need - budget)-th oldest call
             * of the window has left it. */
            size_t len = json_object_array_length(arr);
            int64_t *ts = malloc((len ? len : 1) * sizeof *ts);
            if (!ts) {
                st = pf_error_set(err, PF_ENOMEM, "out of memory");
            } else {
                size_t k = 0;
                for (size_t i = 0; i < len; i++) {
                    int64_t t = json_object_get_int64(json_object_array_get_idx(arr, i));
                    if (t > now - PF_QUOTA_PERIOD_MS && t <= now) ts[k++] = t;
                }
                /* A partial selection sort up to the wanted rank (entries
                 * are appended in time order, so this is usually short). */
                size_t want = (size_t)(*used + need - budget - 1);
                for (size_t i = 0; i <= want && i < k; i++) {
                    size_t m = i;
                    for (size_t j = i + 1; j < k; j++)
                        if (ts[j] < ts[m]) m = j;
                    int64_t tmp = ts[i];
                    ts[i] = ts[m];
                    ts[m] = tmp;
                }
                *free_at_ms = ts[want < k ? want : k - 1] + PF_QUOTA_PERIOD_MS;
                free(ts);
            }
        }
    }
    json_object_put(root);
    close(fd);
    return st;
}

pf_status pf_quota_usage(const char *ledger, const char *key, int64_t now, long budget, long *used,
                         int64_t *next_free_ms, pf_error *err)
{
    return pf_quota_when_free(ledger, key, now, budget, 1, used, next_free_ms, err);
}

pf_status pf_quota_record(const char *ledger, const char *key, int64_t now, long n, pf_error *err)
{
    if (n <= 0) return PF_OK;
    int fd = lock_ledger(ledger, err);
    if (fd < 0) return err ? err->code : PF_ESTATE;
    json_object *root = NULL;
    pf_status st = load(ledger, &root, err);
    if (st != PF_OK) goto out;
    json_object *calls = calls_of(root);
    /* Rebuild every key's list without entries older than 24 h. */
    json_object *fresh = json_object_new_object();
    if (!fresh) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
        goto out;
    }
    json_object_object_foreach(calls, k, arr)
    {
        if (!json_object_is_type(arr, json_type_array)) continue;
        json_object *keep = json_object_new_array();
        if (!keep) continue;
        size_t len = json_object_array_length(arr);
        for (size_t i = 0; i < len; i++) {
            int64_t t = json_object_get_int64(json_object_array_get_idx(arr, i));
            if (t > now - PF_QUOTA_PERIOD_MS) json_object_array_add(keep, json_object_new_int64(t));
        }
        if (json_object_array_length(keep))
            json_object_object_add(fresh, k, keep);
        else
            json_object_put(keep);
    }
    json_object *mine = NULL;
    if (!json_object_object_get_ex(fresh, key, &mine)) {
        mine = json_object_new_array();
        json_object_object_add(fresh, key, mine);
    }
    for (long i = 0; i < n && mine; i++) {
        if (json_object_array_length(mine) >= PF_QUOTA_MAX_CALLS)
            json_object_array_del_idx(mine, 0, 1);
        json_object_array_add(mine, json_object_new_int64(now));
    }
    json_object_object_add(root, "calls", fresh);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    if (!text) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
        goto out;
    }
    pf_error e;
    pf_error_clear(&e);
    if (pf_write_file_atomic(ledger, text, strlen(text), &e) != PF_OK)
        st = pf_error_set(err, PF_ESTATE, "cannot write quota ledger: %s", e.msg);
out:
    json_object_put(root);
    close(fd);
    return st;
}
