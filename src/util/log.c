/* log.c: stderr logging, text or JSON lines, with secret redaction (the
 * whole message is formatted, then redacted, then cut to the line limit, so
 * a cut can never leave part of a secret) and one line per message (control
 * characters are escaped, so text from a server cannot forge log lines). */
#include "util/log.h"

#include "util/progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The secret table grows as needed up to this many entries (a scheduler
 * running many flows registers a few per flow). */
#define MAX_SECRETS 4096
#define LINE_MAX_BYTES 4096

static pf_log_level g_level = PF_LOG_INFO;
static int g_json = 0;
static char g_flow[128];
static char g_run[64];
static char **g_secrets;
static size_t g_nsecrets, g_cap;
/* Guards the secret table: any thread may log while another registers. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

void pf_log_set_level(pf_log_level level)
{
    g_level = level;
}

pf_log_level pf_log_get_level(void)
{
    return g_level;
}

int pf_log_set_format(const char *format)
{
    if (strcmp(format, "text") == 0)
        g_json = 0;
    else if (strcmp(format, "json") == 0)
        g_json = 1;
    else
        return -1;
    return 0;
}

void pf_log_set_flow(const char *flow)
{
    snprintf(g_flow, sizeof g_flow, "%s", flow ? flow : "");
}

void pf_log_set_run(const char *run)
{
    snprintf(g_run, sizeof g_run, "%s", run ? run : "");
}

int pf_log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 3) return 0;
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], secret) == 0) goto out;
    if (g_nsecrets == g_cap) {
        size_t nc = g_cap ? g_cap * 2 : 32;
        char **t = nc <= MAX_SECRETS ? realloc(g_secrets, nc * sizeof *t) : NULL;
        if (!t) {
            rc = -1;
            goto out;
        }
        g_secrets = t;
        g_cap = nc;
    }
    char *copy = strdup(secret);
    if (!copy) {
        rc = -1;
        goto out;
    }
    g_secrets[g_nsecrets++] = copy;
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

void pf_log_clear_secrets(void)
{
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nsecrets; i++) {
        /* Wipe before freeing so the heap does not keep the secret. */
        volatile char *p = g_secrets[i];
        while (*p)
            *p++ = 0;
        free(g_secrets[i]);
    }
    free(g_secrets);
    g_secrets = NULL;
    g_nsecrets = g_cap = 0;
    pthread_mutex_unlock(&g_mu);
}

void pf_log_redact(const char *src, char *dst, size_t n)
{
    if (n == 0) return;
    if (!src) src = "";
    size_t o = 0;
    pthread_mutex_lock(&g_mu);
    while (*src && o + 1 < n) {
        /* The longest secret matching here wins, so a secret that begins
         * with a shorter one is redacted whole. */
        size_t hit = 0;
        for (size_t i = 0; i < g_nsecrets; i++) {
            size_t l = strlen(g_secrets[i]);
            if (l > hit && strncmp(src, g_secrets[i], l) == 0) hit = l;
        }
        if (hit) {
            for (const char *r = "***"; *r && o + 1 < n; r++)
                dst[o++] = *r;
            src += hit;
        } else {
            dst[o++] = *src++;
        }
    }
    pthread_mutex_unlock(&g_mu);
    dst[o] = '\0';
}

static const char *level_name(pf_log_level l)
{
    switch (l) {
    case PF_LOG_ERROR:
        return "error";
    case PF_LOG_WARN:
        return "warning";
    case PF_LOG_INFO:
        return "info";
    case PF_LOG_DEBUG:
        return "debug";
    }
    return "info";
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void pf_log_write_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputc('\t', f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

void pf_log(pf_log_level level, const char *fmt, ...)
{
    if (level > g_level) return;
    char small[LINE_MAX_BYTES], clean[LINE_MAX_BYTES];
    char *raw = small;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) small[0] = '\0';
    /* A long message is formatted whole before redaction: cutting first could
     * leave the beginning of a secret at the end of the line. */
    if (len >= (int)sizeof small) {
        char *big = malloc((size_t)len + 1);
        if (big) {
            vsnprintf(big, (size_t)len + 1, fmt, ap2);
            raw = big;
        } else {
            small[0] = '\0';
            snprintf(small, sizeof small, "(a log message was lost: out of memory)");
        }
    }
    va_end(ap2);
    pf_log_redact(raw, clean, sizeof clean);
    if (raw != small) free(raw);
    pf_progress_clear_active(); /* a live progress line is erased first */
    if (g_json) {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_name(level));
        if (g_flow[0]) {
            fputs(",\"flow\":\"", stderr);
            json_escape(stderr, g_flow);
            fputc('"', stderr);
        }
        if (g_run[0]) {
            fputs(",\"run\":\"", stderr);
            json_escape(stderr, g_run);
            fputc('"', stderr);
        }
        fputs(",\"msg\":\"", stderr);
        json_escape(stderr, clean);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ppflow: %s: ", level_name(level));
        pf_log_write_escaped(stderr, clean);
        fputc('\n', stderr);
    }
}
