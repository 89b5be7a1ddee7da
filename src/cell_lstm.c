/* cell_lstm.c — (being written) */
#include "real.h"
