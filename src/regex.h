/* regex.h — the PCRE2 wrapper. Patterns are compiled with PCRE2_UTF|PCRE2_UCP
 * and run with a match limit and a depth limit, so a pathological pattern
 * fails with CRN_ELIMIT instead of hanging. Each crn_regex owns its match
 * data: use one from one thread at a time. */
#ifndef CRN_REGEX_H
#define CRN_REGEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct crn_regex crn_regex;

#define CRN_REGEX_ANCHORED 1u /* match only at the start of the subject */
#define CRN_REGEX_ENDANCHORED 2u /* a match must end at the end of the subject */

/* PCRE2's JIT code may read (and ignore) a few bytes past the end of a
 * subject, inside the same allocation; tools like valgrind flag that when
 * those bytes were never written. Subject buffers that the caller allocates
 * can carry CRN_REGEX_PAD zeroed bytes after the text to stay clean. */
#define CRN_REGEX_PAD 64u

#define CRN_REGEX_MATCH_LIMIT 1000000u
#define CRN_REGEX_DEPTH_LIMIT 10000u

/* @return 0, or CRN_EREGEX with the message
 *         "bad regex 'PATTERN' at offset N: <PCRE2's reason>". */
int crn_regex_compile(crn_regex **out, const char *pattern, uint32_t flags);
void crn_regex_destroy(crn_regex *re); /* NULL is a no-op */
const char *crn_regex_pattern(const crn_regex *re);

/* Search s[0..n) from byte offset start.
 * @return 1 (match; *mstart and *mend set, may be NULL), 0 (no match), or
 *         CRN_ELIMIT / CRN_EREGEX on a matching error (also CRN_EINVAL for a
 *         start beyond n or inside a character, CRN_EUTF8 for a subject that
 *         is not UTF-8). */
int crn_regex_search(crn_regex *re, const uint8_t *s, size_t n, size_t start, size_t *mstart, size_t *mend);

/* For constrained generation: classify the whole subject s[0..n) against the
 * pattern anchored at both ends (whatever the compile flags; compiling with
 * CRN_REGEX_ANCHORED|CRN_REGEX_ENDANCHORED is still the natural choice, as
 * search then means the same thing). "Complete" is an exact anchored match;
 * "can grow" is a PCRE2_PARTIAL_HARD partial match found by the DFA matcher,
 * which follows all alternatives (the backtracking matcher is the fallback
 * for back references and the like). PARTIAL_HARD treats an assertion at the
 * end ('$', '\b', lookahead) as wanting more input, so 'abc$' on "abc" is
 * EXTENSIBLE, not COMPLETE. The empty subject is PARTIAL unless it matches. */
enum crn_regex_prefix {
    CRN_PREFIX_NONE = 0,     /* no extension of s can match */
    CRN_PREFIX_PARTIAL = 1,  /* s is a proper prefix of some match (not complete yet) */
    CRN_PREFIX_COMPLETE = 2, /* s matches in full and cannot be extended */
    CRN_PREFIX_EXTENSIBLE = 3, /* s matches in full and could also be extended */
};
/* @return a crn_regex_prefix value (>= 0) or CRN_ELIMIT / CRN_EREGEX. */
int crn_regex_prefix(crn_regex *re, const uint8_t *s, size_t n);

/* Replace every match in s with repl (PCRE2 substitution syntax: $1, ${name};
 * PCRE2_SUBSTITUTE_GLOBAL). *out malloc'ed (NUL-terminated; *out_len excludes
 * the NUL), also when nothing matched. @return number of replacements or a
 * negative error (CRN_EREGEX "bad replacement 'TEXT' for regex 'PAT' at
 * offset N: reason" for a bad repl, CRN_ELIMIT as for search). */
long long crn_regex_replace(crn_regex *re, const uint8_t *s, size_t n, const char *repl,
                            uint8_t **out, size_t *out_len);

#endif
