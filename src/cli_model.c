/* cli_model.c — `charrnn eval MODEL FILE` (bits per char/token/byte of a text
 * under a model) and `charrnn info MODEL` (what a model file holds). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "byteorder.h"
#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "corpus.h"
#include "kernels.h"
#include "cli_progress.h"
#include "train.h"

/* ------------------------------------------------------------------------ */
/* eval */

static void eval_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn eval MODEL FILE [options]\n"
            "\n"
            "Cross-entropy of a UTF-8 text under a model, in bits per character (NFC code\n"
            "point), per token and per byte. The text is encoded with the model's\n"
            "vocabulary and normalisation; characters the model has never seen count as\n"
            "<unk> and are reported. Every character after the first is predicted; the\n"
            "text is cut into --batch rows, each run from a zero state.\n"
            "\n"
            "Options:\n"
            "      --json           one JSON object: bits_per_char, bits_per_token,\n"
            "                       bits_per_byte, chars, tokens, targets, unknown, invalid\n"
            "      --invalid P      invalid UTF-8: error | replace | skip (default replace)\n"
            "      --batch N        rows evaluated together (default 50)\n"
            "      --seq N          window length (default 50)\n"
            "      --threads N      threads, 0 = all cores (default 0)\n"
            "  -h, --help           show this help\n");
}

enum { E_JSON = 256, E_INVALID, E_BATCH, E_SEQ, E_THREADS };

int cli_eval(int argc, char **argv) {
    static const struct option lo[] = {
        {"json", no_argument, 0, E_JSON},
        {"invalid", required_argument, 0, E_INVALID},
        {"batch", required_argument, 0, E_BATCH},
        {"seq", required_argument, 0, E_SEQ},
        {"threads", required_argument, 0, E_THREADS},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *cmd = "eval";
    int json = 0, c, rc, status = CLI_EXIT_ERROR;
    long long B = 50, T = 50, threads = 0;
    enum crn_invalid inv = CRN_INVALID_REPLACE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'h': eval_usage(stdout); return CLI_EXIT_OK;
        case E_JSON: json = 1; break;
        case E_INVALID:
            if (crn_invalid_parse(optarg, &inv))
                return cli_usage_error(cmd, "--invalid: '%s' is not error, replace or skip", optarg);
            break;
        case E_BATCH:
            if (cli_parse_long(cmd, "--batch", optarg, 1, 4096, &B)) return CLI_EXIT_USAGE;
            break;
        case E_SEQ:
            if (cli_parse_long(cmd, "--seq", optarg, 1, 4096, &T)) return CLI_EXIT_USAGE;
            break;
        case E_THREADS:
            if (cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return CLI_EXIT_USAGE;
            break;
        default: return cli_bad_option(cmd);
        }
    }
    if (argc - optind < 2) return cli_usage_error(cmd, "expected MODEL and FILE");
    if (argc - optind > 2) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 2]);
    const char *mpath = argv[optind], *fpath = argv[optind + 1];

    crn_checkpoint *ck = NULL;
    crn_corpus *corp = NULL;
    if ((rc = crn_checkpoint_load(&ck, mpath)) < 0) return cli_fail(cmd, rc);
    crn_corpus_opts co;
    crn_corpus_opts_default(&co);
    co.unit = crn_vocab_unit(ck->vocab);
    co.norm = crn_vocab_norm(ck->vocab);
    co.invalid = inv;
    co.val_frac = 0;
    if ((rc = crn_corpus_load(&corp, fpath, &co, ck->vocab)) < 0) {
        status = cli_fail(cmd, rc);
        goto done;
    }
    crn_set_threads((int)threads);
    double nats = 0;
    uint64_t count = 0;
    if ((rc = crn_evaluate_ids(ck->model, corp, 0, corp->n_tokens, (uint32_t)B, (uint32_t)T, &nats, &count)) < 0) {
        status = cli_fail(cmd, rc);
        goto done;
    }
    double chars = crn_corpus_chars_predicted(corp, count);
    if (!isfinite(nats)) { /* finite weights can still overflow: a run that diverged */
        cli_error(cmd, "%s: the model's predictions on %s are not finite (NaN/Inf): its weights have blown up; "
                  "use an earlier checkpoint", mpath, fpath);
        goto done;
    }
    double bits = nats / M_LN2;
    double bpc = bits / chars, bpt = count ? bits / (double)count : NAN;
    double bpb = corp->n_bytes ? bits / (double)corp->n_bytes : NAN;
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, mpath, strlen(mpath));
        printf(", \"file\": ");
        cli_json_string(stdout, fpath, strlen(fpath));
        printf(", \"unit\": \"%s\", \"bits_per_char\": %.6f, \"bits_per_token\": %.6f, \"bits_per_byte\": %.6f, "
               "\"chars\": %llu, \"tokens\": %zu, \"targets\": %llu, \"bytes\": %llu, \"unknown\": %llu, "
               "\"invalid\": %llu}\n",
               crn_unit_name(co.unit), bpc, bpt, bpb, (unsigned long long)corp->n_nfc_chars, corp->n_tokens,
               (unsigned long long)count, (unsigned long long)corp->n_bytes, (unsigned long long)corp->n_unk,
               (unsigned long long)corp->n_invalid);
    } else {
        printf("%s under %s:\n", fpath, mpath);
        printf("  bits per char:  %.4f\n", bpc);
        printf("  bits per token: %.4f (%s)\n", bpt, crn_unit_name(co.unit));
        printf("  bits per byte:  %.4f\n", bpb);
        printf("  chars %llu, tokens %zu, bytes %llu\n", (unsigned long long)corp->n_nfc_chars, corp->n_tokens,
               (unsigned long long)corp->n_bytes);
        if (corp->n_unk)
            printf("  %llu tokens are not in the model's vocabulary (counted as <unk>)\n",
                   (unsigned long long)corp->n_unk);
        if (corp->n_invalid) printf("  %llu invalid UTF-8 sequences replaced\n", (unsigned long long)corp->n_invalid);
    }
    status = CLI_EXIT_OK;
done:
    crn_corpus_destroy(corp);
    crn_checkpoint_destroy(ck);
    return status;
}

/* ------------------------------------------------------------------------ */
/* info */

static void info_usage(FILE *f) {
    fprintf(f,
            "Usage: charrnn info MODEL [--json]\n"
            "\n"
            "Describe a model file: configuration, vocabulary (size and a preview),\n"
            "parameter count, optimizer state, training history, file size, and CRC-32\n"
            "checksums of the parameters and the optimizer state (equal checksums =\n"
            "bit-identical weights). Any damage to the file is reported, exit status 1.\n"
            "\n"
            "Options:\n"
            "      --json      one JSON object\n"
            "  -h, --help      show this help\n");
}

static const char *sched_name(enum crn_schedule_kind k) { return crn_schedule_name(k); }

/* Up to max tokens (ids 1..) as display text; control characters escaped. */
static size_t vocab_preview(const crn_vocab *v, char *buf, size_t cap, uint32_t max) {
    size_t n = 0;
    uint32_t V = crn_vocab_size(v);
    for (uint32_t id = 1; id < V && id <= max; id++) {
        size_t len;
        const uint8_t *t = crn_vocab_token(v, id, &len);
        char esc[8];
        const char *s = (const char *)t;
        size_t k = len;
        if (len == 1 && t[0] < 0x20) {
            if (t[0] == '\n') s = "\\n";
            else if (t[0] == '\t') s = "\\t";
            else {
                snprintf(esc, sizeof esc, "\\x%02x", t[0]);
                s = esc;
            }
            k = strlen(s);
        } else if (len == 1 && t[0] == ' ') {
            s = "\xE2\x90\xA3"; /* ␣ */
            k = 3;
        }
        if (n + k + 1 >= cap) break;
        memcpy(buf + n, s, k);
        n += k;
    }
    buf[n] = 0;
    return n;
}

static void json_num(const char *key, double v, int comma) {
    if (isfinite(v)) printf("\"%s\": %.6f", key, v);
    else printf("\"%s\": null", key);
    if (comma) printf(", ");
}

enum { I_JSON = 256 };

/* What `info` shows, for the two output formats. */
typedef struct info_view {
    const char *path;
    long long fsize;                 /* -1: unknown */
    const crn_checkpoint *ck;
    const crn_model_config *cfg;
    size_t np;                       /* parameters */
    uint32_t pcrc, ocrc;             /* CRC-32 of the parameters, of the optimizer state */
    const char *preview;             /* the first tokens, plen bytes */
    size_t plen;
    uint32_t V;
    enum crn_unit unit;
    enum crn_norm norm;
    int have_state;                  /* o and s hold the training state */
    const crn_train_opts *o;
    const crn_train_status *s;
} info_view;

static void print_info_json(const info_view *v) {
    const crn_model_config *cfg = v->cfg;
    const crn_train_status *s = v->s;
    const crn_train_opts *o = v->o;
    printf("{\"file\": ");
    cli_json_string(stdout, v->path, strlen(v->path));
    printf(", \"file_size\": %lld, \"cell\": \"%s\", \"activation\": \"%s\", \"layers\": %u, \"hidden\": %u, "
           "\"embed\": %u, \"dropout\": %g, \"layer_norm\": %s, \"vocab_size\": %u, \"unit\": \"%s\", \"normalize\": \"%s\", "
           "\"params\": %zu, \"params_crc32\": \"%08x\", ",
           v->fsize, crn_cell_name(cfg->cell), crn_act_name(cfg->act), cfg->layers, cfg->hidden, cfg->embed,
           (double)cfg->dropout, cfg->layer_norm ? "true" : "false", v->V, crn_unit_name(v->unit), crn_norm_name(v->norm), v->np, v->pcrc);
    printf("\"vocab_preview\": ");
    cli_json_string(stdout, v->preview, v->plen);
    if (v->ck->optim)
        printf(", \"optimizer\": \"%s\", \"optimizer_updates\": %llu, \"optimizer_crc32\": \"%08x\"",
               crn_optim_name(v->ck->optim->cfg.kind), (unsigned long long)v->ck->optim->t, v->ocrc);
    else
        printf(", \"optimizer\": null");
    if (v->have_state) {
        printf(", \"training\": {\"step\": %llu, \"epoch\": %llu, \"window\": %llu, \"seconds\": %.3f, ",
               (unsigned long long)s->step, (unsigned long long)s->epoch, (unsigned long long)s->win, s->elapsed);
        json_num("best_val_bpc", s->has_best ? s->best_val_bpc : NAN, 1);
        printf("\"best_step\": %llu, \"evals\": %llu, ", (unsigned long long)s->best_step,
               (unsigned long long)s->n_evals);
        json_num("first_val_bpc", s->first_val_bpc, 1);
        json_num("last_val_bpc", s->last_val_bpc, 1);
        json_num("last_train_bpc", s->last_train_bpc, 1);
        printf("\"tokens_seen\": %llu, \"nonfinite_skipped\": %u, \"stop\": \"%s\", \"run_id\": \"%016llx\", ",
               (unsigned long long)s->tokens_seen, s->nonfinite_total,
               crn_train_stop_name((enum crn_train_stop)s->stop_reason), (unsigned long long)s->run_id);
        printf("\"corpus\": ");
        cli_json_string(stdout, o->corpus_path ? o->corpus_path : "", o->corpus_path ? strlen(o->corpus_path) : 0);
        printf(", \"batch\": %u, \"seq\": %u, \"lr\": %g, \"clip\": %g, \"schedule\": \"%s\", \"seed\": %llu, ",
               o->batch, o->seq, (double)o->optim.lr, o->clip, sched_name(o->sched.kind),
               (unsigned long long)o->seed);
        printf("\"init\": \"%s\", ", crn_init_name(o->init.kind));
        json_num("forget_bias", o->init.forget_bias, 0);
        printf("}");
    } else {
        printf(", \"training\": null");
    }
    printf("}\n");
}

static void print_info_text(const info_view *v) {
    const crn_model_config *cfg = v->cfg;
    const crn_train_status *s = v->s;
    const crn_train_opts *o = v->o;
    printf("%s: %lld bytes\n", v->path, v->fsize);
    printf("  model:       %s", crn_cell_name(cfg->cell));
    if (cfg->cell == CRN_CELL_RNN) printf(" (%s)", crn_act_name(cfg->act));
    printf(", %u layers x %u hidden, %s input", cfg->layers, cfg->hidden, cfg->embed ? "embedding" : "one-hot");
    if (cfg->embed) printf(" (%u)", cfg->embed);
    if (cfg->dropout > 0) printf(", dropout %g", (double)cfg->dropout);
    if (cfg->layer_norm) printf(", layer norm");
    printf("\n  parameters:  %zu (crc32 %08x)\n", v->np, v->pcrc);
    printf("  vocabulary:  %u tokens (%s, %s): %s%s\n", v->V, crn_unit_name(v->unit), crn_norm_name(v->norm),
           v->preview, v->V > 61 ? "..." : "");
    if (v->ck->optim)
        printf("  optimizer:   %s state after %llu updates (crc32 %08x)\n", crn_optim_name(v->ck->optim->cfg.kind),
               (unsigned long long)v->ck->optim->t, v->ocrc);
    else
        printf("  optimizer:   no state (model only)\n");
    if (v->have_state) {
        char el[32];
        printf("  training:    step %llu (epoch %llu, window %llu), %s of training, %.3g M tokens seen\n",
               (unsigned long long)s->step, (unsigned long long)s->epoch, (unsigned long long)s->win,
               cli_format_duration(el, sizeof el, s->elapsed), (double)s->tokens_seen / 1e6);
        printf("               corpus %s; batch %u x seq %u; %s lr %g, clip %g, %s schedule; seed %llu\n",
               o->corpus_path ? o->corpus_path : "?", o->batch, o->seq, crn_optim_name(o->optim.kind),
               (double)o->optim.lr, o->clip, sched_name(o->sched.kind), (unsigned long long)o->seed);
        printf("               init %s", crn_init_name(o->init.kind));
        if (v->cfg->cell == CRN_CELL_LSTM && isfinite(o->init.forget_bias))
            printf(", forget bias %g", (double)o->init.forget_bias);
        printf("\n");
        if (s->has_best)
            printf("  validation:  best %.4f bits/char at step %llu; first %.4f, last %.4f (%llu evals)\n",
                   s->best_val_bpc, (unsigned long long)s->best_step, s->first_val_bpc, s->last_val_bpc,
                   (unsigned long long)s->n_evals);
        else
            printf("  validation:  none yet\n");
        if (isfinite(s->last_train_bpc)) printf("  train:       %.4f bits/char (last eval)\n", s->last_train_bpc);
        if (s->nonfinite_total) printf("  skipped:     %u non-finite steps\n", s->nonfinite_total);
        printf("  status:      %s\n", crn_train_stop_name((enum crn_train_stop)s->stop_reason));
    } else {
        printf("  training:    no training state\n");
    }
}

int cli_info(int argc, char **argv) {
    static const struct option lo[] = {
        {"json", no_argument, 0, I_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *cmd = "info";
    int json = 0, c, rc, status = CLI_EXIT_ERROR;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'h': info_usage(stdout); return CLI_EXIT_OK;
        case I_JSON: json = 1; break;
        default: return cli_bad_option(cmd);
        }
    }
    if (argc - optind < 1) return cli_usage_error(cmd, "expected MODEL");
    if (argc - optind > 1) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    if ((rc = cli_classify_info(cmd, path, json)) >= 0) return rc;
    crn_checkpoint *ck = NULL;
    crn_train_opts o;
    crn_train_status s;
    int have_state = 0;
    crn_train_opts_default(&o);
    memset(&s, 0, sizeof s);
    if ((rc = crn_checkpoint_load(&ck, path)) < 0) return cli_fail(cmd, rc);
    if (ck->train_blob) {
        crn_train_opts_free(&o);
        if ((rc = crn_train_blob_decode(&o, &s, ck->train_blob, ck->train_blob_len)) < 0) {
            crn_error_prefix(rc, "%s", path);
            status = cli_fail(cmd, rc);
            crn_checkpoint_destroy(ck);
            return status;
        }
        have_state = 1;
    }
    struct stat sb;
    long long fsize = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    const crn_model_config *cfg = &ck->cfg;
    size_t np = crn_model_num_params(ck->model);
    uint32_t pcrc = crn_crc32(0, crn_model_params(ck->model), np * sizeof(real));
    uint32_t ocrc = 0;
    int nbuf = ck->optim ? crn_optim_num_buffers(ck->optim) : 0;
    if (ck->optim) {
        uint64_t t = ck->optim->t;
        uint8_t tb[8];
        crn_le_put_u64(tb, t);
        ocrc = crn_crc32(0, tb, 8);
        for (int i = 0; i < nbuf; i++) ocrc = crn_crc32(ocrc, crn_optim_buffer(ck->optim, i), ck->optim->n * sizeof(float));
    }
    char preview[1024];
    size_t plen = vocab_preview(ck->vocab, preview, sizeof preview, 60);
    uint32_t V = crn_vocab_size(ck->vocab);
    enum crn_unit unit = crn_vocab_unit(ck->vocab);
    enum crn_norm norm = crn_vocab_norm(ck->vocab);

    info_view view = {path, fsize, ck, cfg, np, pcrc, ocrc, preview, plen, V, unit, norm, have_state, &o, &s};
    if (json) print_info_json(&view);
    else print_info_text(&view);
    status = CLI_EXIT_OK;
    crn_train_opts_free(&o);
    crn_train_status_free(&s);
    crn_checkpoint_destroy(ck);
    return status;
}
