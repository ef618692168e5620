/* state.h: a flow's checkpoint file and its lock.
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
    char *flow_name;         /* the flow that wrote the checkpoint ("flow"); NULL when the
                                file does not say; never written from here (pf_state_to_json
                                takes the name) */
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
 * not an error: ST stays empty. The file is read without blocking and must
 * be a regular file (a symbolic link to one is followed; see pf_read_file).
 * PF_ESTATE with a message naming PATH when the file exists but is not a
 * regular file, is unreadable, larger than PF_STATE_MAX_BYTES, not JSON, of
 * another version, or holds a member of the wrong type or out of range (see
 * pf_state_parse); ST is then left empty. PF_ENOMEM. */
pf_status pf_state_load(const char *path, pf_state *st, pf_error *err);

/* pf_state_load for flow FLOW_NAME (may be NULL: no flow check), with the
 * checks made before a run, a plan or `status` trusts the file: the
 * directory holding PATH must pass pf_check_private_dir (owned by the
 * running user or root, not writable by group or others; a directory that
 * does not exist yet passes), and a checkpoint that records a flow name
 * ("flow") must record FLOW_NAME. PF_ESTATE otherwise, naming the directory
 * or the file and member, with ST left empty. */
pf_status pf_state_load_for(const char *path, const char *flow_name, pf_state *st, pf_error *err);

/* Parses checkpoint TEXT (LEN bytes) into ST as pf_state_load does; PATH
 * names the source in messages. The text is untrusted input; every member
 * is checked and nothing else is accepted:
 *   - one JSON object (nothing after it but whitespace), at most
 *     PF_STATE_MAX_BYTES, nested at most 64 deep;
 *   - "version": the JSON integer PF_STATE_VERSION (not 1.0, 1.5 or "1");
 *   - "flow": a flow name (letters, digits, '-', '_', '.'; 1..128 bytes);
 *     "template": a non-empty string (at most 1024 bytes);
 *   - "seq", "cursor.page", "cursor.offset" and the "last_run" counters:
 *     JSON integers from 0 to PF_STATE_MAX_COUNT (not strings such as "17",
 *     not 17.0, not clamped out-of-range numbers);
 *   - "cursor": null, an RFC 3339 date-time, or an object of "time"?,
 *     "window_end"? (date-times) and exactly one of "page", "offset"
 *     (counts), "token", "next" (strings);
 *   - "origin", "updated", "last_run.started", "last_run.ended": RFC 3339
 *     date-time strings;
 *   - "sink": an object of "type" (a non-empty string, required) and
 *     "resume" (any JSON, kept as text for the sink to check);
 *   - "ledger": an object, kept as text for keyledger.c to check;
 *   - "last_run": an object with "outcome" (required: ok, failed, running
 *     or interrupted) and "error" (a string);
 *   - every string is free of NUL characters ("\u0000" is refused, not
 *     cut short), and no object holds a member other than those above.
 * A failure is PF_ESTATE "checkpoint PATH: member FIELD is VALUE, not
 * WANT; ..." (or "... is missing", "... holds a NUL character", "... is
 * not one ppflow writes"), with ST empty (PF_ENOMEM when memory runs out).
 * Never reads outside TEXT[0..LEN). */
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

/* Takes an exclusive advisory lock on PATH + ".lock" without waiting, after
 * creating PATH's directory when missing (0700) and checking it with
 * pf_check_private_dir. The lock file is opened with pf_open_private (never
 * through a symbolic link, never blocking on a FIFO, only a regular file of
 * the running user; created 0600); the pid of the holder is written into
 * it. Once the lock is held, the stale temporary files of the checkpoint
 * ("PATH.tmp.N" of a dead pid N, see pf_remove_stale_temps) are removed:
 * every writer of the checkpoint holds this lock. Returns a descriptor to
 * pass to pf_state_unlock, or -1 with ERR set: PF_ESTATE "flow is being run
 * by another ppflow process (pid N) (lock PATH.lock)", or PF_ESTATE naming
 * the lock file or the state directory and why it is refused. */
int pf_state_lock(const char *path, pf_error *err);
void pf_state_unlock(int fd);

#endif
