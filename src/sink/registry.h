/* registry.h: finding sinks by name and running one on the host side.
 *
 * Built-in sinks (NDJSON) are linked in; plugins are shared objects loaded
 * with dlopen from the plugin search path. The registry checks the ABI version
 * and descriptor size, validates a flow's options against the sink's option
 * table, and wraps the descriptor's callbacks for the engine. */
#ifndef PF_SINK_REGISTRY_H
#define PF_SINK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "flow/yaml.h"
#include "sink/ppflow_sink.h"
#include "util/diag.h"
#include "util/status.h"

/* The descriptor for sink NAME, or NULL with ERR set: PF_ENOTFOUND when no
 * built-in or plugin has that name, PF_ECONFIG when its plugin file is
 * unusable (wrong ABI version, descriptor too small, missing symbol). A
 * plugin for NAME is the file ppflow_sink_NAME.so in, in order: the
 * colon-separated directories EXTRA_DIRS (may be NULL; a flow's
 * `sink.plugin_dir`), $PPFLOW_SINK_PATH, the build tree's sinks/ when ppflow
 * runs from it, and the install directory. The descriptor stays valid for the
 * life of the process (plugins are never unloaded). */
const pf_sink_descriptor *pf_sink_find_in(const char *name, const char *extra_dirs,
                                          pf_error *err);

/* pf_sink_find_in(NAME, NULL, ERR). */
const pf_sink_descriptor *pf_sink_find(const char *name, pf_error *err);

/* Calls FN for every sink found (built-ins first, then every loadable
 * plugin on the search path; unusable plugin files are logged as
 * warnings). */
void pf_sink_each(void (*fn)(void *ud, const pf_sink_descriptor *d), void *ud);

/* A flow's sink configuration: the option values as text, validated. */
typedef struct pf_sink_config {
    const pf_sink_descriptor *desc;
    char **keys, **values; /* owned; values already ${VAR}-expanded */
    size_t count;
    char *flow_name;
    /* Host settings (keys batch_records, batch_bytes): the most records and
     * about the most bytes the engine passes to one write; 0 = default. */
    size_t batch_records, batch_bytes;
} pf_sink_config;

/* Validates the sink mapping NODE (its `type` key excluded) against the
 * descriptor's option table, adding positioned problems to DIAGS, and fills
 * CFG. Returns PF_OK when there was no problem. */
pf_status pf_sink_config_load(const pf_sink_descriptor *desc, const pf_ynode *node,
                              const char *flow_name, pf_sink_config *cfg, pf_diags *diags);

/* The value of KEY (the default when unset), or NULL. */
const char *pf_sink_config_get(const pf_sink_config *cfg, const char *key);

/* Sets KEY to VALUE (used for command-line overrides). PF_ENOMEM on failure. */
pf_status pf_sink_config_set(pf_sink_config *cfg, const char *key, const char *value);

void pf_sink_config_free(pf_sink_config *cfg);

/* An open sink. */
typedef struct pf_sink pf_sink;

/* Opens the configured sink. IDENTITIES (may be NULL: "sha256" for every
 * stream) parallels STREAMS: how each stream's records are identified (see
 * stream_identity in ppflow_sink.h); both are borrowed until close. PF_ESINK
 * with the sink's message on failure; err->retriable set when the sink
 * answered PF_SINK_RETRY, err->fatal when it answered PF_SINK_FATAL.
 * PF_ESTATE (not retriable, the sink's message unprefixed) when it answered
 * PF_SINK_BUSY: another process holds the sink's lock on the flow. */
pf_status pf_sink_open(const pf_sink_config *cfg, const char *const *streams,
                       const char *const *identities, size_t nstreams, const char *resume,
                       pf_sink **out, pf_error *err);

/* Writes N records; outcome as the descriptor's write. */
pf_sink_result pf_sink_write(pf_sink *s, const pf_sink_record *recs, size_t n, pf_error *err);

/* Commits; CHECKPOINT (may be NULL) is the flow checkpoint text offered to
 * the sink for this commit (see pending_checkpoint in ppflow_sink.h).
 * *TOKEN is owned by the sink until the next call. */
pf_sink_result pf_sink_commit(pf_sink *s, const char *checkpoint, const char **token,
                              pf_error *err);

/* The checkpoint the sink stored with its last durable commit: *CHECKPOINT
 * is NULL when the sink stores none (or has none yet); owned by the sink. */
pf_sink_result pf_sink_stored_checkpoint(pf_sink *s, const char **checkpoint, pf_error *err);

/* 1 when S stores checkpoints itself (transactional sinks). */
int pf_sink_stores_checkpoint(const pf_sink *s);

/* Closes and frees S. NULL accepted. */
void pf_sink_close(pf_sink *s);

#endif
