/* ppflow_sink.h: the sink plugin ABI (public, installed; the one header a
 * third-party sink needs).
 *
 * A sink exports one descriptor. The descriptor starts with the ABI version
 * and its own size; fields are only ever appended, so a host reads the fields
 * it knows and a plugin built against an older header still loads.
 *
 * Delivery contract, batch by batch:
 *   open     once per run, with the resume token the host saved at the last
 *            durable commit (NULL on the first run). The sink restores its
 *            destination to exactly that point (e.g. truncates a file).
 *   write    zero or more batches of records.
 *   commit   makes everything written since the last commit durable and
 *            returns a new resume token describing that point. Only after
 *            PF_SINK_OK does the host advance the flow's checkpoint, so a crash
 *            between write and commit repeats the uncommitted batches, which
 *            the resume token lets the sink discard.
 *   close    releases everything (also after a failure).
 * Outcomes: PF_SINK_OK = durable (commit) or accepted (write); PF_SINK_RETRY =
 * transient, the host offers the same batch again after a backoff;
 * PF_SINK_ERROR = this batch can never succeed (the host dead-letters it with
 * the reason and reports it; it is never dropped silently); PF_SINK_BUSY
 * (open only) = another process runs this flow; PF_SINK_FATAL = the
 * destination cannot take any record until someone changes it (the run
 * stops); see below. The first open of a run comes before any API call and
 * is tried once: a sink checks there that it can take records.
 *
 * All strings are UTF-8 and NUL-terminated unless a length is given. The host
 * owns everything it passes; the sink must copy what it keeps. */
#ifndef PPFLOW_SINK_H
#define PPFLOW_SINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PF_SINK_ABI_VERSION 1

typedef enum pf_sink_result {
    PF_SINK_OK = 0,
    PF_SINK_RETRY = 1,
    PF_SINK_ERROR = 2,
    /* From open only: another process holds the sink's lock on this flow
     * (e.g. the PostgreSQL sink's advisory lock), so this run must not
     * deliver anything. ERR says who holds it ("flow X is being run by
     * another ppflow process (...)"). The host ends the run at once with
     * the same outcome as a held state lock file (`ppflow run` fails, a
     * scheduled run is "busy") and does not retry. Added within ABI
     * version 1: hosts that predate it treat it as PF_SINK_ERROR (the run
     * fails, nothing is written). Any other callback answering it is
     * treated as PF_SINK_RETRY. */
    PF_SINK_BUSY = 3,
    /* From any callback: the destination cannot take any record until
     * someone changes it (authentication refused, an unknown database,
     * role or topic, a dropped table, a revoked privilege). Unlike
     * PF_SINK_ERROR it says nothing about the records: the host stops the
     * run at once with ERR, dead-letters nothing and does not retry; the
     * checkpoint stays at the last durable commit. Added within ABI
     * version 1: hosts that predate it treat it as PF_SINK_RETRY. */
    PF_SINK_FATAL = 4,
} pf_sink_result;

typedef enum pf_sink_opt_type {
    PF_SINK_OPT_STRING = 0,
    PF_SINK_OPT_INT = 1,
    PF_SINK_OPT_BOOL = 2,
    PF_SINK_OPT_DURATION = 3, /* "30s", "5m", ...; given to the sink in milliseconds */
    PF_SINK_OPT_SIZE = 4,     /* "64MiB", ...; given to the sink in bytes */
} pf_sink_opt_type;

/* One option a sink accepts. The host validates a flow's sink options
 * against this table before open (unknown key, wrong type, missing required
 * are configuration errors with the flow file's position). A key ending in
 * '*' declares a family: any key with that prefix is accepted as text (see
 * options_with_prefix). */
typedef struct pf_sink_option {
    const char *key;
    pf_sink_opt_type type;
    const char *default_value; /* text form, NULL: none */
    int required;
    const char *description;
} pf_sink_option;

/* One record. JSON is the record exactly as it will be delivered (minified
 * JSON text, not NUL-terminated). KEY is the record's identity: the value
 * at the first of the stream's key paths that the record has, else
 * "sha256:" and the hex SHA-256 of JSON (see stream_identity). Hosts since
 * stream_identity always set it; older hosts leave it NULL when the stream
 * has no key path or the record lacks it. */
typedef struct pf_sink_record {
    const char *stream;
    const char *key;
    size_t key_len;
    const char *json;
    size_t json_len;
} pf_sink_record;

/* Services the host offers a sink. Opaque handle + function table, so a
 * plugin links against nothing of ppflow's. */
typedef struct pf_sink_host pf_sink_host;
typedef struct pf_sink_host_api {
    uint32_t struct_size;
    /* The option's value as text (the default when the flow does not set it);
     * NULL when unset and without default. Valid until close. */
    const char *(*option)(const pf_sink_host *h, const char *key);
    /* The option as an integer (INT, BOOL as 0/1, DURATION in ms, SIZE in
     * bytes); DEF when unset. */
    int64_t (*option_int)(const pf_sink_host *h, const char *key, int64_t def);
    /* Logs through ppflow (secrets redacted). LEVEL: 0 error, 1 warning,
     * 2 info, 3 debug. */
    void (*log)(const pf_sink_host *h, int level, const char *msg);
    /* The flow's name. */
    const char *(*flow_name)(const pf_sink_host *h);
    /* During commit only: the flow checkpoint (a JSON object text) the host
     * will save once this commit succeeds; NULL at any other time. A sink that
     * can store it atomically with the batch (a database transaction) does so
     * and returns it from stored_checkpoint, which makes delivery exactly
     * once: the host's own checkpoint file may lag behind by one commit after
     * a crash, and the stored one wins. The object carries an integer "seq"
     * that grows by one per commit. */
    const char *(*pending_checkpoint)(const pf_sink_host *h);
    /* Calls FN for every option the flow sets whose key starts with PREFIX
     * (for pass-through families declared in the option table as "PREFIX*",
     * e.g. "librdkafka.*"), in the flow's order. */
    void (*options_with_prefix)(const pf_sink_host *h, const char *prefix,
                                void (*fn)(void *ud, const char *key, const char *value),
                                void *ud);
    /* Appended within ABI version 1 (check struct_size before calling):
     * how the records of STREAM are identified, as text: the stream's key
     * paths in the order they are tried, then "sha256" (the fallback), joined
     * by " | ", e.g. "$.id | sha256"; "sha256" alone when the stream has no
     * key path. A sink that keys its destination by record identity can
     * store it and refuse to mix identities (a table keyed by an earlier
     * definition). NULL for an unknown stream. Valid until close. */
    const char *(*stream_identity)(const pf_sink_host *h, const char *stream);
} pf_sink_host_api;

typedef struct pf_sink_descriptor {
    uint32_t abi_version; /* PF_SINK_ABI_VERSION */
    uint32_t struct_size; /* sizeof(pf_sink_descriptor) as the plugin saw it */
    const char *name;     /* the flow's `sink.type` */
    const char *description;
    const pf_sink_option *options; /* terminated by an entry with key NULL */

    /* Opens the sink. STREAMS lists every stream the flow can produce (for
     * sinks that prepare one destination per stream). RESUME is the token of
     * the last durable commit or NULL. On success stores the sink's state in
     * *STATE and returns PF_SINK_OK; otherwise writes a message into ERR. */
    pf_sink_result (*open)(const pf_sink_host *host, const pf_sink_host_api *api,
                           const char *const *streams, size_t nstreams, const char *resume,
                           void **state, char *err, size_t errlen);

    /* Accepts N records. */
    pf_sink_result (*write)(void *state, const pf_sink_record *recs, size_t n, char *err,
                            size_t errlen);

    /* Makes every accepted record durable. On PF_SINK_OK stores in *TOKEN a
     * resume token (a JSON text, owned by the sink, valid until the next call)
     * that the host keeps in the flow's checkpoint. */
    pf_sink_result (*commit)(void *state, const char **token, char *err, size_t errlen);

    /* Releases the state; never fails. STATE may be NULL. */
    void (*close)(void *state);

    /* Optional (NULL: the sink stores no checkpoint). Called right after
     * open: stores in *CHECKPOINT the checkpoint text saved with the last
     * durable commit (see pending_checkpoint), or NULL when there is none.
     * Owned by the sink, valid until the next call. The host adopts it when
     * its "seq" is newer than that of the checkpoint file. */
    pf_sink_result (*stored_checkpoint)(void *state, const char **checkpoint, char *err,
                                        size_t errlen);
} pf_sink_descriptor;

/* A plugin exports its descriptor under this symbol name. */
#define PF_SINK_SYMBOL "ppflow_sink_descriptor"

#ifdef __cplusplus
}
#endif

#endif
