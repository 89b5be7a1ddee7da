/* cli_generate.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_generate(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("generate", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
