/* records.h — labelled text tables: TSV or CSV with a header line.
 *
 * TSV: fields separated by TAB, one record per line, no quoting (the IANA
 * text/tab-separated-values rule: a field holds no TAB or line break; quotes
 * are ordinary characters, as in NSMC). CSV: RFC 4180 — fields separated by
 * ',', a field may be enclosed in double quotes, and then holds commas, line
 * breaks and quotes written twice (""); a quote anywhere else is an error.
 * Both: CRLF or LF line ends, an optional UTF-8 BOM, blank lines skipped, the
 * whole file must be valid UTF-8 (no NUL), every record must have as many
 * fields as the header.
 *
 * Columns are chosen by header name or by 1-based number. Every error is a
 * one-line message "PATH:LINE:COL: what is wrong" (COL in code points,
 * 1-based, of the offending field or byte) with CRN_EFORMAT (CRN_EUTF8 for
 * invalid UTF-8). The file is read once into memory; the selected fields are
 * kept (unquoted) in one buffer. */
#ifndef CRN_RECORDS_H
#define CRN_RECORDS_H

#include <stddef.h>
#include <stdint.h>

enum crn_rec_format { CRN_REC_AUTO = 0, CRN_REC_TSV = 1, CRN_REC_CSV = 2 };

typedef struct crn_records_opts {
    enum crn_rec_format format; /* AUTO: CSV if the path ends in .csv (any case), else TSV */
    const char *text_col;       /* NAME or N; NULL: "document", else "text" */
    const char *label_col;      /* NAME or N; NULL: "label" */
    int need_label;             /* the label column must exist (train, eval) */
} crn_records_opts;

typedef struct crn_records crn_records;

/* @return 0 or CRN_ENOTFOUND/CRN_EIO (open/read), CRN_EUTF8, CRN_EFORMAT
 * (missing column, ragged row, quote errors, empty text, empty label, no data
 * rows), CRN_ENOMEM. */
int crn_records_load(crn_records **out, const char *path, const crn_records_opts *o);
void crn_records_destroy(crn_records *r); /* NULL is a no-op */

size_t crn_records_count(const crn_records *r);
int crn_records_has_label(const crn_records *r);
const char *crn_records_path(const crn_records *r);
/* Header names of the selected columns. */
const char *crn_records_text_name(const crn_records *r);
const char *crn_records_label_name(const crn_records *r);
/* Field bytes of record i (valid UTF-8, not NUL-terminated). */
const uint8_t *crn_records_text(const crn_records *r, size_t i, size_t *len);
const uint8_t *crn_records_label(const crn_records *r, size_t i, size_t *len);

/* Record an error at record i's text (which = 0) or label (which = 1) field:
 * "PATH:LINE:COL: message". @return code. */
int crn_records_fail(const crn_records *r, size_t i, int which, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif
