/* train.h */
#ifndef CRN_TRAIN_H
#define CRN_TRAIN_H
#endif
