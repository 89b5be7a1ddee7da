/* test_corpus.c — (being written; exits 77 = skipped) */
int main(void) { return 77; }
