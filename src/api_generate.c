/* api_generate.c — the public API's generator: sampling settings applied
 * through crn_generator_configure, priming and streaming through the
 * sampler (sampler.c is the only sampling routine). */
#include <stdlib.h>

#include "api.h"
#include "common.h"
#include "sampler.h"

struct charrnn_generator {
    charrnn_model *m;          /* borrowed */
    crn_generator *g;
    crn_sample_settings s;     /* what g runs with */
    charrnn_text_fn cb;        /* of the run in progress */
    void *user;
};

void charrnn_generator_destroy(charrnn_generator *g) {
    if (!g) return;
    crn_generator_destroy(g->g);
    crn_sample_settings_free(&g->s);
    free(g);
}

static int make(charrnn_generator **out, charrnn_model *m, charrnn_generator **gp) {
    if (!out) return crn_error_set(CRN_EINVAL, "charrnn_generator: out is NULL");
    *out = NULL;
    if (!m) return crn_error_set(CRN_EINVAL, "charrnn_generator: model is NULL");
    charrnn_generator *g = calloc(1, sizeof *g);
    if (!g) return crn_error_set(CRN_ENOMEM, "generator: out of memory");
    g->m = m;
    crn_sample_settings_init(&g->s);
    *gp = g;
    return 0;
}

int charrnn_generator_create(charrnn_generator **out, charrnn_model *m) {
    charrnn_generator *g = NULL;
    int err = make(out, m, &g);
    if (err < 0) return err;
    if ((err = crn_generator_create(&g->g, m->ck->model, m->ck->vocab, &g->s)) < 0) {
        charrnn_generator_destroy(g);
        return err;
    }
    *out = g;
    return 0;
}

int charrnn_generator_fork(charrnn_generator **out, const charrnn_generator *src) {
    if (!src) return crn_error_set(CRN_EINVAL, "charrnn_generator_fork: generator is NULL");
    charrnn_generator *g = NULL;
    int err = make(out, src->m, &g);
    if (err < 0) return err;
    if ((err = crn_sample_settings_copy(&g->s, &src->s)) < 0 || (err = crn_generator_fork(&g->g, src->g)) < 0) {
        charrnn_generator_destroy(g);
        return err;
    }
    *out = g;
    return 0;
}

/* Apply the edited copy s: on success it becomes g->s, else g is unchanged. */
static int apply(charrnn_generator *g, crn_sample_settings *s, int err) {
    if (err >= 0) err = crn_sample_settings_check(s);
    if (err >= 0) err = crn_generator_configure(g->g, s);
    if (err < 0) {
        crn_sample_settings_free(s);
        return err;
    }
    crn_sample_settings_free(&g->s);
    g->s = *s;
    return 0;
}

/* Start an edit of g's settings: a deep copy in *s. */
static int edit(charrnn_generator *g, crn_sample_settings *s) {
    if (!g) return crn_error_set(CRN_EINVAL, "charrnn_generator: generator is NULL");
    crn_sample_settings_init(s);
    return crn_sample_settings_copy(s, &g->s);
}

#define SETTER(name, type, field)                                                                                    \
    int charrnn_generator_set_##name(charrnn_generator *g, type value) {                                            \
        crn_sample_settings s;                                                                                       \
        int err = edit(g, &s);                                                                                       \
        if (err < 0) return err;                                                                                     \
        s.field = value;                                                                                             \
        return apply(g, &s, 0);                                                                                      \
    }
SETTER(temperature, double, temperature)
SETTER(top_k, uint32_t, top_k)
SETTER(top_p, double, top_p)
SETTER(length, uint32_t, length)
SETTER(beam, uint32_t, beam)
SETTER(keep_stop, int, keep_stop)
SETTER(strict, int, strict)

int charrnn_generator_set_seed(charrnn_generator *g, uint64_t seed) {
    if (!g) return crn_error_set(CRN_EINVAL, "charrnn_generator: generator is NULL");
    g->s.seed = seed;
    crn_generator_seed(g->g, seed);
    return 0;
}

int charrnn_generator_add_stop(charrnn_generator *g, const char *regex) {
    if (!regex) return crn_error_set(CRN_EINVAL, "charrnn_generator_add_stop: regex is NULL");
    crn_sample_settings s;
    int err = edit(g, &s);
    return err < 0 ? err : apply(g, &s, crn_sample_settings_add_stop(&s, regex));
}

int charrnn_generator_clear_stops(charrnn_generator *g) {
    crn_sample_settings s;
    int err = edit(g, &s);
    if (err < 0) return err;
    crn_sample_settings_clear_stops(&s);
    return apply(g, &s, 0);
}

int charrnn_generator_set_match(charrnn_generator *g, const char *regex) {
    crn_sample_settings s;
    int err = edit(g, &s);
    return err < 0 ? err : apply(g, &s, crn_sample_settings_set_match(&s, regex));
}

long long charrnn_generator_prime(charrnn_generator *g, const char *text, size_t len) {
    if (!g || (!text && len)) return crn_error_set(CRN_EINVAL, "charrnn_generator_prime: NULL argument");
    crn_prime_info info;
    int err = crn_generator_prime(g->g, (const uint8_t *)text, len, &info);
    return err < 0 ? err : (long long)info.n_unk;
}

static int forward_text(void *user, const uint8_t *s, size_t n) {
    charrnn_generator *g = user;
    return g->cb(g->user, (const char *)s, n);
}

int charrnn_generator_generate(charrnn_generator *g, charrnn_text_fn cb, void *user, charrnn_generation *out) {
    if (!g) return crn_error_set(CRN_EINVAL, "charrnn_generator_generate: generator is NULL");
    g->cb = cb;
    g->user = user;
    crn_gen_result res;
    int err = crn_generator_run(g->g, cb ? forward_text : NULL, g, &res);
    g->cb = NULL;
    if (err < 0) return err;
    if (out) {
        out->stop_reason = (int)res.reason;
        out->tokens = res.tokens;
        out->mean_logprob = res.mean_logprob;
        out->text = (const char *)res.text;
        out->text_len = res.text_len;
    }
    return 0;
}

void charrnn_generator_reset(charrnn_generator *g) {
    if (g) crn_generator_reset(g->g);
}

const char *charrnn_stop_reason_name(int reason) { return crn_gen_stop_name((enum crn_gen_stop)reason); }

_Static_assert((int)CHARRNN_STOP_LENGTH == (int)CRN_GEN_STOP_LENGTH && (int)CHARRNN_STOP_REGEX == (int)CRN_GEN_STOP_REGEX &&
                   (int)CHARRNN_STOP_MATCH == (int)CRN_GEN_STOP_MATCH && (int)CHARRNN_STOP_NO_CONTINUATION == (int)CRN_GEN_STOP_NO_CONTINUATION &&
                   (int)CHARRNN_STOP_INTERRUPTED == (int)CRN_GEN_STOP_INTERRUPTED,
               "public and internal stop reasons differ");
