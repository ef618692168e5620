/* unit.c: completing a unit of work (one request, one page or one time
 * window): late-arrival dedup, the gap record, delivery and the checkpoint.
 *
 * A unit's records are first compared with the late-arrival ledger (records
 * the look-back re-sweep already delivered are dropped); the pending gap
 * record goes in front. Once the sink reports them durable the checkpoint
 * moves: to the unit's next page, or past the window with the ledger
 * updated. If anything fails, the in-memory checkpoint (cursor, page
 * position, ledger) is put back exactly as it was before the unit, so the
 * unit is delivered again from the start and nothing is skipped. Collected
 * units (paged responses, buffered extraction, `ppflow test`) hold their
 * records in memory; streamed units are in streamed.c. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "engine/run.h"
#include "engine/identity.h"
#include "engine/extract.h"
#include "engine/keyledger.h"
#include "engine/paging.h"
#include "proofpoint/syslog.h"
#include "util/log.h"
#include "util/timeutil.h"

/* ---- test mode --------------------------------------------------------- */

static void print_records(run_ctx *c, const pf_records *recs)
{
    for (size_t i = 0; i < recs->count; i++) {
        if (c->o->limit >= 0 && c->stats->records >= c->o->limit) break;
        fwrite(recs->recs[i].json, 1, recs->recs[i].json_len, c->o->out);
        fputc('\n', c->o->out);
        c->stats->records++;
    }
    fflush(c->o->out);
}

/* ---- one unit of work ---------------------------------------------------- */

pf_status pf_run_hash_push(hash_list *l, uint64_t h, pf_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return pf_error_set(err, PF_ENOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = h;
    return PF_OK;
}

uint64_t pf_run_record_hash(const pf_sink_record *r)
{
    return pf_keyledger_hash(r->stream, r->key, r->key_len, r->json, r->json_len);
}

/* Late arrivals: drops from RECS every record the ledger says was already
 * delivered and lists the hashes of the others in OUT. */
static pf_status drop_delivered(run_ctx *c, pf_records *recs, hash_list *out, size_t *dropped,
                                pf_error *err)
{
    *dropped = 0;
    if (!c->ledger) return PF_OK;
    size_t k = 0;
    for (size_t i = 0; i < recs->count; i++) {
        pf_sink_record *r = &recs->recs[i];
        uint64_t h = pf_run_record_hash(r);
        if (pf_keyledger_contains(c->ledger, h)) {
            free((char *)r->json);
            free((char *)r->key);
            (*dropped)++;
            continue;
        }
        recs->recs[k++] = *r;
        if (pf_run_hash_push(out, h, err) != PF_OK) {
            /* Keep RECS whole: free what is not compacted yet. */
            for (size_t j = i + 1; j < recs->count; j++) {
                free((char *)recs->recs[j].json);
                free((char *)recs->recs[j].key);
            }
            recs->count = k;
            return PF_ENOMEM;
        }
    }
    recs->count = k;
    return PF_OK;
}

/* Adds the hashes H of the records delivered in window W to the ledger,
 * prunes what fell out of the look-back, and stores it in the checkpoint
 * text. On failure the caller rebuilds the ledger from the checkpoint. */
static pf_status remember_delivered(run_ctx *c, const pf_window *w, const hash_list *h,
                                    int64_t cursor_after, pf_error *err)
{
    if (!c->ledger || !w) return PF_OK;
    /* A record fetched in a window that ends before cursor - look-back can
     * never be fetched again by a re-sweep. Pruned first, so a full ledger
     * never forgets windows that pruning drops anyway. */
    pf_keyledger_prune(c->ledger, cursor_after - c->lookback_ms + 1);
    for (size_t i = 0; i < h->n; i++) {
        pf_status st = pf_keyledger_add(c->ledger, h->v[i], w->end_ms, err);
        if (st != PF_OK) return st;
    }
    char *text = NULL;
    pf_status st = pf_keyledger_to_json(c->ledger, &text, err);
    if (st != PF_OK) return st;
    free(c->state.ledger);
    c->state.ledger = text;
    return PF_OK;
}

/* The pending gap record (a copy owned by the caller's records). */
pf_sink_record pf_run_gap_record(const run_ctx *c)
{
    return (pf_sink_record){PF_RUN_GAP_STREAM, c->gap_key, strlen(c->gap_key), c->gap_json,
                            strlen(c->gap_json)};
}

/* Puts the pending gap record in front of RECS. */
static pf_status add_gap_record(run_ctx *c, pf_records *recs, pf_error *err)
{
    if (!c->gap_json) return PF_OK;
    pf_sink_record g = pf_run_gap_record(c);
    if (pf_records_push_copy(recs, &g, err) != PF_OK) return PF_ENOMEM;
    pf_sink_record *v = recs->recs;
    g = v[recs->count - 1];
    memmove(v + 1, v, (recs->count - 1) * sizeof *v);
    v[0] = g;
    return PF_OK;
}

/* "window A/B page 3", "window A/B", "page 3" or "" for messages. */
void pf_run_describe_unit(const pf_window *w, const pf_pager *pg, char *buf, size_t n)
{
    char a[PF_TIME_FMT_SIZE] = "", b[PF_TIME_FMT_SIZE] = "", page[64] = "";
    if (w) {
        pf_time_format(w->start_ms, a);
        pf_time_format(w->end_ms, b);
    }
    pf_pager_describe(pg, page, sizeof page);
    snprintf(buf, n, "%s%s%s%s%s%s", w ? "window " : "", a, w ? "/" : "", b,
             w && page[0] ? " " : "", page);
}

/* ---- completing a unit --------------------------------------------------- */

/* Delivers what unit W/PG fetched and, once the sink reports it durable,
 * moves the checkpoint: to the next page of the unit, or, after the unit's
 * last page, to the window's end with no page position. On failure the
 * in-memory checkpoint is left as it was. */
pf_status pf_run_complete_unit(run_ctx *c, const pf_window *w, pf_pager *pg, const unit_result *ur,
                               const char *where, pf_error *err)
{
    pf_status st = PF_OK;
    /* The checkpoint this page leads to, offered to checkpoint-storing sinks
     * with the commit; the checkpoint as it was (c->before) is offered with
     * partial commits and restored on failure. */
    int unit_done = !pg || pg->done;
    /* The ledger's text is copied first: when that fails, nothing of the
     * checkpoint has changed yet (restoring a copy that does not exist
     * would wipe the ledger and deliver the look-back again). */
    char *ledger_before = c->state.ledger ? strdup(c->state.ledger) : NULL;
    if (c->state.ledger && !ledger_before)
        return pf_error_set(err, PF_ENOMEM, "out of memory saving the late-arrival ledger");
    /* The sink's token too: the partial commits of an isolation replace it,
     * and a unit that fails after them must leave the token from before it
     * (with the cursor from before it), so the next open takes those partial
     * commits back instead of keeping records the unit delivers again. */
    char *token_before = c->state.sink_token ? strdup(c->state.sink_token) : NULL;
    char *type_before = c->state.sink_type ? strdup(c->state.sink_type) : NULL;
    if ((c->state.sink_token && !token_before) || (c->state.sink_type && !type_before)) {
        free(ledger_before);
        free(token_before);
        free(type_before);
        return pf_error_set(err, PF_ENOMEM, "out of memory saving the sink's position");
    }
    c->before.sink_token = token_before;
    c->before.sink_type = type_before;
    c->before.page_kind = c->state.page_kind;
    c->before.page_token = c->state.page_token;
    c->before.page_number = c->state.page_number;
    c->before.page_window_end_ms = c->state.page_window_end_ms;
    c->before.has_cursor = c->state.has_cursor;
    c->before.cursor_ms = c->state.cursor_ms;
    c->before.ledger = ledger_before;
    /* The cursor never moves back: a re-swept window ends before it. */
    int64_t cursor_after = w && (!c->state.has_cursor || w->end_ms > c->state.cursor_ms)
                               ? w->end_ms
                               : c->state.cursor_ms;
    c->state.page_kind = c->state.page_token = NULL;
    c->state.page_number = 0;
    c->state.page_window_end_ms = 0;
    if (w && !unit_done) {
        /* Inside a window the time cursor is the window's start (the end of the
         * previous window, or the range's start for the first one). */
        c->state.has_cursor = 1;
        c->state.cursor_ms = w->start_ms;
    }
    if (pg && pf_pager_save(pg, &c->state, w ? w->end_ms : 0) != PF_OK) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
    } else if (unit_done &&
               (st = remember_delivered(c, w, ur->hashes, cursor_after, err)) != PF_OK) {
        /* st set */
    } else {
        c->pend_set = unit_done && w != NULL;
        c->pend_cursor_ms = cursor_after;
        c->before.set = 1;
        st = ur->src ? pf_run_deliver(c, ur->src, err) : pf_run_us_deliver(c, ur->us, err);
        c->before.set = 0;
        c->pend_set = 0;
    }
    if (st != PF_OK) {
        /* The in-memory ledger may hold this batch: rebuild it from the
         * checkpoint's text. */
        free(c->state.ledger);
        c->state.ledger = c->before.ledger;
        if (c->ledger) {
            pf_keyledger *l = NULL;
            pf_error le;
            if (c->state.ledger && pf_keyledger_from_json(c->state.ledger, strlen(c->state.ledger),
                                                          &l, &le) == PF_OK) {
                pf_keyledger_free(c->ledger);
                c->ledger = l;
            } else if (!c->state.ledger) {
                pf_keyledger_free(c->ledger);
                c->ledger = pf_keyledger_new();
            }
            if (!l && c->state.ledger) {
                /* The ledger still holds this unit's records: fetching the
                 * unit again would drop them all. The run stops here. */
                st = pf_error_set(err, PF_ENOMEM,
                                  "out of memory restoring the late-arrival "
                                  "ledger; the next run continues from the "
                                  "checkpoint");
            } else if (!c->ledger) {
                st = pf_error_set(err, PF_ENOMEM, "out of memory");
            }
        }
        free(c->state.page_kind);
        free(c->state.page_token);
        c->state.page_kind = c->before.page_kind;
        c->state.page_token = c->before.page_token;
        c->state.page_number = c->before.page_number;
        c->state.page_window_end_ms = c->before.page_window_end_ms;
        c->state.has_cursor = c->before.has_cursor;
        c->state.cursor_ms = c->before.cursor_ms;
        free(c->state.sink_token);
        free(c->state.sink_type);
        c->state.sink_token = c->before.sink_token;
        c->state.sink_type = c->before.sink_type;
        memset(&c->before, 0, sizeof c->before);
        return st;
    }
    free(c->before.page_kind);
    free(c->before.page_token);
    free(c->before.ledger);
    free(c->before.sink_token);
    free(c->before.sink_type);
    memset(&c->before, 0, sizeof c->before);
    if (c->gap_json) {
        free(c->gap_json);
        c->gap_json = NULL;
    }
    if (unit_done && w) {
        c->state.has_cursor = 1;
        c->state.cursor_ms = cursor_after;
    }
    size_t delivered = ur->src ? ur->src->count : ur->us->written;
    size_t fresh = ur->fetched - ur->dropped;
    size_t late = c->ledger && w && w->end_ms <= c->late_until_ms ? fresh : 0;
    c->stats->records += (long long)delivered;
    c->stats->late_arrivals += (long long)late;
    c->stats->duplicates += (long long)ur->dropped;
    c->stats->windows++;
    c->state.run_records = c->stats->records;
    c->state.run_windows = c->stats->windows;
    st = pf_run_save_state(c, err);
    pf_progress_update(&c->progress, c->stats->windows, c->stats->records, c->stats->bytes, 0);
    if (st == PF_OK && where[0] && c->ledger && w)
        pf_log_info("%s: %zu records, %zu new (%zu late arrivals), %zu already delivered", where,
                    ur->fetched, fresh, late, ur->dropped);
    else if (st == PF_OK && where[0])
        pf_log_info("%s: %zu records%s", where, ur->fetched,
                    ur->no_data ? " (the server answered: no data)" : "");
    return st;
}

/* Fetches unit W/PG (PG NULL: one request; W NULL: not windowed), collects
 * its records, and delivers them as one batch (split when the sink refuses
 * some). STREAMING: the extractor reads the body as it arrives into the
 * collected records. */
pf_status pf_run_collected_unit(run_ctx *c, const pf_window *w, pf_pager *pg, pf_buf *body,
                                pf_buf *url, int streaming, const char *where, pf_error *err)
{
    pf_flow *f = c->f;
    unit_result ur = {0};
    pf_records recs = {0};
    hash_list hashes = {0};
    c->sx_out = streaming ? &recs : NULL;
    pf_buf_reset(body);
    pf_status st = pf_run_fetch(c, w, pg, body, &ur.no_data, url, err);
    c->sx_out = NULL;
    if (st != PF_OK) {
        if (streaming && (st == PF_EDATA || st == PF_EDEPTH || st == PF_ETOOBIG))
            pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        goto out;
    }
    if (streaming && !ur.no_data) {
        pf_sx_stats sxs;
        pf_sx_get_stats(c->sx, &sxs);
        recs.missing_keys = sxs.missing_keys;
    }
    const char *data = body->data ? body->data : "";
    if (ur.no_data || streaming)
        st = PF_OK;
    else if (f->format == PF_RESPONSE_SYSLOG)
        st = pf_syslog_extract(f->tmpl, data, body->len, &recs, err);
    else {
        pf_extract_limits lim = {0};
        lim.max_record = (size_t)f->http.max_record;
        st = pf_extract_records_ex(f->tmpl, data, body->len, &lim, &recs, err);
    }
    if (st == PF_OK && pg)
        st = pf_pager_advance(pg, f, data, body->len, recs.count, ur.no_data, pf_buf_str(url), err);
    if (st != PF_OK) {
        pf_error_prefix(err, "response%s%s", where[0] ? " for " : "", where);
        goto out;
    }
    if (recs.missing_keys)
        pf_log_debug("%zu records have no value at their first key path: identified by the "
                     "further key paths or their hash",
                     recs.missing_keys);
    for (size_t i = 0; i < recs.count && st == PF_OK; i++)
        st = pf_identity_complete_owned(pf_identity_stream(f->tmpl, &recs.recs[i]), &recs.recs[i],
                                        err);
    if (st != PF_OK) goto out;
    ur.fetched = recs.count;
    if (c->o->test) {
        print_records(c, &recs);
        c->stats->windows++;
        goto out;
    }
    if ((st = drop_delivered(c, &recs, &hashes, &ur.dropped, err)) != PF_OK ||
        (st = add_gap_record(c, &recs, err)) != PF_OK)
        goto out;
    pf_run_src src = {recs.recs, NULL, recs.count};
    ur.src = &src;
    ur.hashes = &hashes;
    st = pf_run_complete_unit(c, w, pg, &ur, where, err);
out:
    free(hashes.v);
    pf_records_free(&recs);
    return st;
}
