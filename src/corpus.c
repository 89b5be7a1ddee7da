/* corpus.c — (being written) */
#include "corpus.h"
