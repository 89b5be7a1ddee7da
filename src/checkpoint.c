/* checkpoint.c — (being written) */
#include "checkpoint.h"
