/* deadletter.c: isolating the records a sink refuses, and the dead-letter
 * file they go to.
 *
 * When a sink answers ERROR for a batch (a record it can never take), the
 * batch is split in halves, each half written and committed on its own
 * (partial commits: they carry the checkpoint as it was before the unit),
 * until every refused record stands alone. Each of those is appended to
 * <state.path>.deadletter.ndjson with the sink's reason, everything else is
 * delivered in order, and a final commit carries the unit's checkpoint. A
 * record is never dropped silently. The file is opened with pf_open_private
 * (util/safefile.h): a symbolic link, a FIFO or another user's file at its
 * path is refused, and the unit fails instead. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/run.h"
#include "engine/spool.h"
#include "util/log.h"
#include "util/paths.h"
#include "util/safefile.h"
#include "util/timeutil.h"

/* Appends REC to the flow's dead-letter file with REASON (redacted). */
static pf_status dead_letter(run_ctx *c, const pf_sink_record *rec, const char *reason,
                             pf_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.deadletter.ndjson", c->f->state_path);
    char clean[PF_ERROR_MSG_MAX + 64];
    pf_log_redact(reason, clean, sizeof clean);
    json_object *o = json_object_new_object();
    if (!o) return pf_error_set(err, PF_ENOMEM, "out of memory");
    char now[PF_TIME_FMT_SIZE];
    pf_time_format(pf_time_real_ms(), now);
    json_object_object_add(o, "time", json_object_new_string(now));
    json_object_object_add(o, "flow", json_object_new_string(c->f->name));
    json_object_object_add(o, "stream", json_object_new_string(rec->stream ? rec->stream : ""));
    json_object_object_add(
        o, "key", rec->key ? json_object_new_string_len(rec->key, (int)rec->key_len) : NULL);
    json_object_object_add(o, "reason", json_object_new_string(clean));
    const char *head =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    /* The record goes in as its own JSON text, unchanged: {...,"record":<rec>} */
    pf_status st = PF_OK;
    size_t hl = head ? strlen(head) : 0;
    FILE *fp = NULL;
    int fd = -1;
    if (!head || hl < 2) {
        st = pf_error_set(err, PF_ENOMEM, "out of memory");
        goto out;
    }
    if (pf_mkdirs_for(path, err) != PF_OK) {
        st = PF_EIO;
        goto out;
    }
    /* Never through a symbolic link, never into a FIFO or another user's
     * file: the reason and the record are text from the server. */
    fd = pf_open_private(path, O_WRONLY | O_CREAT | O_APPEND, "cannot open dead-letter file", err);
    if (fd < 0) {
        st = PF_EIO;
        goto out;
    }
    if (!(fp = fdopen(fd, "a"))) {
        st =
            pf_error_set(err, PF_EIO, "cannot open dead-letter file %s: %s", path, strerror(errno));
        close(fd);
        goto out;
    }
    fwrite(head, 1, hl - 1, fp);
    fputs(",\"record\":", fp);
    fwrite(rec->json, 1, rec->json_len, fp);
    fputs("}\n", fp);
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        st = pf_error_set(err, PF_EIO, "cannot write dead-letter file %s: %s", path,
                          strerror(errno));
    if (fclose(fp) != 0 && st == PF_OK)
        st = pf_error_set(err, PF_EIO, "cannot write dead-letter file %s", path);
out:
    json_object_put(o);
    return st;
}

/* Delivers SRC as one durable batch. When the sink answers ERROR (a batch
 * that can never succeed), the batch is split in halves until the records
 * at fault are isolated: each of those goes to the dead-letter file with
 * the sink's reason, everything else is delivered, and a final commit
 * carries the unit's checkpoint. Nothing is dropped silently. Records come
 * from memory or from the spool, never from the API again. */
pf_status pf_run_deliver(run_ctx *c, const pf_run_src *src, pf_error *err)
{
    int refused = 0;
    pf_status st = pf_run_write_commit(c, src, 0, src->count, 1, &refused, err);
    if (st == PF_OK || !refused) return st;
    char first[PF_ERROR_MSG_MAX];
    pf_error_format(err, first, sizeof first);
    pf_log_warn("%s; isolating the records the sink refuses", first);
    size_t lo[130], hi[130], top = 0;
    /* Halves are pushed right first, so ranges are delivered in order; the
     * depth is bounded by log2(count) + 1 entries per level. */
    lo[top] = 0;
    hi[top++] = src->count;
    while (top) {
        top--;
        size_t a = lo[top], b = hi[top];
        if (a >= b) continue;
        pf_error e;
        pf_error_clear(&e);
        st = pf_run_write_commit(c, src, a, b, 0, &refused, &e);
        if (st == PF_OK) continue;
        if (!refused) {
            if (err) *err = e;
            return st;
        }
        if (b - a == 1) {
            char why[PF_ERROR_MSG_MAX];
            pf_error_format(&e, why, sizeof why);
            const pf_sink_record *rec = src->mem ? &src->mem[a] : NULL;
            if (!rec && (st = pf_spool_read(src->spool, a, 1, &rec, err)) != PF_OK) return st;
            if ((st = dead_letter(c, rec, why, err)) != PF_OK) return st;
            c->stats->dead_letters++;
            continue;
        }
        size_t mid = a + (b - a) / 2;
        if (top + 2 > sizeof lo / sizeof lo[0])
            return pf_error_set(err, PF_ESINK, "cannot isolate the records the sink refuses");
        lo[top] = mid;
        hi[top++] = b;
        lo[top] = a;
        hi[top++] = mid;
    }
    pf_log_error("%lld records refused by sink %s so far were written to %s.deadletter.ndjson",
                 c->stats->dead_letters, c->f->sink.desc->name, c->f->state_path);
    /* The commit that completes the unit (and carries its checkpoint). */
    return pf_run_write_commit(c, NULL, 0, 0, 1, &refused, err);
}
