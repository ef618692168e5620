/* http_internal.h: declarations shared by the files of the http module only
 * (request preparation, server-text sanitising, URL origins). Not part of
 * the module's contract; other modules include "http/http.h". */
#ifndef PF_HTTP_HTTP_INTERNAL_H
#define PF_HTTP_HTTP_INTERNAL_H

#include <curl/curl.h>

#include "http/http.h"

/* A validated request, ready to be handed to libcurl (request.c). */
typedef struct pf_http_prepared {
    const char *method;      /* upper-case method, static string */
    struct curl_slist *all;  /* every caller header, plus "Expect:" */
    struct curl_slist *safe; /* the same without credential-like headers */
} pf_http_prepared;

/* Validates REQ (method, URL, headers, Basic auth), registers its secrets
 * with the log module and builds the header lists into P. On failure P holds
 * nothing to free. Returns PF_OK, PF_EINVAL or PF_ENOMEM. */
pf_status pf_http_prepare(const pf_http_request *req, pf_http_prepared *p, pf_error *err);

/* Frees the lists of P; P may be NULL. */
void pf_http_prepared_free(pf_http_prepared *p);

/* Returns 1 when the outcome (TRANSPORT, or HTTP_STATUS when TRANSPORT is
 * PF_OK) is one the policy retries, ignoring attempts and Retry-After (retry.c). */
int pf_http_retriable(pf_status transport, long http_status);

/* Writes at most MAX_CHARS characters of BODY (may be NULL) into OUT (size
 * N > 0) as one line of printable ASCII with registered secrets redacted,
 * "..." appended when cut (response.c). The whole body is redacted, then
 * made printable (controls to spaces, non-ASCII to '?', runs of spaces
 * collapsed), redacted again, and only then cut, so no part of a secret
 * survives. Costs memory and time in proportion to BODY (error bodies are
 * capped at 64 KiB). Out of memory: a note saying the text is withheld. */
void pf_http_server_text(const pf_buf *body, size_t max_chars, char *out, size_t n);

/* Copies SRC (a Content-Type value, a name, a URL; NULL: "") into OUT (size
 * N > 0) as printable ASCII, redacted as pf_http_server_text redacts (whole,
 * before the cut to N), without collapsing spaces. Out of memory: "?". */
void pf_http_copy_printable(const char *src, char *out, size_t n);

/* Writes "scheme://host:port" of URL (port always present, host lower-case)
 * into OUT (size N). Returns 0, or -1 when URL does not parse (url.c). */
int pf_http_url_origin(const char *url, char *out, size_t n);

/* Writes URL without user, password and login options into OUT (reset
 * first). libcurl puts the Basic credentials into CURLINFO_REDIRECT_URL of
 * a relative redirect; this removes them. Returns 0, or -1 when URL does
 * not parse or memory runs out. */
int pf_http_url_strip_userinfo(const char *url, pf_buf *out);

#endif
