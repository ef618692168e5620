/* expand.c: ${VAR} and ${VAR:-default} expansion, registering the
 * substituted environment values as secrets where the caller asks. */
#include "flow/expand.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define NAME_MAX_LEN 255

int pf_expand_has_ref(const char *s)
{
    for (const char *p = s; (p = strchr(p, '$')) != NULL; p++) {
        if (p[1] == '$') {
            p++;
            continue;
        }
        if (p[1] == '{') return 1;
    }
    return 0;
}

pf_status pf_expand_env(const char *s, pf_buf *out, size_t *err_off, pf_error *err)
{
    return pf_expand_env_secret(s, SIZE_MAX, out, err_off, err);
}

pf_status pf_expand_env_secret(const char *s, size_t secret_from, pf_buf *out, size_t *err_off,
                               pf_error *err)
{
    const char *p = s;
    while (*p) {
        const char *d = strchr(p, '$');
        if (!d) {
            if (pf_buf_puts(out, p) != PF_OK) goto oom;
            break;
        }
        if (pf_buf_append(out, p, (size_t)(d - p)) != PF_OK) goto oom;
        if (d[1] == '$') {
            if (pf_buf_putc(out, '$') != PF_OK) goto oom;
            p = d + 2;
            continue;
        }
        if (d[1] != '{') {
            if (pf_buf_putc(out, '$') != PF_OK) goto oom;
            p = d + 1;
            continue;
        }
        if (err_off) *err_off = (size_t)(d - s);
        const char *name = d + 2, *q = name;
        if (!(isalpha((unsigned char)*q) || *q == '_'))
            return pf_error_set(err, PF_ECONFIG,
                                "bad variable reference: '${' must be followed by a name");
        while (isalnum((unsigned char)*q) || *q == '_') q++;
        size_t nlen = (size_t)(q - name);
        if (nlen > NAME_MAX_LEN)
            return pf_error_set(err, PF_ECONFIG, "variable name longer than %d bytes",
                                NAME_MAX_LEN);
        const char *def = NULL;
        size_t deflen = 0;
        if (q[0] == ':' && q[1] == '-') {
            def = q + 2;
            const char *e = strchr(def, '}');
            if (!e)
                return pf_error_set(err, PF_ECONFIG, "unterminated ${%.*s:-...} reference",
                                    (int)nlen, name);
            deflen = (size_t)(e - def);
            q = e;
        }
        if (*q != '}')
            return pf_error_set(err, PF_ECONFIG, "unterminated or malformed reference ${%.*s",
                                (int)nlen, name);
        char nbuf[NAME_MAX_LEN + 1];
        memcpy(nbuf, name, nlen);
        nbuf[nlen] = '\0';
        const char *v = getenv(nbuf);
        if (v && (*v || !def)) {
            if (pf_buf_puts(out, v) != PF_OK) goto oom;
            if ((size_t)(d - s) >= secret_from && pf_log_add_weak_secret(v) != 0)
                return pf_error_set(err, PF_ENOMEM,
                                    "cannot register a value of ${%s} for log redaction", nbuf);
        } else if (def) {
            if (pf_buf_append(out, def, deflen) != PF_OK) goto oom;
        } else {
            return pf_error_set(err, PF_ECONFIG, "environment variable %s is not set", nbuf);
        }
        p = q + 1;
    }
    return PF_OK;
oom:
    return pf_error_set(err, PF_ENOMEM, "out of memory expanding variables");
}
