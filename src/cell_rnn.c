/* cell_rnn.c — (being written) */
#include "real.h"
