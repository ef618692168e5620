/* fuzz_cron.c: libFuzzer target for cron expressions and TZif zone files.
 * Input starting with 'T': the rest is a zone file, whose offsets and a
 * cron schedule in it are computed. Anything else: a cron expression, whose
 * next run times (UTC) must strictly increase. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched/cron.h"
#include "sched/tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_error e;
    pf_error_clear(&e);
    if (size > 0 && data[0] == 'T') {
        pf_tz *z = NULL;
        if (pf_tz_parse("fuzz", data + 1, size - 1, &z, &e) == PF_OK) {
            for (int64_t t = -INT64_C(4000000000); t < INT64_C(8000000000); t += 86400 * 97)
                (void)pf_tz_offset(z, t);
            pf_cron c;
            if (pf_cron_parse("*/7 1-5 * * *", &c, &e) != PF_OK) abort();
            int64_t t = INT64_C(1700000000000);
            for (int i = 0; i < 20; i++) {
                int64_t n = pf_cron_next(&c, z, t);
                if (n == INT64_MAX) break;
                if (n <= t) abort();
                t = n;
            }
            pf_tz_free(z);
        }
        return 0;
    }
    char expr[PF_CRON_TEXT_MAX + 2];
    size_t n = size < sizeof expr - 1 ? size : sizeof expr - 1;
    memcpy(expr, data, n);
    expr[n] = '\0';
    pf_cron c;
    if (pf_cron_parse(expr, &c, &e) == PF_OK) {
        int64_t t = INT64_C(1700000000000);
        for (int i = 0; i < 8; i++) {
            int64_t nx = pf_cron_next(&c, NULL, t);
            if (nx == INT64_MAX || nx <= t) abort(); /* parse refuses schedules that never run */
            t = nx;
        }
    } else if (e.code != PF_ESYNTAX || e.offset < 0 || (size_t)e.offset > strlen(expr)) {
        abort();
    }
    return 0;
}
