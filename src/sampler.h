/* sampler.h — turning logits into tokens, and the generation loop: prime the
 * state with a prompt, then sample a token, feed it back, repeat; stop on
 * length, a --stop regex, or a --match constraint becoming complete.
 *
 * Sampling, in this order, at every step (logits l over the vocabulary V):
 *   1. temperature: p_i ∝ exp(l_i / T); T == 0 means greedy argmax (steps 2-4
 *      are skipped; with --match the most likely acceptable token is taken),
 *      and so does any T below CRN_SAMPLE_MIN_TEMPERATURE (1e-6);
 *   2. top-k (k > 0): keep the k most likely tokens;
 *   3. top-p (p < 1): of those, keep the smallest most-likely-first set whose
 *      renormalised probability mass reaches p (the nucleus; always >= 1 token);
 *   4. draw one token from what is left, renormalised, with the generator's
 *      explicit crn_rng (seeded: same seed, same output).
 * <unk> (id 0) is never generated when V > 1: it is not a character.
 *
 * --stop REGEX (several): generation stops as soon as the generated text (not
 * the prompt) contains a match of any of them; the match is withheld unless
 * keep_stop. Text that might still become the start of a match is held back
 * (PCRE2 partial matching) until it cannot, so nothing of a match is ever
 * emitted early. Limits: '$' matches at the end of the text generated so far
 * (write '\n' for a line end); the hold-back test sees the text from the
 * candidate start on, so a pattern that begins with a lookbehind may let its
 * first characters out before the match is recognised.
 *
 * --match REGEX (anchored at both ends): the generated text stays a possible
 * prefix of a full match. The drawn token is tested; if text+token cannot
 * lead to a match it gets probability zero and a new token is drawn from the
 * remainder (candidates are tested lazily, most likely first in effect, never
 * the whole vocabulary unless needed). Generation ends when the text is a
 * complete match that cannot be extended (reason "match"), or, when it is a
 * complete match that could be extended, as soon as the drawn token would
 * break the match (the model chose to stop). If no allowed token can continue
 * a partial match, the reason is "no_continuation". In jamo mode the regex
 * sees recomposed syllables: a held leading consonant (and vowel) is accepted
 * if some syllable starting with it keeps the text a possible prefix.
 *
 * Beam search (beam >= 2): W beams of the raw model distribution (temperature,
 * top-k/top-p and --match do not apply), ranked by log-probability divided by
 * length; returns the single most likely continuation of `length` tokens,
 * emitted at the end (it cannot stream: the best beam changes). --stop
 * regexes cut the final text at the first match.
 *
 * The mean log-probability reported is that of the generated tokens under the
 * model's own distribution (softmax of the logits at temperature 1), in nats.
 *
 * No allocation inside the step loop: the generator sizes its buffers in
 * crn_generator_create / crn_generator_configure. */
#ifndef CRN_SAMPLER_H
#define CRN_SAMPLER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "rng.h"
#include "vocab.h"

#define CRN_MAX_STOP 16
#define CRN_SAMPLE_MAX_LENGTH 1000000u
#define CRN_SAMPLE_MAX_BEAM 64u
#define CRN_SAMPLE_MAX_TEMPERATURE 100.0
/* Temperatures in (0, CRN_SAMPLE_MIN_TEMPERATURE) sample greedily, as 0 does:
 * below it exp(d / T) cannot tell logits apart any more (float logits differ
 * by ~1e-7 relative at best), and for subnormal T, 1 / T is infinite. */
#define CRN_SAMPLE_MIN_TEMPERATURE 1e-6

/* Sampling settings. Strings are owned (strdup'ed by the setters below);
 * free with crn_sample_settings_free. */
typedef struct crn_sample_settings {
    double temperature; /* [0, 100]; 0 (or below CRN_SAMPLE_MIN_TEMPERATURE) = argmax. Default 1 */
    uint32_t top_k;     /* 0 = off. Default 0 */
    double top_p;       /* (0, 1]; 1 = off. Default 1 */
    uint64_t seed;      /* default 0 (the CLI picks a time-based one) */
    uint32_t length;    /* characters (NFC code points) to generate, [1, CRN_SAMPLE_MAX_LENGTH]
                         * (beam search: tokens). Default 500 */
    uint32_t beam;      /* 0 or 1 = sampling; 2..CRN_SAMPLE_MAX_BEAM = beam search */
    int keep_stop;      /* emit the --stop match too */
    int strict;         /* refuse prompts with characters the model has never seen */
    int keep_state;     /* REPL: carry the hidden state across turns */
    uint32_t n_stop;
    char *stop[CRN_MAX_STOP];
    char *match;        /* NULL = none */
} crn_sample_settings;

void crn_sample_settings_init(crn_sample_settings *s);
void crn_sample_settings_free(crn_sample_settings *s); /* frees the strings, keeps the numbers */
/* Deep copy (dst is overwritten, not freed first). @return 0 or CRN_ENOMEM. */
int crn_sample_settings_copy(crn_sample_settings *dst, const crn_sample_settings *src);
/* Add a stop pattern (at most CRN_MAX_STOP: CRN_ERANGE). The pattern is
 * compiled once to check it (CRN_EREGEX with PCRE2's reason and offset); a
 * pattern that matches the empty string is refused (CRN_EINVAL). */
int crn_sample_settings_add_stop(crn_sample_settings *s, const char *pattern);
void crn_sample_settings_clear_stops(crn_sample_settings *s);
/* Set (pattern != NULL, checked by compiling) or clear (NULL) --match. */
int crn_sample_settings_set_match(crn_sample_settings *s, const char *pattern);
/* Range checks of every field. @return 0 or CRN_ERANGE naming the field. */
int crn_sample_settings_check(const crn_sample_settings *s);

/* ---- one step's token choice (exposed for tests) --------------------------- */

/* Draw a token from logits (V) with s's temperature/top-k/top-p and rng.
 * scratch: crn_sample_scratch_size(V) bytes (e.g. malloc'ed once).
 * Excludes <unk> when V > 1. @return the token id. */
uint32_t crn_sample_logits(const real *logits, uint32_t V, const crn_sample_settings *s, crn_rng *rng,
                           void *scratch);
size_t crn_sample_scratch_size(uint32_t V);

/* ---- the generator ---------------------------------------------------------- */

enum crn_gen_stop {
    CRN_GEN_STOP_NONE = 0,         /* not finished */
    CRN_GEN_STOP_LENGTH,           /* `length` characters generated */
    CRN_GEN_STOP_REGEX,            /* a --stop regex matched */
    CRN_GEN_STOP_MATCH,            /* the --match regex is matched in full */
    CRN_GEN_STOP_NO_CONTINUATION,  /* no token can continue the --match prefix (or jamo that never compose) */
    CRN_GEN_STOP_INTERRUPTED,      /* the cancel flag was set, or the callback asked to stop */
};
/* "length", "stop", "match", "no_continuation", "interrupted" ("none"). */
const char *crn_gen_stop_name(enum crn_gen_stop r);

typedef struct crn_generator crn_generator;

/* model and vocab are borrowed (must outlive the generator); the model's
 * vocabulary size must equal the vocab's. Settings are applied as by
 * crn_generator_configure, and the RNG is seeded with s->seed. */
int crn_generator_create(crn_generator **out, crn_model *m, const crn_vocab *v, const crn_sample_settings *s);
void crn_generator_destroy(crn_generator *g); /* NULL is a no-op */

/* Apply new settings (compiles the regexes, resizes buffers: allocates).
 * The RNG and the hidden state are left as they are. On error the previous
 * settings stay in force. */
int crn_generator_configure(crn_generator *g, const crn_sample_settings *s);
/* Reseed the RNG. */
void crn_generator_seed(crn_generator *g, uint64_t seed);
/* Zero the hidden state (and forget the pending logits). */
void crn_generator_reset(crn_generator *g);
/* A flag (e.g. set by a SIGINT handler) checked at every step; NULL = none. */
void crn_generator_set_cancel(crn_generator *g, volatile sig_atomic_t *flag);
/* A new generator on the same model with g's settings, hidden state, pending
 * distribution, RNG state and cancel flag: the two continue identically. */
int crn_generator_fork(crn_generator **out, const crn_generator *g);

/* What priming found in a prompt. */
typedef struct crn_prime_info {
    size_t tokens;     /* tokens fed */
    size_t n_unk;      /* of which unknown (fed as <unk>) */
    char unknown[64];  /* distinct unknown characters, NUL-terminated, truncated at a character boundary */
    size_t open_raw;   /* jamo: the prompt ends in a syllable the continuation may still complete (L V,
                        * or a lone L): its length in bytes at the end of the prompt as given, else 0 */
} crn_prime_info;

/* Feed a prompt (valid UTF-8, normalised here with the vocab's norm) on top
 * of the current state. An empty prompt on a fresh state feeds "\n" if the
 * vocabulary has it (text starts after a line break), else <unk>.
 * In strict mode an unknown character is CRN_EINVAL (message names it and
 * its byte offset) and nothing is fed. info may be NULL. Allocates (prompt-sized).
 * @return 0 or a negative error (CRN_EUTF8 with the byte offset). */
int crn_generator_prime(crn_generator *g, const uint8_t *prompt, size_t n, crn_prime_info *info);

/* Receives each chunk of output as soon as it is final: complete, valid
 * UTF-8, never part of a --stop match (unless keep_stop). Return non-zero to
 * stop generation (reason "interrupted"). */
typedef int (*crn_emit_fn)(void *user, const uint8_t *s, size_t n);

typedef struct crn_gen_result {
    enum crn_gen_stop reason;
    size_t tokens;         /* tokens generated (including a withheld stop match) */
    size_t replaced;       /* jamo: text starts with the prompt's open syllable, completed; it replaces
                            * this many bytes at the end of the prompt (crn_prime_info.open_raw), else 0 */
    double mean_logprob;   /* nats per generated token under the model; 0 if none */
    const uint8_t *text;   /* everything emitted, valid until the next run/configure/destroy */
    size_t text_len;
} crn_gen_result;

/* Generate `length` characters (NFC code points of the text; beam search:
 * `length` tokens) after the primed state (primes with an empty prompt first
 * if nothing is pending). emit may be NULL. The state keeps advancing: a
 * following prime+run continues the same stream.
 *
 * Jamo unit: the text is always composed syllables. A leading consonant is
 * only ever followed by a vowel (other tokens get probability zero; if none
 * can follow, the consonant is dropped), a syllable counts as one character
 * once complete, and the last one is finished the model's way: when
 * `length` is reached inside a syllable, generation goes on while the drawn
 * token continues it (a vowel, a final consonant) and stops before the first
 * that does not (drawn, not fed). A prompt ending in an open syllable (L V,
 * or L) leaves it to the first generated token: if that completes it (adds a
 * final consonant, or a vowel), the text starts with the completed syllable,
 * which replaces the prompt's last character (res->replaced bytes, see also
 * crn_generator_replaced); otherwise the text is the plain continuation. A
 * run that ends in an L V syllable leaves it open the same way to a next run
 * primed with nothing (the REPL with the state kept and an empty line), whose
 * text may then start by restating it, completed.
 * @return 0 or a negative error (CRN_ELIMIT from a pathological regex, ...). */
int crn_generator_run(crn_generator *g, crn_emit_fn emit, void *user, crn_gen_result *res);
/* During (e.g. from the emit callback) or after a run: res->replaced so far
 * (it is decided before anything is emitted). */
size_t crn_generator_replaced(const crn_generator *g);

#endif
