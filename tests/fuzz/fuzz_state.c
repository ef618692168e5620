/* fuzz_state.c: libFuzzer target for checkpoint parsing (pf_state_parse,
 * src/state/state.h), the one reader of a file an attacker may have
 * written. Checked for every input: a refusal is PF_ESTATE (or PF_ENOMEM)
 * with a message naming the source and leaves the state empty; an accepted
 * checkpoint can be written again (pf_state_to_json) and what is written
 * reads back to the same state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"

static int same_str(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static void check_empty(const pf_state *st)
{
    pf_state zero;
    memset(&zero, 0, sizeof zero);
    if (memcmp(st, &zero, sizeof zero) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_state st;
    memset(&st, 0, sizeof st);
    pf_error e;
    pf_error_clear(&e);
    pf_status rc = pf_state_parse((const char *)data, size, "fuzz.json", &st, &e);
    if (rc != PF_OK) {
        if (rc != PF_ESTATE && rc != PF_ENOMEM) abort();
        if (e.code != rc || (rc == PF_ESTATE && !strstr(e.msg, "fuzz.json"))) abort();
        check_empty(&st);
        return 0;
    }
    /* Accepted: the values are within their documented ranges... */
    if (st.seq < 0 || st.seq > PF_STATE_MAX_COUNT || st.page_number < 0 ||
        st.page_number > PF_STATE_MAX_COUNT || st.run_records < 0 || st.run_bytes < 0 ||
        st.run_windows < 0 || st.run_retries < 0)
        abort();
    if (st.page_kind && strcmp(st.page_kind, "page") != 0 && strcmp(st.page_kind, "offset") != 0 &&
        strcmp(st.page_kind, "token") != 0 && strcmp(st.page_kind, "next") != 0)
        abort();
    /* ...and the checkpoint can be written again and reads back the same. */
    char *text = NULL;
    pf_error_clear(&e);
    if (pf_state_to_json(&st, "fuzz-flow", 0, &text, &e) != PF_OK) abort();
    pf_state back;
    memset(&back, 0, sizeof back);
    if (pf_state_parse(text, strlen(text), "fuzz.json (written)", &back, &e) != PF_OK) abort();
    if (back.seq != st.seq || back.has_cursor != st.has_cursor ||
        (st.has_cursor && back.cursor_ms != st.cursor_ms) || back.page_number != st.page_number ||
        back.page_window_end_ms != st.page_window_end_ms || back.has_origin != st.has_origin ||
        (st.has_origin && back.origin_ms != st.origin_ms) ||
        !same_str(back.flow_name, "fuzz-flow") || !same_str(back.page_kind, st.page_kind) ||
        !same_str(back.template_name, st.template_name) ||
        !same_str(back.sink_type, st.sink_type) || !same_str(back.sink_token, st.sink_token) ||
        !same_str(back.ledger, st.ledger) || !same_str(back.run_outcome, st.run_outcome) ||
        !same_str(back.run_error, st.run_error) || back.run_records != st.run_records ||
        back.run_windows != st.run_windows || back.run_bytes != st.run_bytes ||
        back.run_retries != st.run_retries || back.run_started_ms != st.run_started_ms ||
        back.run_ended_ms != st.run_ended_ms)
        abort();
    if (st.page_kind && (strcmp(st.page_kind, "token") == 0 || strcmp(st.page_kind, "next") == 0) &&
        !same_str(back.page_token, st.page_token))
        abort();
    free(text);
    pf_state_free(&back);
    pf_state_free(&st);
    check_empty(&st);
    return 0;
}
