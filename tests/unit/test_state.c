/* test_state.c: the checkpoint file (load/save round trip, corruption,
 * contents, every member validated as untrusted input, the flow and
 * directory checks, FIFOs) and the per-flow run lock (exclusive, never
 * through a link or into a FIFO, stale temporary files removed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "unit_support.h"

#include <dirent.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/keyledger.h"
#include "state/state.h"
#include "util/log.h"
#include "util/paths.h"

/* 2026-11-22T00:00:00Z */
#define T0 INT64_C(1795305600000)

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pft-state-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    pf_log_clear_secrets();
    return 0;
}

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static char *slurp(const char *path)
{
    char *text = NULL;
    size_t len;
    pf_error e;
    if (pf_read_file(path, 1u << 20, &text, &len, &e) != PF_OK)
        fail_msg("cannot read %s: %s", path, e.msg);
    return text;
}

/* A state with every field set. */
static void full_state(pf_state *st)
{
    memset(st, 0, sizeof *st);
    st->has_cursor = 1;
    st->cursor_ms = T0 + 3 * 3600000;
    assert_int_equal(pf_state_set_str(&st->template_name, "tap-siem-all"), PF_OK);
    assert_int_equal(pf_state_set_str(&st->sink_type, "ndjson"), PF_OK);
    assert_int_equal(
        pf_state_set_str(&st->sink_token, "{\"files\":{\"/data/out/messages.ndjson\":1234}}"),
        PF_OK);
    st->run_started_ms = T0 + 1500;
    st->run_ended_ms = T0 + 65000;
    assert_int_equal(pf_state_set_str(&st->run_outcome, "failed"), PF_OK);
    st->run_records = 4242;
    st->run_windows = 3;
    st->run_retries = 7;
    assert_int_equal(pf_state_set_str(&st->run_error, "HTTP 503 from server"), PF_OK);
    st->has_origin = 1;
    st->origin_ms = T0 - 600000;
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "rt/state.json");
    pf_state a;
    full_state(&a);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_state_save(path, &a, "flow-one", &e), PF_OK);

    pf_state b = {0};
    assert_int_equal(pf_state_load(path, &b, &e), PF_OK);
    assert_int_equal(b.has_cursor, 1);
    assert_int_equal(b.cursor_ms, a.cursor_ms);
    assert_string_equal(b.template_name, "tap-siem-all");
    assert_string_equal(b.sink_type, "ndjson");
    assert_string_equal(b.sink_token, a.sink_token);
    assert_int_equal(b.run_started_ms, a.run_started_ms);
    assert_int_equal(b.run_ended_ms, a.run_ended_ms);
    assert_string_equal(b.run_outcome, "failed");
    assert_int_equal(b.run_records, 4242);
    assert_int_equal(b.run_windows, 3);
    assert_int_equal(b.run_retries, 7);
    assert_string_equal(b.run_error, "HTTP 503 from server");
    assert_int_equal(b.has_origin, 1);
    assert_int_equal(b.origin_ms, a.origin_ms);

    /* Saving what was loaded gives the same state again. */
    assert_int_equal(pf_state_save(path, &b, "flow-one", &e), PF_OK);
    pf_state c = {0};
    assert_int_equal(pf_state_load(path, &c, &e), PF_OK);
    assert_int_equal(c.cursor_ms, a.cursor_ms);
    assert_string_equal(c.sink_token, a.sink_token);
    pf_state_free(&a);
    pf_state_free(&b);
    pf_state_free(&c);
    assert_null(a.template_name); /* pf_state_free zeroes */
}

static void test_round_trip_minimal(void **state)
{
    (void)state;
    /* No cursor, no sink, never run: nothing invented on load. */
    char path[128];
    path_in_tmp(path, sizeof path, "min.json");
    pf_state a = {0};
    pf_error e;
    assert_int_equal(pf_state_save(path, &a, "flow-min", &e), PF_OK);
    pf_state b = {0};
    assert_int_equal(pf_state_load(path, &b, &e), PF_OK);
    assert_int_equal(b.has_cursor, 0);
    assert_null(b.template_name);
    assert_null(b.sink_type);
    assert_null(b.sink_token);
    assert_null(b.run_outcome);
    assert_null(b.run_error);
    pf_state_free(&b);

    /* A cursor with milliseconds keeps them. */
    a.has_cursor = 1;
    a.cursor_ms = T0 + 123;
    assert_int_equal(pf_state_save(path, &a, "flow-min", &e), PF_OK);
    assert_int_equal(pf_state_load(path, &b, &e), PF_OK);
    assert_int_equal(b.cursor_ms, T0 + 123);
    pf_state_free(&b);
}

static void test_missing_file_is_empty_state(void **state)
{
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "never/written.json");
    pf_state st = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_state_load(path, &st, &e), PF_OK);
    assert_int_equal(st.has_cursor, 0);
    assert_null(st.sink_token);
    assert_null(st.template_name);
    pf_state_free(&st);
}

static void load_corrupt(const char *text, const char *needle)
{
    char path[128];
    path_in_tmp(path, sizeof path, "corrupt.json");
    write_file(path, text);
    pf_state st = {0};
    pf_error e;
    pf_error_clear(&e);
    pf_status rc = pf_state_load(path, &st, &e);
    if (rc != PF_ESTATE) fail_msg("loading '%s' gave %d, want PF_ESTATE", text, rc);
    assert_int_equal(e.code, PF_ESTATE);
    assert_non_null(strstr(e.msg, path)); /* names the file */
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
    /* Nothing half-loaded. */
    assert_int_equal(st.has_cursor, 0);
    assert_null(st.template_name);
    assert_null(st.sink_token);
}

static void test_corrupt_file_is_an_error(void **state)
{
    (void)state;
    load_corrupt("this is not json", "not valid JSON");
    load_corrupt("", "not valid JSON");
    load_corrupt("{\"version\": 1, \"cursor\": \"2026-11-22T", "not valid JSON"); /* torn */
    load_corrupt("[1, 2, 3]", "not valid JSON");
    load_corrupt("{\"version\": 2, \"cursor\": null}", "version");
    load_corrupt("{\"cursor\": null}", "version");
    load_corrupt("{\"version\": 1, \"cursor\": \"yesterday\"}", "cursor");
    load_corrupt("{\"version\": 1, \"cursor\": 12345}", "cursor");
}

static void test_trailing_data_is_corruption(void **state)
{
    (void)state;
    /* Regression (fixed): pf_state_load (src/state/state.c:63-64) checks only that
     * json_tokener_parse_ex succeeded, not that the value ends the file, so a
     * checkpoint followed by garbage, or two concatenated checkpoints, loads
     * silently (the first one wins) instead of PF_ESTATE "not valid JSON".
     * */
    load_corrupt("{\"version\": 1} trailing", "not valid JSON");
    load_corrupt("{\"version\": 1, \"cursor\": \"2026-11-22T03:00:00Z\"}\n"
                 "{\"version\": 1, \"cursor\": \"2026-11-20T00:00:00Z\"}\n",
                 "not valid JSON");
}

static void test_saved_file_has_only_documented_fields(void **state)
{
    (void)state;
    static const char *const top[] = {"version", "flow",    "seq",    "template", "cursor", "sink",
                                      "last_run", "updated", "ledger", "origin",   NULL};
    static const char *const sink[] = {"type", "resume", NULL};
    static const char *const run[] = {"started", "ended",   "outcome", "records", "windows",
                                      "bytes",   "retries", "error",   NULL};
    char path[128];
    path_in_tmp(path, sizeof path, "fields.json");
    pf_state a;
    full_state(&a);
    pf_error e;
    assert_int_equal(pf_state_save(path, &a, "flow-fields", &e), PF_OK);
    pf_state_free(&a);

    char *text = slurp(path);
    json_object *root = json_tokener_parse(text);
    assert_non_null(root);
    struct {
        const char *name;
        const char *const *allowed;
    } objs[] = {{"", top}, {"sink", sink}, {"last_run", run}};
    for (size_t i = 0; i < 3; i++) {
        json_object *o = root;
        if (*objs[i].name) assert_true(json_object_object_get_ex(root, objs[i].name, &o));
        assert_true(json_object_is_type(o, json_type_object));
        json_object_object_foreach(o, key, val)
        {
            (void)val;
            int ok = 0;
            for (const char *const *a = objs[i].allowed; *a; a++)
                ok |= strcmp(*a, key) == 0;
            if (!ok)
                fail_msg("undocumented field '%s' in %s", key,
                         *objs[i].name ? objs[i].name : "root");
        }
    }
    json_object *v;
    assert_true(json_object_object_get_ex(root, "version", &v));
    assert_int_equal(json_object_get_int(v), PF_STATE_VERSION);
    assert_true(json_object_object_get_ex(root, "flow", &v));
    assert_string_equal(json_object_get_string(v), "flow-fields");
    assert_true(json_object_object_get_ex(root, "cursor", &v));
    assert_string_equal(json_object_get_string(v), "2026-11-22T03:00:00Z");
    /* The sink token is stored as JSON, not as an escaped string. */
    json_object *s, *r;
    assert_true(json_object_object_get_ex(root, "sink", &s));
    assert_true(json_object_object_get_ex(s, "resume", &r));
    assert_true(json_object_is_type(r, json_type_object));
    json_object_put(root);
    free(text);

    /* Private file, no temporary left behind. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, ".tmp"));
    closedir(d);
}

static void test_no_secret_in_saved_state(void **state)
{
    (void)state;
    const char *secret = "Sup3r-S3cret-Passw0rd";
    assert_int_equal(pf_log_add_secret(secret), 0);
    char path[128];
    path_in_tmp(path, sizeof path, "secret.json");
    pf_state a;
    full_state(&a);
    /* What the engine stores after a failure whose message echoed the
     * credential: the message goes through redaction first. */
    char raw[256], clean[256];
    snprintf(raw, sizeof raw, "HTTP 401: bad credentials for user svc:%s", secret);
    pf_log_redact(raw, clean, sizeof clean);
    assert_int_equal(pf_state_set_str(&a.run_error, clean), PF_OK);
    pf_error e;
    assert_int_equal(pf_state_save(path, &a, "flow-secret", &e), PF_OK);
    pf_state_free(&a);
    char *text = slurp(path);
    assert_null(strstr(text, secret));
    assert_null(strstr(text, "Passw0rd"));
    assert_non_null(strstr(text, "bad credentials")); /* the rest of the message is kept */
    free(text);
}

static void test_save_refuses_invalid_token(void **state)
{
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "badtok.json");
    pf_state good;
    full_state(&good);
    pf_error e;
    assert_int_equal(pf_state_save(path, &good, "f", &e), PF_OK);
    pf_state_free(&good);

    pf_state a = {0};
    assert_int_equal(pf_state_set_str(&a.sink_type, "ndjson"), PF_OK);
    assert_int_equal(pf_state_set_str(&a.sink_token, "{not json"), PF_OK);
    pf_error_clear(&e);
    assert_int_equal(pf_state_save(path, &a, "f", &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "token"));
    pf_state_free(&a);
    /* The previous checkpoint is untouched. */
    pf_state b = {0};
    assert_int_equal(pf_state_load(path, &b, &e), PF_OK);
    assert_int_equal(b.has_cursor, 1);
    assert_string_equal(b.sink_token, "{\"files\":{\"/data/out/messages.ndjson\":1234}}");
    pf_state_free(&b);
}

/* Every number is checked for type and range on load: a string such as
 * "17k" is not read as 17, 17.5 not as 17, and an integer beyond 64 bits
 * is not clamped into range. The message names the file and the field. */
static void test_numbers_are_checked_on_load(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"version\":1,\"seq\":\"17k\"}", "seq is \"17k\", not an integer from 0 to"},
        {"{\"version\":1,\"origin\":5}", "origin is 5"},
        {"{\"version\":1,\"origin\":\"yesterday\"}", "origin is \"yesterday\""},
        {"{\"version\":1,\"seq\":\"17\"}", "seq is \"17\""},
        {"{\"version\":1,\"seq\":17.5}", "seq is 17.5"},
        {"{\"version\":1,\"seq\":-1}", "seq is -1"},
        {"{\"version\":1,\"seq\":true}", "seq is true"},
        {"{\"version\":1,\"seq\":null}", "seq is null"},
        {"{\"version\":1,\"seq\":99999999999999999999}", "seq is"},
        {"{\"version\":1,\"seq\":-99999999999999999999}", "seq is"},
        {"{\"version\":1,\"seq\":4611686018427387905}", "seq is 4611686018427387905"},
        {"{\"version\":\"1\"}", "version"},
        {"{\"version\":1.0}", "version"},
        {"{\"version\":true}", "version"},
        {"{\"version\":1,\"cursor\":{\"page\":\"3\"}}", "cursor.page is \"3\""},
        {"{\"version\":1,\"cursor\":{\"offset\":-5}}", "cursor.offset is -5"},
        {"{\"version\":1,\"cursor\":{\"offset\":1e2}}", "cursor.offset"},
        {"{\"version\":1,\"cursor\":{\"token\":17}}", "cursor.token is 17, not a string"},
        {"{\"version\":1,\"cursor\":{\"time\":\"2026-11-22T00:00:00Zjunk\",\"page\":1}}",
         "cursor.time"},
        {"{\"version\":1,\"cursor\":\"2026-11-22T00:00:00Z \"}", "cursor is"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"records\":\"17k\"}}",
         "last_run.records is \"17k\""},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"bytes\":1e3}}", "last_run.bytes"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"windows\":[]}}", "last_run.windows"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"retries\":-2}}", "last_run.retries"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"started\":\"yesterday\"}}",
         "last_run.started is \"yesterday\", not a date-time"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"ended\":1795305600000}}",
         "last_run.ended"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        load_corrupt(bad[i].text, bad[i].needle);

    /* The largest seq loads; the next commit is refused, not wrapped. */
    char path[128];
    path_in_tmp(path, sizeof path, "maxseq.json");
    write_file(path, "{\"version\":1,\"seq\":4611686018427387904,\"cursor\":null}");
    pf_state st = {0};
    pf_error e;
    assert_int_equal(pf_state_load(path, &st, &e), PF_OK);
    assert_int_equal(st.seq, PF_STATE_MAX_COUNT);
    pf_error_clear(&e);
    assert_int_equal(pf_state_next_seq(&st, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "seq is at its maximum"));
    assert_int_equal(st.seq, PF_STATE_MAX_COUNT);
    st.seq = PF_STATE_MAX_COUNT - 1;
    assert_int_equal(pf_state_next_seq(&st, &e), PF_OK);
    assert_int_equal(st.seq, PF_STATE_MAX_COUNT);
    /* A seq past the maximum (or negative) is never written. */
    assert_int_equal(pf_state_save(path, &st, "f", &e), PF_OK);
    st.seq = PF_STATE_MAX_COUNT + 1;
    pf_error_clear(&e);
    assert_int_equal(pf_state_save(path, &st, "f", &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "seq is 4611686018427387905"));
    st.seq = -1;
    assert_int_equal(pf_state_save(path, &st, "f", &e), PF_ESTATE);
    st.seq = 3;
    st.page_number = -4;
    pf_state_set_str(&st.page_kind, "offset");
    assert_int_equal(pf_state_save(path, &st, "f", &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "cursor.offset is -4"));
    /* A time that would not read back as a date is not written either. */
    st.page_number = 4;
    st.has_cursor = 1;
    st.cursor_ms = INT64_C(400000000000000); /* year 14645 */
    assert_int_equal(pf_state_save(path, &st, "f", &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, "cursor.time"));
    pf_state_free(&st);
    /* The file still holds the last good checkpoint. */
    assert_int_equal(pf_state_load(path, &st, &e), PF_OK);
    assert_int_equal(st.seq, PF_STATE_MAX_COUNT);
    pf_state_free(&st);
}

/* A checkpoint never grows past what the loader reads: a large
 * late-arrival ledger (1.1 million records) reads back, and a checkpoint
 * that would pass the limit is refused with what is too large, keeping the
 * previous one. */
static void test_checkpoint_size_limit(void **state)
{
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "big/state.json");
    pf_state a;
    full_state(&a);
    pf_keyledger *l = pf_keyledger_new();
    assert_non_null(l);
    pf_error e;
    for (uint64_t i = 1; i <= 1100000; i++)
        assert_int_equal(pf_keyledger_add(l, i * 0x9e3779b97f4a7c15ULL,
                                          T0 + (int64_t)(i / 100000) * 60000, &e),
                         PF_OK);
    char *ledger = NULL;
    assert_int_equal(pf_keyledger_to_json(l, &ledger, &e), PF_OK);
    pf_keyledger_free(l);
    assert_true(strlen(ledger) > ((size_t)16 << 20)); /* over the former 16 MiB limit */
    a.ledger = ledger;
    pf_error_clear(&e);
    assert_int_equal(pf_state_save(path, &a, "busy", &e), PF_OK);
    pf_state b = {0};
    if (pf_state_load(path, &b, &e) != PF_OK) fail_msg("%s", e.msg);
    assert_non_null(b.ledger);
    pf_keyledger *m = NULL;
    assert_int_equal(pf_keyledger_from_json(b.ledger, strlen(b.ledger), &m, &e), PF_OK);
    assert_int_equal(pf_keyledger_count(m), 1100000);
    pf_keyledger_free(m);
    pf_state_free(&b);

    /* With a resume token that makes it too large, nothing is written. */
    size_t tn = (size_t)50 << 20;
    char *token = malloc(tn + 16);
    assert_non_null(token);
    memcpy(token, "{\"x\":\"", 6);
    memset(token + 6, 'a', tn);
    memcpy(token + 6 + tn, "\"}", 3);
    free(a.sink_token);
    a.sink_token = token;
    pf_error_clear(&e);
    assert_int_equal(pf_state_save(path, &a, "busy", &e), PF_ETOOBIG);
    assert_non_null(strstr(e.msg, "the checkpoint of flow busy would be larger than 67108864"));
    assert_non_null(strstr(e.msg, "sink's resume data (sink.resume) takes 52428808 bytes"));
    assert_non_null(strstr(e.msg, "the previous one stays"));
    char *text = NULL;
    assert_int_equal(pf_state_to_json(&a, "busy", 0, &text, &e), PF_ETOOBIG);
    assert_null(text);
    pf_state_free(&a);
    assert_int_equal(pf_state_load(path, &b, &e), PF_OK); /* the previous checkpoint */
    assert_string_equal(b.sink_token, "{\"files\":{\"/data/out/messages.ndjson\":1234}}");
    pf_state_free(&b);

    /* What is over the limit is refused on load, naming the file. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs("{\"version\":1,\"x\":\"", f) >= 0, 1);
    for (size_t i = 0; i < PF_STATE_MAX_BYTES / 4096; i++)
        for (int j = 0; j < 4096; j++)
            fputc('a', f);
    assert_int_equal(fputs("\"}", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_state_load(path, &b, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "larger than 67108864 bytes"));
}

static void test_lock_is_exclusive(void **state)
{
    (void)state;
    char path[128], lock[160];
    path_in_tmp(path, sizeof path, "locks/flow.json");
    snprintf(lock, sizeof lock, "%s.lock", path);
    pf_error e;
    pf_error_clear(&e);
    int fd = pf_state_lock(path, &e);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A second lock (another open file description, as another process would
     * have) fails at once, naming the holder. */
    pf_error_clear(&e);
    assert_int_equal(pf_state_lock(path, &e), -1);
    assert_int_equal(e.code, PF_ESTATE);
    assert_non_null(strstr(e.msg, "another ppflow process"));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(e.msg, pid));

    /* After unlocking it can be taken again. */
    pf_state_unlock(fd);
    pf_error_clear(&e);
    fd = pf_state_lock(path, &e);
    assert_true(fd >= 0);
    pf_state_unlock(fd);
    pf_state_unlock(-1); /* harmless */

    /* Different flows do not block each other. */
    char other[128];
    path_in_tmp(other, sizeof other, "locks/other.json");
    int a = pf_state_lock(path, &e), b = pf_state_lock(other, &e);
    assert_true(a >= 0);
    assert_true(b >= 0);
    pf_state_unlock(a);
    pf_state_unlock(b);
}

/* A checkpoint is untrusted input: every member's type and range, no NUL
 * inside a string (refused, not cut short), nothing unknown. Each refusal
 * names the file and the member. */
static void test_checkpoint_members_are_validated(void **state)
{
    (void)state;
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"{\"version\":1.5}", "member version is 1.5, not the integer 1"},
        {"{\"version\":\"1\"}", "member version is \"1\", not the integer 1"},
        {"{\"version\":2}", "member version is 2, not the integer 1"},
        {"{\"seq\":1}", "member version is missing"},
        {"{\"version\":1,\"cursor\":{\"page\":-1}}", "member cursor.page is -1, not an integer"},
        {"{\"version\":1,\"flow\":17}", "member flow is 17, not a string"},
        {"{\"version\":1,\"flow\":\"a b\"}", "member flow is \"a b\", not a flow name"},
        {"{\"version\":1,\"flow\":\"\"}", "member flow is \"\", not a flow name"},
        {"{\"version\":1,\"flow\":\"si\\u0000em\"}", "member flow holds a NUL character"},
        {"{\"version\":1,\"template\":5}", "member template is 5, not a string"},
        {"{\"version\":1,\"template\":\"\"}", "member template is \"\", not a template name"},
        {"{\"version\":1,\"template\":\"tap\\u0000x\"}", "member template holds a NUL"},
        {"{\"version\":1,\"cursor\":{\"token\":\"ab\\u0000cd\"}}",
         "member cursor.token holds a NUL character"},
        {"{\"version\":1,\"cursor\":{\"next\":\"https://a.example/\\u0000\"}}",
         "member cursor.next holds a NUL character"},
        {"{\"version\":1,\"cursor\":{\"token\":\"ab\",\"page\":3}}",
         "member cursor holds both cursor.page and cursor.token"},
        {"{\"version\":1,\"cursor\":{\"time\":\"2026-11-22T00:00:00Z\"}}",
         "member cursor is an object without a page position"},
        {"{\"version\":1,\"cursor\":{\"page\":3,\"pgae\":4}}",
         "member cursor.pgae is not one ppflow writes"},
        {"{\"version\":1,\"cursor\":true}", "member cursor is true, not a date-time"},
        {"{\"version\":1,\"cursor\":\"2026-11-22T00:00:00Z\\u0000junk\"}",
         "member cursor holds a NUL character"},
        {"{\"version\":1,\"cursor\":{\"time\":\"2026-11-22T00:00:00Z\\u0000\",\"page\":2}}",
         "member cursor.time holds a NUL"},
        {"{\"version\":1,\"cursor\":{\"window_end\":17,\"page\":2}}", "member cursor.window_end is 17"},
        {"{\"version\":1,\"updated\":\"now\"}", "member updated is \"now\", not a date-time"},
        {"{\"version\":1,\"origin\":null}", "member origin is null"},
        {"{\"version\":1,\"cursr\":null}", "member cursr is not one ppflow writes"},
        {"{\"version\":1,\"\\u001b[2Jx\":1}", "member ?[2Jx is not one ppflow writes"},
        {"{\"version\":1,\"sink\":\"ndjson\"}", "member sink is \"ndjson\", not an object"},
        {"{\"version\":1,\"sink\":{\"resume\":{}}}", "member sink.type is missing"},
        {"{\"version\":1,\"sink\":{\"type\":7}}", "member sink.type is 7, not a string"},
        {"{\"version\":1,\"sink\":{\"type\":\"ndjson\",\"extra\":1}}",
         "member sink.extra is not one ppflow writes"},
        {"{\"version\":1,\"ledger\":\"abc\"}", "member ledger is \"abc\", not an object"},
        {"{\"version\":1,\"ledger\":[]}", "member ledger is [], not an object"},
        {"{\"version\":1,\"last_run\":[]}", "member last_run is [], not an object"},
        {"{\"version\":1,\"last_run\":{\"records\":1}}", "member last_run.outcome is missing"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"great\"}}",
         "member last_run.outcome is \"great\", not ok, failed, running or interrupted"},
        {"{\"version\":1,\"last_run\":{\"outcome\":1}}", "member last_run.outcome is 1"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"error\":\"x\\u0000y\"}}",
         "member last_run.error holds a NUL"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"error\":[]}}",
         "member last_run.error is [], not a string"},
        {"{\"version\":1,\"last_run\":{\"outcome\":\"ok\",\"pid\":1}}",
         "member last_run.pid is not one ppflow writes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        load_corrupt(bad[i].text, bad[i].needle);
    /* The message names the file as "checkpoint PATH: member ...". */
    char path[128], want[200];
    path_in_tmp(path, sizeof path, "corrupt.json");
    write_file(path, "{\"version\":1,\"cursor\":{\"page\":\"x\"}}");
    pf_state st = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_state_load(path, &st, &e), PF_ESTATE);
    snprintf(want, sizeof want, "checkpoint %s: member cursor.page is \"x\"", path);
    if (!strstr(e.msg, want)) fail_msg("'%s' lacks '%s'", e.msg, want);

    /* What ppflow writes still reads, every member included. */
    static const char *const good[] = {
        "{\"version\":1,\"flow\":\"siem-all_2.x\",\"seq\":0,\"cursor\":null}",
        "{\"version\":1,\"cursor\":{\"token\":\"\"}}",
        "{\"version\":1,\"cursor\":{\"time\":\"2026-11-22T00:00:00Z\",\"window_end\":"
        "\"2026-11-22T01:00:00Z\",\"next\":\"https://a.example/?p=2\"}}",
        "{\"version\":1,\"sink\":{\"type\":\"ndjson\",\"resume\":null},\"ledger\":{},"
        "\"last_run\":{\"outcome\":\"interrupted\"},\"updated\":\"2026-11-22T00:00:00Z\"}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pf_state g = {0};
        pf_error_clear(&e);
        if (pf_state_parse(good[i], strlen(good[i]), "good.json", &g, &e) != PF_OK)
            fail_msg("'%s' refused: %s", good[i], e.msg);
        pf_state_free(&g);
    }
    pf_state g = {0};
    assert_int_equal(pf_state_parse(good[0], strlen(good[0]), "good.json", &g, &e), PF_OK);
    assert_string_equal(g.flow_name, "siem-all_2.x");
    pf_state_free(&g);

    /* Found by fuzz_state: a sink's resume data that is a bare number read
     * but could not be written back ("not JSON"). */
    const char *num = "{\"version\":1,\"sink\":{\"type\":\"kafka\",\"resume\":10}}";
    assert_int_equal(pf_state_parse(num, strlen(num), "num.json", &g, &e), PF_OK);
    assert_string_equal(g.sink_token, "10");
    char *text = NULL;
    if (pf_state_to_json(&g, "f", 0, &text, &e) != PF_OK) fail_msg("%s", e.msg);
    assert_non_null(strstr(text, "\"resume\":10}"));
    free(text);
    pf_state_free(&g);
}

/* Before a run (or plan, or status) trusts a checkpoint: the flow it
 * records must be the flow being run, and its directory must be private. */
static void test_load_for_checks_flow_and_directory(void **state)
{
    (void)state;
    char dir[128], path[160];
    path_in_tmp(dir, sizeof dir, "sd");
    snprintf(path, sizeof path, "%s/state.json", dir);
    pf_state a;
    full_state(&a);
    pf_error e;
    assert_int_equal(pf_state_save(path, &a, "siem", &e), PF_OK);
    pf_state_free(&a);
    pf_state st = {0};
    assert_int_equal(pf_state_load_for(path, "siem", &st, &e), PF_OK);
    assert_string_equal(st.flow_name, "siem");
    pf_state_free(&st);
    pf_error_clear(&e);
    assert_int_equal(pf_state_load_for(path, "other", &st, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "member flow is \"siem\", but the flow being run is other"));
    assert_null(st.template_name); /* nothing half-loaded */
    /* A checkpoint that does not record its flow is taken as it is. */
    write_file(path, "{\"version\":1,\"seq\":4}");
    assert_int_equal(pf_state_load_for(path, "other", &st, &e), PF_OK);
    assert_int_equal(st.seq, 4);
    pf_state_free(&st);

    assert_int_equal(chmod(dir, 0777), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_state_load_for(path, "siem", &st, &e), PF_ESTATE);
    char want[256];
    snprintf(want, sizeof want, "state directory %s is writable by group or others (mode 777)",
             dir);
    if (!strstr(e.msg, want)) fail_msg("'%s' lacks '%s'", e.msg, want);
    assert_int_equal(st.seq, 0);
    assert_int_equal(chmod(dir, 0700), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(dir, 65534, 65534), 0);
        pf_error_clear(&e);
        assert_int_equal(pf_state_load_for(path, "siem", &st, &e), PF_ESTATE);
        assert_non_null(strstr(e.msg, "is owned by uid 65534, not by the user running ppflow"));
        assert_int_equal(chown(dir, 0, 0), 0);
    }
    /* A directory that does not exist yet: no checkpoint, no error. */
    path_in_tmp(path, sizeof path, "nowhere/state.json");
    assert_int_equal(pf_state_load_for(path, "siem", &st, &e), PF_OK);
    assert_int_equal(st.has_cursor, 0);
}

/* A FIFO as the checkpoint is refused at once (`run` and `status` used to
 * block in fopen forever). */
static void test_fifo_checkpoint_is_refused_without_hanging(void **state)
{
    (void)state;
    alarm(20);
    char path[128];
    path_in_tmp(path, sizeof path, "fifo.json");
    assert_int_equal(mkfifo(path, 0600), 0);
    pf_state st = {0};
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_state_load(path, &st, &e), PF_ESTATE);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "is not a regular file (FIFO)"));
    alarm(0);
}

/* The lock file is never opened through a symbolic link (whose target
 * would be truncated and get a pid written into it), nor a FIFO; a state
 * directory others can write to is refused; once the lock is held, the
 * checkpoint's stale temporary files are removed. */
static void test_lock_file_cannot_be_redirected(void **state)
{
    (void)state;
    alarm(20);
    char dir[128], path[160], lock[180], victim[128];
    path_in_tmp(dir, sizeof dir, "lk");
    snprintf(path, sizeof path, "%s/state.json", dir);
    snprintf(lock, sizeof lock, "%s.lock", path);
    path_in_tmp(victim, sizeof victim, "victim");
    write_file(victim, "precious\n");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(symlink(victim, lock), 0);
    pf_error e;
    pf_error_clear(&e);
    assert_int_equal(pf_state_lock(path, &e), -1);
    assert_int_equal(e.code, PF_ESTATE);
    assert_non_null(strstr(e.msg, lock));
    assert_non_null(strstr(e.msg, "is a symbolic link"));
    char *text = slurp(victim);
    assert_string_equal(text, "precious\n");
    free(text);
    assert_int_equal(unlink(lock), 0);

    assert_int_equal(mkfifo(lock, 0600), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_state_lock(path, &e), -1);
    assert_non_null(strstr(e.msg, "is not a regular file (FIFO)"));
    assert_int_equal(unlink(lock), 0);

    assert_int_equal(chmod(dir, 0777), 0);
    pf_error_clear(&e);
    assert_int_equal(pf_state_lock(path, &e), -1);
    assert_non_null(strstr(e.msg, "is writable by group or others (mode 777); chmod 700 it"));
    struct stat sb;
    assert_int_equal(lstat(lock, &sb), -1); /* nothing created in it */
    assert_int_equal(chmod(dir, 0700), 0);

    /* Stale temporary files go when the lock is taken; others stay. */
    char stale[200], live[200], other[200];
    snprintf(stale, sizeof stale, "%s.tmp.99999999", path);
    snprintf(live, sizeof live, "%s.tmp.%ld", path, (long)getppid());
    snprintf(other, sizeof other, "%s.tmp.99999999.keep", path);
    write_file(stale, "half a checkp");
    write_file(live, "half a checkp");
    write_file(other, "x");
    int fd = pf_state_lock(path, &e);
    assert_true(fd >= 0);
    assert_int_equal(lstat(stale, &sb), -1);
    assert_int_equal(lstat(live, &sb), 0);
    assert_int_equal(lstat(other, &sb), 0);
    pf_state_unlock(fd);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_minimal),
        cmocka_unit_test(test_missing_file_is_empty_state),
        cmocka_unit_test(test_corrupt_file_is_an_error),
        cmocka_unit_test(test_trailing_data_is_corruption),
        cmocka_unit_test(test_saved_file_has_only_documented_fields),
        cmocka_unit_test(test_no_secret_in_saved_state),
        cmocka_unit_test(test_save_refuses_invalid_token),
        cmocka_unit_test(test_numbers_are_checked_on_load),
        cmocka_unit_test(test_checkpoint_size_limit),
        cmocka_unit_test(test_lock_is_exclusive),
        cmocka_unit_test(test_checkpoint_members_are_validated),
        cmocka_unit_test(test_load_for_checks_flow_and_directory),
        cmocka_unit_test(test_fifo_checkpoint_is_refused_without_hanging),
        cmocka_unit_test(test_lock_file_cannot_be_redirected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
