/* fuzz_utf8_vocab.c — libFuzzer target: the UTF-8 layer (validate, repair,
 * decode/encode, normalise, Hangul split/join) and the vocabulary (count,
 * finalize, encode, streaming decode, serialise) in every unit and
 * normalisation, on arbitrary bytes.
 *
 * Invariants (a violation aborts so libFuzzer saves the input):
 *   - validate agrees with the reference scanner in fuzz.h on validity and on
 *     the offset, line and column of the first bad byte;
 *   - repair (replace, skip) equals the reference repair byte for byte
 *     (maximal subparts -> U+FFFD or nothing) and counts the same bad
 *     sequences; its output is valid;
 *   - normalise gives valid UTF-8, equal to utf8proc_map on the whole text,
 *     and is idempotent; "none" copies;
 *   - for each unit x norm (one per input): a vocabulary counted on the text encodes it with
 *     no <unk>, ids sorted by bytes, serialise/deserialise/serialise is
 *     stable; the streaming decoder emits valid UTF-8 in every chunk, the
 *     same as crn_vocab_decode, and the round trip gives the normalised text
 *     back (jamo: when the text is composed, i.e. norm nfc/nfkc);
 *   - arbitrary id streams (out-of-range ids included) decode to valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"
#include "fuzz.h"
#include "utf8.h"
#include "vocab.h"

/* Reference repair: copy well-formed non-NUL sequences, replace each maximal
 * subpart (and each NUL) by U+FFFD or drop it. */
static uint8_t *ref_repair(const uint8_t *s, size_t n, int replace, size_t *out_len, size_t *nbad) {
    uint8_t *o = fuzz_xmalloc(3 * n + 1);
    size_t w = 0, i = 0;
    *nbad = 0;
    while (i < n) {
        uint32_t cp = 0;
        size_t sub = 1;
        int k = ref_utf8_seq(s + i, n - i, &cp, &sub);
        if (k > 0 && cp != 0) {
            memcpy(o + w, s + i, (size_t)k);
            w += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (k > 0) sub = 1; /* NUL */
        (*nbad)++;
        if (replace) {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
        i += sub;
    }
    *out_len = w;
    return o;
}

static void check_validate(const uint8_t *s, size_t n) {
    size_t bad = ref_utf8_first_bad(s, n);
    crn_textpos pos = {0, 0, 0};
    int rc = crn_utf8_validate(s, n, &pos);
    if (bad == n) {
        FUZZ_CHECK(rc == 0, "validate says %d for valid text of %zu bytes", rc, n);
        return;
    }
    FUZZ_CHECK(rc == CRN_EUTF8, "validate says %d for text bad at byte %zu", rc, bad);
    FUZZ_CHECK_ERR(rc, "crn_utf8_validate");
    FUZZ_CHECK(pos.byte == bad, "validate reports byte %zu, reference %zu", pos.byte, bad);
    size_t line = 1, col = 1;
    for (size_t i = 0; i < bad; i++) {
        if (s[i] == '\n') line++, col = 1;
        else if ((s[i] & 0xC0) != 0x80) col++;
    }
    FUZZ_CHECK(pos.line == line && pos.col == col, "validate reports %zu:%zu, reference %zu:%zu", pos.line,
               pos.col, line, col);
}

/* crn_utf8_decode / crn_utf8_encode / crn_utf8_count agree with the reference. */
static void check_codec(const uint8_t *s, size_t n) {
    size_t i = 0, count = 0;
    while (i < n) {
        uint32_t rcp = 0;
        size_t sub = 1;
        int k = ref_utf8_seq(s + i, n - i, &rcp, &sub);
        int32_t cp = -1;
        int got = crn_utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            FUZZ_CHECK(got == -1, "decode accepts an ill-formed sequence at byte %zu (len %d)", i, got);
            i += sub;
            continue;
        }
        FUZZ_CHECK(got == k && cp == (int32_t)rcp, "decode at byte %zu: len %d cp %ld, reference %d U+%04lX", i,
                   got, (long)cp, k, (unsigned long)rcp);
        uint8_t enc[4];
        FUZZ_CHECK(crn_utf8_encode(cp, enc) == k && !memcmp(enc, s + i, (size_t)k), "encode(U+%04lX) differs",
                   (unsigned long)rcp);
        int32_t jamo[3];
        int nj = crn_hangul_split(cp, jamo);
        if (cp >= 0xAC00 && cp <= 0xD7A3) {
            FUZZ_CHECK(nj == 2 || nj == 3, "hangul_split(U+%04lX) = %d", (unsigned long)rcp, nj);
            FUZZ_CHECK(crn_hangul_join(jamo[0], jamo[1], nj == 3 ? jamo[2] : 0) == cp, "hangul join(split(U+%04lX))",
                       (unsigned long)rcp);
        } else {
            FUZZ_CHECK(nj == 0, "hangul_split(U+%04lX) = %d for a non-syllable", (unsigned long)rcp, nj);
        }
        i += (size_t)k;
        count++;
    }
    if (ref_utf8_wellformed(s, n))
        FUZZ_CHECK(crn_utf8_count(s, n) == count, "count %zu, reference %zu", crn_utf8_count(s, n), count);
}

/* Repair with every policy; returns the replace-repaired text (malloc'ed). */
static uint8_t *check_repair(const uint8_t *s, size_t n, size_t *rep_len) {
    uint8_t *result = NULL;
    for (int pol = CRN_INVALID_ERROR; pol <= CRN_INVALID_SKIP; pol++) {
        uint8_t *out = NULL;
        size_t len = 0, nbad = 0, rbad = 0, rlen = 0;
        int rc = crn_utf8_repair(&out, &len, &nbad, s, n, (enum crn_invalid)pol);
        int valid = ref_utf8_valid(s, n);
        if (pol == CRN_INVALID_ERROR) {
            if (valid) {
                FUZZ_CHECK(rc == 0 && len == n && (n == 0 || !memcmp(out, s, n)) && nbad == 0,
                           "repair(error) of valid text: rc %d len %zu", rc, len);
            } else {
                FUZZ_CHECK(rc == CRN_EUTF8, "repair(error) of invalid text: rc %d", rc);
                FUZZ_CHECK_ERR(rc, "crn_utf8_repair");
            }
            free(out);
            continue;
        }
        FUZZ_CHECK(rc == 0, "repair(%s) failed: %d", crn_invalid_name((enum crn_invalid)pol), rc);
        uint8_t *ref = ref_repair(s, n, pol == CRN_INVALID_REPLACE, &rlen, &rbad);
        FUZZ_CHECK(nbad == rbad, "repair(%s) counts %zu bad sequences, reference %zu",
                   crn_invalid_name((enum crn_invalid)pol), nbad, rbad);
        FUZZ_CHECK(len == rlen && (len == 0 || !memcmp(out, ref, len)), "repair(%s) output differs (%zu vs %zu bytes)",
                   crn_invalid_name((enum crn_invalid)pol), len, rlen);
        FUZZ_CHECK(ref_utf8_valid(out, len), "repair(%s) output is not valid", crn_invalid_name((enum crn_invalid)pol));
        free(ref);
        if (pol == CRN_INVALID_REPLACE) {
            result = out;
            *rep_len = len;
        } else {
            free(out);
        }
    }
    return result;
}

/* Normalise valid text t; returns the result (malloc'ed). */
static uint8_t *check_normalize(const uint8_t *t, size_t n, enum crn_norm norm, size_t *out_len) {
    uint8_t *out = NULL;
    size_t len = 0;
    int rc = crn_utf8_normalize(&out, &len, t, n, norm);
    FUZZ_CHECK(rc == 0, "normalize(%s) of valid text failed: %d", crn_norm_name(norm), rc);
    FUZZ_CHECK(ref_utf8_wellformed(out, len), "normalize(%s) output is not UTF-8", crn_norm_name(norm));
    if (norm == CRN_NORM_NONE) {
        FUZZ_CHECK(len == n && (n == 0 || !memcmp(out, t, n)), "normalize(none) is not a copy");
    } else {
        utf8proc_uint8_t *ref = NULL;
        utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (norm == CRN_NORM_NFKC ? UTF8PROC_COMPAT : 0);
        utf8proc_ssize_t rl = n ? utf8proc_map(t, (utf8proc_ssize_t)n, &ref, opt) : 0;
        FUZZ_CHECK(rl >= 0, "utf8proc_map failed on valid text: %s", utf8proc_errmsg(rl));
        FUZZ_CHECK((size_t)rl == len && (len == 0 || !memcmp(out, ref, len)),
                   "normalize(%s) differs from utf8proc_map on the whole text (%zu vs %ld bytes)", crn_norm_name(norm),
                   len, (long)rl);
        free(ref);
        uint8_t *again = NULL;
        size_t alen = 0;
        FUZZ_CHECK(crn_utf8_normalize(&again, &alen, out, len, norm) == 0, "normalize(normalize(x)) failed");
        FUZZ_CHECK(alen == len && (len == 0 || !memcmp(again, out, len)), "normalize(%s) is not idempotent",
                   crn_norm_name(norm));
        free(again);
    }
    *out_len = len;
    return out;
}

/* Decode ids with the streaming decoder into one buffer (malloc'ed), each
 * chunk checked. */
static uint8_t *stream_decode(const crn_vocab *v, const uint32_t *ids, size_t n, size_t *out_len) {
    size_t cap = CRN_DECODER_HOLD + crn_vocab_max_token_len(v);
    size_t total_cap = (n + 1) * cap + 1;
    uint8_t *buf = fuzz_xmalloc(total_cap);
    size_t w = 0;
    crn_decoder d;
    crn_decoder_init(&d, v);
    for (size_t i = 0; i <= n; i++) {
        size_t k = i < n ? crn_decoder_push(&d, ids[i], buf + w, cap) : crn_decoder_finish(&d, buf + w, cap);
        FUZZ_CHECK(k <= cap, "decoder wrote %zu bytes into a %zu-byte buffer", k, cap);
        FUZZ_CHECK(ref_utf8_wellformed(buf + w, k), "decoder chunk %zu (id %u) is not complete UTF-8", i,
                   i < n ? ids[i] : 0u);
        w += k;
    }
    *out_len = w;
    return buf;
}

static void check_vocab(const uint8_t *t, size_t n, enum crn_unit unit, enum crn_norm norm, const uint8_t *raw,
                        size_t raw_n, const uint8_t *ext, size_t ext_n) {
    crn_vocab *v = NULL, *v2 = NULL;
    FUZZ_CHECK(crn_vocab_create(&v, unit, norm) == 0, "vocab_create");
    int rc = crn_vocab_count(v, t, n);
    FUZZ_CHECK(rc == 0, "vocab_count(%s) of normalised text: %d", crn_unit_name(unit), rc);
    FUZZ_CHECK(crn_vocab_finalize(v, 1) == 0, "vocab_finalize");
    uint32_t V = crn_vocab_size(v);
    FUZZ_CHECK(V >= 1, "vocab size 0");
    for (uint32_t id = 2; id < V; id++) {
        size_t la, lb;
        const uint8_t *a = crn_vocab_token(v, id - 1, &la), *b = crn_vocab_token(v, id, &lb);
        int c = memcmp(a, b, la < lb ? la : lb);
        FUZZ_CHECK(c < 0 || (c == 0 && la < lb), "tokens %u and %u are not sorted by bytes", id - 1, id);
        FUZZ_CHECK(crn_vocab_lookup(v, b, lb) == id, "lookup(token %u) != %u", id, id);
    }

    uint32_t *ids = fuzz_xmalloc((n + 1) * sizeof *ids);
    size_t n_unk = 99;
    long long m = crn_vocab_encode(v, t, n, ids, &n_unk);
    FUZZ_CHECK(m >= 0 && (size_t)m <= n, "encode returned %lld for %zu bytes", m, n);
    FUZZ_CHECK(n_unk == 0, "%zu unknown tokens in the text the vocabulary was counted on", n_unk);
    for (long long i = 0; i < m; i++) FUZZ_CHECK(ids[i] >= 1 && ids[i] < V, "id %u out of [1, %u)", ids[i], V);
    if (unit == CRN_UNIT_CODEPOINT)
        FUZZ_CHECK((size_t)m == crn_utf8_count(t, n), "codepoint unit: %lld ids for %zu code points", m,
                   crn_utf8_count(t, n));

    size_t slen = 0, dlen = 0;
    uint8_t *s = stream_decode(v, ids, (size_t)m, &slen);
    uint8_t *dec = NULL;
    FUZZ_CHECK(crn_vocab_decode(v, ids, (size_t)m, &dec, &dlen) == 0, "vocab_decode failed");
    FUZZ_CHECK(dlen == slen && (slen == 0 || !memcmp(dec, s, slen)), "vocab_decode differs from streaming decode");
    if (unit != CRN_UNIT_JAMO || norm != CRN_NORM_NONE)
        FUZZ_CHECK(slen == n && (n == 0 || !memcmp(s, t, n)),
                   "round trip (%s, %s) differs from the text (%zu vs %zu bytes)", crn_unit_name(unit),
                   crn_norm_name(norm), slen, n);
    free(dec);
    free(s);

    /* serialise -> deserialise -> serialise is stable, and encodes the same */
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    FUZZ_CHECK(crn_vocab_serialize(v, &b1, &l1) == 0, "serialize");
    rc = crn_vocab_deserialize(&v2, b1, l1);
    FUZZ_CHECK(rc == 0, "deserialize of a serialised vocabulary failed: %d", rc);
    FUZZ_CHECK(crn_vocab_serialize(v2, &b2, &l2) == 0, "serialize 2");
    FUZZ_CHECK(l1 == l2 && !memcmp(b1, b2, l1), "serialise(deserialise(b)) != b");
    uint32_t *ids2 = fuzz_xmalloc((n + 1) * sizeof *ids2);
    long long m2 = crn_vocab_encode(v2, t, n, ids2, NULL);
    FUZZ_CHECK(m2 == m && (m == 0 || !memcmp(ids, ids2, (size_t)m * sizeof *ids)),
               "a deserialised vocabulary encodes differently");
    free(ids2);
    /* truncated serialisations must be refused, not crash */
    if (l1 > 0) {
        crn_vocab *v3 = NULL;
        size_t cut = raw_n ? raw[0] % l1 : l1 / 2;
        rc = crn_vocab_deserialize(&v3, b1, cut);
        FUZZ_CHECK(rc < 0, "a serialised vocabulary cut at %zu of %zu bytes loads", cut, l1);
        FUZZ_CHECK_ERR(rc, "crn_vocab_deserialize");
        crn_vocab_destroy(v3);
    }
    free(b1);
    free(b2);

    /* arbitrary ids (the raw bytes, pairs as u16), including ones >= V */
    size_t nr = raw_n / 2;
    uint32_t *rids = fuzz_xmalloc((nr + 1) * sizeof *rids);
    for (size_t i = 0; i < nr; i++) rids[i] = ((uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8) % (V + 3);
    size_t rlen = 0;
    free(stream_decode(v, rids, nr, &rlen));
    free(rids);

    /* encoding the raw (maybe invalid) bytes must fail cleanly or succeed */
    uint32_t *raw_ids = fuzz_xmalloc((raw_n + 1) * sizeof *raw_ids);
    long long mr = crn_vocab_encode(v, raw, raw_n, raw_ids, NULL);
    if (mr < 0) FUZZ_CHECK_ERR(mr, "crn_vocab_encode(raw)");
    else FUZZ_CHECK((size_t)mr <= raw_n, "encode(raw) wrote %lld ids for %zu bytes", mr, raw_n);
    free(raw_ids);

    /* extend a clone with other text (the repaired raw bytes): existing ids
     * keep their tokens, and the result (several runs) round-trips too */
    crn_vocab_destroy(v2);
    v2 = NULL;
    FUZZ_CHECK(crn_vocab_clone(&v2, v) == 0, "clone");
    long long added = crn_vocab_extend(v2, ext, ext_n);
    if (added < 0) {
        FUZZ_CHECK_ERR(added, "crn_vocab_extend");
    } else {
        FUZZ_CHECK(crn_vocab_size(v2) == V + (uint64_t)added, "extend added %lld but size %u -> %u", added, V,
                   crn_vocab_size(v2));
        for (uint32_t id = 0; id < V; id++) {
            size_t la, lb;
            const uint8_t *a = crn_vocab_token(v, id, &la), *b = crn_vocab_token(v2, id, &lb);
            FUZZ_CHECK(la == lb && !memcmp(a, b, la), "extend changed token %u", id);
        }
        crn_vocab *v3 = NULL;
        FUZZ_CHECK(crn_vocab_serialize(v2, &b1, &l1) == 0, "serialize extended");
        rc = crn_vocab_deserialize(&v3, b1, l1);
        FUZZ_CHECK(rc == 0, "deserialize of an extended vocabulary failed: %d", rc);
        FUZZ_CHECK(crn_vocab_size(v3) == crn_vocab_size(v2), "extended size changed by a round trip");
        free(b1);
        crn_vocab_destroy(v3);
    }
    crn_vocab_destroy(v2);
    free(ids);
    crn_vocab_destroy(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    crn_error_clear();
    check_validate(data, size);
    check_codec(data, size);
    size_t rn = 0;
    uint8_t *rep = check_repair(data, size, &rn);

    /* raw bytes through the text functions: errors, never crashes */
    crn_tokiter it;
    crn_tokiter_init(&it, data, size, (enum crn_unit)(size ? data[0] % 3 : 0));
    const uint8_t *tok;
    size_t tl;
    int r;
    size_t guard = 0;
    while ((r = crn_tokiter_next(&it, &tok, &tl)) == 1) {
        FUZZ_CHECK(tl >= 1 && (it.unit == CRN_UNIT_JAMO || (tok >= data && tok + tl <= data + size)),
                   "token outside the input");
        FUZZ_CHECK(++guard <= 3 * size, "token iterator does not advance");
    }
    if (r < 0) FUZZ_CHECK_ERR(r, "crn_tokiter_next(raw)");

    /* every normalisation; the vocabulary in one unit x norm per input
     * (chosen by the first byte, which stays part of the text): a vocabulary
     * is costly under ASan, and libFuzzer varies that byte anyway */
    int combo = size ? data[0] % 9 : 0;
    for (int norm = CRN_NORM_NFC; norm <= CRN_NORM_NONE; norm++) {
        size_t nn = 0;
        uint8_t *t = check_normalize(rep, rn, (enum crn_norm)norm, &nn);
        if (norm == combo / 3) check_vocab(t, nn, (enum crn_unit)(combo % 3), (enum crn_norm)norm, data, size, rep, rn);
        free(t);
    }
    free(rep);
    return 0;
}
