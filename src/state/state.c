/* state.c: checkpoint file load/save (JSON, atomic replace) and the per-flow lock. */
#include "state/state.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "util/paths.h"
#include "util/timeutil.h"

#define STATE_MAX_BYTES (16u << 20)

pf_status pf_state_set_str(char **field, const char *value)
{
    char *c = NULL;
    if (value && !(c = strdup(value))) return PF_ENOMEM;
    free(*field);
    *field = c;
    return PF_OK;
}

void pf_state_free(pf_state *st)
{
    if (!st) return;
    free(st->template_name);
    free(st->page_kind);
    free(st->page_token);
    free(st->ledger);
    free(st->sink_type);
    free(st->sink_token);
    free(st->run_outcome);
    free(st->run_error);
    memset(st, 0, sizeof *st);
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t get_time(json_object *o, const char *key, int *ok)
{
    const char *s = get_str(o, key);
    int64_t ms = 0;
    *ok = s && pf_time_parse(s, &ms, NULL) == PF_OK;
    return ms;
}

pf_status pf_state_load(const char *path, pf_state *st, pf_error *err)
{
    char *text = NULL;
    size_t len = 0;
    pf_error e;
    pf_status rs = pf_read_file(path, STATE_MAX_BYTES, &text, &len, &e);
    if (rs == PF_ENOTFOUND) return PF_OK;
    if (rs != PF_OK) return pf_error_set(err, PF_ESTATE, "checkpoint %s: %s", path, e.msg);
    rs = pf_state_parse(text, len, path, st, err);
    free(text);
    return rs;
}

/* The "cursor" object of a checkpoint with page progress. */
static pf_status parse_page_cursor(json_object *c, const char *path, pf_state *st, pf_error *err)
{
    static const char *const kinds[] = {"page", "offset", "token", "next"};
    json_object *v;
    int ok;
    if (json_object_object_get_ex(c, "time", &v)) {
        st->cursor_ms = get_time(c, "time", &ok);
        if (!ok)
            return pf_error_set(err, PF_ESTATE, "checkpoint %s: cursor.time is not a date-time",
                                path);
        st->has_cursor = 1;
    }
    if (json_object_object_get_ex(c, "window_end", &v)) {
        st->page_window_end_ms = get_time(c, "window_end", &ok);
        if (!ok)
            return pf_error_set(err, PF_ESTATE,
                                "checkpoint %s: cursor.window_end is not a date-time", path);
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!json_object_object_get_ex(c, kinds[i], &v)) continue;
        if (i < 2 ? !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0
                  : !json_object_is_type(v, json_type_string))
            return pf_error_set(err, PF_ESTATE, "checkpoint %s: cursor.%s is not %s", path,
                                kinds[i], i < 2 ? "a number >= 0" : "a string");
        if (pf_state_set_str(&st->page_kind, kinds[i]) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
        if (i < 2)
            st->page_number = json_object_get_int64(v);
        else if (pf_state_set_str(&st->page_token, json_object_get_string(v)) != PF_OK)
            return pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
        break;
    }
    return PF_OK;
}

pf_status pf_state_parse(const char *text, size_t len, const char *path, pf_state *st,
                         pf_error *err)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *root = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    int complete = tok && json_tokener_get_error(tok) == json_tokener_success;
    if (complete) {
        /* One JSON value and nothing after it but whitespace. */
        for (size_t end = json_tokener_get_parse_end(tok); end < len; end++)
            if (text[end] != ' ' && text[end] != '\n' && text[end] != '\r' && text[end] != '\t')
                complete = 0;
    }
    json_tokener_free(tok);
    pf_status ret = PF_OK;
    json_object *v, *sink, *run;
    if (!root || !complete || !json_object_is_type(root, json_type_object)) {
        ret = pf_error_set(err, PF_ESTATE,
                           "checkpoint %s is not valid JSON; move it away to "
                           "start over, or restore it",
                           path);
        goto done;
    }
    if (!json_object_object_get_ex(root, "version", &v) ||
        json_object_get_int(v) != PF_STATE_VERSION) {
        ret = pf_error_set(err, PF_ESTATE, "checkpoint %s has an unsupported version", path);
        goto done;
    }
    int ok;
    if (json_object_object_get_ex(root, "seq", &v)) st->seq = json_object_get_int64(v);
    if (json_object_object_get_ex(root, "cursor", &v) && json_object_is_type(v, json_type_object)) {
        /* {"time"?, "window_end"?, one of "page", "offset", "token", "next"} */
        if ((ret = parse_page_cursor(v, path, st, err)) != PF_OK) goto done;
    } else if (json_object_object_get_ex(root, "cursor", &v) &&
               !json_object_is_type(v, json_type_null)) {
        st->cursor_ms = get_time(root, "cursor", &ok);
        if (!ok) {
            ret = pf_error_set(err, PF_ESTATE, "checkpoint %s: cursor is not a date-time", path);
            goto done;
        }
        st->has_cursor = 1;
    }
    if (pf_state_set_str(&st->template_name, get_str(root, "template")) != PF_OK) goto oom;
    if (json_object_object_get_ex(root, "sink", &sink) &&
        json_object_is_type(sink, json_type_object)) {
        if (pf_state_set_str(&st->sink_type, get_str(sink, "type")) != PF_OK) goto oom;
        json_object *tokobj;
        if (json_object_object_get_ex(sink, "resume", &tokobj) &&
            !json_object_is_type(tokobj, json_type_null) &&
            pf_state_set_str(&st->sink_token, json_object_to_json_string_ext(
                                                  tokobj, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE)) !=
                PF_OK)
            goto oom;
    }
    json_object *led;
    if (json_object_object_get_ex(root, "ledger", &led) &&
        json_object_is_type(led, json_type_object) &&
        pf_state_set_str(&st->ledger,
                         json_object_to_json_string_ext(led, JSON_C_TO_STRING_PLAIN)) != PF_OK)
        goto oom;
    if (json_object_object_get_ex(root, "last_run", &run) &&
        json_object_is_type(run, json_type_object)) {
        st->run_started_ms = get_time(run, "started", &ok);
        st->run_ended_ms = get_time(run, "ended", &ok);
        if (pf_state_set_str(&st->run_outcome, get_str(run, "outcome")) != PF_OK ||
            pf_state_set_str(&st->run_error, get_str(run, "error")) != PF_OK)
            goto oom;
        if (json_object_object_get_ex(run, "records", &v))
            st->run_records = json_object_get_int64(v);
        if (json_object_object_get_ex(run, "windows", &v))
            st->run_windows = json_object_get_int64(v);
        if (json_object_object_get_ex(run, "bytes", &v)) st->run_bytes = json_object_get_int64(v);
        if (json_object_object_get_ex(run, "retries", &v))
            st->run_retries = json_object_get_int64(v);
    }
    goto done;
oom:
    ret = pf_error_set(err, PF_ENOMEM, "out of memory reading checkpoint");
done:
    json_object_put(root);
    if (ret != PF_OK) pf_state_free(st);
    return ret;
}

static int add_time(json_object *o, const char *key, int64_t ms)
{
    char buf[PF_TIME_FMT_SIZE];
    pf_time_format(ms, buf);
    return json_object_object_add(o, key, json_object_new_string(buf));
}

pf_status pf_state_to_json(const pf_state *st, const char *flow_name, int pretty, char **out,
                           pf_error *err)
{
    *out = NULL;
    json_object *root = json_object_new_object();
    if (!root) return pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
    json_object_object_add(root, "version", json_object_new_int(PF_STATE_VERSION));
    json_object_object_add(root, "flow", json_object_new_string(flow_name));
    json_object_object_add(root, "seq", json_object_new_int64(st->seq));
    if (st->template_name)
        json_object_object_add(root, "template", json_object_new_string(st->template_name));
    if (st->page_kind) {
        /* Page progress: {"time"?, "window_end"?, "<kind>": next page}. */
        json_object *c = json_object_new_object();
        json_object_object_add(root, "cursor", c);
        if (st->has_cursor) add_time(c, "time", st->cursor_ms);
        if (st->page_window_end_ms) add_time(c, "window_end", st->page_window_end_ms);
        if (strcmp(st->page_kind, "page") == 0 || strcmp(st->page_kind, "offset") == 0)
            json_object_object_add(c, st->page_kind, json_object_new_int64(st->page_number));
        else
            json_object_object_add(c, st->page_kind,
                                   json_object_new_string(st->page_token ? st->page_token : ""));
    } else if (st->has_cursor) {
        add_time(root, "cursor", st->cursor_ms);
    } else {
        json_object_object_add(root, "cursor", NULL);
    }
    pf_status ret = PF_OK;
    if (st->ledger) {
        json_object *led = json_tokener_parse(st->ledger);
        if (!led) {
            ret = pf_error_set(err, PF_ESTATE, "the record ledger is not JSON");
            goto done;
        }
        json_object_object_add(root, "ledger", led);
    }
    if (st->sink_type) {
        json_object *sink = json_object_new_object();
        json_object_object_add(root, "sink", sink);
        json_object_object_add(sink, "type", json_object_new_string(st->sink_type));
        json_object *tok = st->sink_token ? json_tokener_parse(st->sink_token) : NULL;
        if (st->sink_token && !tok) {
            ret = pf_error_set(err, PF_ESTATE, "sink resume token is not JSON");
            goto done;
        }
        json_object_object_add(sink, "resume", tok);
    }
    if (st->run_outcome) {
        json_object *run = json_object_new_object();
        json_object_object_add(root, "last_run", run);
        add_time(run, "started", st->run_started_ms);
        if (st->run_ended_ms) add_time(run, "ended", st->run_ended_ms);
        json_object_object_add(run, "outcome", json_object_new_string(st->run_outcome));
        json_object_object_add(run, "records", json_object_new_int64(st->run_records));
        json_object_object_add(run, "windows", json_object_new_int64(st->run_windows));
        json_object_object_add(run, "bytes", json_object_new_int64(st->run_bytes));
        json_object_object_add(run, "retries", json_object_new_int64(st->run_retries));
        if (st->run_error)
            json_object_object_add(run, "error", json_object_new_string(st->run_error));
    }
    add_time(root, "updated", pf_time_real_ms());
    const char *text = json_object_to_json_string_ext(
        root, (pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN) |
                  JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!text || !(*out = strdup(text)))
        ret = pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
done:
    json_object_put(root);
    return ret;
}

pf_status pf_state_save(const char *path, const pf_state *st, const char *flow_name, pf_error *err)
{
    char *text = NULL;
    pf_status ret = pf_state_to_json(st, flow_name, 1, &text, err);
    if (ret != PF_OK) return ret;
    pf_error e;
    pf_error_clear(&e);
    size_t tl = strlen(text);
    char *withnl = realloc(text, tl + 2);
    if (!withnl) {
        free(text);
        return pf_error_set(err, PF_ENOMEM, "out of memory writing checkpoint");
    }
    withnl[tl] = '\n';
    withnl[tl + 1] = '\0';
    if (pf_write_file_atomic(path, withnl, tl + 1, &e) != PF_OK)
        ret = pf_error_set(err, PF_ESTATE, "cannot write checkpoint: %s", e.msg);
    free(withnl);
    return ret;
}

int pf_state_lock(const char *path, pf_error *err)
{
    char lp[4096];
    snprintf(lp, sizeof lp, "%s.lock", path);
    pf_error e;
    if (pf_mkdirs_for(lp, &e) != PF_OK) {
        pf_error_set(err, PF_ESTATE, "%s", e.msg);
        return -1;
    }
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        pf_error_set(err, PF_ESTATE, "cannot open lock file %s: %s", lp, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        pf_error_set(err, PF_ESTATE, "flow is being run by another ppflow process%s%s%s (lock %s)",
                     pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", lp);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* The pid is informational only. */
    }
    return fd;
}

void pf_state_unlock(int fd)
{
    if (fd >= 0) close(fd);
}
