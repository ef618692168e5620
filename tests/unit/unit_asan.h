/* unit_asan.h: UNDER_ASAN, defined when the unit test is built with
 * AddressSanitizer (gcc's __SANITIZE_ADDRESS__ or clang's feature test), for
 * tests that replace or measure the allocator and so cannot run under it. */
#ifndef PF_TESTS_UNIT_ASAN_H
#define PF_TESTS_UNIT_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#endif
