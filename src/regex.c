/* regex.c — the PCRE2 (8-bit) wrapper: compile with UTF+UCP, match with
 * bounded work, search, prefix classification for constrained generation,
 * and global substitution.
 *
 * Every pattern is also JIT-compiled when the library supports it (corpus
 * cleaning runs a pattern on every line of large files); pcre2_match() uses
 * the JIT code transparently and falls back to the interpreter otherwise.
 * The match limit bounds the work of both; the depth limit only applies to
 * the interpreter, and the JIT's own stack limit is reported as CRN_ELIMIT
 * as well. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Workspace of pcre2_dfa_match (ints): bounds the number of simultaneously
 * active paths, not the subject length. */
#define CRN_REGEX_DFA_WS 4096
/* Largest JIT stack (bytes) */
#define CRN_REGEX_JIT_STACK (16u << 20)

struct crn_regex {
    char *pattern;
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack; /* NULL when the pattern is not JIT-compiled */
    uint32_t match_opts; /* PCRE2_ENDANCHORED when asked for (see compile) */
    int dfa_ws[CRN_REGEX_DFA_WS];
};

static void pcre2_reason(int rc, char *buf, size_t cap) {
    if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)buf, cap) < 0 && cap) snprintf(buf, cap, "error %d", rc);
}

/* Map a negative pcre2_match/dfa_match/substitute code to a CRN_E* code with
 * a message naming the pattern. */
static int match_error(const crn_regex *re, int rc) {
    char reason[256];
    pcre2_reason(rc, reason, sizeof reason);
    switch (rc) {
    case PCRE2_ERROR_MATCHLIMIT:
    case PCRE2_ERROR_DEPTHLIMIT:
    case PCRE2_ERROR_HEAPLIMIT:
    case PCRE2_ERROR_JIT_STACKLIMIT:
    case PCRE2_ERROR_DFA_WSSIZE:
        return crn_error_set(CRN_ELIMIT, "regex '%s' gave up (%s): simplify the pattern (nested repeats?)",
                             re->pattern, reason);
    case PCRE2_ERROR_NOMEMORY:
        return crn_error_set(CRN_ENOMEM, "regex '%s': %s", re->pattern, reason);
    case PCRE2_ERROR_BADUTFOFFSET:
        return crn_error_set(CRN_EINVAL, "regex '%s': %s", re->pattern, reason);
    default:
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            return crn_error_set(CRN_EUTF8, "regex '%s': subject is not valid UTF-8 (%s)", re->pattern, reason);
        return crn_error_set(CRN_EREGEX, "regex '%s': matching failed: %s", re->pattern, reason);
    }
}

int crn_regex_compile(crn_regex **out, const char *pattern, uint32_t flags) {
    *out = NULL;
    if (!pattern) return crn_error_set(CRN_EINVAL, "regex: NULL pattern");
    crn_regex *re = calloc(1, sizeof *re);
    if (!re) return crn_error_set(CRN_ENOMEM, "regex '%s': out of memory", pattern);
    int err = CRN_ENOMEM;
    re->pattern = strdup(pattern);
    if (!re->pattern) goto fail_nomem;

    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
    if (flags & CRN_REGEX_ANCHORED) opts |= PCRE2_ANCHORED;
    /* End anchoring is applied at match time, not compiled in: PCRE2 refuses
     * partial matching (crn_regex_prefix) on a pattern compiled with
     * PCRE2_ENDANCHORED (PCRE2_ERROR_BADOPTION). */
    if (flags & CRN_REGEX_ENDANCHORED) re->match_opts = PCRE2_ENDANCHORED;
    int ecode;
    PCRE2_SIZE eoff;
    re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &ecode, &eoff, NULL);
    if (!re->code) {
        char reason[256];
        pcre2_reason(ecode, reason, sizeof reason);
        err = crn_error_set(CRN_EREGEX, "bad regex '%s' at offset %zu: %s", pattern, (size_t)eoff, reason);
        goto fail;
    }
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    if (!re->md || !re->mctx) goto fail_nomem;
    pcre2_set_match_limit(re->mctx, CRN_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, CRN_REGEX_DEPTH_LIMIT);
    /* Best effort: a JIT failure (unsupported CPU, no executable memory)
     * leaves the interpreter in charge, which is correct, only slower. The
     * JIT's default 32 KiB stack overflows on a group repeated over a line
     * of ~10,000 characters ('(ab|cd)*'); give it room to grow (reserved,
     * committed as used). */
    if (pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD) == 0) {
        re->jit_stack = pcre2_jit_stack_create(32 * 1024, CRN_REGEX_JIT_STACK, NULL);
        if (re->jit_stack) pcre2_jit_stack_assign(re->mctx, NULL, re->jit_stack);
    }
    *out = re;
    return 0;

fail_nomem:
    err = crn_error_set(CRN_ENOMEM, "regex '%s': out of memory", pattern);
fail:
    crn_regex_destroy(re);
    return err;
}

void crn_regex_destroy(crn_regex *re) {
    if (!re) return;
    pcre2_match_context_free(re->mctx);
    pcre2_jit_stack_free(re->jit_stack);
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

const char *crn_regex_pattern(const crn_regex *re) { return re ? re->pattern : ""; }

int crn_regex_search(crn_regex *re, const uint8_t *s, size_t n, size_t start, size_t *mstart, size_t *mend) {
    if (start > n) return crn_error_set(CRN_EINVAL, "regex '%s': start offset %zu beyond the subject (%zu bytes)",
                                        re->pattern, start, n);
    static const uint8_t empty[1] = {0};
    if (!s) s = empty; /* PCRE2 rejects a NULL subject even when n == 0 */
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, re->match_opts, re->md, re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return match_error(re, rc);
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    if (mstart) *mstart = ov[0];
    if (mend) *mend = ov[1];
    return 1;
}

/* Does s[0..n) reach its end on a path that wants more input?
 * @return 1 yes, 0 no, or a negative error.
 *
 * The DFA matcher follows every alternative in parallel, so with
 * PCRE2_PARTIAL_HARD it reports a partial match whenever any path is still
 * alive at the end of the subject, even if another path already completed
 * ('abc|abcd' on "abc"). Patterns the DFA matcher cannot run (back
 * references, recursion, callouts, ...) fall back to the backtracking
 * matcher, whose PARTIAL_HARD stops at the first path that completes or hits
 * the end, so for those an alternative that completes first may hide a
 * longer one. */
static int prefix_can_grow(crn_regex *re, const uint8_t *s, size_t n) {
    int rc = pcre2_dfa_match(re->code, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_PARTIAL_HARD, re->md, re->mctx,
                             re->dfa_ws, CRN_REGEX_DFA_WS);
    switch (rc) {
    case PCRE2_ERROR_DFA_UITEM:
    case PCRE2_ERROR_DFA_UCOND:
    case PCRE2_ERROR_DFA_UFUNC:
    case PCRE2_ERROR_DFA_UINVALID_UTF:
    case PCRE2_ERROR_DFA_RECURSE:
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_PARTIAL_HARD, re->md, re->mctx);
        break;
    default: break;
    }
    if (rc == PCRE2_ERROR_PARTIAL) return 1;
    if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH) return 0;
    return match_error(re, rc);
}

/* Classification = (does s match in full?) x (can s grow into a match?):
 *   full  grow
 *    no    no   NONE        e.g. 'abc' on "x"
 *    no    yes  PARTIAL     'abc' on "ab"; 'abc' on "" (see below)
 *    yes   no   COMPLETE    'abc' on "abc"
 *    yes   yes  EXTENSIBLE  'ab*' on "ab"
 * "full" is a normal match anchored at both ends (the backtracking matcher
 * tries every way, so it is exact). "grow" uses PARTIAL_HARD (see
 * prefix_can_grow); PARTIAL_HARD also counts an assertion that would look
 * past the end ('$', '\b', lookahead) as wanting more input, so 'abc$' on
 * "abc" is EXTENSIBLE: the caller may offer one more token, whose rejection
 * then tells it to stop. */
int crn_regex_prefix(crn_regex *re, const uint8_t *s, size_t n) {
    static const uint8_t empty[1] = {0};
    if (!s) s = empty;
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_ENDANCHORED, re->md, re->mctx);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) return match_error(re, rc);
    int full = rc >= 0;
    /* PCRE2 reports no partial match before it has inspected a character, so
     * an empty subject that does not match is taken as a prefix (the empty
     * string is a prefix of every match; a pattern that can never match, like
     * '(*FAIL)', is not detected). */
    if (n == 0 && !full) return CRN_PREFIX_PARTIAL;
    int grow = prefix_can_grow(re, s, n);
    if (grow < 0) return grow;
    if (full) return grow ? CRN_PREFIX_EXTENSIBLE : CRN_PREFIX_COMPLETE;
    return grow ? CRN_PREFIX_PARTIAL : CRN_PREFIX_NONE;
}

long long crn_regex_replace(crn_regex *re, const uint8_t *s, size_t n, const char *repl, uint8_t **out,
                            size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    static const uint8_t empty[1] = {0};
    if (!s) s = empty;
    /* First guess: the subject plus some room; PCRE2_SUBSTITUTE_OVERFLOW_LENGTH
     * makes a too-small buffer report the size it needs, so at most one retry. */
    size_t cap = n + n / 4 + 64;
    for (int attempt = 0; attempt < 3; attempt++) {
        /* CRN_REGEX_PAD zeroed bytes after the capacity: the output is often
         * the next subject, and JIT code reads a little past a subject's end */
        uint8_t *buf = calloc(1, cap + CRN_REGEX_PAD);
        if (!buf) return crn_error_set(CRN_ENOMEM, "regex '%s': out of memory (%zu bytes)", re->pattern, cap);
        PCRE2_SIZE len = cap;
        int rc = pcre2_substitute(re->code, (PCRE2_SPTR)s, n, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | re->match_opts, re->md, re->mctx,
                                  (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED, buf, &len);
        if (rc >= 0) {
            *out = buf;
            *out_len = len;
            return rc;
        }
        free(buf);
        if (rc == PCRE2_ERROR_NOMEMORY && len > cap) {
            cap = len; /* the size needed, including the terminating zero */
            continue;
        }
        if (rc == PCRE2_ERROR_NOMEMORY) return match_error(re, rc);
        /* Errors in the replacement text ($9 with no group 9, bad ${...}) come
         * from pcre2_substitute too, with their offset in len: name both strings. */
        switch (rc) {
        case PCRE2_ERROR_MATCHLIMIT:
        case PCRE2_ERROR_DEPTHLIMIT:
        case PCRE2_ERROR_HEAPLIMIT:
        case PCRE2_ERROR_JIT_STACKLIMIT:
            return match_error(re, rc);
        default:
            if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) return match_error(re, rc);
            {
                char reason[256];
                pcre2_reason(rc, reason, sizeof reason);
                return crn_error_set(CRN_EREGEX, "bad replacement '%s' for regex '%s' at offset %zu: %s", repl,
                                     re->pattern, (size_t)len, reason);
            }
        }
    }
    return crn_error_set(CRN_ENOMEM, "regex '%s': substitution output keeps growing", re->pattern);
}
