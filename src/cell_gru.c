/* cell_gru.c — (being written) */
#include "real.h"
