/* progress.c: the live progress line (see progress.h). */
#include "util/progress.h"

#include <string.h>
#include <unistd.h>

#include "util/timeutil.h"

#define REDRAW_MS 200

/* The progress that drew last (one run at a time per process). */
static pf_progress *active;

void pf_progress_clear_active(void)
{
    pf_progress_clear(active);
}

void pf_progress_start(pf_progress *p, const char *unit, long long total, int enable, FILE *out,
                       int force)
{
    memset(p, 0, sizeof *p);
    p->unit = unit;
    p->total = total;
    p->start_ms = pf_time_mono_ms();
    if (enable && out && (force || (isatty(STDOUT_FILENO) && isatty(STDERR_FILENO)))) p->out = out;
}

static void human_bytes(long long b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void pf_progress_format(const pf_progress *p, int64_t now_ms, char *buf, size_t len)
{
    int64_t el = now_ms - p->start_ms;
    if (el < 0) el = 0;
    double secs = (double)el / 1000;
    char bytes[32];
    human_bytes(p->bytes, bytes, sizeof bytes);
    char done[64];
    if (p->total > 0)
        snprintf(done, sizeof done, "%lld/%lld %s (%d%%)", p->done, p->total, p->unit,
                 (int)(p->done * 100 / p->total));
    else
        snprintf(done, sizeof done, "%lld %s", p->done, p->unit);
    long long rate = secs > 0 ? (long long)((double)p->records / secs) : 0;
    snprintf(buf, len, "%s, %lld records (%lld/s), %s, %02lld:%02lld:%02lld", done, p->records,
             rate, bytes, (long long)(el / 3600000), (long long)(el / 60000 % 60),
             (long long)(el / 1000 % 60));
}

void pf_progress_update(pf_progress *p, long long done, long long records, long long bytes,
                        int force_draw)
{
    p->done = done;
    p->records = records;
    p->bytes = bytes;
    if (!p->out) return;
    int64_t now = pf_time_mono_ms();
    if (!force_draw && p->visible && now - p->drawn_ms < REDRAW_MS) return;
    char line[256];
    pf_progress_format(p, now, line, sizeof line);
    fprintf(p->out, "\r\033[K%s", line);
    fflush(p->out);
    p->visible = 1;
    p->drawn_ms = now;
    active = p;
}

void pf_progress_clear(pf_progress *p)
{
    if (!p || !p->out || !p->visible) return;
    fputs("\r\033[K", p->out);
    fflush(p->out);
    p->visible = 0;
}

void pf_progress_finish(pf_progress *p)
{
    pf_progress_clear(p);
    p->out = NULL;
    if (active == p) active = NULL;
}
