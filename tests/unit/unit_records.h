/* unit_records.h: checking extracted records in the cmocka unit tests.
 * Include after <cmocka.h>. */
#ifndef PF_TESTS_UNIT_RECORDS_H
#define PF_TESTS_UNIT_RECORDS_H

#include <string.h>

#include "sink/ppflow_sink.h"

/* Fails the test unless R has stream STREAM, key KEY (NULL: no key) and
 * exactly the JSON text JSON. */
static inline void assert_record(const pf_sink_record *r, const char *stream, const char *key,
                                 const char *json)
{
    assert_string_equal(r->stream, stream);
    if (key) {
        assert_non_null(r->key);
        assert_int_equal(r->key_len, strlen(key));
        assert_memory_equal(r->key, key, r->key_len);
    } else {
        assert_null(r->key);
    }
    if (r->json_len != strlen(json) || memcmp(r->json, json, r->json_len) != 0)
        fail_msg("record json\n  got  %.*s\n  want %s", (int)r->json_len, r->json, json);
}

#endif
