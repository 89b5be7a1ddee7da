/* pool.c — the worker threads: one persistent pool that runs the parts of a
 * job (crn_parallel), and the thread count that OpenBLAS and the kernels'
 * own parallel loops follow (crn_set_threads). Compiled as float and as
 * double (real.h) like the kernels; the double build runs every job on the
 * caller. */
#include "pool.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static int g_threads = 0;

int CRN_FN(crn_pool_threads)(void) { return g_threads; }

/* threads: one persistent pool of workers. The parts of a job are claimed
 * dynamically (an atomic counter) by the caller and the workers alike, so a
 * worker that is slow to wake (or descheduled: this machine is shared) never
 * holds the caller up: the caller runs the parts nobody has claimed. OpenBLAS
 * itself is kept single-threaded in the float build: its own pthread workers
 * spin after every call and would fight ours for the cores, so large
 * products are split across our pool instead (each part one single-threaded
 * cblas call). */

#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
#define CRN_MAX_WORKERS 63
/* A worker spins this many pause-loops (~50-100 us) for the next job before
 * sleeping: the gaps between jobs are mostly shorter than that, and a futex
 * wake-up costs more than a small job. */
#define CRN_SPIN 4000

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;             // bumped once per job
    atomic_ullong claim;         // job generation << 32 | part count << 16 | next unclaimed part
    atomic_int done;             // parts finished in the current job
    atomic_flag busy;            // a job is in flight (a second caller runs serially)
    crn_part_fn fn;
    void *arg;
    int nworkers;                // started; joined at exit (pool_shutdown)
    atomic_int stop;             // set by pool_shutdown: workers return
    pthread_t tids[CRN_MAX_WORKERS];
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ATOMIC_FLAG_INIT, NULL, NULL, 0, 0, {0}};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claim and run parts of job g until none is left (or the job is stale). */
static void pool_run(unsigned g) {
    for (;;) {
        unsigned long long c = atomic_load_explicit(&g_pool.claim, memory_order_acquire);
        /* the part count travels in the claim word, so a stale worker never
         * mixes this word with the next job's fields */
        int next = (int)(c & 0xffff), n = (int)((c >> 16) & 0xffff);
        if ((unsigned)(c >> 32) != g || next >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&g_pool.claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        /* a claimed part keeps the caller waiting for job g, so fn/arg are g's */
        g_pool.fn(g_pool.arg, next, n);
        atomic_fetch_add_explicit(&g_pool.done, 1, memory_order_release);
    }
}

static void *pool_worker(void *p) {
    (void)p;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&g_pool.gen, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&g_pool.stop, memory_order_acquire)) return NULL;
            if (++spins < CRN_SPIN) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&g_pool.mu);
            while ((g = atomic_load_explicit(&g_pool.gen, memory_order_acquire)) == seen &&
                   !atomic_load_explicit(&g_pool.stop, memory_order_acquire))
                pthread_cond_wait(&g_pool.cv, &g_pool.mu);
            pthread_mutex_unlock(&g_pool.mu);
            if (g == seen) return NULL; // woken by pool_shutdown
            break;
        }
        seen = g;
        pool_run(g);
    }
    return NULL;
}

/* A forked child has none of the parent's workers (and maybe a mutex taken
 * by one): start afresh; workers are created again on demand. */
static void pool_atfork_child(void) {
    pthread_mutex_init(&g_pool.mu, NULL);
    pthread_cond_init(&g_pool.cv, NULL);
    atomic_flag_clear(&g_pool.busy);
    g_pool.nworkers = 0;
}

/* At exit, stop and join the workers (they wait between jobs: exit never
 * happens inside a job), so nothing of theirs is left behind for leak
 * checkers to report. */
static void pool_shutdown(void) {
    pthread_mutex_lock(&g_pool.mu);
    int n = g_pool.nworkers;
    atomic_store_explicit(&g_pool.stop, 1, memory_order_release);
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 0; i < n; i++) pthread_join(g_pool.tids[i], NULL);
    g_pool.nworkers = 0;
    atomic_store_explicit(&g_pool.stop, 0, memory_order_release);
}

static void pool_register_atfork(void) {
    pthread_atfork(NULL, NULL, pool_atfork_child);
    atexit(pool_shutdown);
}

/* Start workers up to n - 1 (called outside any job). */
static void pool_grow(int n) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pool_register_atfork);
    pthread_mutex_lock(&g_pool.mu);
    while (g_pool.nworkers < n - 1 && g_pool.nworkers < CRN_MAX_WORKERS) {
        if (pthread_create(&g_pool.tids[g_pool.nworkers], NULL, pool_worker, NULL))
            break; // fewer workers: the caller runs the unclaimed parts
        g_pool.nworkers++;
    }
    pthread_mutex_unlock(&g_pool.mu);
}
#endif

void CRN_FN(crn_parallel)(crn_part_fn fn, void *arg, int max_parts) {
#if !(defined(CRN_DOUBLE) && CRN_DOUBLE)
    int n = g_threads > 0 ? g_threads : 1;
    if (n > max_parts) n = max_parts;
    if (n > 0xffff) n = 0xffff;
    if (n > 1 && g_pool.nworkers < n - 1) pool_grow(n);
    if (n > 1 && g_pool.nworkers > 0 && !atomic_flag_test_and_set_explicit(&g_pool.busy, memory_order_acquire)) {
        unsigned g = atomic_load_explicit(&g_pool.gen, memory_order_relaxed) + 1;
        g_pool.fn = fn;
        g_pool.arg = arg;
        atomic_store_explicit(&g_pool.done, 0, memory_order_relaxed);
        atomic_store_explicit(&g_pool.claim, (unsigned long long)g << 32 | (unsigned long long)n << 16,
                              memory_order_release);
        pthread_mutex_lock(&g_pool.mu);
        atomic_store_explicit(&g_pool.gen, g, memory_order_release);
        pthread_cond_broadcast(&g_pool.cv);
        pthread_mutex_unlock(&g_pool.mu);
        pool_run(g);
        int spins = 0;
        while (atomic_load_explicit(&g_pool.done, memory_order_acquire) < n) {
            if (++spins < CRN_SPIN)
                cpu_relax();
            else
                sched_yield(); // a worker holding a part was descheduled: give it the core
        }
        atomic_flag_clear_explicit(&g_pool.busy, memory_order_release);
        return;
    }
#endif
    (void)max_parts;
    fn(arg, 0, 1);
}

void CRN_FN(crn_set_threads)(int n) {
    if (n <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n = nc > 0 ? (int)nc : 1;
    }
    g_threads = n;
#if defined(CRN_DOUBLE) && CRN_DOUBLE
    openblas_set_num_threads(n);
#else
    openblas_set_num_threads(1);
    if (n > 1) pool_grow(n);
#endif
}

/* before any crn_set_threads, OpenBLAS's own default (its threads do the
 * large products, ours are not used) */
int CRN_FN(crn_get_threads)(void) { return g_threads > 0 ? g_threads : openblas_get_num_threads(); }
