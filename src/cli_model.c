/* cli_model.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("eval", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
int cli_info(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("info", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
