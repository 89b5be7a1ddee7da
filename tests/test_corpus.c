/* test_corpus.c — PCRE2 wrapper (compile errors, limits, search, prefix
 * classification, substitution) and the corpus: cleaning, Korean text,
 * statistics, split, the training batch layout against an independent
 * computation, validation windows, pieces, and error cases. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "corpus.h"
#include "regex.h"

#define U8(s) ((const uint8_t *)(s))

/* ---------------------------------------------------------------- regex */

START_TEST(regex_compile_errors) {
    crn_regex *re = (crn_regex *)1;
    int rc = crn_regex_compile(&re, "a(b", 0);
    ck_assert_int_eq(rc, CRN_EREGEX);
    ck_assert_ptr_null(re);
    ck_assert_str_eq(crn_error_message(), "bad regex 'a(b' at offset 3: missing closing parenthesis");

    rc = crn_regex_compile(&re, "ab[z-a]", 0);
    ck_assert_int_eq(rc, CRN_EREGEX);
    ck_assert_msg(strstr(crn_error_message(), "bad regex 'ab[z-a]' at offset 5: ") != NULL, "%s",
                  crn_error_message());

    /* offsets are in bytes: the '(' follows two 3-byte syllables */
    rc = crn_regex_compile(&re, "한글)", 0);
    ck_assert_int_eq(rc, CRN_EREGEX);
    ck_assert_msg(strstr(crn_error_message(), "at offset 6: ") != NULL, "%s", crn_error_message());

    /* the pattern must be UTF-8 itself */
    rc = crn_regex_compile(&re, "ab\xff", 0);
    ck_assert_int_eq(rc, CRN_EREGEX);
    ck_assert_msg(strstr(crn_error_message(), "at offset 2: ") != NULL, "%s", crn_error_message());

    /* \C could split a UTF-8 sequence: refused */
    ck_assert_int_eq(crn_regex_compile(&re, "a\\Cb", 0), CRN_EREGEX);

    ck_assert_int_eq(crn_regex_compile(&re, "(?<w>\\w+)", 0), 0);
    ck_assert_str_eq(crn_regex_pattern(re), "(?<w>\\w+)");
    crn_regex_destroy(re);
    crn_regex_destroy(NULL);
}
END_TEST

START_TEST(regex_limits_are_bounded) {
    char subject[64];
    memset(subject, 'a', 40);
    subject[40] = 'b';
    const char *bad[] = {"(a+)+$", "(a|aa)+$", "(a|a)+$", "(a*)*$", "^(a+)+$"};
    for (size_t i = 0; i < CRN_ARRAY_LEN(bad); i++) {
        crn_regex *re;
        ck_assert_int_eq(crn_regex_compile(&re, bad[i], 0), 0);
        double t0 = crn_now();
        int rc = crn_regex_search(re, U8(subject), 41, 0, NULL, NULL);
        double dt = crn_now() - t0;
        ck_assert_msg(rc == CRN_ELIMIT, "%s: rc %d", bad[i], rc);
        ck_assert_msg(dt < 2.0, "%s took %.2f s", bad[i], dt);
        ck_assert_msg(strstr(crn_error_message(), bad[i]) != NULL, "%s", crn_error_message());
        /* substitution runs under the same limits */
        uint8_t *out = (uint8_t *)1;
        size_t on;
        ck_assert_int_eq(crn_regex_replace(re, U8(subject), 41, "x", &out, &on), CRN_ELIMIT);
        ck_assert_ptr_null(out);
        crn_regex_destroy(re);
    }
}
END_TEST

START_TEST(regex_search) {
    crn_regex *re;
    ck_assert_int_eq(crn_regex_compile(&re, "\\w+", 0), 0);
    const char *s = "  한국어 text";
    size_t a = 99, b = 99;
    ck_assert_int_eq(crn_regex_search(re, U8(s), strlen(s), 0, &a, &b), 1);
    ck_assert_uint_eq(a, 2); /* UCP: \w includes Hangul */
    ck_assert_uint_eq(b, 11);
    ck_assert_int_eq(crn_regex_search(re, U8(s), strlen(s), 11, &a, &b), 1);
    ck_assert_uint_eq(a, 12);
    ck_assert_uint_eq(b, 16);
    ck_assert_int_eq(crn_regex_search(re, U8(s), strlen(s), 16, &a, &b), 0);
    ck_assert_int_eq(crn_regex_search(re, U8(s), strlen(s), 17, &a, &b), CRN_EINVAL);
    /* a start offset inside a character */
    ck_assert_int_lt(crn_regex_search(re, U8(s), strlen(s), 3, &a, &b), 0);
    /* invalid UTF-8 subject: an error, not a crash */
    ck_assert_int_lt(crn_regex_search(re, U8("a\xff"), 2, 0, NULL, NULL), 0);
    crn_regex_destroy(re);

    /* a repeated group over a long line is not a limit case */
    ck_assert_int_eq(crn_regex_compile(&re, "^(?:ab|cd)*$", 0), 0);
    char *line = malloc(20001);
    for (int i = 0; i < 20000; i++) line[i] = "abcd"[i % 4];
    ck_assert_int_eq(crn_regex_search(re, U8(line), 20000, 0, NULL, NULL), 1);
    line[19999] = 'x';
    ck_assert_int_eq(crn_regex_search(re, U8(line), 20000, 0, NULL, NULL), 0);
    free(line);
    crn_regex_destroy(re);

    /* UCP digits */
    ck_assert_int_eq(crn_regex_compile(&re, "^\\d+$", 0), 0);
    ck_assert_int_eq(crn_regex_search(re, U8("\xd9\xa1\xd9\xa2"), 4, 0, NULL, NULL), 1); /* Arabic-Indic 12 */
    crn_regex_destroy(re);

    /* anchoring flags */
    ck_assert_int_eq(crn_regex_compile(&re, "b+", CRN_REGEX_ANCHORED), 0);
    ck_assert_int_eq(crn_regex_search(re, U8("abb"), 3, 0, NULL, NULL), 0);
    ck_assert_int_eq(crn_regex_search(re, U8("abb"), 3, 1, &a, &b), 1);
    crn_regex_destroy(re);
    ck_assert_int_eq(crn_regex_compile(&re, "b", CRN_REGEX_ENDANCHORED), 0);
    ck_assert_int_eq(crn_regex_search(re, U8("bba"), 3, 0, NULL, NULL), 0);
    ck_assert_int_eq(crn_regex_search(re, U8("abb"), 3, 0, &a, &b), 1);
    ck_assert_uint_eq(a, 2);
    crn_regex_destroy(re);
}
END_TEST

START_TEST(regex_prefix_classes) {
    static const struct {
        const char *pat, *s;
        int want;
    } cases[] = {
        {"abc", "", CRN_PREFIX_PARTIAL},
        {"abc", "a", CRN_PREFIX_PARTIAL},
        {"abc", "ab", CRN_PREFIX_PARTIAL},
        {"abc", "abc", CRN_PREFIX_COMPLETE},
        {"abc", "abcd", CRN_PREFIX_NONE},
        {"abc", "x", CRN_PREFIX_NONE},
        {"ab*", "a", CRN_PREFIX_EXTENSIBLE},
        {"ab*", "abbb", CRN_PREFIX_EXTENSIBLE},
        {"ab*", "abx", CRN_PREFIX_NONE},
        {"ab*", "", CRN_PREFIX_PARTIAL},
        {"abc|abcd", "abc", CRN_PREFIX_EXTENSIBLE}, /* the DFA sees the longer alternative */
        {"abc|abcd", "abcd", CRN_PREFIX_COMPLETE},
        {"a?", "", CRN_PREFIX_EXTENSIBLE},
        {"", "", CRN_PREFIX_COMPLETE},
        {"", "a", CRN_PREFIX_NONE},
        {"[가-힣 ]{3,5}[.?!]", "가나", CRN_PREFIX_PARTIAL},
        {"[가-힣 ]{3,5}[.?!]", "가나다", CRN_PREFIX_PARTIAL},
        {"[가-힣 ]{3,5}[.?!]", "가나다.", CRN_PREFIX_COMPLETE},
        {"[가-힣 ]{3,5}[.?!]", "가 나 다!", CRN_PREFIX_COMPLETE},
        {"[가-힣 ]{3,5}[.?!]", "가나다라마바", CRN_PREFIX_NONE},
        {"[가-힣 ]{3,5}[.?!]", "가나.", CRN_PREFIX_NONE},
        {"[가-힣 ]{3,5}[.?!]", "abc", CRN_PREFIX_NONE},
        {"(\\d{3})-\\1", "123-12", CRN_PREFIX_PARTIAL}, /* back reference: backtracking fallback */
        {"(\\d{3})-\\1", "123-123", CRN_PREFIX_COMPLETE},
        {"(\\d{3})-\\1", "123-124", CRN_PREFIX_NONE},
        {"[0-9]+(\\.[0-9]+)?", "3", CRN_PREFIX_EXTENSIBLE},
        {"[0-9]+(\\.[0-9]+)?", "3.", CRN_PREFIX_PARTIAL},
        {"[0-9]+(\\.[0-9]+)?", "3.1", CRN_PREFIX_EXTENSIBLE},
    };
    for (size_t i = 0; i < CRN_ARRAY_LEN(cases); i++) {
        for (uint32_t flags = 0; flags <= (CRN_REGEX_ANCHORED | CRN_REGEX_ENDANCHORED); flags++) {
            crn_regex *re;
            ck_assert_int_eq(crn_regex_compile(&re, cases[i].pat, flags), 0);
            int got = crn_regex_prefix(re, U8(cases[i].s), strlen(cases[i].s));
            ck_assert_msg(got == cases[i].want, "'%s' on \"%s\" (flags %u): got %d, want %d", cases[i].pat,
                          cases[i].s, flags, got, cases[i].want);
            crn_regex_destroy(re);
        }
    }
}
END_TEST

static char *replace_str(const char *pat, const char *s, const char *repl, long long *count) {
    crn_regex *re;
    ck_assert_int_eq(crn_regex_compile(&re, pat, 0), 0);
    uint8_t *out;
    size_t on;
    *count = crn_regex_replace(re, U8(s), strlen(s), repl, &out, &on);
    crn_regex_destroy(re);
    if (*count < 0) return NULL;
    ck_assert_uint_eq(strlen((char *)out), on);
    return (char *)out;
}

START_TEST(regex_substitute) {
    long long k;
    char *r = replace_str("(\\w+)@(\\w+)", "a@b, 가@나, x", "$2 at $1", &k);
    ck_assert_int_eq(k, 2);
    ck_assert_str_eq(r, "b at a, 나 at 가, x");
    free(r);

    /* no match: a copy */
    r = replace_str("zzz", "한글 text", "y", &k);
    ck_assert_int_eq(k, 0);
    ck_assert_str_eq(r, "한글 text");
    free(r);

    /* empty matches, and output much longer than the input (the buffer grows) */
    r = replace_str("x*", "ab", "-", &k);
    ck_assert_int_eq(k, 3);
    ck_assert_str_eq(r, "-a-b-");
    free(r);
    char big[2001];
    memset(big, 'a', 2000);
    big[2000] = 0;
    r = replace_str("a", big, "가나다라", &k);
    ck_assert_int_eq(k, 2000);
    ck_assert_uint_eq(strlen(r), 2000 * 12);
    ck_assert_int_eq(memcmp(r + 12 * 1999, "가나다라", 12), 0);
    free(r);

    /* named groups and an empty subject */
    r = replace_str("(?<y>\\d{4})-(?<m>\\d\\d)", "2024-05", "${m}/${y}", &k);
    ck_assert_str_eq(r, "05/2024");
    free(r);
    r = replace_str("a", "", "b", &k);
    ck_assert_int_eq(k, 0);
    ck_assert_str_eq(r, "");
    free(r);

    /* a bad replacement names itself, the regex and the offset */
    r = replace_str("(a)", "aa", "x$2", &k);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(k, CRN_EREGEX);
    ck_assert_msg(strstr(crn_error_message(), "bad replacement 'x$2' for regex '(a)' at offset 3") != NULL, "%s",
                  crn_error_message());
}
END_TEST

START_TEST(split_replace_spec) {
    static const struct {
        const char *spec, *re, *text;
    } ok[] = {
        {"a=b", "a", "b"},
        {"a=", "a", ""},
        {"a=b=c", "a=b", "c"},
        {"a\\=b=c", "a\\=b", "c"},
        {"a=b\\=c", "a", "b=c"},
        {"x\\\\=y", "x\\\\", "y"},
        {"[0-9]+=<num>", "[0-9]+", "<num>"},
        {"ㅋ{2,}=ㅋㅋ", "ㅋ{2,}", "ㅋㅋ"},
    };
    for (size_t i = 0; i < CRN_ARRAY_LEN(ok); i++) {
        char *re, *text;
        ck_assert_int_eq(crn_corpus_split_replace(ok[i].spec, &re, &text), 0);
        ck_assert_str_eq(re, ok[i].re);
        ck_assert_str_eq(text, ok[i].text);
        free(re);
        free(text);
    }
    char *re, *text;
    ck_assert_int_eq(crn_corpus_split_replace("abc", &re, &text), CRN_EINVAL);
    ck_assert_msg(strstr(crn_error_message(), "'abc'") != NULL, "%s", crn_error_message());
    ck_assert_int_eq(crn_corpus_split_replace("a\\=b", &re, &text), CRN_EINVAL);
    ck_assert_int_eq(crn_corpus_split_replace("=b", &re, &text), CRN_EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- corpus */

static crn_corpus *load_mem(const char *text, const crn_corpus_opts *o) {
    crn_corpus *c = NULL;
    int rc = crn_corpus_from_memory(&c, "mem.txt", U8(text), strlen(text), o, NULL);
    ck_assert_msg(rc == 0, "load: %d %s", rc, crn_error_message());
    return c;
}

/* The text of all ids, decoded. */
static char *corpus_text(const crn_corpus *c) {
    uint32_t *ids = malloc((c->n_tokens + 1) * sizeof *ids);
    for (size_t i = 0; i < c->n_tokens; i++) ids[i] = crn_corpus_id(c, i);
    uint8_t *out;
    size_t on;
    ck_assert_int_eq(crn_vocab_decode(c->vocab, ids, c->n_tokens, &out, &on), 0);
    free(ids);
    char *s = malloc(on + 1);
    memcpy(s, out, on);
    s[on] = 0;
    free(out);
    return s;
}

/* Independent id of a code point for the codepoint unit: 1 + its rank among
 * the distinct code points of the text (vocab.h: sorted, 0 is <unk>).
 * ASCII-only helper. */
static uint32_t ascii_rank(const char *text, char ch) {
    int seen[128] = {0};
    for (const char *p = text; *p; p++) seen[(unsigned char)*p] = 1;
    uint32_t r = 1;
    for (int i = 0; i < (unsigned char)ch; i++) r += (uint32_t)seen[i];
    return r;
}

START_TEST(corpus_basic_ids_and_stats) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    const char *text = "hello world\nhe\n";
    crn_corpus *c = load_mem(text, &o);
    ck_assert_uint_eq(c->n_tokens, strlen(text));
    ck_assert_uint_eq(c->n_chars, strlen(text));
    ck_assert_uint_eq(c->n_nfc_chars, strlen(text));
    ck_assert_uint_eq(c->n_bytes, strlen(text));
    ck_assert_uint_eq(c->n_train, c->n_tokens);
    ck_assert_uint_eq(c->n_val_chars, 0);
    ck_assert_int_eq(c->wide, 0);
    ck_assert_int_eq(c->had_bom, 0);
    ck_assert_uint_eq(crn_vocab_size(c->vocab), 1 + 9); /* \n space d e h l o r w */
    for (size_t i = 0; i < c->n_tokens; i++)
        ck_assert_uint_eq(crn_corpus_id(c, i), ascii_rank(text, text[i]));
    ck_assert_str_eq(c->path, "mem.txt");
    crn_corpus_destroy(c);
    crn_corpus_destroy(NULL);
}
END_TEST

START_TEST(corpus_cleaning_order) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    const char *text = "첫 줄 123\n"
                       "english only\n"
                       "광고 문의 010-1234\n"
                       "둘째 줄 45 ㅋㅋㅋㅋ\n"
                       "셋째\n";
    const char *keep[] = {"[가-힣]"};
    const char *drop[] = {"광고"};
    /* in order: numbers become #, then # becomes <n>, then laughter shrinks */
    const char *repl[] = {"[0-9]+=#", "#=<n>", "ㅋ{2,}=ㅋㅋ"};
    o.keep = keep;
    o.n_keep = 1;
    o.drop = drop;
    o.n_drop = 1;
    o.replace = repl;
    o.n_replace = 3;
    crn_corpus *c = load_mem(text, &o);
    char *s = corpus_text(c);
    ck_assert_str_eq(s, "첫 줄 <n>\n둘째 줄 <n> ㅋㅋ\n셋째\n");
    ck_assert_uint_eq(c->n_lines_dropped, 2);
    ck_assert_uint_eq(c->n_chars, 8 + 12 + 3);
    free(s);
    crn_corpus_destroy(c);

    /* the order of replacements matters: reversed, '#' is gone before it appears */
    const char *repl2[] = {"#=<n>", "[0-9]+=#"};
    o.replace = repl2;
    o.n_replace = 2;
    o.n_keep = 0;
    o.n_drop = 0;
    c = load_mem("a 1\nb # 2\n", &o);
    s = corpus_text(c);
    ck_assert_str_eq(s, "a #\nb <n> #\n");
    ck_assert_uint_eq(c->n_lines_dropped, 0);
    free(s);
    crn_corpus_destroy(c);

    /* a pattern that gives up on a line: an error naming the line */
    const char *slow[] = {"(a+)+$"};
    o.n_replace = 0;
    o.n_keep = 0;
    o.drop = slow;
    o.n_drop = 1;
    char big[128] = "ok\nfine\n";
    memset(big + 8, 'a', 60);
    strcpy(big + 68, "b\nend\n");
    c = (crn_corpus *)1;
    ck_assert_int_eq(crn_corpus_from_memory(&c, "slow.txt", U8(big), strlen(big), &o, NULL), CRN_ELIMIT);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(crn_error_message(), "slow.txt:3: --drop: regex '(a+)+$'") != NULL, "%s",
                  crn_error_message());

    /* CRLF lines: matched without the '\r', which stays */
    const char *end_num[] = {"[0-9]$"};
    const char *repl_end[] = {"x$=y"};
    o.drop = end_num;
    o.n_drop = 1;
    o.replace = repl_end;
    o.n_replace = 1;
    c = load_mem("ax\r\nb2\r\ncx\r\ndx", &o);
    s = corpus_text(c);
    ck_assert_str_eq(s, "ay\r\ncy\r\ndy");
    ck_assert_uint_eq(c->n_lines_dropped, 1);
    free(s);
    crn_corpus_destroy(c);
    o.n_replace = 0;

    /* several keep patterns: any one keeps the line; drop wins over keep;
     * a last line without '\n' stays without it */
    const char *keep3[] = {"^A", "^B"};
    const char *drop3[] = {"x"};
    o.keep = keep3;
    o.n_keep = 2;
    o.drop = drop3;
    o.n_drop = 1;
    o.n_replace = 0;
    c = load_mem("A1\nC2\nB3\nAx\nB4", &o);
    s = corpus_text(c);
    ck_assert_str_eq(s, "A1\nB3\nB4");
    ck_assert_uint_eq(c->n_lines_dropped, 2);
    free(s);
    crn_corpus_destroy(c);
}
END_TEST

START_TEST(corpus_korean_units) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    /* 안 녕 하 세 요 (ㄴ final on 안 and 녕): 2 with a final + 3 without */
    const char *text = "안녕하세요\n";
    crn_corpus *c = load_mem(text, &o);
    ck_assert_uint_eq(c->n_tokens, 6);
    ck_assert_uint_eq(c->n_chars, 6);
    crn_corpus_destroy(c);

    o.unit = CRN_UNIT_JAMO;
    c = load_mem(text, &o);
    ck_assert_uint_eq(c->n_tokens, 2 * 3 + 3 * 2 + 1);
    ck_assert_uint_eq(c->n_chars, 6);
    char *s = corpus_text(c);
    ck_assert_str_eq(s, text); /* recomposed exactly */
    free(s);
    /* the first id is the leading consonant ㅇ (U+110B) */
    size_t tl;
    const uint8_t *tok = crn_vocab_token(c->vocab, crn_corpus_id(c, 0), &tl);
    ck_assert_uint_eq(tl, 3);
    ck_assert_int_eq(memcmp(tok, "\xe1\x84\x8b", 3), 0);
    crn_corpus_destroy(c);

    /* graphemes: a decomposed Hangul syllable and e + combining acute stay one
     * token each; with normalisation 'none' the bytes are kept */
    o.unit = CRN_UNIT_GRAPHEME;
    o.norm = CRN_NORM_NONE;
    const char *nfd = "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab" /* 한 as L V T */
                      "e\xcc\x81\n";
    c = load_mem(nfd, &o);
    ck_assert_uint_eq(c->n_tokens, 3);
    ck_assert_uint_eq(c->n_chars, 6);
    ck_assert_uint_eq(c->n_nfc_chars, 3); /* bits per char divide by these (issue 10 item 3) */
    s = corpus_text(c);
    ck_assert_str_eq(s, nfd);
    free(s);
    crn_corpus_destroy(c);
    o.unit = CRN_UNIT_CODEPOINT; /* the same text as 6 code point tokens: still 3 characters */
    c = load_mem(nfd, &o);
    ck_assert_uint_eq(c->n_tokens, 6);
    ck_assert_uint_eq(c->n_nfc_chars, 3);
    crn_corpus_destroy(c);

    /* NFC composes them: 한 é \n */
    o.unit = CRN_UNIT_CODEPOINT;
    o.norm = CRN_NORM_NFC;
    c = load_mem(nfd, &o);
    ck_assert_uint_eq(c->n_chars, 3);
    ck_assert_uint_eq(c->n_nfc_chars, 3);
    s = corpus_text(c);
    ck_assert_str_eq(s, "한\xc3\xa9\n");
    free(s);
    crn_corpus_destroy(c);
}
END_TEST

START_TEST(corpus_bom_and_invalid) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    crn_corpus *c = load_mem("\xef\xbb\xbf가나\n", &o);
    ck_assert_int_eq(c->had_bom, 1);
    ck_assert_uint_eq(c->n_tokens, 3);
    ck_assert_uint_eq(c->n_bytes, 3 + 7);
    char *s = corpus_text(c);
    ck_assert_str_eq(s, "가나\n");
    free(s);
    crn_corpus_destroy(c);

    /* error: file:line:col with the original byte offset (BOM included) */
    const char *bad = "\xef\xbb\xbf" "ab\n가c\xffz\n";
    c = (crn_corpus *)1;
    int rc = crn_corpus_from_memory(&c, "bad.txt", U8(bad), strlen(bad), &o, NULL);
    ck_assert_int_eq(rc, CRN_EUTF8);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(crn_error_message(), "bad.txt:2:3: invalid UTF-8 (byte offset 10)");

    /* NUL is named */
    rc = crn_corpus_from_memory(&c, "nul.txt", U8("ab\ncd\0e"), 7, &o, NULL);
    ck_assert_int_eq(rc, CRN_EUTF8);
    ck_assert_msg(strstr(crn_error_message(), "nul.txt:2:3: NUL byte (byte offset 5)") != NULL, "%s",
                  crn_error_message());

    /* UTF-16 is named */
    rc = crn_corpus_from_memory(&c, "u16.txt", U8("\xff\xfe" "a\0b\0"), 6, &o, NULL);
    ck_assert_int_eq(rc, CRN_EUTF8);
    ck_assert_msg(strstr(crn_error_message(), "UTF-16") != NULL, "%s", crn_error_message());

    /* repair: replace and skip, counted */
    const char *two = "a\xffz\xc3\n\xe0\x80\n";
    o.invalid = CRN_INVALID_REPLACE;
    c = load_mem(two, &o);
    ck_assert_uint_eq(c->n_invalid, 4); /* FF; C3 cut by '\n'; E0 80 is two maximal subparts */
    s = corpus_text(c);
    ck_assert_str_eq(s, "a\xef\xbf\xbdz\xef\xbf\xbd\n\xef\xbf\xbd\xef\xbf\xbd\n");
    free(s);
    crn_corpus_destroy(c);
    o.invalid = CRN_INVALID_SKIP;
    c = load_mem(two, &o);
    ck_assert_uint_eq(c->n_invalid, 4);
    s = corpus_text(c);
    ck_assert_str_eq(s, "az\n\n");
    free(s);
    crn_corpus_destroy(c);
}
END_TEST

START_TEST(corpus_split_sizes) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    char text[1001];
    for (int i = 0; i < 1000; i++) text[i] = (char)('a' + (i * 7) % 26);
    text[1000] = 0;
    const double fracs[] = {0.1, 0.25, 0.0, 0.5, 0.333};
    for (size_t k = 0; k < CRN_ARRAY_LEN(fracs); k++) {
        for (size_t n = 1; n <= 1000; n += 37) {
            char save = text[n];
            text[n] = 0;
            o.val_frac = fracs[k];
            crn_corpus *c = load_mem(text, &o);
            text[n] = save;
            ck_assert_uint_eq(c->n_tokens, n);
            size_t want = (size_t)((double)n * (1.0 - fracs[k])); /* int(n * (1 - f)) */
            ck_assert_uint_eq(c->n_train, want);
            ck_assert_uint_eq(c->n_val_chars, n - want);
            crn_corpus_destroy(c);
        }
    }
    /* 10 syllables = 20 jamo; the last 25 % (5 jamo) start inside a syllable:
     * a lone vowel, then 가가 -> 3 NFC code points */
    o.unit = CRN_UNIT_JAMO;
    o.val_frac = 0.25;
    crn_corpus *c = load_mem("가가가가가가가가가가", &o);
    ck_assert_uint_eq(c->n_tokens, 20);
    ck_assert_uint_eq(c->n_train, 15);
    ck_assert_uint_eq(c->n_val_chars, 3);
    crn_corpus_destroy(c);
    o.val_frac = 0.1;
    c = load_mem("가가가가가가가가가가", &o);
    ck_assert_uint_eq(c->n_train, 18);
    ck_assert_uint_eq(c->n_val_chars, 1);
    crn_corpus_destroy(c);

    /* a bad fraction */
    o.val_frac = 1.0;
    ck_assert_int_eq(crn_corpus_from_memory(&c, "x", U8("abc"), 3, &o, NULL), CRN_EINVAL);
    o.val_frac = -0.1;
    ck_assert_int_eq(crn_corpus_from_memory(&c, "x", U8("abc"), 3, &o, NULL), CRN_EINVAL);
}
END_TEST

/* An ASCII text of n characters with a fixed pseudo-random pattern. */
static char *make_text(size_t n) {
    char *t = malloc(n + 1);
    uint32_t h = 12345;
    for (size_t i = 0; i < n; i++) {
        h = h * 1103515245u + 12345u;
        t[i] = (char)('a' + (h >> 16) % 20);
    }
    t[n] = 0;
    return t;
}

START_TEST(batcher_layout) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0.1;
    const size_t N = 1013;
    char *text = make_text(N);
    crn_corpus *c = load_mem(text, &o);
    const size_t n_train = (size_t)((double)N * 0.9);
    ck_assert_uint_eq(c->n_train, n_train);

    const size_t B = 5, T = 7;
    crn_batcher bt;
    ck_assert_int_eq(crn_batcher_init(&bt, c, B, T), 0);
    /* make_streams: n_win = (n_train - 1) // (B*T), L = n_win * T */
    const size_t n_win = (n_train - 1) / (B * T), L = n_win * T;
    ck_assert_uint_eq(bt.n_win, n_win);
    ck_assert_uint_eq(bt.row_len, L);

    uint32_t x[5 * 7], y[5 * 7];
    for (size_t step = 0; step < 2 * n_win + 3; step++) {
        int reset = -1;
        crn_batcher_next(&bt, x, y, &reset);
        size_t w = step % n_win;
        ck_assert_int_eq(reset, w == 0);
        ck_assert_uint_eq(bt.epoch, step / n_win);
        for (size_t t = 0; t < T; t++)
            for (size_t b = 0; b < B; b++) {
                size_t i = b * L + w * T + t; /* data[:B*L].reshape(B, L).T, window w */
                ck_assert_msg(x[t * B + b] == ascii_rank(text, text[i]), "x step %zu t %zu b %zu", step, t, b);
                ck_assert_msg(y[t * B + b] == ascii_rank(text, text[i + 1]), "y step %zu t %zu b %zu", step, t, b);
            }
    }
    /* a couple of hand-checked positions */
    crn_batcher_init(&bt, c, B, T);
    int reset;
    crn_batcher_next(&bt, x, y, &reset);
    crn_batcher_next(&bt, x, y, &reset);
    ck_assert_int_eq(reset, 0);
    ck_assert_uint_eq(x[3 * B + 2], ascii_rank(text, text[2 * L + 7 + 3]));
    ck_assert_uint_eq(y[6 * B + 4], ascii_rank(text, text[4 * L + 7 + 6 + 1]));

    /* too short: the message says how much is needed */
    ck_assert_int_eq(crn_batcher_init(&bt, c, 50, 50), CRN_ERANGE);
    ck_assert_str_eq(crn_error_message(), "mem.txt: train split has 911 tokens; batch 50 x seq 50 needs at least 2,501");
    ck_assert_int_eq(crn_batcher_init(&bt, c, 0, 50), CRN_EINVAL);
    /* exactly one window: n_train = B*T + 1 */
    ck_assert_int_eq(crn_batcher_init(&bt, c, 10, 91), 0);
    ck_assert_uint_eq(bt.n_win, 1);
    ck_assert_int_eq(crn_batcher_init(&bt, c, 10, 92), CRN_ERANGE);
    crn_corpus_destroy(c);
    free(text);
}
END_TEST

/* One MPI rank's part (crn_batcher_set_rows, crn_range_window_rows): rows
 * [r0, r0+R) of the layout over all B, column for column. */
START_TEST(batcher_rows_are_columns_of_all) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0.2;
    char *text = make_text(1013);
    crn_corpus *c = load_mem(text, &o);
    enum { B = 6, T = 5 };
    uint32_t x[B * T], y[B * T], xr[B * T], yr[B * T];
    const size_t parts[][2] = {{0, 2}, {2, 2}, {4, 2}, {1, 3}, {5, 1}};
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
        const size_t r0 = parts[p][0], R = parts[p][1];
        crn_batcher all, mine;
        ck_assert_int_eq(crn_batcher_init(&all, c, B, T), 0);
        ck_assert_int_eq(crn_batcher_init(&mine, c, B, T), 0);
        crn_batcher_set_rows(&mine, r0, R);
        for (size_t step = 0; step < 2 * all.n_win + 1; step++) {
            int ra, rm;
            crn_batcher_next(&all, x, y, &ra);
            crn_batcher_next(&mine, xr, yr, &rm);
            ck_assert_int_eq(ra, rm);
            ck_assert_uint_eq(all.win, mine.win);
            ck_assert_uint_eq(all.epoch, mine.epoch);
            for (size_t t = 0; t < T; t++)
                for (size_t r = 0; r < R; r++) {
                    ck_assert_uint_eq(xr[t * R + r], x[t * B + r0 + r]);
                    ck_assert_uint_eq(yr[t * R + r], y[t * B + r0 + r]);
                }
        }
        size_t nw = crn_val_windows(c, B, T);
        ck_assert_uint_gt(nw, 1);
        for (size_t w = 0; w < nw; w++) {
            crn_val_window(c, B, T, w, x, y);
            crn_range_window_rows(c, c->n_train, c->n_tokens, B, r0, R, w * T, T, xr, yr);
            for (size_t t = 0; t < T; t++)
                for (size_t r = 0; r < R; r++) {
                    ck_assert_uint_eq(xr[t * R + r], x[t * B + r0 + r]);
                    ck_assert_uint_eq(yr[t * R + r], y[t * B + r0 + r]);
                }
        }
    }
    crn_corpus_destroy(c);
    free(text);
}
END_TEST

START_TEST(val_window_layout) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    const size_t N = 301;
    char *text = make_text(N);
    const size_t Bs[] = {1, 3, 4, 7, 40};
    const size_t Ts[] = {1, 5, 8};
    o.val_frac = 0.2;
    crn_corpus *c = load_mem(text, &o);
    const size_t v0 = (size_t)((double)N * 0.8), nv = N - v0, n = nv - 1;
    ck_assert_uint_eq(c->n_train, v0);
    for (size_t bi = 0; bi < CRN_ARRAY_LEN(Bs); bi++)
        for (size_t ti = 0; ti < CRN_ARRAY_LEN(Ts); ti++) {
            size_t B = Bs[bi], T = Ts[ti];
            /* evaluate(): L = ceil(n / B); x, y of B*L, padded; (L, B) time-major */
            size_t L = (n + B - 1) / B;
            uint32_t *ex = calloc(B * L, sizeof *ex), *ey = malloc(B * L * sizeof *ey);
            for (size_t i = 0; i < B * L; i++) {
                ex[i] = i < n ? ascii_rank(text, text[v0 + i]) : 0;
                ey[i] = i < n ? ascii_rank(text, text[v0 + i + 1]) : CRN_IGNORE;
            }
            size_t nw = crn_val_windows(c, B, T);
            ck_assert_uint_eq(nw, (L + T - 1) / T);
            uint32_t *x = malloc(T * B * sizeof *x), *y = malloc(T * B * sizeof *y);
            size_t targets = 0;
            for (size_t w = 0; w < nw; w++) {
                crn_val_window(c, B, T, w, x, y);
                for (size_t t = 0; t < T; t++)
                    for (size_t b = 0; b < B; b++) {
                        size_t r = w * T + t; /* row position */
                        uint32_t wx = r < L ? ex[b * L + r] : 0, wy = r < L ? ey[b * L + r] : CRN_IGNORE;
                        ck_assert_msg(x[t * B + b] == wx && y[t * B + b] == wy, "B %zu T %zu w %zu t %zu b %zu", B,
                                      T, w, t, b);
                        targets += y[t * B + b] != CRN_IGNORE;
                    }
            }
            ck_assert_uint_eq(targets, n); /* every pair exactly once */
            free(x);
            free(y);
            free(ex);
            free(ey);
        }
    crn_corpus_destroy(c);

    /* no validation split: no windows */
    o.val_frac = 0;
    c = load_mem(text, &o);
    ck_assert_uint_eq(crn_val_windows(c, 4, 8), 0);
    crn_corpus_destroy(c);
    free(text);
}
END_TEST

/* Splitting into tiny pieces, with or without the pass-1 cache, must give the
 * same ids, statistics and error positions. */
START_TEST(corpus_pieces_agree) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.unit = CRN_UNIT_JAMO;
    const char *drop[] = {"^#"};
    const char *repl[] = {"\\s+= "};
    o.drop = drop;
    o.n_drop = 1;
    o.replace = repl;
    o.n_replace = 1;
    size_t cap = 12 * 1024, n = 0;
    char *text = malloc(cap);
    const char *lines[] = {"# 주석\n", "옛날   옛적에\n", "호랑이가\t살았어요.\n", "\n", "Once upon a time 🐯\n",
                           "e\xcc\x81t\xc3\xa9\n"};
    size_t n_comments = 0;
    for (int i = 0; n + 64 < cap; i++) {
        const char *l = lines[i % 6];
        n_comments += i % 6 == 0;
        memcpy(text + n, l, strlen(l));
        n += strlen(l);
    }
    text[n] = 0;
    crn_corpus *ref = load_mem(text, &o);
    const size_t pieces[] = {1, 7, 100, 4096};
    for (size_t p = 0; p < CRN_ARRAY_LEN(pieces); p++)
        for (size_t cache = 0; cache <= 1; cache++) {
            crn_corpus_tune(pieces[p], cache ? (size_t)1 << 20 : 0);
            crn_corpus *c = load_mem(text, &o);
            ck_assert_uint_eq(c->n_tokens, ref->n_tokens);
            ck_assert_uint_eq(c->n_chars, ref->n_chars);
            ck_assert_uint_eq(c->n_lines_dropped, ref->n_lines_dropped);
            ck_assert_uint_eq(c->n_val_chars, ref->n_val_chars);
            ck_assert_uint_eq(crn_vocab_size(c->vocab), crn_vocab_size(ref->vocab));
            for (size_t i = 0; i < c->n_tokens; i++)
                ck_assert_msg(crn_corpus_id(c, i) == crn_corpus_id(ref, i), "piece %zu cache %zu id %zu", pieces[p],
                              cache, i);
            crn_corpus_destroy(c);
        }
    ck_assert_uint_eq(ref->n_lines_dropped, n_comments);
    char *s = corpus_text(ref);
    ck_assert_ptr_null(strstr(s, "주석"));
    ck_assert_ptr_nonnull(strstr(s, "옛날 옛적에\n호랑이가 살았어요.\n\nOnce"));
    ck_assert_ptr_nonnull(strstr(s, "\xc3\xa9t\xc3\xa9\n"));
    free(s);
    crn_corpus_destroy(ref);

    /* an invalid byte deep in the text is located in the original input */
    o.n_drop = o.n_replace = 0;
    size_t bp = n;
    while (text[--bp] != 'O') {
    }
    text[bp] = (char)0xC0; /* never valid */
    size_t line = 1, col = 1;
    for (size_t i = 0; i < bp; i++) {
        if (text[i] == '\n') line++, col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80) col++;
    }
    char want[128];
    snprintf(want, sizeof want, "mem.txt:%zu:%zu: invalid UTF-8 (byte offset %zu)", line, col, bp);
    for (size_t p = 0; p < CRN_ARRAY_LEN(pieces); p++) {
        crn_corpus_tune(pieces[p], 0);
        crn_corpus *c;
        ck_assert_int_eq(crn_corpus_from_memory(&c, "mem.txt", U8(text), n, &o, NULL), CRN_EUTF8);
        ck_assert_str_eq(crn_error_message(), want);
    }
    crn_corpus_tune(0, (size_t)64 << 20);
    free(text);
}
END_TEST

START_TEST(corpus_given_vocab_and_min_count) {
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    o.min_count = 2;
    crn_corpus *c = load_mem("aab\n\n", &o); /* b seen once: <unk> */
    ck_assert_uint_eq(crn_vocab_size(c->vocab), 3); /* <unk> \n a */
    ck_assert_uint_eq(c->n_unk, 1);
    ck_assert_uint_eq(crn_corpus_id(c, 2), CRN_UNK);

    /* a given vocabulary is copied and used; unknown tokens are counted */
    o.min_count = 1;
    o.unit = CRN_UNIT_JAMO; /* ignored: the vocabulary decides */
    crn_corpus *d;
    ck_assert_int_eq(crn_corpus_from_memory(&d, "ft.txt", U8("abca\n"), 5, &o, c->vocab), 0);
    crn_corpus_destroy(c); /* d owns its copy */
    ck_assert_uint_eq(crn_vocab_size(d->vocab), 3);
    ck_assert_int_eq(crn_vocab_unit(d->vocab), CRN_UNIT_CODEPOINT);
    ck_assert_uint_eq(d->n_tokens, 5);
    ck_assert_uint_eq(d->n_unk, 2);
    ck_assert_uint_eq(crn_corpus_id(d, 0), crn_corpus_id(d, 3));
    ck_assert_uint_eq(crn_corpus_id(d, 1), CRN_UNK);
    crn_corpus_destroy(d);
}
END_TEST

START_TEST(corpus_wide_ids) {
    /* more than 65,536 distinct tokens: ids become uint32 */
    size_t cap = 80000 * 5, n = 0;
    uint8_t *text = malloc(cap);
    uint32_t count = 0;
    const uint32_t ranges[][2] = {{0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x20000, 0x2A6DF}};
    for (size_t r = 0; r < 3; r++)
        for (uint32_t cp = ranges[r][0]; cp <= ranges[r][1]; cp++) {
            n += (size_t)crn_utf8_encode((int32_t)cp, text + n);
            count++;
        }
    ck_assert_uint_gt(count, 65536);
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.val_frac = 0;
    crn_corpus *c;
    ck_assert_int_eq(crn_corpus_from_memory(&c, "wide", text, n, &o, NULL), 0);
    ck_assert_int_eq(c->wide, 1);
    ck_assert_uint_eq(c->n_tokens, count);
    ck_assert_uint_eq(crn_vocab_size(c->vocab), count + 1);
    /* the text was written in code point order, so ids are 1, 2, 3, ... */
    for (size_t i = 0; i < c->n_tokens; i++) ck_assert_uint_eq(crn_corpus_id(c, i), i + 1);
    crn_corpus_destroy(c);
    free(text);
}
END_TEST

/* ---------------------------------------------------------------- files */

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_corpus.XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

START_TEST(corpus_file_errors) {
    make_tmpdir();
    char path[512];
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    crn_corpus *c = (crn_corpus *)1;

    snprintf(path, sizeof path, "%s/missing.txt", tmpdir);
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_ENOTFOUND);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(crn_error_message(), path) != NULL, "%s", crn_error_message());

    ck_assert_int_lt(crn_corpus_load(&c, tmpdir, &o, NULL), 0);
    ck_assert_msg(strstr(crn_error_message(), tmpdir) && strstr(crn_error_message(), "directory"), "%s",
                  crn_error_message());

    snprintf(path, sizeof path, "%s/empty.txt", tmpdir);
    write_file(path, "", 0);
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EEMPTY);
    ck_assert_msg(strstr(crn_error_message(), path) && strstr(crn_error_message(), "empty"), "%s",
                  crn_error_message());

    snprintf(path, sizeof path, "%s/bom.txt", tmpdir);
    write_file(path, "\xef\xbb\xbf", 3);
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EEMPTY);

    /* everything dropped */
    snprintf(path, sizeof path, "%s/ads.txt", tmpdir);
    write_file(path, "광고 1\n광고 2\n", strlen("광고 1\n광고 2\n"));
    const char *drop[] = {"광고"};
    o.drop = drop;
    o.n_drop = 1;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EEMPTY);
    ck_assert_msg(strstr(crn_error_message(), path) && strstr(crn_error_message(), "2 of 2 lines dropped"), "%s",
                  crn_error_message());

    /* a bad pattern names the file, the option, the pattern and the offset */
    const char *baddrop[] = {"광고("};
    o.drop = baddrop;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EREGEX);
    ck_assert_msg(strstr(crn_error_message(), path) && strstr(crn_error_message(), "--drop") &&
                      strstr(crn_error_message(), "bad regex '광고(' at offset 7"),
                  "%s", crn_error_message());
    o.n_drop = 0;
    const char *badrepl[] = {"noequals"};
    o.replace = badrepl;
    o.n_replace = 1;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EINVAL);
    ck_assert_msg(strstr(crn_error_message(), path) && strstr(crn_error_message(), "REGEX=TEXT"), "%s",
                  crn_error_message());
    o.n_replace = 0;

    /* invalid UTF-8 in a file: positions of the original file */
    snprintf(path, sizeof path, "%s/bad.txt", tmpdir);
    const char bad[] = "\xef\xbb\xbf" "첫째 줄\n둘째 \xed\xa0\x80 줄\n";
    write_file(path, bad, sizeof bad - 1);
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EUTF8);
    char want[600];
    snprintf(want, sizeof want, "%s:2:4: invalid UTF-8 (byte offset %zu)", path, (size_t)(3 + 11 + 7));
    ck_assert_str_eq(crn_error_message(), want);
    o.invalid = CRN_INVALID_REPLACE;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), 0);
    ck_assert_uint_eq(c->n_invalid, 3); /* a surrogate: three maximal subparts */
    ck_assert_int_eq(c->had_bom, 1);
    ck_assert_uint_eq(c->n_bytes, sizeof bad - 1);
    crn_corpus_destroy(c);
    o.invalid = CRN_INVALID_ERROR;

    /* shorter than one window */
    snprintf(path, sizeof path, "%s/short.txt", tmpdir);
    write_file(path, "짧은 글\n", strlen("짧은 글\n"));
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), 0);
    crn_batcher bt;
    ck_assert_int_eq(crn_batcher_init(&bt, c, 2, 4), CRN_ERANGE);
    ck_assert_msg(strstr(crn_error_message(), "needs at least 9") != NULL, "%s", crn_error_message());
    crn_corpus_destroy(c);

    /* unreadable (meaningless as root) */
    snprintf(path, sizeof path, "%s/secret.txt", tmpdir);
    write_file(path, "abc\n", 4);
    chmod(path, 0);
    if (geteuid() != 0) {
        ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EIO);
        ck_assert_msg(strstr(crn_error_message(), path) != NULL, "%s", crn_error_message());
    }

    /* a file that loads: the same as from memory */
    snprintf(path, sizeof path, "%s/ok.txt", tmpdir);
    const char *ok = "한국어 텍스트와 English.\n둘째 줄.\n";
    write_file(path, ok, strlen(ok));
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), 0);
    crn_corpus *m = load_mem(ok, &o);
    ck_assert_uint_eq(c->n_tokens, m->n_tokens);
    ck_assert_uint_eq(c->n_bytes, strlen(ok));
    for (size_t i = 0; i < c->n_tokens; i++) ck_assert_uint_eq(crn_corpus_id(c, i), crn_corpus_id(m, i));
    ck_assert_str_eq(c->path, path);
    crn_corpus_destroy(c);
    crn_corpus_destroy(m);

    const char *names[] = {"empty.txt", "bom.txt", "ads.txt", "bad.txt", "short.txt", "secret.txt", "ok.txt"};
    for (size_t i = 0; i < CRN_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}
END_TEST

/* ------------------------------------------------------------- id cache */

/* The ids, batches and validation windows of c equal those of m. */
static void assert_same_corpus(const crn_corpus *c, const crn_corpus *m) {
    ck_assert_uint_eq(c->n_tokens, m->n_tokens);
    ck_assert_uint_eq(c->n_train, m->n_train);
    ck_assert_uint_eq(c->n_chars, m->n_chars);
    ck_assert_uint_eq(c->n_val_chars, m->n_val_chars);
    ck_assert_uint_eq(c->n_unk, m->n_unk);
    ck_assert_uint_eq(crn_vocab_size(c->vocab), crn_vocab_size(m->vocab));
    for (size_t i = 0; i < c->n_tokens; i++) ck_assert_uint_eq(crn_corpus_id(c, i), crn_corpus_id(m, i));
    /* two epochs of windows, with the mapped pages released along the way */
    const size_t B = 3, T = 50;
    crn_batcher bc, bm;
    ck_assert_int_eq(crn_batcher_init(&bc, c, B, T), 0);
    ck_assert_int_eq(crn_batcher_init(&bm, m, B, T), 0);
    uint32_t xc[150], yc[150], xm[150], ym[150];
    for (size_t w = 0; w < 2 * bc.n_win + 3; w++) {
        int rc, rm;
        crn_batcher_next(&bc, xc, yc, &rc);
        crn_batcher_next(&bm, xm, ym, &rm);
        ck_assert_int_eq(rc, rm);
        ck_assert_msg(!memcmp(xc, xm, sizeof xc) && !memcmp(yc, ym, sizeof yc), "window %zu differs", w);
    }
    size_t nw = crn_val_windows(c, B, T);
    ck_assert_uint_eq(nw, crn_val_windows(m, B, T));
    for (size_t w = 0; w < nw; w++) {
        crn_val_window(c, B, T, w, xc, yc);
        crn_val_window(m, B, T, w, xm, ym);
        ck_assert_msg(!memcmp(xc, xm, sizeof xc) && !memcmp(yc, ym, sizeof yc), "val window %zu differs", w);
    }
}

static crn_corpus *load_cache(const char *path, const crn_corpus_opts *o, const crn_vocab *v, int want_status) {
    crn_corpus *c = NULL;
    int rc = crn_corpus_load(&c, path, o, v);
    ck_assert_msg(rc == 0, "%s", crn_error_message());
    ck_assert_msg((int)c->id_cache_status == want_status, "status %s, want %s",
                  crn_idcache_status_name(c->id_cache_status), crn_idcache_status_name(want_status));
    ck_assert_ptr_nonnull(c->map.base);
    return c;
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, at, at < 0 ? SEEK_END : SEEK_SET), 0);
    int ch = fgetc(f);
    ck_assert_int_ne(ch, EOF);
    ck_assert_int_eq(fseek(f, -1, SEEK_CUR), 0);
    fputc(ch ^ 0x01, f);
    fclose(f);
}

START_TEST(id_cache_reuse_stale_damaged) {
    make_tmpdir();
    char path[512], cache[512];
    snprintf(path, sizeof path, "%s/text.txt", tmpdir);
    snprintf(cache, sizeof cache, "%s/model.crn.ids", tmpdir);
    char *text = make_text(200000);
    write_file(path, text, strlen(text));
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    crn_corpus *m = load_mem(text, &o);
    o.id_cache = cache;

    /* created, then reused: the same as in memory */
    crn_corpus *c = load_cache(path, &o, NULL, CRN_IDCACHE_CREATED);
    assert_same_corpus(c, m);
    ck_assert_uint_eq(c->text_crc, crn_crc32(0, text, strlen(text)));
    crn_corpus_destroy(c);
    c = load_cache(path, &o, NULL, CRN_IDCACHE_REUSED);
    assert_same_corpus(c, m);
    crn_corpus_destroy(c);
    /* the same vocabulary given (a resume) reuses it; another one does not */
    c = load_cache(path, &o, m->vocab, CRN_IDCACHE_REUSED);
    crn_corpus_destroy(c);
    crn_corpus *small = load_mem("ab\n", &o);
    c = load_cache(path, &o, small->vocab, CRN_IDCACHE_STALE);
    ck_assert_uint_eq(crn_vocab_size(c->vocab), crn_vocab_size(small->vocab));
    crn_corpus_destroy(c);
    c = load_cache(path, &o, NULL, CRN_IDCACHE_STALE); /* built from the text again */
    assert_same_corpus(c, m);
    crn_corpus_destroy(c);

    /* options that change the ids or the split */
    o.val_frac = 0.2;
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_STALE));
    o.val_frac = 0.1;
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_STALE));
    const char *drop[] = {"^x"};
    o.drop = drop;
    o.n_drop = 1;
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_STALE));
    o.n_drop = 0;
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_STALE));

    /* the corpus changed (same size, one letter) */
    text[1000] = text[1000] == 'a' ? 'b' : 'a';
    write_file(path, text, strlen(text));
    crn_corpus *m2 = load_mem(text, &o);
    c = load_cache(path, &o, NULL, CRN_IDCACHE_STALE);
    assert_same_corpus(c, m2);
    crn_corpus_destroy(c);

    /* truncated, a flipped id, a flipped header byte: rebuilt */
    ck_assert_int_eq(truncate(cache, 5000), 0);
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_DAMAGED));
    flip_byte(cache, -7);
    c = load_cache(path, &o, NULL, CRN_IDCACHE_DAMAGED);
    assert_same_corpus(c, m2);
    crn_corpus_destroy(c);
    flip_byte(cache, 40);
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_DAMAGED));
    ck_assert_int_eq(truncate(cache, 10), 0);
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_DAMAGED));
    crn_corpus_destroy(load_cache(path, &o, NULL, CRN_IDCACHE_REUSED));

    /* a directory that cannot hold it: an error naming the cache */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no-such-dir/model.crn.ids", tmpdir);
    o.id_cache = bad;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EIO);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(crn_error_message(), "cannot create the token id cache") &&
                  strstr(crn_error_message(), bad), "%s", crn_error_message());
    /* a cache that is a directory */
    snprintf(bad, sizeof bad, "%s/dir.ids", tmpdir);
    ck_assert_int_eq(mkdir(bad, 0755), 0);
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), CRN_EIO);
    ck_assert_msg(strstr(crn_error_message(), "not a regular file") != NULL, "%s", crn_error_message());
    rmdir(bad);

    crn_corpus_destroy(m);
    crn_corpus_destroy(m2);
    crn_corpus_destroy(small);
    free(text);
    unlink(path);
    unlink(cache);
    ck_assert_int_eq(rmdir(tmpdir), 0); /* no temporary file left behind */
}
END_TEST

/* The shared corpora, when present: code point counts against the
 * code-point count of NFC text done here byte by byte. */
START_TEST(shared_corpora_load) {
    const char *dir = getenv("CRN_SHARED_CORPORA");
    char path[1024];
    snprintf(path, sizeof path, "%s/korean_koconovel.txt", dir ? dir : "");
    if (!dir || access(path, R_OK) != 0) {
        printf("shared corpora not found (CRN_SHARED_CORPORA): skipping shared_corpora_load\n");
        return;
    }
    crn_corpus_opts o;
    crn_corpus_opts_default(&o);
    o.unit = CRN_UNIT_JAMO;
    crn_corpus_tune((size_t)64 << 10, 0); /* many pieces, prepared twice */
    crn_corpus *c;
    ck_assert_int_eq(crn_corpus_load(&c, path, &o, NULL), 0);
    crn_corpus_tune(0, (size_t)64 << 20);
    /* independent: syllables give 2 or 3 jamo, everything else 1 (the file is NFC) */
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint64_t cps = 0, jamo = 0;
    int ch;
    uint32_t cp = 0;
    int need = 0;
    while ((ch = fgetc(f)) != EOF) {
        if ((ch & 0xC0) == 0x80) {
            cp = (cp << 6) | (uint32_t)(ch & 0x3F);
            need--;
        } else {
            cp = ch < 0x80 ? (uint32_t)ch : ch < 0xE0 ? (uint32_t)(ch & 0x1F) : ch < 0xF0 ? (uint32_t)(ch & 0x0F)
                                                                                          : (uint32_t)(ch & 0x07);
            need = ch < 0x80 ? 0 : ch < 0xE0 ? 1 : ch < 0xF0 ? 2 : 3;
        }
        if (need == 0) {
            cps++;
            jamo += (cp >= 0xAC00 && cp <= 0xD7A3) ? ((cp - 0xAC00) % 28 ? 3 : 2) : 1;
        }
    }
    fclose(f);
    ck_assert_uint_eq(c->n_chars, cps);
    ck_assert_uint_eq(c->n_tokens, jamo);
    char *s = corpus_text(c);
    ck_assert_uint_eq(strlen(s), c->n_bytes);
    free(s);
    crn_corpus_destroy(c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("corpus");
    TCase *tr = tcase_create("regex");
    tcase_add_test(tr, regex_compile_errors);
    tcase_add_test(tr, regex_limits_are_bounded);
    tcase_add_test(tr, regex_search);
    tcase_add_test(tr, regex_prefix_classes);
    tcase_add_test(tr, regex_substitute);
    tcase_add_test(tr, split_replace_spec);
    suite_add_tcase(s, tr);
    TCase *tc = tcase_create("corpus");
    tcase_add_test(tc, corpus_basic_ids_and_stats);
    tcase_add_test(tc, corpus_cleaning_order);
    tcase_add_test(tc, corpus_korean_units);
    tcase_add_test(tc, corpus_bom_and_invalid);
    tcase_add_test(tc, corpus_split_sizes);
    tcase_add_test(tc, batcher_layout);
    tcase_add_test(tc, val_window_layout);
    tcase_add_test(tc, corpus_pieces_agree);
    tcase_add_test(tc, corpus_given_vocab_and_min_count);
    tcase_add_test(tc, corpus_wide_ids);
    tcase_add_test(tc, batcher_rows_are_columns_of_all);
    tcase_add_test(tc, corpus_file_errors);
    tcase_add_test(tc, id_cache_reuse_stale_damaged);
    tcase_add_test(tc, shared_corpora_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
