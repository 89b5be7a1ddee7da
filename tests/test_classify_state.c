/* test_classify_state.c — the classifier's run state blob (clf_train.c:
 * round trip, every truncation and a bad magic refused without a crash) and
 * its cleaning (--keep/--drop/--replace through crn_clf_prepare: selection,
 * replacements in order, normalised again after a replacement). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clf_train.h"
#include "common.h"
#include "records.h"

static char *keep_p[] = {"good|fine"}, *drop_p[] = {"^spam"}, *repl_p[] = {"[0-9]+=#", "e=e\xcc\x81"};

static void fill(crn_clf_run_opts *o, crn_train_status *s) {
    memset(o, 0, sizeof *o);
    crn_train_opts_default(&o->t);
    o->t.corpus_path = strdup("/data/reviews.tsv");
    o->t.keep = malloc(sizeof(char *));
    o->t.keep[0] = strdup(keep_p[0]);
    o->t.n_keep = 1;
    o->t.seq = 128;
    o->t.max_steps = 5000;
    o->format = CRN_REC_CSV;
    o->balance = 1;
    o->label_col = strdup("sentiment");
    crn_clf_run_begin(s, 42);
    s->step = 1234;
    s->win = 17;
    s->has_best = 1;
    s->best_val_bpc = 0.875;
}

START_TEST(blob_round_trip) {
    crn_clf_run_opts o, d;
    crn_train_status s, t;
    fill(&o, &s);
    uint8_t *b = NULL;
    size_t n = 0;
    ck_assert_int_eq(crn_clf_blob_encode(&b, &n, &o, &s), 0);
    ck_assert_int_eq(crn_clf_blob_decode(&d, &t, b, n), 0);
    ck_assert_str_eq(d.t.corpus_path, "/data/reviews.tsv");
    ck_assert_uint_eq(d.t.n_keep, 1);
    ck_assert_str_eq(d.t.keep[0], "good|fine");
    ck_assert_uint_eq(d.t.seq, 128);
    ck_assert_uint_eq(d.t.max_steps, 5000);
    ck_assert_uint_eq(d.format, CRN_REC_CSV);
    ck_assert_uint_eq(d.balance, 1);
    ck_assert_ptr_null(d.text_col);
    ck_assert_str_eq(d.label_col, "sentiment");
    ck_assert_uint_eq(t.step, 1234);
    ck_assert_uint_eq(t.win, 17);
    ck_assert(t.best_val_bpc == 0.875);
    ck_assert(!memcmp(&t.rng, &s.rng, sizeof s.rng));
    crn_clf_run_opts_free(&d);
    crn_train_status_free(&t);
    /* every truncation is refused cleanly */
    for (size_t k = 0; k < n; k++) {
        int rc = crn_clf_blob_decode(&d, &t, b, k);
        ck_assert_msg(rc == CRN_EFORMAT, "length %zu of %zu: %d", k, n, rc);
    }
    b[3] ^= 1;
    ck_assert_int_eq(crn_clf_blob_decode(&d, &t, b, n), CRN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "classifier run state at byte 0"));
    free(b);
    crn_clf_run_opts_free(&o);
    crn_train_status_free(&s);
}
END_TEST

static int prep(const crn_clf_cleaner *c, int select, const char *in, char *out) {
    uint8_t *p = NULL;
    size_t n = 0;
    int rc = crn_clf_prepare(&p, &n, (const uint8_t *)in, strlen(in), CRN_NORM_NFC, c, select);
    if (rc > 0) {
        memcpy(out, p, n);
        out[n] = 0;
    }
    free(p);
    return rc;
}

START_TEST(cleaning) {
    crn_clf_cleaner *c = NULL;
    ck_assert_int_eq(crn_clf_cleaner_create(&c, keep_p, 1, drop_p, 1, repl_p, 2), 0);
    char out[256];
    ck_assert_int_eq(prep(c, 1, "a fine film 10", out), 1);
    /* "[0-9]+" -> "#", then "e" -> "e" + combining acute, composed again by NFC */
    ck_assert_str_eq(out, "a fin\xc3\xa9 film #");
    ck_assert_int_eq(prep(c, 1, "a bad film", out), 0);        /* no keep pattern matches */
    ck_assert_int_eq(prep(c, 1, "spam: good deal", out), 0);   /* dropped */
    ck_assert_int_eq(prep(c, 0, "spam: bad 42", out), 1);      /* predict: replacements only */
    ck_assert_str_eq(out, "spam: bad #");
    ck_assert_int_eq(prep(NULL, 1, "e\xcc\x81 1", out), 1);    /* no cleaner: normalised only */
    ck_assert_str_eq(out, "\xc3\xa9 1");
    crn_clf_cleaner_destroy(c);
    char *bad[] = {"("};
    ck_assert_int_eq(crn_clf_cleaner_create(&c, bad, 1, NULL, 0, NULL, 0), CRN_EREGEX);
    ck_assert_ptr_nonnull(strstr(crn_error_message(), "--keep: bad regex '('"));
    char *norepl[] = {"abc"};
    ck_assert_int_eq(crn_clf_cleaner_create(&c, NULL, 0, NULL, 0, norepl, 1), CRN_EINVAL);
    crn_clf_cleaner_destroy(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("classify_state");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, blob_round_trip);
    tcase_add_test(tc, cleaning);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
