/* regex.c — (being written) */
#include "regex.h"
