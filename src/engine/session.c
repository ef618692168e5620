/* session.c: the sink session of a run and the checkpoint-offer protocol.
 *
 * The sink is opened from the resume token of the last durable commit, which
 * discards whatever an interrupted run wrote after it. Records are written in
 * batches and made durable by a commit; only then does the checkpoint move.
 * A sink that stores checkpoints (PostgreSQL) is offered, with each commit,
 * the checkpoint the host will save once it succeeds, numbered by `seq`:
 *   - the unit's final commit offers the checkpoint after the unit (its
 *     cursor, page position and late-arrival ledger);
 *   - a partial commit (while refused records are isolated) offers the
 *     checkpoint as it stood before the unit, so a crash between the partial
 *     commits never stores a position past records not yet delivered.
 * When a run opens the sink, a stored checkpoint newer (by seq) than the
 * file's means a crash hit between the commit and the file: the sink's is
 * adopted. After a reopen in the middle of a run (a commit whose answer was
 * lost) only seq is taken from it, since the rest is what the run offered.
 * A RETRY answer reopens the sink (taking back what was not committed) and
 * offers the same records again after a backoff; ERROR means the batch can
 * never succeed (see deadletter.c); FATAL stops the run. */
#include <stdlib.h>
#include <string.h>

#include "engine/run.h"
#include "engine/spool.h"
#include "http/http.h"
#include "state/state.h"
#include "util/log.h"

pf_status pf_run_save_state(run_ctx *c, pf_error *err)
{
    return pf_state_save(c->f->state_path, &c->state, c->f->name, err);
}

static pf_status open_sink(run_ctx *c, pf_error *err)
{
    const char *resume = NULL;
    const char *type = c->f->sink.desc->name;
    if (c->state.sink_token) {
        if (c->state.sink_type && strcmp(c->state.sink_type, type) == 0)
            resume = c->state.sink_token;
        else
            pf_log_warn("the checkpoint's sink state belongs to sink %s, not %s; ignoring it",
                        c->state.sink_type ? c->state.sink_type : "?", type);
    }
    return pf_sink_open(&c->f->sink, c->streams, c->identities, c->nstreams, resume, &c->sink, err);
}

/* Commits the sink and records its token in the in-memory state. FINAL:
 * this commit completes the unit, so the checkpoint offered to a
 * checkpoint-storing sink carries the unit's pending cursor. */
pf_sink_result pf_run_commit(run_ctx *c, int final, pf_error *err)
{
    const char *token = NULL;
    char *cp = NULL;
    /* seq never wraps: at its maximum the run stops. */
    pf_state probe = {0};
    probe.seq = c->state.seq;
    if (pf_state_next_seq(&probe, err) != PF_OK) {
        if (err) err->fatal = 1;
        return PF_SINK_FATAL;
    }
    if (pf_sink_stores_checkpoint(c->sink)) {
        pf_state next = c->state; /* shallow: only serialised */
        next.seq = probe.seq;
        if (final && c->pend_set) {
            next.has_cursor = 1;
            next.cursor_ms = c->pend_cursor_ms;
        } else if (!final && c->before.set) {
            next.page_kind = c->before.page_kind;
            next.page_token = c->before.page_token;
            next.page_number = c->before.page_number;
            next.page_window_end_ms = c->before.page_window_end_ms;
            next.has_cursor = c->before.has_cursor;
            next.cursor_ms = c->before.cursor_ms;
            next.ledger = c->before.ledger;
        }
        pf_status js = pf_state_to_json(&next, c->f->name, 0, &cp, err);
        if (js == PF_ENOMEM) return PF_SINK_RETRY;
        if (js != PF_OK) {
            /* Too large or out of range: no retry changes that. */
            if (err) err->fatal = 1;
            return PF_SINK_FATAL;
        }
    }
    pf_sink_result r = pf_sink_commit(c->sink, cp, &token, err);
    free(cp);
    if (r != PF_SINK_OK) return r;
    /* The commit is durable: only now does the in-memory state move. Out of
     * memory here must not look like a failed commit (a RETRY would deliver
     * the batch again on top of it): the run stops, and the next one opens
     * the sink from the checkpoint file, which takes the commit back or
     * adopts it. */
    char *tok = token ? strdup(token) : NULL;
    char *typ = strdup(c->f->sink.desc->name);
    if ((token && !tok) || !typ) {
        free(tok);
        free(typ);
        pf_error_set(err, PF_ENOMEM, "out of memory after a sink commit; stopping");
        if (err) err->fatal = 1;
        return PF_SINK_FATAL;
    }
    c->state.seq = probe.seq;
    free(c->state.sink_token);
    free(c->state.sink_type);
    c->state.sink_token = tok;
    c->state.sink_type = typ;
    return PF_SINK_OK;
}

/* After open: a sink that stores checkpoints with its commits may be one
 * commit ahead of the checkpoint file (a crash between the two); its
 * checkpoint wins then. Returns 1 when the sink's checkpoint is newer. */
int pf_run_adopt_checkpoint(run_ctx *c, pf_error *err, pf_status *st)
{
    *st = PF_OK;
    const char *text = NULL;
    if (pf_sink_stored_checkpoint(c->sink, &text, err) != PF_SINK_OK) {
        *st = err ? err->code : PF_ESINK;
        return 0;
    }
    if (!text) return 0;
    pf_state s = {0};
    char label[160];
    snprintf(label, sizeof label, "(the checkpoint stored by sink %s)", c->f->sink.desc->name);
    if ((*st = pf_state_parse(text, strlen(text), label, &s, err)) != PF_OK) return 0;
    if (s.seq <= c->state.seq) {
        pf_state_free(&s);
        return 0;
    }
    pf_log_info("sink %s holds a newer checkpoint (commit %lld) than %s (commit %lld); "
                "continuing from the sink's",
                c->f->sink.desc->name, s.seq, c->f->state_path, c->state.seq);
    c->state.seq = s.seq;
    c->state.has_cursor = s.has_cursor;
    c->state.cursor_ms = s.cursor_ms;
    if (s.has_origin) {
        c->state.has_origin = 1;
        c->state.origin_ms = s.origin_ms;
    }
    pf_status a = pf_state_set_str(&c->state.template_name, s.template_name);
    if (a == PF_OK && s.sink_token) a = pf_state_set_str(&c->state.sink_token, s.sink_token);
    /* The page position inside the unit, so a paged unit resumes at its
     * next page too. */
    if (a == PF_OK) a = pf_state_set_str(&c->state.page_kind, s.page_kind);
    if (a == PF_OK) a = pf_state_set_str(&c->state.page_token, s.page_token);
    if (a == PF_OK) a = pf_state_set_str(&c->state.ledger, s.ledger);
    c->state.page_number = s.page_number;
    c->state.page_window_end_ms = s.page_window_end_ms;
    pf_state_free(&s);
    if (a != PF_OK) *st = pf_error_set(err, PF_ENOMEM, "out of memory");
    return 1;
}

/* Closes the sink and opens it again from the last durable point, which
 * discards whatever was written since. Retries while the open is transient. */
pf_status pf_run_reopen_sink(run_ctx *c, int64_t *delay, int *attempt, int attempts, pf_error *err)
{
    pf_sink_close(c->sink);
    c->sink = NULL;
    pf_error oe;
    pf_error_clear(&oe);
    while (open_sink(c, &oe) != PF_OK) {
        if (!oe.retriable || ++*attempt >= attempts) {
            if (err) *err = oe;
            return oe.code;
        }
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(&oe, msg, sizeof msg);
        pf_log_warn("%s; retrying in %.1f s (attempt %d/%d)", msg, (double)*delay / 1000, *attempt,
                    attempts);
        if (pf_http_sleep_ms((long)*delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED, "interrupted");
        *delay *= 2;
    }
    return PF_OK;
}

/* After a reopen that followed a commit without an answer: whether that
 * commit happened, which only a sink that stores checkpoints can tell (its
 * stored seq is SEQ_BEFORE + 1). Only seq is taken from the stored
 * checkpoint then: the rest is the checkpoint this run offered with that
 * commit, which the caller holds already (the unit's, or for a partial
 * commit the one before the unit); taking it wholesale would put back the
 * page position and ledger from before the unit. Returns 1 when the commit
 * happened, 0 when it did not, -1 (ERR set) when the sink cannot tell or
 * another process committed this flow meanwhile. */
int pf_run_commit_happened(run_ctx *c, long long seq_before, pf_error *err)
{
    if (!pf_sink_stores_checkpoint(c->sink)) return 0;
    const char *text = NULL;
    if (pf_sink_stored_checkpoint(c->sink, &text, err) != PF_SINK_OK) return -1;
    if (!text) return 0;
    pf_state s = {0};
    char label[160];
    snprintf(label, sizeof label, "(the checkpoint stored by sink %s)", c->f->sink.desc->name);
    if (pf_state_parse(text, strlen(text), label, &s, err) != PF_OK) return -1;
    long long seq = s.seq;
    pf_state_free(&s);
    if (seq <= seq_before) return 0; /* the sink is not past this commit */
    if (seq == seq_before + 1) {
        c->state.seq = seq;
        pf_log_info("the sink had committed the batch before the error; not sending it again");
        return 1;
    }
    pf_error_set(err, PF_ESTATE,
                 "sink %s holds a checkpoint of commit %lld, written by another run of this flow "
                 "while this one reconnected; stopping",
                 c->f->sink.desc->name, seq);
    return -1;
}

pf_status pf_run_sink_fatal(run_ctx *c, pf_error *err)
{
    static const char why[] = "; the run stops here: the sink cannot take records until this is "
                              "fixed (nothing was dead-lettered; the next run continues from the "
                              "checkpoint)";
    (void)c;
    if (!err) return PF_ESINK;
    err->fatal = 1;
    err->retriable = 0;
    size_t n = strlen(err->msg);
    if (!strstr(err->msg, why)) snprintf(err->msg + n, sizeof err->msg - n, "%s", why);
    return err->code ? err->code : PF_ESINK;
}

/* Writes records A .. B-1 of SRC in batches (batch_records, and for the
 * spool batch_bytes). *R is the sink's answer; the return is PF_OK unless
 * reading the spool failed. */
static pf_status write_range(run_ctx *c, const pf_run_src *src, size_t a, size_t b,
                             pf_sink_result *r, pf_error *err)
{
    *r = PF_SINK_OK;
    for (size_t i = a; i < b && *r == PF_SINK_OK;) {
        size_t n = b - i < c->batch_records ? b - i : c->batch_records;
        const pf_sink_record *recs = NULL;
        if (src->mem) {
            recs = src->mem + i;
        } else {
            n = pf_spool_fit(src->spool, i, n, c->batch_bytes);
            pf_status st = pf_spool_read(src->spool, i, n, &recs, err);
            if (st != PF_OK) return st;
        }
        *r = pf_sink_write(c->sink, recs, n, err);
        i += n;
    }
    return PF_OK;
}

pf_status pf_run_write_commit(run_ctx *c, const pf_run_src *src, size_t a, size_t b, int final,
                              int *refused, pf_error *err)
{
    int attempts = c->o->sink_attempts > 0 ? c->o->sink_attempts : 1;
    int64_t delay = c->o->sink_backoff_ms;
    *refused = 0;
    for (int attempt = 1;; attempt++) {
        pf_sink_result r = PF_SINK_OK;
        long long seq_before = c->state.seq;
        pf_status lst = src ? write_range(c, src, a, b, &r, err) : PF_OK;
        if (lst != PF_OK) return lst;
        if (r == PF_SINK_OK) r = pf_run_commit(c, final, err);
        if (r == PF_SINK_OK) return PF_OK;
        if (r == PF_SINK_FATAL) return pf_run_sink_fatal(c, err);
        if (r == PF_SINK_ERROR) {
            *refused = 1;
            int a1 = 0;
            pf_error re;
            pf_error_clear(&re);
            if (pf_run_reopen_sink(c, &delay, &a1, attempts, &re) != PF_OK) {
                if (err) *err = re;
                *refused = 0;
                return re.code;
            }
            return err ? err->code : PF_ESINK;
        }
        if (attempt >= attempts) return err ? err->code : PF_ESINK;
        char msg[PF_ERROR_MSG_MAX];
        pf_error_format(err, msg, sizeof msg);
        pf_log_warn("%s; retrying in %.1f s (attempt %d/%d)", msg, (double)delay / 1000,
                    attempt + 1, attempts);
        if (pf_http_sleep_ms((long)delay) != PF_OK)
            return pf_error_set(err, PF_EINTERRUPTED,
                                "interrupted while waiting to retry the sink");
        delay *= 2;
        pf_status st = pf_run_reopen_sink(c, &delay, &attempt, attempts, err);
        if (st != PF_OK) return st;
        /* A commit whose answer was lost may have happened after all. */
        int h = pf_run_commit_happened(c, seq_before, err);
        if (h < 0) return err ? err->code : PF_ESINK;
        if (h > 0) return PF_OK;
    }
}
