/* train.c — (being written) */
#include "train.h"
