/* cli_dist.c — only rank 0 prints; exits agreed (see cli_dist.h). */
#include "cli_dist.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"

void cli_dist_quiet_others(void) {
    if (crn_dist_size() == 1 || crn_dist_rank() == 0) return;
    fflush(stdout);
    fflush(stderr);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    FILE *cap = tmpfile();
    if (cap) dup2(fileno(cap), STDERR_FILENO); /* the FILE stays open: the file lives as long as fd 2 */
}

/* The last "charrnn CMD: " line this rank wrote to its captured stderr,
 * without that prefix, into buf. */
static void last_message(const char *cmd, char *buf, size_t cap) {
    fflush(stderr);
    snprintf(buf, cap, "failed (no message)");
    struct stat sb;
    if (fstat(STDERR_FILENO, &sb) != 0 || !S_ISREG(sb.st_mode)) return;
    char tail[4096];
    off_t from = sb.st_size > (off_t)sizeof tail - 1 ? sb.st_size - (off_t)sizeof tail + 1 : 0;
    ssize_t n = pread(STDERR_FILENO, tail, sizeof tail - 1, from);
    if (n <= 0) return;
    tail[n] = 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "charrnn %s: ", cmd);
    const char *hit = NULL;
    for (const char *p = tail; (p = strstr(p, prefix)) != NULL; p++)
        if (p == tail || p[-1] == '\n') hit = p;
    if (!hit) return;
    hit += strlen(prefix);
    size_t len = strcspn(hit, "\n");
    snprintf(buf, cap, "%.*s", (int)len, hit);
}

int cli_dist_agree(const char *cmd, int status) {
    const int me = crn_dist_rank();
    if (crn_dist_size() == 1) return status;
    int from; /* the lowest rank that stops */
    if (crn_dist_lowest(status >= 0, &from) < 0) return CLI_EXIT_ERROR;
    if (from < 0) return -1;
    struct {
        int32_t status;
        char msg[1000];
    } m;
    memset(&m, 0, sizeof m);
    if (me == from) {
        m.status = status;
        if (from != 0) last_message(cmd, m.msg, sizeof m.msg);
    }
    if (crn_dist_bcast(&m, sizeof m, from) < 0) return CLI_EXIT_ERROR;
    m.msg[sizeof m.msg - 1] = 0;
    if (me == 0 && from != 0) cli_error(cmd, "rank %d: %s", from, m.msg);
    return m.status;
}
