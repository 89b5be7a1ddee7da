/* cli_train.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_train(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("train", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
