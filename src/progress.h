/* progress.h */
#ifndef CRN_PROGRESS_H
#define CRN_PROGRESS_H
#endif
