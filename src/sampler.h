/* sampler.h — turning logits into tokens, and the generation loop: prime the
 * state with a prompt, then sample a token, feed it back, repeat; stop on
 * length, a --stop regex, or a --match constraint becoming complete.
 * (Owned by the generation work; see issue "charrnn generate and repl".) */
#ifndef CRN_SAMPLER_H
#define CRN_SAMPLER_H
#endif
