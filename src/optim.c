/* optim.c — (being written) */
#include "optim.h"
