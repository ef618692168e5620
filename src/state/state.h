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

typedef struct pf_state {
    long long seq;           /* grows by one per sink commit; orders checkpoints */
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
    char *run_error;         /* NULL when none */
} pf_state;

/* Loads PATH into ST (which the caller zero-initialises). A missing file is
 * not an error: ST stays empty. PF_ESTATE with a message when the file exists
 * but is unreadable, not JSON, or of another version. */
pf_status pf_state_load(const char *path, pf_state *st, pf_error *err);

/* Parses checkpoint TEXT (LEN bytes) into ST as pf_state_load does; PATH
 * names the source in messages. */
pf_status pf_state_parse(const char *text, size_t len, const char *path, pf_state *st,
                         pf_error *err);

/* Serialises ST for flow FLOW_NAME (PRETTY: indented) into *OUT (malloc'd,
 * NUL-terminated; the caller frees). PF_ENOMEM / PF_ESTATE on failure. */
pf_status pf_state_to_json(const pf_state *st, const char *flow_name, int pretty, char **out,
                           pf_error *err);

/* Writes ST for flow FLOW_NAME to PATH atomically. */
pf_status pf_state_save(const char *path, const pf_state *st, const char *flow_name,
                        pf_error *err);

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
