/* utf8.h — the utf8proc wrapper: validation with positions, repair of invalid
 * input, normalisation, and iteration over the three token units.
 *
 * All functions take byte buffers with explicit lengths (NUL bytes are data,
 * not terminators). */
#ifndef CRN_UTF8_H
#define CRN_UTF8_H

#include <stddef.h>
#include <stdint.h>

enum crn_unit { CRN_UNIT_CODEPOINT = 0, CRN_UNIT_GRAPHEME = 1, CRN_UNIT_JAMO = 2 };
enum crn_norm { CRN_NORM_NFC = 0, CRN_NORM_NFKC = 1, CRN_NORM_NONE = 2 };
enum crn_invalid { CRN_INVALID_ERROR = 0, CRN_INVALID_REPLACE = 1, CRN_INVALID_SKIP = 2 };

/* "codepoint" <-> CRN_UNIT_CODEPOINT etc.; parse returns 0 or CRN_EINVAL. */
const char *crn_unit_name(enum crn_unit u);
int crn_unit_parse(const char *s, enum crn_unit *out);
const char *crn_norm_name(enum crn_norm n);
int crn_norm_parse(const char *s, enum crn_norm *out);
const char *crn_invalid_name(enum crn_invalid p);
int crn_invalid_parse(const char *s, enum crn_invalid *out);

/* Where something is in a text: 0-based byte offset, 1-based line and column
 * (column counted in code points). */
typedef struct crn_textpos {
    size_t byte;
    size_t line;
    size_t col;
} crn_textpos;

/* Check that s[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF, no truncated sequence). NUL bytes are reported as invalid
 * too (a text corpus with NULs is almost always UTF-16 or binary).
 * @return 0, or CRN_EUTF8 with *bad set to the first bad byte's position and
 *         the error message "invalid UTF-8 (byte offset N)" or, for NUL,
 *         "NUL byte (byte offset N)"; a UTF-16 BOM at offset 0 is named
 *         ("looks like UTF-16 (BOM FF FE); convert it with iconv"). */
int crn_utf8_validate(const uint8_t *s, size_t n, crn_textpos *bad);

/* Repair invalid sequences (and NULs): CRN_INVALID_REPLACE writes U+FFFD for
 * each maximal invalid subpart, CRN_INVALID_SKIP drops it. *out is malloc'ed
 * (free()), *n_invalid counts the bad sequences. CRN_INVALID_ERROR behaves
 * like crn_utf8_validate. */
int crn_utf8_repair(uint8_t **out, size_t *out_len, size_t *n_invalid,
                    const uint8_t *s, size_t n, enum crn_invalid policy);

/* Length of a leading UTF-8 BOM (EF BB BF) in s: 3 or 0. */
size_t crn_utf8_bom_len(const uint8_t *s, size_t n);

/* Normalise valid UTF-8 s[0..n) (NFC, NFKC; NONE copies). *out is malloc'ed.
 * Works in pieces cut after '\n' (and, in lines over 1 MiB, between two ASCII
 * characters), so working memory is bounded by the longest line, not the
 * text. NUL bytes pass through unchanged. Invalid input: CRN_EUTF8 naming
 * the byte offset. */
int crn_utf8_normalize(uint8_t **out, size_t *out_len, const uint8_t *s, size_t n, enum crn_norm norm);

/* Number of code points in valid UTF-8. */
size_t crn_utf8_count(const uint8_t *s, size_t n);

/* Decode one code point from valid UTF-8 at s (n > 0 bytes); returns its byte
 * length (1..4), or -1 if invalid (overlong, surrogate, > U+10FFFF,
 * truncated). NUL decodes as code point 0 (length 1). */
int crn_utf8_decode(const uint8_t *s, size_t n, int32_t *cp);
/* Encode cp into out[4]; returns the byte length. */
int crn_utf8_encode(int32_t cp, uint8_t out[4]);

/* Hangul: split a precomposed syllable U+AC00..U+D7A3 into conjoining jamo
 * L V [T]; returns the count (2 or 3), or 0 if cp is not a syllable. */
int crn_hangul_split(int32_t cp, int32_t jamo[3]);
/* Compose L+V (+T) back; returns the syllable or -1 if the jamo don't form one. */
int32_t crn_hangul_join(int32_t l, int32_t v, int32_t t /* 0 if none */);

/* Token iterator over valid, already-normalised UTF-8. A token is a byte
 * slice: one code point (codepoint), one extended grapheme cluster
 * (grapheme, UAX #29 via utf8proc), or, in jamo mode, one conjoining jamo of
 * a decomposed syllable (whose bytes are in it->buf, not in the input) or any
 * other code point. Invalid UTF-8 or a NUL byte: CRN_EUTF8 ("invalid UTF-8
 * (byte offset N)", offset from s). */
typedef struct crn_tokiter {
    const uint8_t *s;
    size_t n, pos;
    enum crn_unit unit;
    int32_t jamo[3];
    int njamo, jamo_next;
    uint8_t buf[4];
    int32_t grapheme_state;
    int32_t prev_cp;
} crn_tokiter;

void crn_tokiter_init(crn_tokiter *it, const uint8_t *s, size_t n, enum crn_unit unit);
/* Next token: returns 1 and sets *tok and *len, or 0 at the end, or CRN_EUTF8. */
int crn_tokiter_next(crn_tokiter *it, const uint8_t **tok, size_t *len);

#endif
