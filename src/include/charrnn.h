/* charrnn.h — the public C API of libcharrnn: load a character-level RNN
 * model, generate text from it, score text under it, train one.
 *
 * The only installed header: everything else in the source tree is internal
 * and may change at any time. Build against it with
 *     cc prog.c $(pkg-config --cflags --libs charrnn)
 *
 * Conventions
 *   - Errors: every function that can fail returns 0 (or a count >= 0) on
 *     success and a negative CHARRNN_E* code on failure. The failing call
 *     records a one-line message (naming the file, line, byte offset or
 *     pattern position it is about) in a thread-local buffer:
 *     charrnn_last_error() returns it. The library never prints and never
 *     exits.
 *   - Handles are opaque. Every *_create / *_load has a *_destroy;
 *     destroy(NULL) is a no-op. Output handles are set to NULL on failure.
 *   - Ownership: strings passed in are copied (the caller keeps its own);
 *     pointers returned (names, texts) belong to the handle and stay valid
 *     until the documented point (at the latest its destroy).
 *   - Thread-safety: a model and everything created from it (its generators
 *     and scores; forks of those) share buffers: calls on them must not
 *     overlap in time. Distinct models (e.g. the same file loaded twice) may
 *     be used from different threads at once. A trainer is used by one
 *     thread, except charrnn_trainer_request_stop (any thread, or a signal
 *     handler). charrnn_set_threads is process-wide: call it before use.
 *   - Text is UTF-8, passed with an explicit length (no NUL needed).
 */
#ifndef CHARRNN_H
#define CHARRNN_H

#include <stddef.h>
#include <stdint.h>

#define CHARRNN_VERSION_MAJOR 0
#define CHARRNN_VERSION_MINOR 1
#define CHARRNN_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with charrnn_version(). */
#define CHARRNN_VERSION (CHARRNN_VERSION_MAJOR * 10000 + CHARRNN_VERSION_MINOR * 100 + CHARRNN_VERSION_PATCH)

#if defined(_WIN32) && defined(CHARRNN_BUILDING_DLL)
#define CHARRNN_API __declspec(dllexport)
#elif defined(_WIN32) && !defined(CHARRNN_STATIC)
#define CHARRNN_API __declspec(dllimport)
#elif defined(__GNUC__)
#define CHARRNN_API __attribute__((visibility("default")))
#else
#define CHARRNN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version, errors, threads ------------------------------------------- */

/* The library's version at run time (CHARRNN_VERSION encoding) and as text
 * ("0.1.0"). A program built against MAJOR.x runs with any MAJOR.y, y >= x. */
CHARRNN_API int charrnn_version(void);
CHARRNN_API const char *charrnn_version_string(void);

enum charrnn_error {
    CHARRNN_OK = 0,
    CHARRNN_ENOMEM = -1,     /* allocation failed */
    CHARRNN_EIO = -2,        /* open/read/write failed (the message has errno's text) */
    CHARRNN_EINVAL = -3,     /* bad argument or option value */
    CHARRNN_EUTF8 = -4,      /* invalid UTF-8 (the message has the byte offset) */
    CHARRNN_EREGEX = -5,     /* a pattern does not compile (the message has the offset) */
    CHARRNN_EFORMAT = -6,    /* a model file is malformed */
    CHARRNN_ECHECKSUM = -7,  /* a model file section fails its checksum */
    CHARRNN_EEMPTY = -8,     /* empty input */
    CHARRNN_ERANGE = -9,     /* a size or value outside the supported range */
    CHARRNN_ELIMIT = -10,    /* the regex engine's match limit was hit */
    CHARRNN_ENONFINITE = -11,/* NaN or Inf in a loss, gradient or output */
    CHARRNN_EINTR = -12,     /* stopped on request (trainer: state saved) */
    CHARRNN_ENOTFOUND = -13, /* a missing file or key */
};

/* Short name of an error code ("invalid UTF-8", ...). Never NULL, static. */
CHARRNN_API const char *charrnn_strerror(int err);
/* The message of the last failure in this thread ("" if none). Valid until
 * the next failing call in this thread. */
CHARRNN_API const char *charrnn_last_error(void);

/* Worker threads for the matrix products (n <= 0: all cores). Process-wide;
 * the default is OpenBLAS's own. Batch-1 generation is fastest with 1. */
CHARRNN_API void charrnn_set_threads(int n);
/* The OpenBLAS kernel family in use ("Prescott", "Haswell", "SkylakeX", ...),
 * and the OPENBLAS_CORETYPE value this CPU should run instead, or NULL when
 * the loaded kernels are right. OpenBLAS reads OPENBLAS_CORETYPE once, when
 * it is loaded: a program acts on the advice by setting it in the
 * environment of a new process (as `charrnn` re-executes itself). */
CHARRNN_API const char *charrnn_blas_core(void);
CHARRNN_API const char *charrnn_blas_better_core(void);

/* ---- models ------------------------------------------------------------- */

typedef struct charrnn_model charrnn_model;

/* Load a model file written by `charrnn train` (every read bounds-checked;
 * CHARRNN_EFORMAT / CHARRNN_ECHECKSUM name the section and byte offset). */
CHARRNN_API int charrnn_model_load(charrnn_model **out, const char *path);
/* The same from bytes in memory (not kept after the call). */
CHARRNN_API int charrnn_model_load_memory(charrnn_model **out, const void *data, size_t len);
/* Frees the model. Destroy its generators first. NULL is a no-op. */
CHARRNN_API void charrnn_model_destroy(charrnn_model *m);

typedef struct charrnn_model_info {
    const char *cell;          /* "rnn", "lstm", "gru" (static) */
    const char *activation;    /* "tanh", "relu" (rnn only; static) */
    const char *unit;          /* tokens: "codepoint", "grapheme", "jamo" (static) */
    const char *normalization; /* "nfc", "nfkc", "none", ... (static) */
    uint32_t vocab_size;       /* tokens including <unk> (id 0) */
    uint32_t embed;            /* embedding width, 0 = one-hot input */
    uint32_t hidden;           /* units per layer */
    uint32_t layers;
    double dropout;            /* between layers, while training */
    size_t num_params;
    int has_optimizer_state;   /* the file can continue training exactly */
    int has_training_state;
} charrnn_model_info;

/* Fill *info (strings are static). @return 0 or CHARRNN_EINVAL (NULL). */
CHARRNN_API int charrnn_model_get_info(const charrnn_model *m, charrnn_model_info *info);
/* The UTF-8 bytes of token id (not NUL-terminated; <unk> is U+FFFD), owned
 * by the model; NULL if id >= vocab_size. */
CHARRNN_API const char *charrnn_model_token(const charrnn_model *m, uint32_t id, size_t *len);
/* Batch-1 steps (generation) read a binary16 copy of the weights when
 * enabled: about twice as fast, probabilities within 2e-3 of float32 (what
 * `charrnn generate` does unless --exact). Off after load. */
CHARRNN_API int charrnn_model_set_half_precision(charrnn_model *m, int enable);

/* ---- generation --------------------------------------------------------- */

/* A generator: the model's hidden state for one stream of text, sampling
 * settings and an explicit RNG (same seed, same settings, same prompt: same
 * text, byte for byte). It borrows the model (which must outlive it).
 *
 * Sampling at every step, in this order: temperature T (T == 0: greedy),
 * top-k, top-p (nucleus), then a draw from what is left. --stop patterns
 * end generation at their first match in the generated text (the match is
 * withheld unless keep_stop); a --match pattern constrains the text to stay
 * a possible prefix of a full match (anchored at both ends). Beam search
 * (beam >= 2) returns the most likely continuation instead (temperature,
 * top-k/p and match do not apply; its text arrives at the end). Patterns are
 * PCRE2 with UTF and Unicode properties. */
typedef struct charrnn_generator charrnn_generator;

/* Defaults: temperature 1, top_k 0 (off), top_p 1 (off), seed 0, length 500,
 * beam 0 (off), no stop patterns, no match, not strict. */
CHARRNN_API int charrnn_generator_create(charrnn_generator **out, charrnn_model *m);
CHARRNN_API void charrnn_generator_destroy(charrnn_generator *g); /* NULL is a no-op */

/* Settings. Each is checked and applied at once; on error (CHARRNN_ERANGE,
 * CHARRNN_EREGEX, CHARRNN_EINVAL) the previous settings stay in force. None
 * of them touches the hidden state. */
CHARRNN_API int charrnn_generator_set_temperature(charrnn_generator *g, double t);  /* [0, 100] */
CHARRNN_API int charrnn_generator_set_top_k(charrnn_generator *g, uint32_t k);      /* 0 = off */
CHARRNN_API int charrnn_generator_set_top_p(charrnn_generator *g, double p);        /* (0, 1] */
CHARRNN_API int charrnn_generator_set_length(charrnn_generator *g, uint32_t tokens);/* [1, 1000000] */
CHARRNN_API int charrnn_generator_set_beam(charrnn_generator *g, uint32_t width);   /* 0/1 off, 2..64 */
/* Reseed the RNG (also at once). */
CHARRNN_API int charrnn_generator_set_seed(charrnn_generator *g, uint64_t seed);
/* Add a stop pattern (up to 16; one matching the empty string is refused). */
CHARRNN_API int charrnn_generator_add_stop(charrnn_generator *g, const char *regex);
CHARRNN_API int charrnn_generator_clear_stops(charrnn_generator *g);
CHARRNN_API int charrnn_generator_set_keep_stop(charrnn_generator *g, int keep);
/* Constrain the generated text to regex (NULL: no constraint). */
CHARRNN_API int charrnn_generator_set_match(charrnn_generator *g, const char *regex);
/* strict: a prompt character the model has never seen is an error
 * (CHARRNN_EINVAL, naming it) instead of being fed as <unk>. */
CHARRNN_API int charrnn_generator_set_strict(charrnn_generator *g, int strict);

/* Feed a prompt on top of the current state (normalised as the model's
 * vocabulary was). An empty prompt on a fresh state feeds a line break, so
 * the text starts as after one.
 * @return the number of characters fed as <unk> (>= 0) or an error
 *         (CHARRNN_EUTF8 with the byte offset, CHARRNN_EINVAL when strict). */
CHARRNN_API long long charrnn_generator_prime(charrnn_generator *g, const char *text, size_t len);

/* Receives text as soon as it is final: complete, valid UTF-8, never part of
 * a stop match. The bytes are only valid during the call. Return non-zero
 * to stop generation (reason CHARRNN_STOP_INTERRUPTED). */
typedef int (*charrnn_text_fn)(void *user, const char *text, size_t len);

enum charrnn_stop_reason {
    CHARRNN_STOP_NONE = 0,
    CHARRNN_STOP_LENGTH = 1,          /* `length` tokens generated */
    CHARRNN_STOP_REGEX = 2,           /* a stop pattern matched */
    CHARRNN_STOP_MATCH = 3,           /* the match pattern is matched in full */
    CHARRNN_STOP_NO_CONTINUATION = 4, /* no token can continue the match prefix (or the jamo drawn never compose) */
    CHARRNN_STOP_INTERRUPTED = 5,     /* the callback asked to stop */
};
/* "length", "stop", "match", "no_continuation", "interrupted", "none". */
CHARRNN_API const char *charrnn_stop_reason_name(int reason);

typedef struct charrnn_generation {
    int stop_reason;      /* enum charrnn_stop_reason */
    size_t tokens;        /* tokens generated (including a withheld stop match) */
    double mean_logprob;  /* nats per generated token under the model (temperature 1) */
    const char *text;     /* everything passed to the callback, owned by the
                           * generator, valid until its next generate, setting
                           * change or destroy */
    size_t text_len;
} charrnn_generation;

/* Generate up to `length` tokens after the current state (priming with an
 * empty prompt first if nothing was primed), streaming them to cb (may be
 * NULL). The state keeps advancing: prime + generate again continues the
 * same text. out may be NULL. @return 0 or an error. */
CHARRNN_API int charrnn_generator_generate(charrnn_generator *g, charrnn_text_fn cb, void *user,
                                           charrnn_generation *out);
/* Forget the hidden state (as after create); settings and RNG are kept. */
CHARRNN_API void charrnn_generator_reset(charrnn_generator *g);
/* A new generator with a copy of g's settings, hidden state, pending
 * distribution and RNG state: both continue identically until they differ in
 * input or settings (e.g. try several continuations of one primed prompt). */
CHARRNN_API int charrnn_generator_fork(charrnn_generator **out, const charrnn_generator *g);

/* ---- scoring ------------------------------------------------------------ */

typedef struct charrnn_score_result {
    double bits_per_char;  /* as `charrnn eval`: bits over the characters predicted */
    double bits_per_token;
    uint64_t chars;        /* code points of the normalised text */
    uint64_t tokens;
    uint64_t targets;      /* tokens predicted (all but the first) */
    uint64_t unknown;      /* tokens not in the model's vocabulary (scored as <unk>) */
} charrnn_score_result;

/* How well the model predicts text (valid UTF-8, normalised as the
 * vocabulary was): one stream from a zero state, as `charrnn eval --batch 1`.
 * Uses the model's training buffers (not with a generator of the same model
 * running at the same time). @return 0, CHARRNN_EEMPTY (fewer than 2
 * tokens), CHARRNN_EUTF8, CHARRNN_ENONFINITE (the model's output is not
 * finite) or another error. */
CHARRNN_API int charrnn_score(charrnn_model *m, const char *text, size_t len, charrnn_score_result *out);

/* ---- training ----------------------------------------------------------- */

/* Options of a training run, set by the names of `charrnn train`'s long
 * options (see `charrnn train --help` for meanings and defaults):
 *   corpus (required, a file path), output (required, the model path),
 *   unit, normalize, invalid, min-count, val-frac, keep, drop, replace
 *   (the last three add a pattern each time), cell, activation, layers,
 *   hidden, embed, dropout, layer-norm ("1", the default, or "0": plain
 *   cells), init, forget-bias, preset (sets the shape, dropout, batch and
 *   seq; options set after it win), batch, seq, optimizer, lr, weight-decay,
 *   momentum, clip, schedule, lr-decay, lr-decay-after, warmup, time
 *   (a duration: "90", "90s", "10m", "1.5h"), steps, epochs, eval-every,
 *   patience, save-every (steps), no-optimizer-state ("1"), seed, threads,
 *   log (CSV path), sample-every, sample-len.
 * As the CLI: without time/steps/epochs a fresh run stops after 5 minutes.
 *
 * Resume: "resume" = MODEL (or MODEL.resume) continues that run exactly
 * where it stopped, as `charrnn train --resume MODEL` (from MODEL.resume,
 * or MODEL if that is missing, damaged or of another run). Its options come
 * from the checkpoint; only the options set here change them, by the rules
 * of docs/training.md "Options on resume": the model shape, data and
 * cleaning, batch, seq and optimizer kind (cell, activation, layers, hidden,
 * embed, dropout, layer-norm, init, forget-bias, unit, normalize, invalid,
 * min-count, val-frac, keep, drop, replace, batch, seq, optimizer) cannot
 * change (charrnn_trainer_create returns CHARRNN_EINVAL naming the option),
 * nor preset; steps and epochs are totals for the run, time is this
 * session's, and setting any of the three replaces all three (none set: the
 * run's budget again). corpus is optional (default: the run's); output is
 * optional and must be MODEL (the run continues in its own files). With
 * threads 1, N steps and a resume to N+M give bit-for-bit the model and
 * optimizer state of N+M steps in one go. */
typedef struct charrnn_train_options charrnn_train_options;

CHARRNN_API int charrnn_train_options_create(charrnn_train_options **out);
CHARRNN_API void charrnn_train_options_destroy(charrnn_train_options *o); /* NULL is a no-op */
/* @return 0, CHARRNN_ENOTFOUND (unknown name), CHARRNN_EINVAL / CHARRNN_ERANGE
 *         (bad value; the options are unchanged). */
CHARRNN_API int charrnn_train_options_set(charrnn_train_options *o, const char *name, const char *value);

typedef struct charrnn_trainer charrnn_trainer;

/* Load the corpus, build the vocabulary and a freshly initialised model, or
 * with "resume" set load the run to continue (its model, optimizer and
 * training state). The options are copied. Writes nothing yet.
 * @return 0, CHARRNN_EINVAL (missing corpus or output, options that
 *         contradict each other or the resumed run), a load error of the
 *         corpus or the resumed model, or CHARRNN_ENOMEM. */
CHARRNN_API int charrnn_trainer_create(charrnn_trainer **out, const charrnn_train_options *o);
CHARRNN_API void charrnn_trainer_destroy(charrnn_trainer *t); /* NULL is a no-op */

enum charrnn_train_event {
    CHARRNN_EVENT_START = 0,  /* before the first step (message) */
    CHARRNN_EVENT_STEP = 1,   /* after every optimizer step */
    CHARRNN_EVENT_EVAL = 2,   /* after a validation pass (val_bpc set) */
    CHARRNN_EVENT_SAVE = 3,   /* a model file was written (path) */
    CHARRNN_EVENT_WARN = 4,   /* e.g. a skipped non-finite step (message) */
    CHARRNN_EVENT_SAMPLE = 5, /* a short sample of the model's text (text) */
    CHARRNN_EVENT_DONE = 6,   /* the loop ended (message) */
};

typedef struct charrnn_progress {
    int event;              /* enum charrnn_train_event */
    uint64_t step;          /* optimizer steps done in the run */
    uint64_t total_steps;   /* step budget (0: none) */
    double epoch;           /* fractional epochs done */
    double elapsed;         /* training seconds */
    double eta;             /* seconds to the nearest budget (< 0: unknown) */
    double train_bpc;       /* mean training bits per char since the last eval */
    double val_bpc;         /* last validation bits per char (NaN before the first) */
    double best_val_bpc;    /* NaN: none yet */
    uint64_t best_step;
    double lr;              /* learning rate of the last step */
    double chars_per_s;
    const char *message;    /* START / WARN / DONE, else NULL */
    const char *path;       /* SAVE, else NULL */
    const char *text;       /* SAMPLE (text_len bytes), else NULL */
    size_t text_len;
} charrnn_progress;

/* Called from charrnn_trainer_run's thread; pointers are valid during the
 * call only. Return non-zero to request a stop (as charrnn_trainer_request_stop). */
typedef int (*charrnn_progress_fn)(void *user, const charrnn_progress *p);

/* Train until a budget (time, steps, epochs), patience, a stop request or an
 * error; writes MODEL (the best by validation) and MODEL.resume (continue
 * with `charrnn train --resume MODEL`). cb may be NULL.
 * @return 0 (budget or patience), CHARRNN_EINTR (stop requested; everything
 *         saved), CHARRNN_ENONFINITE (the run diverged) or another error. */
CHARRNN_API int charrnn_trainer_run(charrnn_trainer *t, charrnn_progress_fn cb, void *user);
/* Ask a running charrnn_trainer_run to stop after its current step (saving
 * first). Safe from any thread and from a signal handler. */
CHARRNN_API void charrnn_trainer_request_stop(charrnn_trainer *t);

typedef struct charrnn_train_status {
    uint64_t step;
    uint64_t epoch;          /* completed epochs */
    double elapsed;          /* training seconds */
    double best_val_bpc;     /* NaN: no validation yet */
    uint64_t best_step;
    double last_train_bpc;
} charrnn_train_status;
CHARRNN_API int charrnn_trainer_get_status(const charrnn_trainer *t, charrnn_train_status *out);

/* ---- classification ----------------------------------------------------- */
/* (reserved: the classifier's load/predict calls go here, with the same
 * conventions, once the classify module exists.) */

#ifdef __cplusplus
}
#endif

#endif
