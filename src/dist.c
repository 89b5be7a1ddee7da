/* dist.c — MPI for data-parallel training, or one rank (see dist.h). */
#include "dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

#if CRN_HAVE_MPI
#include <mpi.h>

static int started; /* we called MPI_Init */
static int rank, size = 1;

int crn_dist_built(void) { return 1; }

/* Launched by mpirun (Open MPI) or a PMI/PMIx launcher? A plain `charrnn
 * train` does not start MPI (no singleton init, no runtime daemons). */
static int launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

int crn_dist_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited || !launched()) return 0;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return crn_error_set(CRN_EIO, "MPI_Init failed");
    started = 1;
    /* errors come back as codes: the caller turns them into one message */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return 0;
}

void crn_dist_finalize(void) {
    if (!started) return;
    MPI_Finalize();
    started = 0;
    rank = 0;
    size = 1;
}

int crn_dist_rank(void) { return rank; }
int crn_dist_size(void) { return size; }

static int mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = 0;
    return crn_error_set(CRN_EIO, "rank %d: %s failed: %s", rank, what, len ? msg : "unknown MPI error");
}

/* Counts above INT_MAX go in several calls. */
#define CHUNK ((size_t)INT_MAX / 8)

int crn_dist_bcast(void *buf, size_t n, int root) {
    if (size == 1) return 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        int rc = MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
    }
    return 0;
}

static int sum(void *buf, size_t n, size_t width, MPI_Datatype type, const char *what) {
    if (size == 1) return 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t k = n - at < CHUNK ? n - at : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * width, (int)k, type, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    }
    return 0;
}

int crn_dist_sum_f32(float *buf, size_t n) { return sum(buf, n, sizeof *buf, MPI_FLOAT, "MPI_Allreduce(float)"); }
int crn_dist_sum_f64(double *buf, size_t n) { return sum(buf, n, sizeof *buf, MPI_DOUBLE, "MPI_Allreduce(double)"); }
int crn_dist_sum_u64(uint64_t *buf, size_t n) {
    return sum(buf, n, sizeof *buf, MPI_UINT64_T, "MPI_Allreduce(uint64)");
}

int crn_dist_max_i32(int32_t *v) {
    if (size == 1) return 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "MPI_Allreduce(max)");
}

int crn_dist_agree_u64(uint64_t v, int *first_diff) {
    *first_diff = -1;
    if (size == 1) return 0;
    uint64_t v0 = v;
    int err = crn_dist_bcast(&v0, sizeof v0, 0);
    if (err) return err;
    /* the lowest differing rank: a min-reduction over (differs ? rank : size) */
    int32_t mine = v != v0 ? rank : size;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_INT32_T, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce(min)");
    if (mine < size) *first_diff = mine;
    return 0;
}

void crn_dist_abort(int status) {
    if (started) MPI_Abort(MPI_COMM_WORLD, status);
}

int crn_dist_lowest(int flag, int *lowest) {
    *lowest = flag ? 0 : -1;
    if (size == 1) return 0;
    int32_t mine = flag ? rank : size;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_INT32_T, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce(min)");
    *lowest = mine < size ? mine : -1;
    return 0;
}

#else /* one rank */

int crn_dist_built(void) { return 0; }
int crn_dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}
void crn_dist_finalize(void) {}
int crn_dist_rank(void) { return 0; }
int crn_dist_size(void) { return 1; }
int crn_dist_bcast(void *buf, size_t n, int root) {
    (void)buf;
    (void)n;
    (void)root;
    return 0;
}
int crn_dist_sum_f32(float *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int crn_dist_sum_f64(double *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int crn_dist_sum_u64(uint64_t *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int crn_dist_max_i32(int32_t *v) {
    (void)v;
    return 0;
}
int crn_dist_agree_u64(uint64_t v, int *first_diff) {
    (void)v;
    *first_diff = -1;
    return 0;
}
void crn_dist_abort(int status) { (void)status; }
int crn_dist_lowest(int flag, int *lowest) {
    *lowest = flag ? 0 : -1;
    return 0;
}

#endif
