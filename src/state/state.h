/* state.h: a flow's checkpoint file.
 *
 * The checkpoint holds the cursor (the end of the last time window whose
 * records the sink reported durable), the sink's resume token from that same
 * commit, and a summary of the last run. It is written atomically (temporary
 * file, fsync, rename, fsync of the directory), so a crash leaves the old or
 * the new checkpoint, never a torn one. It never holds credentials. */
#ifndef PF_STATE_STATE_H
#define PF_STATE_STATE_H

#include <stdint.h>

#include "util/status.h"

#define PF_STATE_VERSION 1

/* The largest checkpoint ppflow reads back, file or text (a checkpoint a
 * sink stores): the loader refuses a larger one, and the writer refuses to
 * produce one, so a checkpoint that was written can always be read. The
 * late-arrival ledger keeps to half of it (PF_KEYLEDGER_MAX_JSON). */
#define PF_STATE_MAX_BYTES ((size_t)64 << 20)

/* The largest value of every count in a checkpoint: seq, a page number or
 * offset, the last run's counters (2^62: arithmetic on them cannot
 * overflow, and no run comes near it). */
#define PF_STATE_MAX_COUNT (INT64_C(1) << 62)

typedef struct pf_state {
    long long seq;           /* grows by one per sink commit (pf_state_next_seq); orders
                                checkpoints; 0..PF_STATE_MAX_COUNT */
    int has_cursor;
    int64_t cursor_ms;       /* valid when has_cursor */
    /* Progress inside a paged unit of work (the endpoint's pages, or the
     * pages of the window that starts at cursor_ms): the next page to fetch.
     * page_kind is NULL when the unit starts at its first page; a run that
     * finishes a unit clears it. Saved inside the "cursor" object. */
    char *page_kind;         /* "page", "offset", "token" or "next" */
    long long page_number;   /* page: next page number; offset: next offset */
    char *page_token;        /* token: the cursor token; next: the next link */
    int64_t page_window_end_ms; /* windowed: end of that window; 0: not windowed */
    char *template_name;     /* template the cursor belongs to; NULL when unknown */
    char *sink_type;         /* sink the token belongs to; NULL when none */
    char *sink_token;        /* JSON text from the sink's last commit; NULL when none */
    /* Last run summary (informational). */
    int64_t run_started_ms, run_ended_ms;
    char *run_outcome;       /* "ok", "failed", "running"; NULL when never run */
    long long run_records;
    long long run_windows;
    long long run_bytes;     /* response bytes received */
    long long run_retries;   /* HTTP requests repeated (429, 5xx, transport failures) */
    char *ledger;            /* late arrivals: the record ledger (keyledger.h JSON); NULL: none */
    int has_origin;
    int64_t origin_ms;       /* windowed: where the flow's range began on its first run
                                ("origin"), so a re-sweep never reaches before it even when
                                the flow gave only since_seconds */
    char *run_error;         /* NULL when none */
} pf_state;

/* Loads PATH into ST (which the caller zero-initialises). A missing file is
 * not an error: ST stays empty. PF_ESTATE with a message naming PATH when
 * the file exists but is unreadable, larger than PF_STATE_MAX_BYTES, not
 * JSON, of another version, or holds a field of the wrong type or out of
 * range (see pf_state_parse); ST is then left empty. */
pf_status pf_state_load(const char *path, pf_state *st, pf_error *err);

/* Parses checkpoint TEXT (LEN bytes) into ST as pf_state_load does; PATH
 * names the source in messages. Every field is checked: "version" is the
 * integer PF_STATE_VERSION; "seq", "cursor.page", "cursor.offset" and the
 * "last_run" counters, when present, are JSON integers from 0 to
 * PF_STATE_MAX_COUNT (not strings such as "17", not 17.0, not clamped
 * out-of-range numbers); the dates are RFC 3339 strings; "sink.resume" and
 * "ledger" stay JSON texts for their owners to check. A failure is
 * PF_ESTATE "checkpoint PATH: FIELD is ..., not ...", with ST empty
 * (PF_ENOMEM when memory runs out). */
pf_status pf_state_parse(const char *text, size_t len, const char *path, pf_state *st,
                         pf_error *err);

/* Serialises ST for flow FLOW_NAME (PRETTY: one member per line) into *OUT
 * (malloc'd, NUL-terminated; the caller frees; NULL on failure). The sink
 * token and the ledger must each be one JSON value (the ledger an object)
 * and are embedded as they are. Only what pf_state_parse reads back is
 * written: PF_ESTATE when a count is outside 0..PF_STATE_MAX_COUNT, a time
 * cannot be written as a readable date, or the token or ledger is not
 * JSON; PF_ETOOBIG when the text would pass PF_STATE_MAX_BYTES (minus the
 * newline pf_state_save adds), with a message naming the largest part and
 * what to do; PF_ENOMEM. */
pf_status pf_state_to_json(const pf_state *st, const char *flow_name, int pretty, char **out,
                           pf_error *err);

/* Writes ST for flow FLOW_NAME to PATH atomically (pf_state_to_json, pretty,
 * and a newline). On failure PATH keeps its previous checkpoint; the errors
 * are pf_state_to_json's and PF_ESTATE "cannot write checkpoint: ...". */
pf_status pf_state_save(const char *path, const pf_state *st, const char *flow_name,
                        pf_error *err);

/* Moves ST->seq on by one (a sink commit). PF_ESTATE "seq is at its
 * maximum" with ST unchanged when it is PF_STATE_MAX_COUNT already (or
 * outside 0..PF_STATE_MAX_COUNT), instead of wrapping. */
pf_status pf_state_next_seq(pf_state *st, pf_error *err);

/* Replaces a string field (copies VALUE, NULL clears). PF_ENOMEM on failure
 * with the field unchanged. */
pf_status pf_state_set_str(char **field, const char *value);

/* Frees every field; ST may be NULL. Leaves ST zeroed. */
void pf_state_free(pf_state *st);

/* Takes an exclusive advisory lock on PATH + ".lock" (created 0600) without
 * waiting. Returns a descriptor to pass to pf_state_unlock, or -1 with ERR
 * set (PF_ESTATE "flow is being run by another ppflow process (pid N)"). */
int pf_state_lock(const char *path, pf_error *err);
void pf_state_unlock(int fd);

#endif
