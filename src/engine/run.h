/* run.h: what the files of a run share (engine-internal; not installed).
 *
 * A run moves through these files in order:
 *   engine.c      the run loop: the range and its windows, pages, units
 *   fetch.c       one request: call budget, HTTP, streaming extraction
 *   unit.c        completing a unit: late-arrival dedup, gap record,
 *                 delivery, the checkpoint moved only after a durable commit
 *   streamed.c    streamed units: batches reach the sink while the body arrives
 *   session.c     the sink session: open, write, commit, reopen, and the
 *                 checkpoint offered to sinks that store it
 *   deadletter.c  isolating refused records; the dead-letter file
 * Every function here takes the run's context; none is thread-safe (a run
 * is one thread). Errors follow pf_error conventions: a function that fails
 * fills ERR and returns its code. */
#ifndef PF_ENGINE_RUN_H
#define PF_ENGINE_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/extract.h"
#include "engine/keyledger.h"
#include "engine/paging.h"
#include "engine/quota.h"
#include "engine/stream_extract.h"
#include "engine/window.h"
#include "http/http.h"
#include "sink/registry.h"
#include "state/state.h"
#include "util/buf.h"
#include "util/progress.h"

/* Records go to the sink in batches of at most this many records, and a
 * streamed unit's batches hold about this many bytes at most (the flow's
 * sink.batch_records and sink.batch_bytes change them). */
#define PF_RUN_SINK_CHUNK 5000
#define PF_RUN_STREAM_BATCH_BYTES ((size_t)4 << 20)
/* The stream that gap records (ranges the API no longer holds) go to. */
#define PF_RUN_GAP_STREAM "gaps"

/* Ledger hashes of the records a unit delivers. */
typedef struct hash_list {
    uint64_t *v;
    size_t n, cap;
} hash_list;

struct unit_stream;
struct pf_spool;

/* Records to deliver: in memory (MEM), or else in the spool. */
typedef struct pf_run_src {
    const pf_sink_record *mem;
    struct pf_spool *spool;
    size_t count;
} pf_run_src;

typedef struct run_ctx {
    pf_flow *f;
    const pf_run_opts *o;
    pf_run_stats *stats;
    pf_http_client *http;
    pf_sink *sink;
    pf_state state;
    const char **streams;
    const char **identities; /* parallel to streams: how records are identified */
    /* The cursor the unit being delivered will set once durable; offered to
     * checkpoint-storing sinks with the unit's final commit. */
    int pend_set;
    int64_t pend_cursor_ms;
    /* Late arrivals: records delivered in the last look-back, and the cursor
     * the run started from (windows before it are re-sweeps). */
    size_t nstreams;
    pf_keyledger *ledger;
    int64_t lookback_ms;
    int64_t late_until_ms;
    /* A gap found when planning, delivered with the first window. */
    char *gap_json;
    char gap_key[128];
    pf_progress progress;
    /* Streaming extraction (JSON responses of templates whose record paths
     * allow it): records arrive while the body does, into sx_out, and no
     * body or document tree is held. */
    pf_sx *sx;
    pf_records *sx_out;
    pf_buf idbuf; /* the identity of the record being handed on (identity.h) */
    long long sx_bytes;
    /* Direct delivery: the unit being streamed into the sink (NULL when
     * records are collected into sx_out instead). */
    struct unit_stream *us;
    /* The streamed unit's records, for replay to the sink (NULL: no spool;
     * see spool.h). */
    struct pf_spool *spool;
    /* The template's call budget: ledger file and key ("" when none). */
    char quota_path[4200];
    char quota_key[PF_QUOTA_KEY_SIZE];
    int quota_warned;
    size_t batch_records, batch_bytes; /* see SINK_CHUNK */
    /* The checkpoint as it stood before the unit being completed (owned
     * while complete_unit runs): restored when the unit fails, and what the
     * partial commits of a split batch offer a checkpoint-storing sink
     * (SET while delivering), so that a crash between them never stores the
     * unit's page position or ledger with only part of its records. */
    struct {
        int set;
        char *page_kind, *page_token, *ledger;
        char *sink_token, *sink_type; /* copies: partial commits replace the state's */
        long long page_number;
        int64_t page_window_end_ms;
        int has_cursor;
        int64_t cursor_ms;
    } before;
} run_ctx;

/* The records of a streamed unit not yet written to the sink, and what the
 * unit has done so far. Memory is bounded by one batch (batch_bytes or
 * batch_records, or one record when that is larger) plus 8 bytes a record
 * for the ledger. */
typedef struct unit_stream {
    pf_buf bytes;         /* json and key bytes of the batch */
    pf_sink_record *recs; /* the batch; json and key are set when it is written */
    size_t *off;          /* two per record: offset of json, then of key */
    size_t count, cap;
    hash_list hashes;      /* records written in this unit (ledger) */
    size_t fetched;        /* records extracted from the response */
    size_t dropped;        /* of those, already delivered (late-arrival ledger) */
    size_t written;        /* records (gap record included) given to the sink */
    pf_sink_result sink_r; /* the sink's answer that stopped the unit; OK: none */
    pf_error sink_err;
} unit_stream;

/* What a unit fetched, for its delivery and its log line. Exactly one of
 * SRC (records in memory or in the spool) and US (a streamed unit being
 * written while its body arrives) is set. */
typedef struct unit_result {
    const pf_run_src *src;
    unit_stream *us;
    const hash_list *hashes; /* ledger hashes of the records delivered */
    size_t fetched, dropped;
    int no_data;
} unit_result;

/* ---- fetch.c ---- */

/* Fetches page PG (NULL: the unit has no pages) of window W (NULL: none)
 * into BODY, or through the streaming extractor when c->sx_out or c->us is
 * set. *NO_DATA is set when the server answered one of the template's "no
 * data" statuses; BODY is then empty. URL receives the request's URL. */
pf_status pf_run_fetch(run_ctx *c, const pf_window *w, const pf_pager *pg, pf_buf *body,
                       int *no_data, pf_buf *url, pf_error *err);

/* pf_sx record callback (UD is the run_ctx): completes the record's identity
 * (identity.h), then hands it to the streamed unit or copies it into the
 * collected records. */
pf_status pf_run_sx_record(void *ud, const pf_sink_record *rec, pf_error *err);

/* ---- session.c ---- */

/* Saves the in-memory checkpoint to the flow's state file. */
pf_status pf_run_save_state(run_ctx *c, pf_error *err);

/* Commits the sink, offering a checkpoint-storing sink the checkpoint this
 * commit leads to (FINAL: the unit's; else the one before the unit), and
 * records the new resume token in the in-memory state. */
pf_sink_result pf_run_commit(run_ctx *c, int final, pf_error *err);

/* After open: adopts the sink's stored checkpoint when its seq is newer
 * than the file's. Returns 1 when adopted; *ST is set on failure. */
int pf_run_adopt_checkpoint(run_ctx *c, pf_error *err, pf_status *st);

/* Closes the sink (when open) and opens it again from the last durable
 * point, retrying while the open is transient: *ATTEMPT counts up to
 * ATTEMPTS, *DELAY doubles. */
pf_status pf_run_reopen_sink(run_ctx *c, int64_t *delay, int *attempt, int attempts, pf_error *err);

/* Writes records A .. B-1 of SRC (NULL: none) and commits, retrying from
 * the last durable point while the sink answers RETRY (a commit whose answer
 * was lost is settled with pf_run_commit_happened first). *REFUSED is set
 * when the sink answered ERROR (the sink is reopened then, so nothing of
 * the batch remains in it). A FATAL answer returns at once through
 * pf_run_sink_fatal. */
pf_status pf_run_write_commit(run_ctx *c, const pf_run_src *src, size_t a, size_t b, int final,
                              int *refused, pf_error *err);

/* See session.c: 1 when the commit numbered SEQ_BEFORE + 1 happened in the
 * sink although its answer was lost (seq taken), 0 when not, -1 on failure. */
int pf_run_commit_happened(run_ctx *c, long long seq_before, pf_error *err);

/* The sink answered FATAL: marks ERR fatal, says that the run stops and
 * why nothing was dead-lettered, and returns its code. */
pf_status pf_run_sink_fatal(run_ctx *c, pf_error *err);

/* ---- deadletter.c ---- */

/* Delivers SRC as one durable batch, isolating and dead-lettering the
 * records the sink refuses; the last commit carries the unit's checkpoint. */
pf_status pf_run_deliver(run_ctx *c, const pf_run_src *src, pf_error *err);

/* ---- unit.c ---- */

/* Appends H to L (growing it). PF_ENOMEM leaves L unchanged. */
pf_status pf_run_hash_push(hash_list *l, uint64_t h, pf_error *err);

/* The late-arrival ledger hash of R (its stream and identity). */
uint64_t pf_run_record_hash(const pf_sink_record *r);

/* The pending gap record (borrowing c's gap text). */
pf_sink_record pf_run_gap_record(const run_ctx *c);

/* "window A/B page 3", "window A/B", "page 3" or "" into BUF. */
void pf_run_describe_unit(const pf_window *w, const pf_pager *pg, char *buf, size_t n);

/* Delivers what unit W/PG fetched (UR) and moves the checkpoint once it is
 * durable; on failure the in-memory checkpoint is left as it was. */
pf_status pf_run_complete_unit(run_ctx *c, const pf_window *w, pf_pager *pg, const unit_result *ur,
                               const char *where, pf_error *err);

/* Fetches unit W/PG, collects its records in memory and completes it.
 * STREAMING: the extractor reads the body as it arrives. */
pf_status pf_run_collected_unit(run_ctx *c, const pf_window *w, pf_pager *pg, pf_buf *body,
                                pf_buf *url, int streaming, const char *where, pf_error *err);

/* ---- streamed.c ---- */

/* pf_sx record callback in direct delivery (c->us set). */
pf_status pf_run_us_record(run_ctx *c, const pf_sink_record *rec, pf_error *err);

/* Delivers the rest of streamed unit U (last batch, then the commit that
 * carries the unit's checkpoint); U->sink_r says what the sink answered. */
pf_status pf_run_us_deliver(run_ctx *c, unit_stream *u, pf_error *err);

/* An HTTP retry restarted the body: takes back what the unit wrote. */
pf_status pf_run_us_restart(run_ctx *c);

/* Fetches window W (NULL: the endpoint) and delivers its records to the
 * sink while the body arrives; see streamed.c. */
pf_status pf_run_streamed_unit(run_ctx *c, const pf_window *w, pf_buf *body, pf_buf *url,
                               const char *where, pf_error *err);

#endif
