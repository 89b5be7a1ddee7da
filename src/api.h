/* api.h — what the public API's wrappers (api_*.c) share: the handle behind
 * charrnn_model. Internal: not installed. */
#ifndef CRN_API_H
#define CRN_API_H

#include "charrnn.h"
#include "checkpoint.h"

struct charrnn_model {
    crn_checkpoint *ck; /* owned: config, vocabulary, parameters */
};

#endif
