/* cancel.c: the process-wide cancel flag and the interruptible sleep used
 * between retries. */
#include <time.h>

#include "http/http.h"
#include "util/timeutil.h"

#define SLEEP_STEP_MS 50

static volatile sig_atomic_t *volatile g_cancel_flag;

void pf_http_set_cancel_flag(volatile sig_atomic_t *flag)
{
    g_cancel_flag = flag;
}

int pf_http_cancel_requested(void)
{
    volatile sig_atomic_t *f = g_cancel_flag;
    return f && *f ? 1 : 0;
}

pf_status pf_http_sleep_ms(long ms)
{
    int64_t deadline = pf_time_mono_ms() + (ms > 0 ? ms : 0);
    for (;;) {
        if (pf_http_cancel_requested()) return PF_EINTERRUPTED;
        int64_t left = deadline - pf_time_mono_ms();
        if (left <= 0) return PF_OK;
        if (left > SLEEP_STEP_MS) left = SLEEP_STEP_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        nanosleep(&ts, NULL); /* EINTR just shortens the step */
    }
}
