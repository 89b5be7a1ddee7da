/* test_vocab.c — tokenizer and vocabulary: golden ids, round trips in every
 * unit and normalisation, all Hangul syllables, streaming decode, invalid
 * UTF-8 positions, repair, min_count, extend, (de)serialisation and, when
 * CRN_SHARED_CORPORA is set, round trips of the shared corpora.
 *
 * Golden ids were worked out by hand from the rule "id 0 = <unk>, then the
 * distinct tokens sorted by their UTF-8 bytes" (see the comment above each
 * expectation), not by printing what the implementation produces. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common.h"
#include "utf8.h"
#include "vocab.h"

#define U8(s) ((const uint8_t *)(s))
/* Check records every ck_assert's location in a file, which is slow in loops
 * over millions of items: inside loops, only call it on failure. */
#define CHECK(cond, ...)                                \
    do {                                                \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);         \
    } while (0)

/* ---- helpers ------------------------------------------------------------ */

/* Build a finalized vocabulary of text (already normalised) and encode it;
 * returns the number of ids (ids malloc'ed, caller frees). */
static crn_vocab *build(const char *text, size_t n, enum crn_unit u, enum crn_norm nm, uint64_t min_count) {
    crn_vocab *v = NULL;
    ck_assert_int_eq(crn_vocab_create(&v, u, nm), 0);
    ck_assert_msg(crn_vocab_count(v, U8(text), n) == 0, "count: %s", crn_error_message());
    ck_assert_int_eq(crn_vocab_finalize(v, min_count), 0);
    return v;
}

static void expect_ids(const char *text, enum crn_unit u, enum crn_norm nm, const uint32_t *want, size_t nwant,
                       uint32_t want_size) {
    size_t n = strlen(text);
    crn_vocab *v = build(text, n, u, nm, 1);
    ck_assert_uint_eq(crn_vocab_size(v), want_size);
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    size_t n_unk = 99;
    long long k = crn_vocab_encode(v, U8(text), n, ids, &n_unk);
    ck_assert_int_eq(k, (long long)nwant);
    ck_assert_uint_eq(n_unk, 0);
    for (size_t i = 0; i < nwant; i++)
        CHECK(ids[i] == want[i], "%s unit %s: id[%zu] = %u, want %u", text, crn_unit_name(u), i, ids[i],
                      want[i]);
    free(ids);
    crn_vocab_destroy(v);
}

/* text -> ids -> text must give back exactly text (which must already be in
 * normal form nm), in one go and through the streaming decoder, whose every
 * chunk must be valid UTF-8. */
static void round_trip(const uint8_t *text, size_t n, enum crn_unit u, enum crn_norm nm, const char *what) {
    crn_vocab *v = NULL;
    ck_assert_int_eq(crn_vocab_create(&v, u, nm), 0);
    ck_assert_msg(crn_vocab_count(v, text, n) == 0, "%s: count: %s", what, crn_error_message());
    ck_assert_int_eq(crn_vocab_finalize(v, 1), 0);
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    size_t n_unk;
    long long k = crn_vocab_encode(v, text, n, ids, &n_unk);
    ck_assert_msg(k >= 0, "%s: encode: %s", what, crn_error_message());
    ck_assert_uint_eq(n_unk, 0);
    uint8_t *dec;
    size_t dlen;
    ck_assert_int_eq(crn_vocab_decode(v, ids, (size_t)k, &dec, &dlen), 0);
    ck_assert_msg(dlen == n && memcmp(dec, text, n) == 0, "%s: %s/%s round trip differs (%zu vs %zu bytes)", what,
                  crn_unit_name(u), crn_norm_name(nm), dlen, n);

    size_t cap = CRN_DECODER_HOLD + crn_vocab_max_token_len(v);
    uint8_t *chunk = malloc(cap), *cat = malloc(n + CRN_DECODER_HOLD);
    size_t w = 0;
    crn_decoder d;
    crn_decoder_init(&d, v);
    for (long long i = 0; i <= k; i++) {
        size_t c = i < k ? crn_decoder_push(&d, ids[i], chunk, cap) : crn_decoder_finish(&d, chunk, cap);
        crn_textpos bad;
        CHECK(crn_utf8_validate(chunk, c, &bad) == 0, "%s: chunk %lld not valid UTF-8", what, i);
        CHECK(w + c <= n, "%s: streaming output longer than the text", what);
        memcpy(cat + w, chunk, c);
        w += c;
    }
    ck_assert_msg(w == dlen && memcmp(cat, dec, w) == 0, "%s: streaming decode differs from whole decode", what);
    free(chunk);
    free(cat);
    free(dec);
    free(ids);
    crn_vocab_destroy(v);
}

static uint8_t *normalize(const char *s, size_t n, enum crn_norm nm, size_t *out_len) {
    uint8_t *o;
    ck_assert_msg(crn_utf8_normalize(&o, out_len, U8(s), n, nm) == 0, "normalize: %s", crn_error_message());
    return o;
}

/* ---- small texts used throughout ---------------------------------------- */

static const char *const texts[] = {
    "hello world\n",
    "The quick brown fox jumps over the lazy dog.\r\nSecond line\ttab\n",
    "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xED\x95\x9C\xEA\xB8\x80\n",             /* 한국어 한글 */
    "\xEC\x95\x88\xEB\x85\x95\xED\x95\x98\xEC\x84\xB8\xEC\x9A\x94, \xEC\x84\xB8\xEA\xB3\x84! " /* 안녕하세요, 세계! */
    "\xE3\x85\x8B\xE3\x85\x8B\xE3\x85\xA0\n",                                      /* ㅋㅋㅠ (compatibility jamo) */
    "Caf\xC3\xA9 \xF0\x9F\x98\x80 \xED\x95\x9C\xEA\xB8\x80 na\xC3\xAFve\n",        /* Café 😀 한글 naïve */
    "\xF0\x9F\x87\xB0\xF0\x9F\x87\xB7\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 x\n",
    "q\xCC\x87 \xE1\xBA\xA1\xCC\x81 x\xCC\xA3\xCC\x81\n", /* combining marks NFC keeps: q̇ ạ́ x̣́ */
    "\xE4\xB8\xAD\xE6\x96\x87 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9\n",
    "\xF4\x8F\xBF\xBF\xEF\xBF\xBF\xED\x9F\xBF\xEE\x80\x80 \xEA\xB0\x80\xED\x9E\xA3\n", /* U+10FFFF U+FFFF U+D7FF U+E000 가 힣 */
    "",
};

/* Non-NFC texts: kept byte for byte under `none`. */
static const char *const raw_texts[] = {
    "Cafe\xCC\x81 \xE2\x84\xAB \xEF\xAC\x81\n",          /* e + U+0301, U+212B ANGSTROM SIGN, U+FB01 fi */
    "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB\xEA\xB8\x80\n", /* NFD 한 (conjoining jamo) then 글 */
    "\xEF\xBC\xA1\xEF\xBC\xA2 \xE2\x91\xA0\n",           /* fullwidth ＡＢ, circled ① */
};

/* ---- names --------------------------------------------------------------- */

START_TEST(test_names) {
    enum crn_unit u;
    enum crn_norm nm;
    enum crn_invalid p;
    ck_assert_int_eq(crn_unit_parse("grapheme", &u), 0);
    ck_assert_int_eq(u, CRN_UNIT_GRAPHEME);
    ck_assert_int_eq(crn_unit_parse("jamo", &u), 0);
    ck_assert_int_eq(u, CRN_UNIT_JAMO);
    ck_assert_int_eq(crn_unit_parse("codepoint", &u), 0);
    ck_assert_int_eq(u, CRN_UNIT_CODEPOINT);
    ck_assert_int_eq(crn_unit_parse("char", &u), CRN_EINVAL);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "char"));
    ck_assert_int_eq(crn_norm_parse("nfkc", &nm), 0);
    ck_assert_int_eq(nm, CRN_NORM_NFKC);
    ck_assert_int_eq(crn_norm_parse("NFC", &nm), CRN_EINVAL);
    ck_assert_int_eq(crn_invalid_parse("skip", &p), 0);
    ck_assert_int_eq(p, CRN_INVALID_SKIP);
    ck_assert_int_eq(crn_invalid_parse(NULL, &p), CRN_EINVAL);
    ck_assert_str_eq(crn_unit_name(CRN_UNIT_JAMO), "jamo");
    ck_assert_str_eq(crn_norm_name(CRN_NORM_NONE), "none");
    ck_assert_str_eq(crn_invalid_name(CRN_INVALID_REPLACE), "replace");
}
END_TEST

/* ---- golden ids ---------------------------------------------------------- */

START_TEST(test_golden_english) {
    /* sorted: \n=1 ' '=2 d=3 e=4 h=5 l=6 o=7 r=8 w=9 */
    static const uint32_t want[] = {5, 4, 6, 6, 7, 2, 9, 7, 8, 6, 3, 1};
    for (int u = 0; u < 3; u++) expect_ids("hello world\n", (enum crn_unit)u, CRN_NORM_NFC, want, 12, 10);
}
END_TEST

START_TEST(test_golden_korean) {
    const char *t = texts[2]; /* 한 U+D55C 국 U+AD6D 어 U+C5B4 ' ' 한 글 U+AE00 \n */
    /* code points / graphemes: \n=1 ' '=2 국=3 글=4 어=5 한=6 */
    static const uint32_t cp[] = {6, 3, 5, 2, 6, 4, 1};
    expect_ids(t, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, cp, 7, 7);
    expect_ids(t, CRN_UNIT_GRAPHEME, CRN_NORM_NFC, cp, 7, 7);
    /* jamo (S = 0xAC00 + (L*21 + V)*28 + T):
     *   한 = 1112 1161 11AB, 국 = 1100 116E 11A8, 어 = 110B 1165, 글 = 1100 1173 11AF
     * sorted: \n=1 ' '=2 1100=3 110B=4 1112=5 1161=6 1165=7 116E=8 1173=9
     *         11A8=10 11AB=11 11AF=12 */
    static const uint32_t jm[] = {5, 6, 11, 3, 8, 10, 4, 7, 2, 5, 6, 11, 3, 9, 12, 1};
    expect_ids(t, CRN_UNIT_JAMO, CRN_NORM_NFC, jm, 16, 13);
}
END_TEST

START_TEST(test_golden_mixed) {
    /* "Cafe" U+0301 " " U+1F600 "!\n" under none:
     * code points: \n=1 ' '=2 !=3 C=4 a=5 e=6 f=7 U+0301=8 U+1F600=9 */
    const char *t = "Cafe\xCC\x81 \xF0\x9F\x98\x80!\n";
    static const uint32_t cp[] = {4, 5, 7, 6, 8, 2, 9, 3, 1};
    expect_ids(t, CRN_UNIT_CODEPOINT, CRN_NORM_NONE, cp, 9, 10);
    expect_ids(t, CRN_UNIT_JAMO, CRN_NORM_NONE, cp, 9, 10);
    /* graphemes: "e\u0301" is one token (65 CC 81), sorting between a and f:
     * \n=1 ' '=2 !=3 C=4 a=5 e+0301=6 f=7 U+1F600=8 */
    static const uint32_t gr[] = {4, 5, 7, 6, 2, 8, 3, 1};
    expect_ids(t, CRN_UNIT_GRAPHEME, CRN_NORM_NONE, gr, 8, 9);
    /* a token that is a prefix of another sorts first: \n=1 "e"=2 "e\u0301"=3 */
    static const uint32_t px[] = {3, 2, 1};
    expect_ids("e\xCC\x81" "e\n", CRN_UNIT_GRAPHEME, CRN_NORM_NONE, px, 3, 4);
    /* After NFC: é = U+00E9 (C3 A9) sorts after f: \n=1 ' '=2 !=3 C=4 a=5 f=6 é=7 😀=8 */
    size_t nl;
    uint8_t *nfc = normalize(t, strlen(t), CRN_NORM_NFC, &nl);
    ck_assert_uint_eq(nl, strlen("Caf\xC3\xA9 \xF0\x9F\x98\x80!\n"));
    ck_assert_int_eq(memcmp(nfc, "Caf\xC3\xA9 \xF0\x9F\x98\x80!\n", nl), 0);
    char *z = calloc(1, nl + 1);
    memcpy(z, nfc, nl);
    static const uint32_t nf[] = {4, 5, 6, 7, 2, 8, 3, 1};
    for (int u = 0; u < 3; u++) expect_ids(z, (enum crn_unit)u, CRN_NORM_NFC, nf, 8, 9);
    free(z);
    free(nfc);
}
END_TEST

START_TEST(test_golden_emoji_graphemes) {
    /* 🇰🇷 = 1F1F0 1F1F7, 🇯🇵 = 1F1EF 1F1F5, family = 1F468 200D 1F469 200D 1F467 */
    const char *t = "\xF0\x9F\x87\xB0\xF0\x9F\x87\xB7\xF0\x9F\x87\xAF\xF0\x9F\x87\xB5"
                    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 x\n";
    /* graphemes: KR, JP, family, ' ', x, \n; bytes: \n=1 ' '=2 x=3,
     * JP (F0 9F 87 AF..)=4, KR (F0 9F 87 B0..)=5, family (F0 9F 91 A8..)=6 */
    static const uint32_t gr[] = {5, 4, 6, 2, 3, 1};
    expect_ids(t, CRN_UNIT_GRAPHEME, CRN_NORM_NFC, gr, 6, 7);
    /* code points: \n=1 ' '=2 x=3 200D=4 1F1EF=5 1F1F0=6 1F1F5=7 1F1F7=8
     * 1F467=9 1F468=10 1F469=11 */
    static const uint32_t cp[] = {6, 8, 5, 7, 10, 4, 11, 4, 9, 2, 3, 1};
    expect_ids(t, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, cp, 12, 12);
    /* NFD Hangul (L V T conjoining jamo) is one grapheme; CR LF is one grapheme. */
    const char *h = "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB\r\n";
    static const uint32_t hg[] = {2, 1}; /* "\r\n"=1 (0D..) < E1..=2 */
    expect_ids(h, CRN_UNIT_GRAPHEME, CRN_NORM_NONE, hg, 2, 3);
}
END_TEST

/* ---- normalisation ------------------------------------------------------- */

static void expect_norm(const char *in, enum crn_norm nm, const char *want) {
    size_t n;
    uint8_t *o = normalize(in, strlen(in), nm, &n);
    ck_assert_msg(n == strlen(want) && memcmp(o, want, n) == 0, "%s of '%s' wrong", crn_norm_name(nm), in);
    free(o);
}

START_TEST(test_normalize) {
    expect_norm("e\xCC\x81", CRN_NORM_NFC, "\xC3\xA9");
    expect_norm("e\xCC\x81", CRN_NORM_NONE, "e\xCC\x81");
    expect_norm("\xE2\x84\xAB", CRN_NORM_NFC, "\xC3\x85");            /* U+212B -> U+00C5 */
    expect_norm("\xEF\xAC\x81", CRN_NORM_NFC, "\xEF\xAC\x81");        /* ﬁ stays under NFC */
    expect_norm("\xEF\xAC\x81", CRN_NORM_NFKC, "fi");                 /* ... not under NFKC */
    expect_norm("\xEF\xBC\xA1\xE2\x91\xA0", CRN_NORM_NFKC, "A1");     /* fullwidth Ａ, ① */
    expect_norm("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB", CRN_NORM_NFC, "\xED\x95\x9C"); /* ᄒ ᅡ ᆫ -> 한 */
    expect_norm("a\xCC\xA3\xCC\x81\n", CRN_NORM_NFC, "\xE1\xBA\xA1\xCC\x81\n");        /* reorder + compose */
    expect_norm("a\xCC\x81\xCC\xA3\n", CRN_NORM_NFC, "\xE1\xBA\xA1\xCC\x81\n");
    expect_norm("", CRN_NORM_NFC, "");
    /* NUL is data, not a terminator. */
    size_t n;
    uint8_t *o;
    ck_assert_int_eq(crn_utf8_normalize(&o, &n, U8("e\0e\xCC\x81"), 5, CRN_NORM_NFC), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(o, "e\0\xC3\xA9", 4), 0);
    free(o);
    /* Invalid input is an error naming the byte. */
    ck_assert_int_eq(crn_utf8_normalize(&o, &n, U8("ab\ncd\xC3\xA9\xFF"), 8, CRN_NORM_NFC), CRN_EUTF8);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "byte offset 7"));
    /* Normalisation is idempotent on every test text. */
    for (size_t i = 0; i < CRN_ARRAY_LEN(texts); i++)
        for (int nm = 0; nm < 3; nm++) {
            const char *t = texts[i];
            size_t n1, n2;
            uint8_t *a = normalize(t, strlen(t), (enum crn_norm)nm, &n1);
            uint8_t *b;
            ck_assert_int_eq(crn_utf8_normalize(&b, &n2, a, n1, (enum crn_norm)nm), 0);
            ck_assert(n1 == n2 && memcmp(a, b, n1) == 0);
            if (nm == CRN_NORM_NFC) ck_assert_msg(n1 == strlen(t) && memcmp(a, t, n1) == 0, "text %zu not NFC", i);
            free(a);
            free(b);
        }
}
END_TEST

START_TEST(test_normalize_long_line) {
    /* One 1.5 MB line of "xe\u0301y" (no '\n'): forces the cut between two
     * ASCII characters inside a line; the result must equal "xéy" repeated. */
    size_t reps = 300000, n = reps * 5, want_n = reps * 4;
    char *in = malloc(n), *want = malloc(want_n);
    for (size_t i = 0; i < reps; i++) {
        memcpy(in + 5 * i, "xe\xCC\x81y", 5);
        memcpy(want + 4 * i, "x\xC3\xA9y", 4);
    }
    size_t on;
    uint8_t *o = normalize(in, n, CRN_NORM_NFC, &on);
    ck_assert_uint_eq(on, want_n);
    ck_assert_int_eq(memcmp(o, want, want_n), 0);
    free(o);
    free(in);
    free(want);
}
END_TEST

/* ---- invalid UTF-8 ------------------------------------------------------- */

static void expect_bad(const char *s, size_t n, size_t byte, size_t line, size_t col, const char *msg) {
    crn_textpos p = {99, 99, 99};
    ck_assert_int_eq(crn_utf8_validate(U8(s), n, &p), CRN_EUTF8);
    ck_assert_msg(p.byte == byte && p.line == line && p.col == col, "bad at %zu:%zu byte %zu, want %zu:%zu byte %zu",
                  p.line, p.col, p.byte, line, col, byte);
    ck_assert_msg(strstr(crn_error_message(), msg), "message '%s' lacks '%s'", crn_error_message(), msg);
}

START_TEST(test_invalid_positions) {
    expect_bad("\x80" "abc", 4, 0, 1, 1, "invalid UTF-8 (byte offset 0)");
    expect_bad("ab\ncd\xC0\x80" "ef", 9, 5, 2, 3, "invalid UTF-8 (byte offset 5)");   /* overlong C0 80 */
    expect_bad("abc\xE2\x82", 5, 3, 1, 4, "byte offset 3");                         /* truncated at end */
    expect_bad("x\xE0\x80\x80", 4, 1, 1, 2, "invalid UTF-8 (byte offset 1)");       /* overlong E0 80 80 */
    expect_bad("xy\xE0\x9F\xBF", 5, 2, 1, 3, "invalid UTF-8 (byte offset 2)");     /* overlong U+07FF */
    expect_bad("\xF0\x8F\xBF\xBF", 4, 0, 1, 1, "invalid UTF-8 (byte offset 0)");  /* overlong U+FFFF */
    expect_bad("\xC1\xBF", 2, 0, 1, 1, "invalid UTF-8 (byte offset 0)");          /* overlong U+007F */
    expect_bad("\xED\x95\x9C\xED\xA0\x80", 6, 3, 1, 2, "byte offset 3");            /* 한 + surrogate */
    expect_bad("\n\nab\xF0\x9F\x98" "a", 8, 4, 3, 3, "byte offset 4");              /* truncated 4-byte */
    expect_bad("\xF4\x90\x80\x80", 4, 0, 1, 1, "byte offset 0");                    /* > U+10FFFF */
    expect_bad("\xEA\xB0\x80\xEB\x82\x98\x80", 7, 6, 1, 3, "byte offset 6");        /* 가나 + stray 80 */
    expect_bad("ab\0c", 4, 2, 1, 3, "NUL byte (byte offset 2)");
    expect_bad("\xFF\xFE" "a\0", 4, 0, 1, 1, "UTF-16 (BOM FF FE)");
    expect_bad("\xFE\xFF\0a", 4, 0, 1, 1, "UTF-16 (BOM FE FF)");
    expect_bad("0123456789abcdef\n0123456789\xC1\xBF", 29, 27, 2, 11, "byte offset 27"); /* after the 8-byte fast path */
    /* The limits themselves are valid. */
    const char *ok = "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF";
    ck_assert_int_eq(crn_utf8_validate(U8(ok), strlen(ok), NULL), 0);
    ck_assert_int_eq(crn_utf8_validate(U8(""), 0, NULL), 0);
    /* The iterator and the vocabulary refuse bad input too. */
    crn_vocab *v = NULL;
    ck_assert_int_eq(crn_vocab_create(&v, CRN_UNIT_CODEPOINT, CRN_NORM_NFC), 0);
    ck_assert_int_eq(crn_vocab_count(v, U8("ab\xC0\x80"), 4), CRN_EUTF8);
    ck_assert_int_eq(crn_vocab_count(v, U8("a\0"), 2), CRN_EUTF8);
    crn_vocab_destroy(v);
    for (int u = 0; u < 3; u++) {
        crn_tokiter it;
        const uint8_t *t;
        size_t len;
        crn_tokiter_init(&it, U8("\xEA\xB0\x80" "e\xED\xA0\x80"), 7, (enum crn_unit)u);
        int r, k = 0;
        while ((r = crn_tokiter_next(&it, &t, &len)) == 1) k++;
        ck_assert_int_eq(r, CRN_EUTF8);
        ck_assert_ptr_nonnull(strstr(crn_error_message(), "byte offset 4"));
    }
}
END_TEST

static void expect_repair(const char *s, size_t n, enum crn_invalid pol, const char *want, size_t want_n,
                          size_t want_bad) {
    uint8_t *o;
    size_t on, nbad;
    ck_assert_int_eq(crn_utf8_repair(&o, &on, &nbad, U8(s), n, pol), 0);
    ck_assert_uint_eq(nbad, want_bad);
    ck_assert_uint_eq(on, want_n);
    ck_assert_int_eq(memcmp(o, want, on), 0);
    ck_assert_int_eq(crn_utf8_validate(o, on, NULL), 0);
    free(o);
}

#define FFFD "\xEF\xBF\xBD"
START_TEST(test_repair) {
    /* Maximal subparts: F0 9F 98 is one; C0 and 80 are one each; E2 82 at the end is one. */
    const char *s = "a\xF0\x9F\x98" "b\xC0\x80" "c\xE2\x82";
    expect_repair(s, 10, CRN_INVALID_REPLACE, "a" FFFD "b" FFFD FFFD "c" FFFD, 15, 4);
    expect_repair(s, 10, CRN_INVALID_SKIP, "abc", 3, 4);
    expect_repair("\xE0\x80\x80", 3, CRN_INVALID_REPLACE, FFFD FFFD FFFD, 9, 3);
    expect_repair("\xE0\x9F\xBF" "a", 4, CRN_INVALID_REPLACE, FFFD FFFD FFFD "a", 10, 3);
    expect_repair("\xF0\x9F\x98\x80\xF0\x9F", 6, CRN_INVALID_REPLACE, "\xF0\x9F\x98\x80" FFFD, 7, 1);
    expect_repair("\xED\xA0\x80", 3, CRN_INVALID_REPLACE, FFFD FFFD FFFD, 9, 3);
    expect_repair("\xF4\x90\x80\x80", 4, CRN_INVALID_SKIP, "", 0, 4);
    expect_repair("x\0y", 3, CRN_INVALID_REPLACE, "x" FFFD "y", 5, 1);
    expect_repair("\xED\x95\x9C\xEA\xB8", 5, CRN_INVALID_SKIP, "\xED\x95\x9C", 3, 1);
    expect_repair("fine \xED\x95\x9C", 8, CRN_INVALID_REPLACE, "fine \xED\x95\x9C", 8, 0);
    expect_repair("", 0, CRN_INVALID_SKIP, "", 0, 0);
    uint8_t *o;
    size_t on, nbad;
    ck_assert_int_eq(crn_utf8_repair(&o, &on, &nbad, U8(s), 10, CRN_INVALID_ERROR), CRN_EUTF8);
    ck_assert_ptr_null(o);
    ck_assert_int_eq(crn_utf8_repair(&o, &on, &nbad, U8("ok"), 2, CRN_INVALID_ERROR), 0);
    ck_assert_uint_eq(on, 2);
    ck_assert_uint_eq(nbad, 0);
    free(o);
    ck_assert_uint_eq(crn_utf8_bom_len(U8("\xEF\xBB\xBFx"), 4), 3);
    ck_assert_uint_eq(crn_utf8_bom_len(U8("\xEF\xBB"), 2), 0);
    ck_assert_uint_eq(crn_utf8_bom_len(U8("abc"), 3), 0);
}
END_TEST

/* ---- code points, Hangul ------------------------------------------------- */

START_TEST(test_codec) {
    /* encode/decode every scalar value; count agrees */
    uint8_t b[4];
    for (int32_t cp = 1; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int k = crn_utf8_encode(cp, b);
        int want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        CHECK(k == want, "U+%04X: %d bytes", cp, k);
        int32_t back = -1;
        CHECK(crn_utf8_decode(b, (size_t)k, &back) == k && back == cp, "U+%04X decodes as U+%04X", cp, back);
        CHECK(crn_utf8_count(b, (size_t)k) == 1, "U+%04X count", cp);
        CHECK(crn_utf8_validate(b, (size_t)k, NULL) == 0, "U+%04X invalid", cp);
    }
    int32_t c;
    ck_assert_int_eq(crn_utf8_decode(U8("\xED\xA0\x80"), 3, &c), -1);
    ck_assert_int_eq(crn_utf8_decode(U8("\xC3"), 1, &c), -1);
    ck_assert_uint_eq(crn_utf8_count(U8(texts[2]), strlen(texts[2])), 7);
}
END_TEST

START_TEST(test_hangul_all) {
    /* Every syllable splits into 2 or 3 modern conjoining jamo and joins back;
     * 19*21 = 399 syllables have no final consonant. */
    size_t n2 = 0, n3 = 0;
    uint8_t *text = malloc(11172 * 3 + 1);
    size_t tn = 0;
    for (int32_t s = 0xAC00; s <= 0xD7A3; s++) {
        int32_t j[3] = {0, 0, 0};
        int k = crn_hangul_split(s, j);
        CHECK(k == 2 || k == 3, "U+%04X splits into %d", s, k);
        CHECK(j[0] >= 0x1100 && j[0] <= 0x1112, "U+%04X: L = U+%04X", s, j[0]);
        CHECK(j[1] >= 0x1161 && j[1] <= 0x1175, "U+%04X: V = U+%04X", s, j[1]);
        CHECK(k == 2 || (j[2] >= 0x11A8 && j[2] <= 0x11C2), "U+%04X: T = U+%04X", s, j[2]);
        CHECK(crn_hangul_join(j[0], j[1], k == 3 ? j[2] : 0) == s, "U+%04X does not join back", s);
        n2 += k == 2;
        n3 += k == 3;
        tn += (size_t)crn_utf8_encode(s, text + tn);
    }
    ck_assert_uint_eq(n2, 399);
    ck_assert_uint_eq(n3, 11172 - 399);
    int32_t j[3];
    ck_assert_int_eq(crn_hangul_split(0xABFF, j), 0);
    ck_assert_int_eq(crn_hangul_split(0xD7A4, j), 0);
    ck_assert_int_eq(crn_hangul_split('a', j), 0);
    ck_assert_int_eq(crn_hangul_join(0x1113, 0x1161, 0), -1);
    ck_assert_int_eq(crn_hangul_join(0x1100, 0x1176, 0), -1);
    ck_assert_int_eq(crn_hangul_join(0x1100, 0x1161, 0x11A7), -1);
    ck_assert_int_eq(crn_hangul_join(0x1100, 0x1161, 0x11C3), -1);

    /* jamo vocabulary of all syllables: 19 L + 21 V + 27 T + <unk> */
    crn_vocab *v = build((const char *)text, tn, CRN_UNIT_JAMO, CRN_NORM_NFC, 1);
    ck_assert_uint_eq(crn_vocab_size(v), 1 + 19 + 21 + 27);
    uint32_t *ids = malloc(tn * sizeof *ids);
    long long k = crn_vocab_encode(v, text, tn, ids, NULL);
    ck_assert_int_eq(k, (long long)(2 * n2 + 3 * n3));
    /* ids are in code point order: L 1..19, V 20..40, T 41..67 */
    ck_assert_uint_eq(ids[0], 1);  /* 가 = 1100 1161 */
    ck_assert_uint_eq(ids[1], 20);
    ck_assert_uint_eq(ids[2], 1);  /* 각 = 1100 1161 11A8 */
    ck_assert_uint_eq(ids[3], 20);
    ck_assert_uint_eq(ids[4], 41);
    ck_assert_uint_eq(ids[k - 1], 67); /* 힣 ends with 11C2 */
    uint8_t *dec;
    size_t dn;
    ck_assert_int_eq(crn_vocab_decode(v, ids, (size_t)k, &dec, &dn), 0);
    ck_assert_uint_eq(dn, tn);
    ck_assert_int_eq(memcmp(dec, text, tn), 0);
    free(dec);
    free(ids);
    crn_vocab_destroy(v);
    /* and one syllable at a time, each alone (2- and 3-jamo endings, flush) */
    round_trip(text, tn, CRN_UNIT_JAMO, CRN_NORM_NFC, "all syllables");
    free(text);
}
END_TEST

/* ---- round trips --------------------------------------------------------- */

START_TEST(test_round_trips) {
    for (size_t i = 0; i < CRN_ARRAY_LEN(texts); i++)
        for (int u = 0; u < 3; u++)
            for (int nm = 0; nm < 3; nm++) {
                size_t n;
                uint8_t *t = normalize(texts[i], strlen(texts[i]), (enum crn_norm)nm, &n);
                char what[32];
                snprintf(what, sizeof what, "text %zu", i);
                round_trip(t, n, (enum crn_unit)u, (enum crn_norm)nm, what);
                free(t);
            }
    /* none keeps non-NFC bytes exactly (code points and graphemes; jamo mode
     * would recompose raw conjoining jamo, see raw_texts[1]) */
    for (size_t i = 0; i < CRN_ARRAY_LEN(raw_texts); i++)
        for (int u = 0; u < 3; u++) {
            if (u == CRN_UNIT_JAMO && i == 1) continue;
            round_trip(U8(raw_texts[i]), strlen(raw_texts[i]), (enum crn_unit)u, CRN_NORM_NONE, raw_texts[i]);
        }
    /* ... and their NFC / NFKC forms round-trip in every unit */
    for (size_t i = 0; i < CRN_ARRAY_LEN(raw_texts); i++)
        for (int u = 0; u < 3; u++)
            for (int nm = 0; nm < 2; nm++) {
                size_t n;
                uint8_t *t = normalize(raw_texts[i], strlen(raw_texts[i]), (enum crn_norm)nm, &n);
                round_trip(t, n, (enum crn_unit)u, (enum crn_norm)nm, raw_texts[i]);
                free(t);
            }
}
END_TEST

/* ---- streaming decoder --------------------------------------------------- */

/* Push ids (jamo vocabulary of "한글"), check every chunk and the total. */
static void expect_stream(const crn_vocab *v, const int32_t *cps, size_t n, const char *want, const int *want_chunk) {
    crn_decoder d;
    crn_decoder_init(&d, v);
    uint8_t buf[64], all[256];
    size_t w = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t c;
        if (i < n) {
            uint8_t b[4];
            uint32_t id = CRN_UNK;
            if (cps[i] >= 0) {
                int k = crn_utf8_encode(cps[i], b);
                id = crn_vocab_lookup(v, b, (size_t)k);
                ck_assert_uint_ne(id, CRN_UNK);
            }
            c = crn_decoder_push(&d, id, buf, sizeof buf);
        } else {
            c = crn_decoder_finish(&d, buf, sizeof buf);
        }
        ck_assert_int_eq(crn_utf8_validate(buf, c, NULL), 0);
        if (want_chunk) ck_assert_msg((int)c == want_chunk[i], "chunk %zu: %zu bytes, want %d", i, c, want_chunk[i]);
        memcpy(all + w, buf, c);
        w += c;
    }
    ck_assert_msg(w == strlen(want) && memcmp(all, want, w) == 0, "stream output differs (%zu bytes)", w);
}

START_TEST(test_stream_jamo) {
    /* 한 = 1112 1161 11AB, 글 = 1100 1173 11AF */
    crn_vocab *v = build("\xED\x95\x9C\xEA\xB8\x80 a", 8, CRN_UNIT_JAMO, CRN_NORM_NFC, 1);
    {   /* 한글: nothing until T completes each syllable */
        static const int32_t c[] = {0x1112, 0x1161, 0x11AB, 0x1100, 0x1173, 0x11AF};
        static const int ch[] = {0, 0, 3, 0, 0, 3, 0};
        expect_stream(v, c, 6, "\xED\x95\x9C\xEA\xB8\x80", ch);
    }
    {   /* 하 then 'a': LV held until the next token shows no T follows */
        static const int32_t c[] = {0x1112, 0x1161, 'a'};
        static const int ch[] = {0, 0, 4, 0};
        expect_stream(v, c, 3, "\xED\x95\x98" "a", ch);
    }
    {   /* LV at the end: finish emits 하 */
        static const int32_t c[] = {0x1112, 0x1161};
        static const int ch[] = {0, 0, 3};
        expect_stream(v, c, 2, "\xED\x95\x98", ch);
    }
    {   /* dangling L at the end: emitted as itself */
        static const int32_t c[] = {0x1112};
        static const int ch[] = {0, 3};
        expect_stream(v, c, 1, "\xE1\x84\x92", ch);
    }
    {   /* L L V T: the first L alone, then 간 (1100 1161 11AB) */
        static const int32_t c[] = {0x1112, 0x1100, 0x1161, 0x11AB};
        static const int ch[] = {0, 3, 0, 3, 0};
        expect_stream(v, c, 4, "\xE1\x84\x92\xEA\xB0\x84", ch);
    }
    {   /* lone V, lone T, L + T (no V), L V V */
        static const int32_t c[] = {0x1161, 0x11AB, 0x1112, 0x11AF, 0x1100, 0x1161, 0x1173};
        expect_stream(v, c, 7,
                      "\xE1\x85\xA1\xE1\x86\xAB" "\xE1\x84\x92\xE1\x86\xAF" "\xEA\xB0\x80\xE1\x85\xB3", NULL);
    }
    {   /* <unk> (cps -1) after L V: 하 then U+FFFD */
        static const int32_t c[] = {0x1112, 0x1161, -1};
        static const int ch[] = {0, 0, 6, 0};
        expect_stream(v, c, 3, "\xED\x95\x98" FFFD, ch);
    }
    /* out-of-range id decodes as <unk>; a too small buffer writes nothing */
    crn_decoder d;
    crn_decoder_init(&d, v);
    uint8_t buf[8];
    ck_assert_uint_eq(crn_decoder_push(&d, 12345, buf, sizeof buf), 3);
    ck_assert_int_eq(memcmp(buf, FFFD, 3), 0);
    ck_assert_uint_eq(crn_decoder_push(&d, 1, buf, 2), 0);
    crn_vocab_destroy(v);
}
END_TEST

/* ---- min_count, extend, lookup ------------------------------------------- */

START_TEST(test_min_count) {
    /* counts: a=3 b=1 c=2 \n=2; min_count 2 keeps \n=1 a=2 c=3 */
    crn_vocab *v = build("aaab\ncc\n", 8, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, 2);
    ck_assert_uint_eq(crn_vocab_size(v), 4);
    ck_assert_uint_eq(crn_vocab_freq(v, CRN_UNK), 1);
    ck_assert_uint_eq(crn_vocab_freq(v, 2), 3);
    ck_assert_uint_eq(crn_vocab_lookup(v, U8("b"), 1), CRN_UNK);
    ck_assert_uint_eq(crn_vocab_lookup(v, U8("c"), 1), 3);
    ck_assert_uint_eq(crn_vocab_lookup(v, U8("cc"), 2), CRN_UNK);
    ck_assert_uint_eq(crn_vocab_lookup(v, U8(""), 0), CRN_UNK);
    uint32_t ids[8];
    size_t n_unk;
    ck_assert_int_eq(crn_vocab_encode(v, U8("abzc\n"), 5, ids, &n_unk), 5);
    ck_assert_uint_eq(n_unk, 2);
    static const uint32_t want[] = {2, 0, 0, 3, 1};
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(ids[i], want[i]);
    size_t len;
    const uint8_t *t = crn_vocab_token(v, CRN_UNK, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(t, CRN_UNK_TEXT, 3), 0);
    ck_assert_ptr_null(crn_vocab_token(v, 4, &len));
    uint8_t *dec;
    size_t dn;
    ck_assert_int_eq(crn_vocab_decode(v, ids, 5, &dec, &dn), 0);
    ck_assert_uint_eq(dn, 9);
    ck_assert_int_eq(memcmp(dec, "a" FFFD FFFD "c\n", 9), 0);
    free(dec);
    /* finalize twice / count after finalize are refused */
    ck_assert_int_eq(crn_vocab_count(v, U8("x"), 1), CRN_EINVAL);
    ck_assert_int_eq(crn_vocab_finalize(v, 1), CRN_EINVAL);
    crn_vocab_destroy(v);
    crn_vocab_destroy(NULL);
    /* everything rare: only <unk> */
    v = build("abc", 3, CRN_UNIT_GRAPHEME, CRN_NORM_NFC, 5);
    ck_assert_uint_eq(crn_vocab_size(v), 1);
    ck_assert_uint_eq(crn_vocab_freq(v, 0), 3);
    crn_vocab_destroy(v);
}
END_TEST

START_TEST(test_extend) {
    /* "ba\n": \n=1 a=2 b=3; extend with "dcab\n" adds c=4 d=5 */
    crn_vocab *v = build("ba\n", 3, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, 1);
    ck_assert_int_eq(crn_vocab_extend(v, U8("dcab\nd"), 6), 2);
    ck_assert_uint_eq(crn_vocab_size(v), 6);
    ck_assert_uint_eq(crn_vocab_freq(v, 5), 2);
    uint32_t ids[8];
    ck_assert_int_eq(crn_vocab_encode(v, U8("abcd\n"), 5, ids, NULL), 5);
    static const uint32_t want[] = {2, 3, 4, 5, 1};
    for (int i = 0; i < 5; i++) ck_assert_uint_eq(ids[i], want[i]);
    ck_assert_int_eq(crn_vocab_extend(v, U8("abcd"), 4), 0);
    ck_assert_int_eq(crn_vocab_extend(v, U8("\xF0\x9F\x98\x80" "A"), 5), 2); /* A=6 😀=7 */
    ck_assert_uint_eq(crn_vocab_lookup(v, U8("A"), 1), 6);
    ck_assert_uint_eq(crn_vocab_lookup(v, U8("\xF0\x9F\x98\x80"), 4), 7);
    /* survives serialisation with its runs */
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), 0);
    crn_vocab *w;
    ck_assert_int_eq(crn_vocab_deserialize(&w, buf, len), 0);
    ck_assert_uint_eq(crn_vocab_size(w), 8);
    ck_assert_uint_eq(crn_vocab_lookup(w, U8("d"), 1), 5);
    ck_assert_uint_eq(crn_vocab_lookup(w, U8("A"), 1), 6);
    crn_vocab_destroy(w);
    free(buf);
    crn_vocab_destroy(v);
}
END_TEST

/* ---- serialisation ------------------------------------------------------- */

static void check_same(const crn_vocab *a, const crn_vocab *b) {
    ck_assert_uint_eq(crn_vocab_size(a), crn_vocab_size(b));
    ck_assert_int_eq(crn_vocab_unit(a), crn_vocab_unit(b));
    ck_assert_int_eq(crn_vocab_norm(a), crn_vocab_norm(b));
    for (uint32_t id = 0; id < crn_vocab_size(a); id++) {
        size_t la, lb;
        const uint8_t *ta = crn_vocab_token(a, id, &la), *tb = crn_vocab_token(b, id, &lb);
        CHECK(la == lb && memcmp(ta, tb, la) == 0, "token %u differs", id);
        CHECK(crn_vocab_freq(a, id) == crn_vocab_freq(b, id), "freq of %u differs", id);
        if (id) CHECK(crn_vocab_lookup(b, tb, lb) == id, "lookup of id %u", id);
    }
}

START_TEST(test_serialize) {
    for (int u = 0; u < 3; u++) {
        const char *t = texts[6]; /* emoji: multi-code-point graphemes */
        crn_vocab *v = build(texts[4], strlen(texts[4]), (enum crn_unit)u, CRN_NORM_NFKC, 1);
        ck_assert_int_ge(crn_vocab_extend(v, U8(t), strlen(t)), 1);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), 0);
        crn_vocab *w = NULL;
        ck_assert_int_eq(crn_vocab_deserialize(&w, buf, len), 0);
        check_same(v, w);
        crn_vocab_destroy(w);
        ck_assert_int_eq(crn_vocab_clone(&w, v), 0);
        check_same(v, w);
        crn_vocab_destroy(w);
        /* every truncation is rejected */
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *tr = malloc(cut ? cut : 1); /* exact size so ASan sees overreads */
            memcpy(tr, buf, cut);
            w = (crn_vocab *)1;
            CHECK(crn_vocab_deserialize(&w, tr, cut) == CRN_EFORMAT, "cut %zu of %zu accepted", cut, len);
            CHECK(w == NULL, "cut %zu: *out not NULL", cut);
            free(tr);
        }
        /* a trailing byte too */
        uint8_t *ext = malloc(len + 1);
        memcpy(ext, buf, len);
        ext[len] = 0;
        ck_assert_int_eq(crn_vocab_deserialize(&w, ext, len + 1), CRN_EFORMAT);
        free(ext);
        free(buf);
        crn_vocab_destroy(v);
    }
}
END_TEST

static void put32le(uint8_t *p, uint32_t x) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i));
}

/* A vocabulary file written by hand (layout in vocab.h), freq 1 each. */
static size_t make_vocab_file(uint8_t **out, enum crn_unit u, const char *const *toks, uint32_t n,
                              const uint32_t *runs, uint32_t nruns) {
    uint8_t *b = malloc(4096), *p = b;
    memcpy(p, "CRNV", 4);
    put32le(p + 4, 1);
    put32le(p + 8, (uint32_t)u);
    put32le(p + 12, CRN_NORM_NFC);
    put32le(p + 16, n + 1);
    memset(p + 20, 0, 8);
    put32le(p + 28, nruns);
    p += 32;
    for (uint32_t r = 0; r < nruns; r++, p += 4) put32le(p, runs[r]);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)strlen(toks[i]);
        put32le(p, l);
        memcpy(p + 4, toks[i], l);
        memset(p + 4 + l, 0, 8);
        p[4 + l] = 1;
        p += 4 + l + 8;
    }
    *out = b;
    return (size_t)(p - b);
}

START_TEST(test_deserialize_corrupt) {
    /* "abc" codepoint: header 32 bytes, 1 run (4), then a, b, c (13 bytes each) */
    crn_vocab *v = build("abcab", 5, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, 1);
    uint8_t *buf, *m;
    size_t len;
    ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), 0);
    ck_assert_uint_eq(len, 32 + 4 + 3 * 13);
    const size_t tok1 = 36 + 4, tok2 = tok1 + 13; /* byte of token 1 ('a') and 2 ('b') */
    ck_assert_int_eq(buf[tok1], 'a');
    ck_assert_int_eq(buf[tok2], 'b');
    crn_vocab *w;
    m = malloc(len);
#define MUTATE(stmt, what)                                                            \
    do {                                                                              \
        memcpy(m, buf, len);                                                          \
        stmt;                                                                         \
        ck_assert_msg(crn_vocab_deserialize(&w, m, len) == CRN_EFORMAT, "%s accepted", what); \
    } while (0)
    MUTATE(m[0] = 'X', "bad magic");
    MUTATE(put32le(m + 4, 2), "version 2");
    MUTATE(put32le(m + 8, 3), "unit 3");
    MUTATE(put32le(m + 12, 7), "norm 7");
    MUTATE(put32le(m + 16, 0), "size 0");
    MUTATE(put32le(m + 16, 0xFFFFFFFF), "absurd size");
    MUTATE(put32le(m + 16, 3), "size too small");
    MUTATE(put32le(m + 28, 0), "no runs");
    MUTATE(put32le(m + 28, 2), "two runs");
    MUTATE(put32le(m + 32, 2), "run too short");
    MUTATE(m[tok2] = 'a', "duplicate token");
    MUTATE((m[tok1] = 'b', m[tok2] = 'a'), "unsorted tokens");
    MUTATE(m[tok1] = 0x80, "invalid UTF-8 token");
    MUTATE(m[tok1] = 0, "NUL token");
    MUTATE(put32le(m + tok1 - 4, 0), "empty token");
    MUTATE(put32le(m + tok1 - 4, 2), "token length off");
    MUTATE(put32le(m + tok1 - 4, 0xFFFFFFF0u), "huge token length");
    free(m);
    /* hand-made files with two runs: each run sorted is fine (what extend
     * writes), a duplicate across runs is not */
    static const char *const ok_toks[] = {"a", "c", "b"}, *const dup_toks[] = {"a", "c", "a"};
    static const uint32_t runs[] = {2, 1};
    len = make_vocab_file(&m, CRN_UNIT_CODEPOINT, ok_toks, 3, runs, 2);
    ck_assert_int_eq(crn_vocab_deserialize(&w, m, len), 0);
    ck_assert_uint_eq(crn_vocab_lookup(w, U8("b"), 1), 3);
    crn_vocab_destroy(w);
    free(m);
    len = make_vocab_file(&m, CRN_UNIT_CODEPOINT, dup_toks, 3, runs, 2);
    ck_assert_int_eq(crn_vocab_deserialize(&w, m, len), CRN_EFORMAT);
    free(m);
    static const uint32_t one_run[] = {3};
    len = make_vocab_file(&m, CRN_UNIT_CODEPOINT, ok_toks, 3, one_run, 1);
    ck_assert_int_eq(crn_vocab_deserialize(&w, m, len), CRN_EFORMAT); /* c before b in one run */
    free(m);
    free(buf);
    crn_vocab_destroy(v);
    /* a codepoint vocabulary must not hold a multi-code-point token, a jamo one no syllable */
    v = build("e\xCC\x81", 3, CRN_UNIT_GRAPHEME, CRN_NORM_NONE, 1);
    ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), 0);
    put32le(buf + 8, CRN_UNIT_CODEPOINT);
    ck_assert_int_eq(crn_vocab_deserialize(&w, buf, len), CRN_EFORMAT);
    free(buf);
    crn_vocab_destroy(v);
    v = build("\xEA\xB0\x80", 3, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, 1);
    ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), 0);
    put32le(buf + 8, CRN_UNIT_JAMO);
    ck_assert_int_eq(crn_vocab_deserialize(&w, buf, len), CRN_EFORMAT);
    put32le(buf + 8, CRN_UNIT_GRAPHEME);
    ck_assert_int_eq(crn_vocab_deserialize(&w, buf, len), 0);
    crn_vocab_destroy(w);
    free(buf);
    crn_vocab_destroy(v);
    /* unfinalized: refused */
    ck_assert_int_eq(crn_vocab_create(&v, CRN_UNIT_CODEPOINT, CRN_NORM_NFC), 0);
    ck_assert_int_eq(crn_vocab_serialize(v, &buf, &len), CRN_EINVAL);
    uint32_t id;
    ck_assert_int_eq(crn_vocab_encode(v, U8("a"), 1, &id, NULL), CRN_EINVAL);
    crn_vocab_destroy(v);
}
END_TEST

/* ---- shared corpora ------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    ck_assert_uint_eq(*n, (size_t)sz);
    return b;
}

/* Independent distinct-code-point count: a tiny decoder of its own (the file
 * is known valid: lead byte gives the length) and a bitmap. */
static size_t distinct_cps(const uint8_t *s, size_t n) {
    static uint8_t seen[0x110000 / 8];
    memset(seen, 0, sizeof seen);
    size_t d = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        int k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (k > 1) c &= 0x3F >> (k - 1);
        for (int j = 1; j < k; j++) c = (c << 6) | (s[i + j] & 0x3F);
        i += (size_t)k;
        if (!(seen[c >> 3] & (1u << (c & 7)))) {
            seen[c >> 3] |= (uint8_t)(1u << (c & 7));
            d++;
        }
    }
    return d;
}

static int has_conjoining_jamo(const uint8_t *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == 0xE1 && s[i + 1] >= 0x84 && s[i + 1] <= 0x87) return 1;
    return 0;
}

START_TEST(test_shared_corpora) {
    const char *dir = getenv("CRN_SHARED_CORPORA");
    if (!dir) {
        printf("test_shared_corpora: CRN_SHARED_CORPORA not set, skipped\n");
        return;
    }
    /* distinct code points as listed in SOURCES.md */
    static const struct { const char *name; int nfc; size_t distinct; } files[] = {
        {"tinyshakespeare.txt", 1, 65},   {"korean_koconovel.txt", 1, 1475}, {"korean_nsmc_small.txt", 1, 1328},
        {"debian_faq_ko.txt", 1, 716},    {"mixed_emacs_hello.txt", 0, 548},
    };
    for (size_t f = 0; f < CRN_ARRAY_LEN(files); f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[f].name);
        size_t n;
        uint8_t *raw = read_file(path, &n);
        if (!raw) {
            printf("test_shared_corpora: %s missing, skipped\n", path);
            continue;
        }
        ck_assert_msg(crn_utf8_validate(raw, n, NULL) == 0, "%s: %s", path, crn_error_message());
        size_t nfc_n;
        uint8_t *nfc;
        ck_assert_int_eq(crn_utf8_normalize(&nfc, &nfc_n, raw, n, CRN_NORM_NFC), 0);
        int same = nfc_n == n && memcmp(nfc, raw, n) == 0;
        ck_assert_msg(same == files[f].nfc, "%s: NFC status %d, expected %d", path, same, files[f].nfc);
        /* piecewise normalisation == utf8proc on the whole text at once */
        for (int nm = 0; nm < 2; nm++) {
            utf8proc_uint8_t *whole = NULL;
            utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (nm == CRN_NORM_NFKC ? UTF8PROC_COMPAT : 0);
            utf8proc_ssize_t wn = utf8proc_map(raw, (utf8proc_ssize_t)n, &whole, opt);
            ck_assert_int_ge(wn, 0);
            size_t pn;
            uint8_t *pieces;
            ck_assert_int_eq(crn_utf8_normalize(&pieces, &pn, raw, n, (enum crn_norm)nm), 0);
            ck_assert_msg(pn == (size_t)wn && memcmp(pieces, whole, pn) == 0, "%s: %s differs from utf8proc_map", path,
                          crn_norm_name((enum crn_norm)nm));
            free(pieces);
            free(whole);
        }
        for (int u = 0; u < 3; u++) {
            round_trip(nfc, nfc_n, (enum crn_unit)u, CRN_NORM_NFC, files[f].name);
            /* raw bytes under none: in jamo mode only if no conjoining jamo
             * (U+1100..U+11FF = E1 84..87 xx) are in the text, which the
             * decoder would recompose */
            if (!files[f].nfc && (u != CRN_UNIT_JAMO || !has_conjoining_jamo(raw, n)))
                round_trip(raw, n, (enum crn_unit)u, CRN_NORM_NONE, files[f].name);
        }
        /* distinct code points: vocabulary vs. the independent count vs. SOURCES.md */
        size_t indep = distinct_cps(raw, n);
        ck_assert_uint_eq(indep, files[f].distinct);
        crn_vocab *v = build((const char *)raw, n, CRN_UNIT_CODEPOINT, CRN_NORM_NONE, 1);
        ck_assert_uint_eq(crn_vocab_size(v) - 1, indep);
        crn_vocab_destroy(v);
        v = build((const char *)nfc, nfc_n, CRN_UNIT_CODEPOINT, CRN_NORM_NFC, 1);
        ck_assert_uint_eq(crn_vocab_size(v) - 1, distinct_cps(nfc, nfc_n));
        crn_vocab_destroy(v);
        free(nfc);
        free(raw);
    }
}
END_TEST

/* ---- grapheme segmentation against utf8proc directly ---------------------- */

/* Cluster boundaries by calling utf8proc_grapheme_break_stateful on every
 * pair in order, compared with the iterator (which skips the call on
 * ASCII/Hangul pairs). */
static void check_graphemes(const uint8_t *s, size_t n, const char *what) {
    uint8_t *is_start = calloc(n + 1, 1);
    utf8proc_int32_t state = 0, prev = -1;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        CHECK(k > 0, "%s: utf8proc_iterate failed at %zu", what, i);
        if (prev < 0 || utf8proc_grapheme_break_stateful(prev, cp, &state)) is_start[i] = 1;
        prev = cp;
        i += (size_t)k;
    }
    is_start[n] = 1;
    crn_tokiter it;
    crn_tokiter_init(&it, s, n, CRN_UNIT_GRAPHEME);
    const uint8_t *tok;
    size_t len, pos = 0;
    int r;
    while ((r = crn_tokiter_next(&it, &tok, &len)) == 1) {
        CHECK(tok == s + pos && len > 0, "%s: token at %zu, want %zu", what, (size_t)(tok - s), pos);
        CHECK(is_start[pos], "%s: cluster starts at byte %zu, utf8proc says no break there", what, pos);
        for (size_t b = pos + 1; b < pos + len; b++)
            CHECK(!is_start[b], "%s: cluster at byte %zu runs over a break at %zu", what, pos, b);
        pos += len;
    }
    CHECK(r == 0 && pos == n, "%s: iteration ended at %zu of %zu (rc %d)", what, pos, n, r);
    free(is_start);
}

START_TEST(test_grapheme_reference) {
    static const char *const tricky[] = {
        "a\xCC\x81" "b\r\nc\n\r\r\n",                               /* combining mark, CR LF, lone CR */
        "\xEA\xB0\x80\xCC\x81\xEA\xB0\x80" "a",                     /* 가 + U+0301 is one cluster */
        "\xE1\x84\x80\xEA\xB0\x80\xEA\xB0\x80\xE1\x86\xA8" "x",     /* L + LV; LV + T */
        "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8\xE1\x84\x80" "a",     /* L V T, L */
        "x\xE2\x80\x8Dy\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9" "a", /* ZWJ after x; emoji ZWJ emoji */
        "\xF0\x9F\x87\xB0\xF0\x9F\x87\xB7\xF0\x9F\x87\xAF" "1"      /* RI RI RI 1 RI RI RI RI */
        "\xF0\x9F\x87\xB0\xF0\x9F\x87\xB7\xF0\x9F\x87\xAF\xF0\x9F\x87\xB5",
        "a\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7" "a", /* skin tone; Devanagari */
        "\xC2\xA9\xE2\x80\x8D\xC2\xA9 \xF0\x9F\x98\x80\xCC\x81\xE2\x80\x8D\xF0\x9F\x98\x80" "1\xE2\x83\xA3",
    };
    for (size_t i = 0; i < CRN_ARRAY_LEN(tricky); i++) check_graphemes(U8(tricky[i]), strlen(tricky[i]), tricky[i]);
    for (size_t i = 0; i < CRN_ARRAY_LEN(texts); i++) check_graphemes(U8(texts[i]), strlen(texts[i]), texts[i]);
    for (size_t i = 0; i < CRN_ARRAY_LEN(raw_texts); i++)
        check_graphemes(U8(raw_texts[i]), strlen(raw_texts[i]), raw_texts[i]);
    const char *dir = getenv("CRN_SHARED_CORPORA");
    static const char *const names[] = {"korean_nsmc_small.txt", "mixed_emacs_hello.txt", "debian_faq_ko.txt"};
    for (size_t f = 0; dir && f < CRN_ARRAY_LEN(names); f++) {
        char path[4096];
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        uint8_t *t = read_file(path, &n);
        if (!t) continue;
        check_graphemes(t, n, names[f]);
        free(t);
    }
}
END_TEST

/* ---- main ---------------------------------------------------------------- */

int main(void) {
    Suite *s = suite_create("vocab");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_golden_english);
    tcase_add_test(tc, test_golden_korean);
    tcase_add_test(tc, test_golden_mixed);
    tcase_add_test(tc, test_golden_emoji_graphemes);
    tcase_add_test(tc, test_normalize);
    tcase_add_test(tc, test_normalize_long_line);
    tcase_add_test(tc, test_invalid_positions);
    tcase_add_test(tc, test_repair);
    tcase_add_test(tc, test_codec);
    tcase_add_test(tc, test_hangul_all);
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_stream_jamo);
    tcase_add_test(tc, test_min_count);
    tcase_add_test(tc, test_extend);
    tcase_add_test(tc, test_serialize);
    tcase_add_test(tc, test_deserialize_corrupt);
    tcase_add_test(tc, test_shared_corpora);
    tcase_add_test(tc, test_grapheme_reference);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
