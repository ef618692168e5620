/* log.c: stderr logging, text or JSON lines, with secret redaction. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SECRETS 32
#define LINE_MAX_BYTES 4096

static pf_log_level g_level = PF_LOG_INFO;
static int g_json = 0;
static char g_flow[128];
static char *g_secrets[MAX_SECRETS];
static size_t g_nsecrets;

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
    if (strcmp(format, "text") == 0) g_json = 0;
    else if (strcmp(format, "json") == 0) g_json = 1;
    else return -1;
    return 0;
}

void pf_log_set_flow(const char *flow)
{
    snprintf(g_flow, sizeof g_flow, "%s", flow ? flow : "");
}

int pf_log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 3) return 0;
    for (size_t i = 0; i < g_nsecrets; i++)
        if (strcmp(g_secrets[i], secret) == 0) return 0;
    if (g_nsecrets == MAX_SECRETS) return -1;
    char *copy = strdup(secret);
    if (!copy) return -1;
    g_secrets[g_nsecrets++] = copy;
    return 0;
}

void pf_log_clear_secrets(void)
{
    for (size_t i = 0; i < g_nsecrets; i++) {
        /* Wipe before freeing so the heap does not keep the secret. */
        volatile char *p = g_secrets[i];
        while (*p) *p++ = 0;
        free(g_secrets[i]);
    }
    g_nsecrets = 0;
}

void pf_log_redact(const char *src, char *dst, size_t n)
{
    if (n == 0) return;
    size_t o = 0;
    while (*src && o + 1 < n) {
        size_t hit = 0;
        for (size_t i = 0; i < g_nsecrets; i++) {
            size_t l = strlen(g_secrets[i]);
            if (strncmp(src, g_secrets[i], l) == 0) {
                hit = l;
                break;
            }
        }
        if (hit) {
            for (const char *r = "***"; *r && o + 1 < n; r++) dst[o++] = *r;
            src += hit;
        } else {
            dst[o++] = *src++;
        }
    }
    dst[o] = '\0';
}

static const char *level_name(pf_log_level l)
{
    switch (l) {
    case PF_LOG_ERROR: return "error";
    case PF_LOG_WARN: return "warning";
    case PF_LOG_INFO: return "info";
    case PF_LOG_DEBUG: return "debug";
    }
    return "info";
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

void pf_log(pf_log_level level, const char *fmt, ...)
{
    if (level > g_level) return;
    char raw[LINE_MAX_BYTES], clean[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    pf_log_redact(raw, clean, sizeof clean);
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
        fputs(",\"msg\":\"", stderr);
        json_escape(stderr, clean);
        fputs("\"}\n", stderr);
    } else {
        fprintf(stderr, "ppflow: %s: %s\n", level_name(level), clean);
    }
}
