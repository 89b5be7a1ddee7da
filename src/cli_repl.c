/* cli_repl.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_repl(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("repl", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
