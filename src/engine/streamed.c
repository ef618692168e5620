/* streamed.c: streamed units: records reach the sink while the body arrives.
 *
 * For templates whose record paths stream, a unit's records are written to
 * the sink in batches (sink.batch_records, sink.batch_bytes) while the
 * response is still arriving, so a run's memory does not depend on the size
 * of a response. The unit's last commit carries its checkpoint. What happens
 * on failure:
 *   - an HTTP retry in the middle of the body reopens the sink, which takes
 *     back what this unit wrote, and the unit starts again;
 *   - a sink RETRY reopens the sink and the unit is delivered again;
 *   - a sink ERROR (a refused record) has the records isolated (deadletter.c);
 *   - a commit whose answer was lost is settled by asking the sink for its
 *     stored checkpoint before anything is sent again. */
#include <stdlib.h>
#include <string.h>

#include "engine/run.h"
#include "engine/spool.h"
#include "engine/keyledger.h"
#include "http/http.h"
#include "util/log.h"
#include "util/progress.h"

/* ---- streamed units: records reach the sink while the body arrives ------- */

static void us_clear(unit_stream *u)
{
    pf_buf_reset(&u->bytes);
    u->count = 0;
    u->hashes.n = 0;
    u->fetched = u->dropped = u->written = 0;
}

static void us_free(unit_stream *u)
{
    pf_buf_free(&u->bytes);
    free(u->recs);
    free(u->off);
    free(u->hashes.v);
}

/* Appends a copy of REC to the batch. */
static pf_status us_push(unit_stream *u, const pf_sink_record *rec, pf_error *err)
{
    if (u->count == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 256;
        pf_sink_record *r = realloc(u->recs, cap * sizeof *r);
        if (r) u->recs = r;
        size_t *o = r ? realloc(u->off, 2 * cap * sizeof *o) : NULL;
        if (!o) return pf_error_set(err, PF_ENOMEM, "out of memory");
        u->off = o;
        u->cap = cap;
    }
    size_t j = u->bytes.len;
    if (pf_buf_append(&u->bytes, rec->json, rec->json_len) != PF_OK ||
        (rec->key && pf_buf_append(&u->bytes, rec->key, rec->key_len) != PF_OK))
        return pf_error_set(err, PF_ENOMEM, "out of memory");
    u->off[2 * u->count] = j;
    u->off[2 * u->count + 1] = j + rec->json_len;
    u->recs[u->count] = *rec;
    u->count++;
    return PF_OK;
}

/* Whether every record of the unit so far is in the spool, so that the sink
 * can be given them again without another API call. */
static int spooled(const run_ctx *c)
{
    return c->spool && pf_spool_usable(c->spool);
}

/* Writes the batch to the sink (no commit). On a sink failure, records the
 * sink's answer in U: when the unit is spooled (and the answer is not
 * FATAL) the fetch goes on, the rest of the body going to the spool only,
 * and the unit is delivered from the spool afterwards; otherwise returns
 * PF_ESINK, which stops the fetch. */
static pf_status us_flush(run_ctx *c, unit_stream *u, pf_error *err)
{
    if (!u->count) return PF_OK;
    if (u->sink_r != PF_SINK_OK) {
        /* The sink failed already: these records wait in the spool (us_take
         * stops the fetch when the spool cannot hold them). */
        u->count = 0;
        pf_buf_reset(&u->bytes);
        return PF_OK;
    }
    for (size_t i = 0; i < u->count; i++) {
        u->recs[i].json = u->bytes.data + u->off[2 * i];
        if (u->recs[i].key) u->recs[i].key = u->bytes.data + u->off[2 * i + 1];
    }
    pf_error_clear(&u->sink_err);
    pf_sink_result r = pf_sink_write(c->sink, u->recs, u->count, &u->sink_err);
    u->written += u->count;
    u->count = 0;
    pf_buf_reset(&u->bytes);
    pf_progress_update(&c->progress, c->stats->windows, c->stats->records + (long long)u->written,
                       c->stats->bytes + c->sx_bytes, 0);
    if (r == PF_SINK_OK) return PF_OK;
    u->sink_r = r;
    if (r != PF_SINK_FATAL && spooled(c)) return PF_OK;
    if (err) *err = u->sink_err;
    if (r == PF_SINK_FATAL) return pf_run_sink_fatal(c, err);
    return PF_ESINK;
}

/* Keeps REC for the unit: in the spool, and in the batch while the sink
 * takes records. */
static pf_status us_take(run_ctx *c, unit_stream *u, const pf_sink_record *rec, pf_error *err)
{
    if (spooled(c)) {
        pf_error se;
        pf_error_clear(&se);
        if (pf_spool_append(c->spool, rec, &se) != PF_OK) {
            if (se.code == PF_ENOMEM) {
                if (err) *err = se;
                return PF_ENOMEM;
            }
            pf_log_warn("%s; should the sink fail in this unit, the unit is fetched again", se.msg);
        }
    }
    if (u->sink_r != PF_SINK_OK) {
        if (spooled(c)) return PF_OK;
        if (err) *err = u->sink_err;
        return PF_ESINK;
    }
    if (us_push(u, rec, err) != PF_OK) return PF_ENOMEM;
    if (u->count >= c->batch_records || u->bytes.len >= c->batch_bytes) return us_flush(c, u, err);
    return PF_OK;
}

/* pf_sx callback in direct delivery: drops what the ledger says was
 * delivered and keeps the rest (us_take). */
pf_status pf_run_us_record(run_ctx *c, const pf_sink_record *rec, pf_error *err)
{
    unit_stream *u = c->us;
    u->fetched++;
    if (c->ledger) {
        uint64_t h = pf_run_record_hash(rec);
        if (pf_keyledger_contains(c->ledger, h)) {
            u->dropped++;
            return PF_OK;
        }
        if (pf_run_hash_push(&u->hashes, h, err) != PF_OK) return PF_ENOMEM;
    }
    return us_take(c, u, rec, err);
}

/* Starts (or restarts) the unit with an empty spool: the pending gap record
 * goes first. */
static pf_status us_begin(run_ctx *c, pf_error *err)
{
    us_clear(c->us);
    if (c->spool) {
        pf_error se;
        pf_error_clear(&se);
        if (pf_spool_reset(c->spool, &se) != PF_OK)
            pf_log_warn("%s; should the sink fail in this unit, the unit is fetched again", se.msg);
    }
    if (!c->gap_json) return PF_OK;
    pf_sink_record g = pf_run_gap_record(c);
    return us_take(c, c->us, &g, err);
}

/* An HTTP retry restarts the body: whatever this unit wrote is taken back by
 * reopening the sink from its last durable point. */
pf_status pf_run_us_restart(run_ctx *c)
{
    unit_stream *u = c->us;
    pf_error e;
    pf_error_clear(&e);
    if (u->written || u->sink_r != PF_SINK_OK) {
        int attempt = 1;
        int64_t delay = c->o->sink_backoff_ms;
        if (pf_run_reopen_sink(c, &delay, &attempt,
                               c->o->sink_attempts > 0 ? c->o->sink_attempts : 1,
                               &u->sink_err) != PF_OK) {
            u->sink_r = u->sink_err.fatal ? PF_SINK_FATAL : PF_SINK_RETRY;
            return PF_ESINK;
        }
        u->sink_r = PF_SINK_OK;
    }
    return us_begin(c, &e);
}

/* Delivers the rest of a streamed unit: the last batch, then the commit that
 * carries the unit's checkpoint. A commit whose answer was lost may have
 * happened: a sink that stores checkpoints tells, and then the unit is
 * done. On failure U->sink_r says what the sink answered (also when it
 * failed while the body arrived). */
pf_status pf_run_us_deliver(run_ctx *c, unit_stream *u, pf_error *err)
{
    pf_status st = us_flush(c, u, err);
    if (st != PF_OK) return st;
    if (u->sink_r != PF_SINK_OK) {
        if (err) *err = u->sink_err;
        return PF_ESINK;
    }
    long long seq_before = c->state.seq;
    pf_error_clear(&u->sink_err);
    pf_sink_result r = pf_run_commit(c, 1, &u->sink_err);
    if (r == PF_SINK_OK) return PF_OK;
    u->sink_r = r;
    if (err) *err = u->sink_err;
    if (r == PF_SINK_FATAL) return pf_run_sink_fatal(c, err);
    if (r == PF_SINK_RETRY && pf_sink_stores_checkpoint(c->sink)) {
        /* Only the sink can tell whether the commit happened: ask it before
         * the unit is sent again. When it cannot answer, the run stops
         * here and the next one adopts whatever the sink holds. */
        int attempt = 1, attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
        int64_t delay = c->o->sink_backoff_ms;
        pf_error re;
        pf_error_clear(&re);
        int h = -1;
        if (pf_run_reopen_sink(c, &delay, &attempt, attempts, &re) == PF_OK)
            h = pf_run_commit_happened(c, seq_before, &re);
        if (h != 0) {
            u->sink_r = PF_SINK_OK;
            if (h > 0) return PF_OK;
            if (err) *err = re;
            return re.code ? re.code : PF_ESINK;
        }
    }
    return PF_ESINK;
}

/* The sink failed (RETRY or ERROR) while unit W was delivered and every
 * record of the unit is in the spool: reopens the sink (which takes back
 * what it had not committed) and delivers the unit from the spool, retrying
 * and isolating refused records as for collected records. No API call. */
static pf_status replay(run_ctx *c, const pf_window *w, unit_stream *u, const char *where,
                        pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1, attempt = 1;
    int64_t delay = c->o->sink_backoff_ms;
    size_t n = pf_spool_count(c->spool);
    char msg[PF_ERROR_MSG_MAX];
    pf_error_format(&u->sink_err, msg, sizeof msg);
    if (u->sink_r == PF_SINK_RETRY) {
        pf_log_warn("%s; delivering %s again from the spool in %.1f s (%zu records, no API call)",
                    msg, where[0] ? where : "the response", (double)delay / 1000, n);
        if (pf_http_sleep_ms((long)delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED,
                                "interrupted while waiting to retry the sink");
        delay *= 2;
    } else {
        pf_log_warn("%s; delivering %s from the spool (%zu records, no API call) to isolate the "
                    "records the sink refuses",
                    msg, where[0] ? where : "the response", n);
    }
    pf_status st = pf_run_reopen_sink(c, &delay, &attempt, attempts, err);
    if (st != PF_OK) return st;
    pf_run_src src = {NULL, c->spool, n};
    unit_result ur = {0};
    ur.src = &src;
    ur.hashes = &u->hashes;
    ur.fetched = u->fetched;
    ur.dropped = u->dropped;
    return pf_run_complete_unit(c, w, NULL, &ur, where, err);
}

pf_status pf_run_streamed_unit(run_ctx *c, const pf_window *w, pf_buf *body, pf_buf *url,
                               const char *where, pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
    int64_t delay = c->o->sink_backoff_ms;
    unit_stream u = {0};
    pf_buf_init(&u.bytes, 0);
    for (int attempt = 1;; attempt++) {
        unit_result ur = {0};
        u.sink_r = PF_SINK_OK;
        c->us = &u;
        pf_status st = us_begin(c, err);
        if (st == PF_OK) st = pf_run_fetch(c, w, NULL, body, &ur.no_data, url, err);
        c->us = NULL;
        if (st == PF_OK) {
            pf_sx_stats sxs;
            pf_sx_get_stats(c->sx, &sxs);
            if (!ur.no_data && sxs.missing_keys)
                pf_log_debug("%zu records have no value at their first key path: identified "
                             "by the further key paths or their hash",
                             sxs.missing_keys);
            ur.us = &u;
            ur.hashes = &u.hashes;
            ur.fetched = u.fetched;
            ur.dropped = u.dropped;
            st = pf_run_complete_unit(c, w, NULL, &ur, where, err);
            if (st == PF_ESINK && (u.sink_r == PF_SINK_RETRY || u.sink_r == PF_SINK_ERROR) &&
                spooled(c) && pf_spool_flush(c->spool, NULL) == PF_OK) {
                /* The replay's outcome is the unit's. */
                st = replay(c, w, &u, where, err);
                u.sink_r = err && err->fatal ? PF_SINK_FATAL : PF_SINK_OK;
            } else if (st != PF_ESINK && u.sink_r != PF_SINK_FATAL) {
                /* Failed for a reason of its own (memory, the checkpoint):
                 * not a sink failure to retry. */
                u.sink_r = PF_SINK_OK;
            }
            if (st == PF_OK) {
                u.sink_r = PF_SINK_OK;
                if (c->spool) pf_spool_reset(c->spool, NULL);
            }
        } else if (st != PF_ESINK && u.sink_r != PF_SINK_FATAL) {
            /* The fetch failed on its own (even if the sink had failed
             * first): its error is the unit's, and the API is not asked
             * again for the sink's sake. */
            u.sink_r = PF_SINK_OK;
            if (st == PF_EDATA || st == PF_EDEPTH || st == PF_ETOOBIG)
                pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        }
        if (st == PF_ENOMEM) u.sink_r = PF_SINK_OK; /* never fetched again */
        if (u.sink_r == PF_SINK_FATAL && err) {
            if (!err->fatal) *err = u.sink_err;
            st = pf_run_sink_fatal(c, err);
        }
        if (u.sink_r == PF_SINK_OK || u.sink_r == PF_SINK_FATAL) {
            /* Done, or a failure that ends the run: what this unit wrote
             * and did not commit is taken back now (best effort; the next
             * open does it anyway), so the sink's files match the
             * checkpoint when the run ends. */
            if (st != PF_OK && u.written && u.sink_r != PF_SINK_FATAL) {
                int a = 1;
                int64_t d = 0;
                pf_error re;
                pf_error_clear(&re);
                if (pf_run_reopen_sink(c, &d, &a, 1, &re) != PF_OK)
                    pf_log_debug("cannot reopen the sink to take back an unfinished unit");
            }
            us_free(&u);
            return st;
        }
        /* The sink failed and the unit is not (wholly) in the spool: it is
         * fetched again. */
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(&u.sink_err, msg, sizeof msg);
        if (u.sink_r == PF_SINK_ERROR) {
            us_free(&u);
            pf_log_warn("%s; fetching %s again to isolate the records the sink refuses", msg,
                        where[0] ? where : "the response");
            int a = 1;
            if ((st = pf_run_reopen_sink(c, &delay, &a, attempts, err)) != PF_OK) return st;
            return pf_run_collected_unit(c, w, NULL, body, url, 1, where, err);
        }
        if (attempt >= attempts) {
            if (err) *err = u.sink_err;
            us_free(&u);
            return u.sink_err.code ? u.sink_err.code : PF_ESINK;
        }
        pf_log_warn("%s; retrying %s in %.1f s, fetching it again (attempt %d/%d)", msg,
                    where[0] ? where : "the response", (double)delay / 1000, attempt + 1, attempts);
        if (pf_http_sleep_ms((long)delay) != PF_OK) {
            us_free(&u);
            return pf_error_set(err, PF_EINTERRUPTED,
                                "interrupted while waiting to retry the sink");
        }
        delay *= 2;
        if ((st = pf_run_reopen_sink(c, &delay, &attempt, attempts, err)) != PF_OK) {
            us_free(&u);
            return st;
        }
    }
}
