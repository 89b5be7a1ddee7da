/* sampler.c — (being written) */
#include "sampler.h"
