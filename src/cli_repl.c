/* cli_repl.c — `charrnn repl MODEL`: an interactive sampling prompt. Each
 * line typed primes the model and the continuation streams back; lines
 * starting with ':' are commands (parsed by cli_repl_command in cli_repl_cmd.c).
 * Line editing and history with libedit when stdin is a terminal, plain
 * getline otherwise (scripts and tests drive it through a pipe). */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "config.h"
#include "kernels.h"
#include "cli_repl_cmd.h"
#include "sampler.h"

#if CRN_HAVE_LIBEDIT
#include <histedit.h>
#endif

static const char *CMD = "repl";

static void usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn repl MODEL [options]\n"
            "\n"
            "Interactive sampling: each line you type primes the model and the\n"
            "continuation streams back. Lines starting with ':' are commands:\n"
            "  :temp T  :topk K  :topp P  :len N  :seed N  :beam W\n"
            "  :stop REGEX (':stop' clears)  :match REGEX (':match' clears)\n"
            "  :keep on|off (carry the hidden state across lines)  :reset (clear it)\n"
            "  :show  :help  :quit\n"
            "A bad command or value is explained and the session goes on. Ctrl-C stops\n"
            "a generation; Ctrl-D or :quit leaves. On a terminal lines can be edited and\n"
            "history is kept in $XDG_DATA_HOME/charrnn/history (default\n"
            "~/.local/share/charrnn/history); from a pipe lines are read as they come.\n"
            "\n"
            "Options (the starting values of the settings; see 'charrnn generate --help'\n"
            "for the order in which sampling applies them):\n"
            "  --temperature T   [0, 100] (default 1.0; 0, or below 1e-6 = greedy)\n"
            "  --top-k K         (default 0 = off)\n"
            "  --top-p P         (0, 1] (default 1.0 = off)\n"
            "  --length N        characters per line (NFC code points; --beam: tokens),\n"
            "                    [1, %u] (default 200)\n"
            "  --seed N          random seed (default: time-based, shown by :show)\n"
            "  --beam W          beam search width, [0, %u] (default 0 = off)\n"
            "  --stop REGEX      stop pattern (repeatable)\n"
            "  --keep-stop       print the stop match too\n"
            "  --match REGEX     constrain every continuation to match REGEX\n"
            "  --keep            start with :keep on\n"
            "  --strict          refuse lines with characters the model has never seen\n"
            "  --threads N       BLAS threads (default 1)\n"
            "  --exact           sample with the float32 weights (default: a binary16\n"
            "                    copy, twice as fast, probabilities within 2e-3)\n"
            "  -h, --help        show this help\n",
            CRN_SAMPLE_MAX_LENGTH, CRN_SAMPLE_MAX_BEAM);
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct out_state {
    size_t bytes;
    uint8_t last; /* last byte written */
} out_state;

static int stream_emit(void *user, const uint8_t *s, size_t n) {
    out_state *o = user;
    if (fwrite(s, 1, n, stdout) != n) return 1;
    fflush(stdout);
    o->bytes += n;
    if (n) o->last = s[n - 1];
    return 0;
}

/* ---- line input: libedit on a terminal, getline otherwise ------------------ */

typedef struct reader {
    int tty;
    char *buf; /* getline buffer */
    size_t cap;
#if CRN_HAVE_LIBEDIT
    EditLine *el;
    History *hist;
    HistEvent ev;
    char hist_path[4096];
#endif
} reader;

#if CRN_HAVE_LIBEDIT
static char *prompt_fn(EditLine *el) {
    (void)el;
    return "> ";
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST) return -1;
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* $XDG_DATA_HOME/charrnn/history or ~/.local/share/charrnn/history; creates
 * the directories. Returns 0 with the path, or -1 (no history file). */
static int history_path(char *out, size_t cap) {
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char dir[4096];
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(dir, sizeof dir, "%s/charrnn", xdg);
    else if (home && home[0] == '/') n = snprintf(dir, sizeof dir, "%s/.local/share/charrnn", home);
    else return -1;
    if (n < 0 || (size_t)n >= sizeof dir || mkdir_p(dir) < 0) return -1;
    n = snprintf(out, cap, "%s/history", dir);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
#endif

static void reader_open(reader *r, const char *argv0) {
    memset(r, 0, sizeof *r);
    r->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
#if CRN_HAVE_LIBEDIT
    if (r->tty) {
        /* libedit reads multibyte input only in a UTF-8 LC_CTYPE */
        if (!setlocale(LC_CTYPE, "") || strcmp(nl_langinfo(CODESET), "UTF-8") != 0)
            setlocale(LC_CTYPE, "C.UTF-8");
        r->el = el_init(argv0, stdin, stdout, stderr);
        r->hist = history_init();
        if (!r->el || !r->hist) {
            if (r->el) el_end(r->el);
            if (r->hist) history_end(r->hist);
            r->el = NULL;
            r->hist = NULL;
            return;
        }
        history(r->hist, &r->ev, H_SETSIZE, 1000);
        history(r->hist, &r->ev, H_SETUNIQUE, 1);
        if (history_path(r->hist_path, sizeof r->hist_path) == 0) history(r->hist, &r->ev, H_LOAD, r->hist_path);
        else r->hist_path[0] = 0;
        el_set(r->el, EL_PROMPT, prompt_fn);
        el_set(r->el, EL_EDITOR, "emacs");
        el_set(r->el, EL_HIST, history, r->hist);
        el_source(r->el, NULL); /* ~/.editrc */
    }
#else
    (void)argv0;
#endif
}

static void reader_close(reader *r) {
#if CRN_HAVE_LIBEDIT
    if (r->hist) {
        if (r->hist_path[0]) history(r->hist, &r->ev, H_SAVE, r->hist_path);
        history_end(r->hist);
    }
    if (r->el) el_end(r->el);
#endif
    free(r->buf);
}

/* Next line (without its line break): 1 with *line and *n, 0 at end of input,
 * 2 when Ctrl-C interrupted the read (ask again). */
static int reader_next(reader *r, const char **line, size_t *n) {
#if CRN_HAVE_LIBEDIT
    if (r->el) {
        int count = 0;
        const char *l = el_gets(r->el, &count);
        if (!l) {
            if (count < 0 && (errno == EINTR || interrupted)) {
                interrupted = 0;
                fputc('\n', stdout);
                return 2;
            }
            fputc('\n', stdout);
            return 0;
        }
        size_t len = strlen(l);
        if (len && l[len - 1] == '\n') len--;
        if (len) history(r->hist, &r->ev, H_ENTER, l);
        *line = l;
        *n = len;
        return 1;
    }
#endif
    if (r->tty) {
        fputs("> ", stdout);
        fflush(stdout);
    }
    errno = 0;
    ssize_t got = getline(&r->buf, &r->cap, stdin);
    if (got < 0) {
        if (errno == EINTR && interrupted) {
            interrupted = 0;
            clearerr(stdin);
            fputc('\n', stdout);
            return 2;
        }
        return 0;
    }
    size_t len = (size_t)got;
    if (len && r->buf[len - 1] == '\n') len--;
    *line = r->buf;
    *n = len;
    return 1;
}

/* ---- the loop ---------------------------------------------------------------- */

enum {
    OPT_THREADS = 256, OPT_KEEP, OPT_EXACT,
};

/* A settings command: configure the generator, or on failure go back to
 * the settings before the command (backup). */
static void repl_apply(crn_generator *g, crn_sample_settings *s, crn_sample_settings *backup, int act,
                       const char *msg) {
    if (crn_generator_configure(g, s) < 0) {
        fprintf(stderr, "error: %s\n", crn_error_message());
        crn_sample_settings_free(s);
        *s = *backup; /* the generator kept the old settings too */
        crn_sample_settings_init(backup);
        return;
    }
    if (act == CLI_REPL_SEED) crn_generator_seed(g, s->seed);
    printf("%s\n", msg);
}

/* One turn: prime with the line (on a fresh state unless :keep on) and
 * stream the continuation. */
static void repl_turn(crn_generator *g, const crn_sample_settings *s, const char *text, size_t tl) {
    if (!s->keep_state) crn_generator_reset(g);
    crn_prime_info info;
    interrupted = 0;
    if (crn_generator_prime(g, (const uint8_t *)text, tl, &info) < 0) {
        fprintf(stderr, "error: %s\n", crn_error_message());
        return;
    }
    if (info.n_unk)
        fprintf(stderr, "note: %zu character%s the model has never seen (%s), fed as <unk>\n", info.n_unk,
                info.n_unk == 1 ? "" : "s", info.unknown);
    crn_gen_result res;
    out_state out = {0, 0};
    int err = crn_generator_run(g, stream_emit, &out, &res);
    if (out.bytes == 0 || out.last != '\n') fputc('\n', stdout);
    fflush(stdout);
    if (err < 0) fprintf(stderr, "error: %s\n", crn_error_message());
    else if (res.reason == CRN_GEN_STOP_INTERRUPTED) fprintf(stderr, "[interrupted]\n");
    else if (res.reason == CRN_GEN_STOP_NO_CONTINUATION && s->match)
        fprintf(stderr, "[no token can continue a match of '%s']\n", s->match);
    else if (res.reason == CRN_GEN_STOP_NO_CONTINUATION)
        fprintf(stderr, "[stopped: the jamo drawn do not compose into syllables]\n");
    interrupted = 0;
}

/* What `charrnn repl` was given. */
typedef struct repl_args {
    crn_sample_settings s;
    long long threads;
    int exact;
    const char *model;
} repl_args;

/* Parse argv into a (a->s initialised by the caller). @return -1 ok, else the exit status. */
static int parse_args(repl_args *a, int argc, char **argv) {
    static const struct option opts[] = {
        CLI_SAMPLING_OPTIONS,
        {"threads", required_argument, NULL, OPT_THREADS},
        {"exact", no_argument, NULL, OPT_EXACT},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int have_seed = 0;
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return CLI_EXIT_OK;
        case CLI_OPT_LENGTH: case CLI_OPT_SEED: case CLI_OPT_TEMP: case CLI_OPT_TOPK: case CLI_OPT_TOPP:
        case CLI_OPT_BEAM: case CLI_OPT_STOP: case CLI_OPT_KEEP_STOP: case CLI_OPT_MATCH: case CLI_OPT_STRICT:
            if (cli_sampling_option(CMD, c, optarg, &a->s, &have_seed) < 0) return CLI_EXIT_USAGE;
            break;
        case OPT_KEEP: a->s.keep_state = 1; break;
        case OPT_EXACT: a->exact = 1; break;
        case OPT_THREADS:
            if (cli_parse_long(CMD, "--threads", optarg, 1, 1024, &a->threads) < 0) return CLI_EXIT_USAGE;
            break;
        default: return cli_bad_option(CMD);
        }
    }
    if (optind >= argc) return cli_usage_error(CMD, "missing MODEL");
    if (optind + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
    if (cli_sampling_finish(CMD, &a->s, have_seed) < 0) return CLI_EXIT_USAGE;
    a->model = argv[optind];
    return -1;
}

/* Read lines until the end of input or :quit: commands change the settings
 * s (backup: a copy of them before each line), other lines are turns.
 * @return the exit status. */
static int repl_loop(reader *rd, crn_generator *g, crn_sample_settings *s, crn_sample_settings *backup) {
    char msg[4096];
    for (;;) {
        const char *line, *text;
        size_t n, tl;
        int got = reader_next(rd, &line, &n);
        if (got == 0) break;
        if (got == 2) continue;
        crn_sample_settings_free(backup);
        if (crn_sample_settings_copy(backup, s) < 0) return cli_fail(CMD, CRN_ENOMEM);
        int act = cli_repl_command(s, line, n, &text, &tl, msg, sizeof msg);
        if (act == CLI_REPL_QUIT) break;
        switch (act) {
        case CLI_REPL_ERROR:
            fprintf(stderr, "error: %s\n", msg);
            break;
        case CLI_REPL_OK:
        case CLI_REPL_SEED: repl_apply(g, s, backup, act, msg); break;
        case CLI_REPL_RESET:
            crn_generator_reset(g);
            printf("%s\n", msg);
            break;
        case CLI_REPL_SHOW:
        case CLI_REPL_HELP:
            printf("%s\n", msg);
            break;
        case CLI_REPL_TEXT: repl_turn(g, s, text, tl); break;
        default: break;
        }
        fflush(stdout);
    }
    return CLI_EXIT_OK;
}

int cli_repl(int argc, char **argv) {
    repl_args a = {.threads = 1};
    crn_sample_settings backup, *s = &a.s;
    crn_sample_settings_init(s);
    crn_sample_settings_init(&backup);
    s->length = 200;
    int rc, err;
    crn_checkpoint *ck = NULL;
    crn_generator *g = NULL;
    reader rd;
    int reader_opened = 0;
    struct sigaction sa, old_sa;
    int handler_set = 0;

    if ((rc = parse_args(&a, argc, argv)) >= 0) goto done;
    if ((rc = cli_classify_repl(CMD, a.model, (int)a.threads)) >= 0) goto done;
    rc = CLI_EXIT_USAGE;
    crn_set_threads((int)a.threads);
    if (cli_load_sampling_model(CMD, a.model, a.exact, &ck) != 0) {
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    if ((err = crn_generator_create(&g, ck->model, ck->vocab, s)) < 0) {
        rc = cli_fail(CMD, err);
        goto done;
    }
    /* SIGINT only sets a flag: generation checks it at every step, and a read
     * interrupted by it gives a fresh prompt. No SA_RESTART, so reads return. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    handler_set = 1;
    crn_generator_set_cancel(g, &interrupted);

    reader_open(&rd, "charrnn");
    reader_opened = 1;
    if (rd.tty)
        printf("charrnn repl: %s (vocabulary %u). Type a line to continue it; :help for commands, Ctrl-D to leave.\n",
               a.model, ck->cfg.vocab);
    rc = repl_loop(&rd, g, s, &backup);
done:
    if (reader_opened) reader_close(&rd);
    if (handler_set) sigaction(SIGINT, &old_sa, NULL);
    crn_generator_destroy(g);
    crn_checkpoint_destroy(ck);
    crn_sample_settings_free(s);
    crn_sample_settings_free(&backup);
    return rc;
}
