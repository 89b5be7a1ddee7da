/* vocab.c — (being written) */
#include "vocab.h"
