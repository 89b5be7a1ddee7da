/* vocab.h — tokens <-> ids.
 *
 * A vocabulary is built in two phases: count tokens of (normalised, valid)
 * text with crn_vocab_count(), then crn_vocab_finalize() assigns ids:
 * id 0 is <unk>; ids 1.. are the tokens sorted by their UTF-8 bytes (= code
 * point order), so the same text always gives the same ids. Tokens seen fewer
 * than min_count times map to <unk>.
 *
 * Encoding splits text into tokens with the vocabulary's unit (utf8.h) and
 * looks each up; unknown tokens become CRN_UNK. Decoding is streaming-safe
 * (crn_decoder): every chunk it returns is complete, valid UTF-8, and in jamo
 * mode syllables are recomposed before they are emitted. */
#ifndef CRN_VOCAB_H
#define CRN_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

#define CRN_UNK 0u
#define CRN_UNK_TEXT "\xEF\xBF\xBD" /* <unk> decodes to U+FFFD */

typedef struct crn_vocab crn_vocab;

/* @return 0 or CRN_ENOMEM. */
int crn_vocab_create(crn_vocab **out, enum crn_unit unit, enum crn_norm norm);
void crn_vocab_destroy(crn_vocab *v); /* NULL is a no-op */

enum crn_unit crn_vocab_unit(const crn_vocab *v);
enum crn_norm crn_vocab_norm(const crn_vocab *v);

/* Counting phase: add the tokens of text (valid, normalised UTF-8; may be
 * called once per piece of a text cut after '\n'). On CRN_EUTF8 the tokens
 * before the bad byte stay counted. */
int crn_vocab_count(crn_vocab *v, const uint8_t *text, size_t n);
/* Assign ids (see above). After this, counting is refused (CRN_EINVAL). */
int crn_vocab_finalize(crn_vocab *v, uint64_t min_count);

/* Number of ids including <unk> (>= 1 after finalize). */
uint32_t crn_vocab_size(const crn_vocab *v);
/* Bytes of token id (not NUL-terminated; <unk> gives CRN_UNK_TEXT). */
const uint8_t *crn_vocab_token(const crn_vocab *v, uint32_t id, size_t *len);
/* How often id was counted (for <unk>: the total count of tokens mapped to it). */
uint64_t crn_vocab_freq(const crn_vocab *v, uint32_t id);
/* Id of one token (its exact bytes), CRN_UNK if absent. */
uint32_t crn_vocab_lookup(const crn_vocab *v, const uint8_t *tok, size_t len);

/* Encode text (valid UTF-8, already normalised with crn_vocab_norm(v):
 * see crn_utf8_normalize) into ids; out must hold at least n entries (every token takes
 * at least one byte of text; in jamo mode a 3-byte syllable gives at most 3
 * tokens). @return number of ids written (>= 0) or a negative error;
 * *n_unk (may be NULL) receives the count of unknown tokens. */
long long crn_vocab_encode(const crn_vocab *v, const uint8_t *text, size_t n,
                           uint32_t *out, size_t *n_unk);

/* Add tokens to a finalized vocabulary (fine-tuning with --extend-vocab):
 * new tokens get ids after the existing ones (existing ids never change),
 * sorted by bytes among themselves, with their counts in text as freq
 * (existing tokens' freq is unchanged; min_count does not apply).
 * @return number of tokens added (>= 0) or a negative error. */
long long crn_vocab_extend(crn_vocab *v, const uint8_t *text, size_t n);

/* Serialise: a self-contained little-endian byte string ("CRNV", u32
 * version, u32 unit, u32 norm, u32 size (ids incl. <unk>), u64 freq of <unk>,
 * u32 nruns, u32 run lengths (ids 1.. come in runs each sorted by bytes: the
 * finalized set, then one run per extend), then per token id 1..: u32 length,
 * bytes, u64 freq). Deserialise bounds-checks everything and returns
 * CRN_EFORMAT on any inconsistency (truncation, trailing bytes, duplicate or
 * unsorted tokens, invalid UTF-8, a token that is not one code point in
 * codepoint/jamo units, absurd counts). Only finalized vocabularies. */
int crn_vocab_serialize(const crn_vocab *v, uint8_t **buf, size_t *len); /* *buf malloc'ed */
int crn_vocab_deserialize(crn_vocab **out, const uint8_t *buf, size_t len);

/* Deep copy of a finalized vocabulary. @return 0, CRN_EINVAL or CRN_ENOMEM. */
int crn_vocab_clone(crn_vocab **out, const crn_vocab *v);

/* Length in bytes of the longest token (>= 3, the length of <unk>'s text):
 * size decoder output buffers as CRN_DECODER_HOLD + this. */
size_t crn_vocab_max_token_len(const crn_vocab *v);

/* Streaming decoder. Push ids one at a time; each call appends to out the
 * bytes that are now final (complete, valid UTF-8) and returns how many.
 * In jamo mode a leading consonant (L) and vowel (V) are held until the next
 * token shows whether a trailing consonant (T) follows; crn_decoder_finish()
 * emits whatever is held (dangling jamo as themselves, still valid UTF-8).
 * out must have room for CRN_DECODER_HOLD bytes plus the token's length
 * (if it has not, nothing is written, 0 is returned and CRN_ERANGE recorded).
 * Ids >= crn_vocab_size() decode like <unk> (U+FFFD). Only jamo vocabularies
 * hold anything; they recompose modern conjoining jamo L V [T] (so NFC/NFKC
 * text round-trips exactly; under `none`, decomposed Hangul typed as raw
 * conjoining jamo comes back precomposed). */
#define CRN_DECODER_HOLD 16
typedef struct crn_decoder {
    const crn_vocab *v;
    int32_t held[3];
    int nheld;
} crn_decoder;

void crn_decoder_init(crn_decoder *d, const crn_vocab *v);
size_t crn_decoder_push(crn_decoder *d, uint32_t id, uint8_t *out, size_t cap);
size_t crn_decoder_finish(crn_decoder *d, uint8_t *out, size_t cap);

/* Decode a whole id sequence (convenience): *out malloc'ed, valid UTF-8. */
int crn_vocab_decode(const crn_vocab *v, const uint32_t *ids, size_t n, uint8_t **out, size_t *out_len);

#endif
