/* generate.c — load a model, generate 200 characters from a prompt.
 *   cc generate.c $(pkg-config --cflags --libs charrnn) -o generate
 *   ./generate model.crn 'ROMEO:' */
#include <charrnn.h>
#include <stdio.h>
#include <string.h>

static int print(void *user, const char *text, size_t len) {
    return fwrite(text, 1, len, user) != len; /* non-zero stops */
}

int main(int argc, char **argv) {
    charrnn_model *m = NULL;
    charrnn_generator *g = NULL;
    const char *prompt = argc > 2 ? argv[2] : "";
    int err = argc < 2 ? CHARRNN_EINVAL : charrnn_model_load(&m, argv[1]);
    if (!err) err = charrnn_generator_create(&g, m);
    if (!err) err = charrnn_generator_set_seed(g, 42);
    if (!err) err = charrnn_generator_set_length(g, 200);
    if (!err && charrnn_generator_prime(g, prompt, strlen(prompt)) < 0) err = CHARRNN_EINVAL;
    if (!err) err = charrnn_generator_generate(g, print, stdout, NULL);
    if (err) fprintf(stderr, "generate: %s\n", argc < 2 ? "usage: generate MODEL [PROMPT]" : charrnn_last_error());
    else putchar('\n');
    charrnn_generator_destroy(g);
    charrnn_model_destroy(m);
    return err ? 1 : 0;
}
