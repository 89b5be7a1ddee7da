/* cli_bench.c — (being written) */
#include <stdio.h>
#include "cli.h"
int cli_bench(int argc, char **argv) {
    (void)argc; (void)argv;
    cli_error("bench", "not available in this build yet");
    return CLI_EXIT_ERROR;
}
