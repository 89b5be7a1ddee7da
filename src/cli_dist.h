/* cli_dist.h — the command line under mpirun: only rank 0 talks, and an
 * exit decided on any rank is every rank's, with rank 0 saying why. */
#ifndef CRN_CLI_DIST_H
#define CRN_CLI_DIST_H

/* On ranks other than 0: stdout to /dev/null, stderr to a temporary file
 * (what cli_dist_agree reports from). No-op with one rank. */
void cli_dist_quiet_others(void);
/* status: this rank's exit status, or -1 to go on. Collective. @return -1
 * if every rank goes on, else the status of the lowest rank that stops;
 * when that is not rank 0, rank 0 prints its last "charrnn CMD: " message
 * as "charrnn CMD: rank K: ...". */
int cli_dist_agree(const char *cmd, int status);

#endif
