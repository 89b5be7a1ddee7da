/* kernels.c — (being written) */
#include "kernels.h"
