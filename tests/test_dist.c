/* test_dist.c — the MPI seam (src/dist.c): rank and size, broadcast, the
 * in-place sums, max and the agreement check. Run alone (one rank; also the
 * build without MPI) and by meson as `mpirun -np 2` (test dist_mpi, with
 * CRN_TEST_DIST_NP=2 saying how many ranks to expect). Check runs without
 * fork here: MPI does not survive a fork. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "common.h"
#include "dist.h"
#include "train_dist.h"

START_TEST(rank_and_size) {
    ck_assert_int_eq(crn_dist_built(), CRN_HAVE_MPI);
    const char *np = getenv("CRN_TEST_DIST_NP");
    int want = np ? atoi(np) : 1;
    ck_assert_int_eq(crn_dist_size(), want);
    ck_assert_int_ge(crn_dist_rank(), 0);
    ck_assert_int_lt(crn_dist_rank(), crn_dist_size());
}
END_TEST

START_TEST(sums_in_place) {
    const int r = crn_dist_rank(), n = crn_dist_size();
    enum { N = 1000 };
    static float f[N];
    static double d[N];
    static uint64_t u[N];
    for (int i = 0; i < N; i++) {
        f[i] = (float)(r + 1) + 0.5f * (float)i;
        d[i] = (double)(r + 1) * 0.25 - (double)i;
        u[i] = ((uint64_t)r << 40) + (uint64_t)i;
    }
    ck_assert_int_eq(crn_dist_sum_f32(f, N), 0);
    ck_assert_int_eq(crn_dist_sum_f64(d, N), 0);
    ck_assert_int_eq(crn_dist_sum_u64(u, N), 0);
    /* every term is exact in binary, so the sums are exact in any order */
    double ranks = (double)n * (n + 1) / 2;
    uint64_t rsum = 0;
    for (int k = 0; k < n; k++) rsum += (uint64_t)k << 40;
    for (int i = 0; i < N; i++) {
        ck_assert_float_eq(f[i], (float)(ranks + 0.5 * n * i));
        ck_assert_double_eq(d[i], ranks * 0.25 - (double)n * i);
        ck_assert_uint_eq(u[i], rsum + (uint64_t)n * (uint64_t)i);
    }
    ck_assert_int_eq(crn_dist_sum_f32(f, 0), 0); /* empty: fine */
}
END_TEST

START_TEST(broadcast_max_agree) {
    const int r = crn_dist_rank(), n = crn_dist_size();
    unsigned char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = r == 0 ? (unsigned char)(i * 7) : 0;
    ck_assert_int_eq(crn_dist_bcast(buf, sizeof buf, 0), 0);
    for (int i = 0; i < 300; i++) ck_assert_uint_eq(buf[i], (unsigned char)(i * 7));
    int32_t v = 3 * r - 1;
    ck_assert_int_eq(crn_dist_max_i32(&v), 0);
    ck_assert_int_eq(v, 3 * (n - 1) - 1);
    int diff = 99;
    ck_assert_int_eq(crn_dist_agree_u64(0xabcdef, &diff), 0);
    ck_assert_int_eq(diff, -1);
    /* the last rank (and with 3+ ranks the ones after 1) differ: the lowest is named */
    ck_assert_int_eq(crn_dist_agree_u64(r >= (n > 2 ? 1 : n - 1) && r > 0 ? 2 : 1, &diff), 0);
    ck_assert_int_eq(diff, n == 1 ? -1 : (n > 2 ? 1 : n - 1));
    /* crn_dist_lowest: none, every rank, the last rank only */
    int low = 99;
    ck_assert_int_eq(crn_dist_lowest(0, &low), 0);
    ck_assert_int_eq(low, -1);
    ck_assert_int_eq(crn_dist_lowest(1, &low), 0);
    ck_assert_int_eq(low, 0);
    ck_assert_int_eq(crn_dist_lowest(r == n - 1, &low), 0);
    ck_assert_int_eq(low, n - 1);
}
END_TEST

/* The global batch over n ranks: every row once, contiguous in rank order,
 * the shares within one row of each other; fewer rows than ranks refused. */
START_TEST(rows_split_the_batch) {
    for (int n = 1; n <= 7; n++)
        for (uint32_t B = 0; B <= 40; B++) {
            uint32_t next = 0, lo = UINT32_MAX, hi = 0;
            for (int r = 0; r < n; r++) {
                uint32_t row0 = 99, rows = 99;
                int rc = crn_dist_rows(B, r, n, &row0, &rows);
                if (B < (uint32_t)n) {
                    ck_assert_int_eq(rc, CRN_EINVAL);
                    ck_assert_ptr_nonnull(strstr(crn_error_message(), "smaller than the"));
                    continue;
                }
                ck_assert_int_eq(rc, 0);
                ck_assert_uint_eq(row0, next);
                ck_assert_uint_ge(rows, 1);
                next = row0 + rows;
                lo = rows < lo ? rows : lo, hi = rows > hi ? rows : hi;
            }
            if (B >= (uint32_t)n) {
                ck_assert_uint_eq(next, B);
                ck_assert_uint_le(hi - lo, 1);
            }
        }
}
END_TEST

int main(int argc, char **argv) {
    if (crn_dist_init(&argc, &argv) < 0) {
        fprintf(stderr, "test_dist: %s\n", crn_error_message());
        return 1;
    }
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rank_and_size);
    tcase_add_test(tc, sums_in_place);
    tcase_add_test(tc, broadcast_max_agree);
    tcase_add_test(tc, rows_split_the_batch);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    crn_dist_finalize();
    return failed ? 1 : 0;
}
