/* test_repl_cmd.c — the REPL's command language (cli_repl_cmd.c): every
 * command, bad values (settings unchanged), escapes, message truncation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli_repl_cmd.h"
#include "common.h"

static int repl(crn_sample_settings *s, const char *line, char *msg) {
    const char *text;
    size_t tl;
    return cli_repl_command(s, line, strlen(line), &text, &tl, msg, 4096);
}

START_TEST(test_repl_parser) {
    crn_sample_settings s;
    crn_sample_settings_init(&s);
    char msg[4096];
    const char *text;
    size_t tl;
    ck_assert_int_eq(cli_repl_command(&s, "안녕\n", strlen("안녕\n"), &text, &tl, msg, sizeof msg), CLI_REPL_TEXT);
    ck_assert_uint_eq(tl, strlen("안녕"));
    ck_assert_int_eq(cli_repl_command(&s, "::x", 3, &text, &tl, msg, sizeof msg), CLI_REPL_TEXT);
    ck_assert(tl == 2 && !memcmp(text, ":x", 2));
    ck_assert_int_eq(repl(&s, ":temp 0", msg), CLI_REPL_OK);
    ck_assert(s.temperature == 0);
    ck_assert_int_eq(repl(&s, ":temp -1", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":temp abc", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":temp", msg), CLI_REPL_ERROR);
    ck_assert(s.temperature == 0);
    ck_assert_int_eq(repl(&s, ":topk 5", msg), CLI_REPL_OK);
    ck_assert_uint_eq(s.top_k, 5);
    ck_assert_int_eq(repl(&s, ":topp 0", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":topp 0.9", msg), CLI_REPL_OK);
    ck_assert_int_eq(repl(&s, ":len 0", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":len 20", msg), CLI_REPL_OK);
    ck_assert_uint_eq(s.length, 20);
    ck_assert_int_eq(repl(&s, ":seed 12345678901234", msg), CLI_REPL_SEED);
    ck_assert(s.seed == 12345678901234ull);
    ck_assert_int_eq(repl(&s, ":seed -1", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":stop \\n\\n", msg), CLI_REPL_OK);
    ck_assert_int_eq(repl(&s, ":stop (", msg), CLI_REPL_ERROR);
    ck_assert_ptr_nonnull(strstr(msg, "offset"));
    ck_assert_uint_eq(s.n_stop, 1);
    ck_assert_int_eq(repl(&s, ":match [가-힣]+", msg), CLI_REPL_OK);
    ck_assert_str_eq(s.match, "[가-힣]+");
    ck_assert_int_eq(repl(&s, ":beam 4", msg), CLI_REPL_ERROR); /* not with :match */
    ck_assert_int_eq(repl(&s, ":match", msg), CLI_REPL_OK);
    ck_assert_ptr_null(s.match);
    ck_assert_int_eq(repl(&s, ":keep on", msg), CLI_REPL_OK);
    ck_assert_int_eq(s.keep_state, 1);
    ck_assert_int_eq(repl(&s, ":keep maybe", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":show", msg), CLI_REPL_SHOW);
    ck_assert_ptr_nonnull(strstr(msg, "temperature 0"));
    ck_assert_ptr_nonnull(strstr(msg, "stop '\\n\\n'"));
    ck_assert_int_eq(repl(&s, ":help", msg), CLI_REPL_HELP);
    ck_assert_int_eq(repl(&s, ":reset", msg), CLI_REPL_RESET);
    ck_assert_int_eq(repl(&s, ":bogus", msg), CLI_REPL_ERROR);
    ck_assert_ptr_nonnull(strstr(msg, "unknown command ':bogus'"));
    ck_assert_int_eq(repl(&s, ":", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":averyveryverylongcommandname x", msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":stop", msg), CLI_REPL_OK);
    ck_assert_uint_eq(s.n_stop, 0);
    ck_assert_int_eq(cli_repl_command(&s, ":stop a\0b", 9, &text, &tl, msg, sizeof msg), CLI_REPL_ERROR);
    ck_assert_int_eq(repl(&s, ":quit", msg), CLI_REPL_QUIT);
    ck_assert_int_eq(crn_sample_settings_check(&s), 0);
    /* a subnormal temperature is greedy (issue 10.5), and :temp says so */
    ck_assert_int_eq(repl(&s, ":temp 0x1p-1074", msg), CLI_REPL_OK);
    ck_assert_ptr_nonnull(strstr(msg, "(argmax)"));
    ck_assert_int_eq(repl(&s, ":temp 0.5", msg), CLI_REPL_OK);
    ck_assert_ptr_null(strstr(msg, "(argmax)"));
    /* a tiny message buffer is always terminated */
    char small[8];
    ck_assert_int_eq(cli_repl_command(&s, ":help", 5, &text, &tl, small, sizeof small), CLI_REPL_HELP);
    ck_assert_uint_lt(strlen(small), sizeof small);
    crn_sample_settings_free(&s);
}
END_TEST

int main(void) {
    Suite *su = suite_create("repl_cmd");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_repl_parser);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
