/* unit_template.h: templates built in memory for the extraction unit tests
 * (streams s0, s1, ... with given record and key paths). Include after
 * <cmocka.h>. */
#ifndef PF_TESTS_UNIT_TEMPLATE_H
#define PF_TESTS_UNIT_TEMPLATE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/template.h"
#include "jsonpath/jsonpath.h"

/* A template whose streams s0, s1, ... have PATHS[i] and KEYS[i] (KEYS or
 * KEYS[i] NULL: no key). Freed with pf_template_free. */
static inline pf_template *unit_template(size_t n, const char *const *paths,
                                         const char *const *keys)
{
    pf_template *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->streams = calloc(n, sizeof *t->streams);
    assert_non_null(t->streams);
    t->nstreams = n;
    for (size_t i = 0; i < n; i++) {
        pf_stream_def *s = &t->streams[i];
        char name[32];
        snprintf(name, sizeof name, "s%zu", i);
        s->name = strdup(name);
        s->path_text = strdup(paths[i]);
        assert_non_null(s->name);
        assert_non_null(s->path_text);
        pf_error e;
        if (pf_jsonpath_compile(paths[i], strlen(paths[i]), &s->path, &e) != PF_OK)
            fail_msg("path %s: %s", paths[i], e.msg);
        if (keys && keys[i]) {
            s->key_text = strdup(keys[i]);
            assert_non_null(s->key_text);
            if (pf_jsonpath_compile(keys[i], strlen(keys[i]), &s->key, &e) != PF_OK)
                fail_msg("key %s: %s", keys[i], e.msg);
        }
    }
    return t;
}

/* One stream s0 with PATH and KEY (NULL: none). */
static inline pf_template *unit_template1(const char *path, const char *key)
{
    return unit_template(1, &path, &key);
}

#endif
