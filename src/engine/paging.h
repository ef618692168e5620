/* paging.h: the pages of one unit of work (the whole endpoint, or one time
 * window), for the page kinds a template declares: page/size, offset/limit,
 * a cursor token or a next link taken from the response by JSONPath.
 *
 * The pager knows which page comes next, adds it to a request, and after
 * each response decides whether the unit is done: an empty page, a page
 * shorter than the page size, a "no data" status (e.g. a 404 for "no more
 * pages"), or no token/link in the response. It refuses to go round in
 * circles: a page whose body equals the previous one (a server that ignores
 * the page parameter) or a token/link equal to the one just used is an
 * error, and so is a token/link holding a NUL character. Its position is
 * saved in the checkpoint (pf_state page_* fields) after each delivered page
 * and resumed from there. The cap on requests per run is the engine's
 * (pf_flow.max_pages). */
#ifndef PF_ENGINE_PAGING_H
#define PF_ENGINE_PAGING_H

#include <stddef.h>
#include <stdint.h>

#include "engine/request.h"
#include "flow/flow.h"
#include "state/state.h"

#define PF_PAGER_TOKEN_MAX (64u * 1024u) /* longest cursor token or next link accepted */

typedef struct pf_pager {
    const pf_pages_def *def; /* borrowed from the flow's template */
    int paged;               /* 0: the unit is one request without page parameters */
    int64_t size;            /* page size sent; 0: none */
    int64_t number;          /* PAGE: the page to fetch; OFFSET: its offset */
    char *token;             /* CURSOR: token to send; NEXT_LINK: absolute URL to fetch;
                                NULL: the first page (owned) */
    long long pages;         /* pages completed in this unit */
    int done;                /* 1 once the unit's last page was seen */
    uint64_t last_digest;    /* of the previous page's body (PAGE, OFFSET) */
    int has_digest;
} pf_pager;

/* Sets P up for the first page of a unit of flow F (borrowed; must outlive
 * P). The page size comes from the template (a number, or an integer
 * parameter; when that parameter is unset a PAGE or OFFSET unit is one
 * request without page parameters). PF_ECONFIG when the size parameter is
 * not a positive integer. P needs pf_pager_free afterwards in every case. */
pf_status pf_pager_init(pf_pager *p, const pf_flow *f, pf_error *err);

/* Frees what P owns; P may be NULL. */
void pf_pager_free(pf_pager *p);

/* Continues from the page saved in checkpoint ST (its page_* fields).
 * Returns PF_OK (also when ST holds no page progress: P is unchanged), or
 * PF_ESTATE when the saved progress belongs to another page kind or is
 * invalid (a link to another server, say); P is then unchanged. */
pf_status pf_pager_resume(pf_pager *p, const pf_flow *f, const pf_state *st, pf_error *err);

/* Adds the current page's parameters to REQ (built by pf_request_build for
 * F): page and size, offset and limit, the cursor token, or, for a next
 * link, replaces the whole URL. PF_EINVAL / PF_ETOOBIG / PF_ENOMEM from the
 * URL functions; REQ must then still be freed by the caller. */
pf_status pf_pager_apply(const pf_pager *p, const pf_flow *f, pf_request *req, pf_error *err);

/* Records the page just fetched: BODY (LEN bytes; may be empty) held
 * NRECORDS records; NO_DATA is 1 when the server answered a "no data"
 * status. URL is the request's URL (to resolve a relative next link).
 * Decides p->done and the next position. Errors: PF_EDATA when the server
 * repeats itself (same page body, same token or link), when the token or
 * link is not a string or over PF_PAGER_TOKEN_MAX bytes, when it holds a
 * NUL character (a JSON "\u0000": refused, naming the `from` path, never cut
 * there), or when a next
 * link points to another server (credentials never follow it); PF_EDATA /
 * PF_EDEPTH when a cursor or link body is not JSON; PF_ENOMEM. On error P is
 * unchanged. */
pf_status pf_pager_advance(pf_pager *p, const pf_flow *f, const char *body, size_t len,
                           size_t nrecords, int no_data, const char *url, pf_error *err);

/* Writes P's next position into ST (page_kind, page_number, page_token,
 * page_window_end_ms = WINDOW_END_MS, 0 when not windowed), or clears those
 * fields when P is done or unpaged. PF_ENOMEM leaves ST unchanged. */
pf_status pf_pager_save(const pf_pager *p, pf_state *st, int64_t window_end_ms);

/* A short description of the current page for messages: "page 3",
 * "offset 200", "page 4 (cursor)", "page 2 (next link)", "" when unpaged. */
void pf_pager_describe(const pf_pager *p, char *buf, size_t n);

#endif
