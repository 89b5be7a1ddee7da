/* cli_vocab.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_vocab(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("vocab", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
