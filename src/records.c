/* records.c — TSV/CSV tables with a header (records.h). One pass over the
 * file in memory: every read is checked against the end of the buffer; the
 * selected fields are copied (unquoted) into one arena the size of the file,
 * so the raw bytes stay intact for error positions. */
#include "records.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common.h"
#include "utf8.h"

typedef struct field {
    size_t raw;          // byte offset of the field (its opening quote if quoted) in the file
    size_t off, len;     // unquoted content in the arena (only for selected fields)
} field;

typedef struct rec {
    field text, label;
    size_t line, line_off; // line of the record's first byte and the offset where that line starts
} rec;

struct crn_records {
    char *path;
    uint8_t *raw, *data;
    size_t raw_len, data_len;
    rec *r;
    size_t n, cap;
    char *text_name, *label_name;
    int has_label;
};

/* Parser state over the raw bytes. */
typedef struct parser {
    crn_records *R;
    const uint8_t *b;
    size_t n, pos, line, line_off;
    int csv;
} parser;

/* Line and code-point column of byte off, scanning from a known line start. */
static void position(const crn_records *R, size_t line, size_t line_off, size_t off, size_t *oline, size_t *ocol) {
    size_t col = 1;
    for (size_t i = line_off; i < off && i < R->raw_len; i++) {
        if (R->raw[i] == '\n') {
            line++;
            col = 1;
        } else if ((R->raw[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    *oline = line;
    *ocol = col;
}

static int vfail_at(const crn_records *R, size_t line, size_t line_off, size_t off, int code, const char *fmt,
                    va_list ap) {
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l, c;
    position(R, line, line_off, off, &l, &c);
    return crn_error_set(code, "%s:%zu:%zu: %s", R->path, l, c, msg);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int pfail(const parser *p, size_t off, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(p->R, p->line, p->line_off, off, code, fmt, ap);
    va_end(ap);
    return rc;
}

int crn_records_fail(const crn_records *r, size_t i, int which, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const rec *x = &r->r[i];
    int rc = vfail_at(r, x->line, x->line_off, which ? x->label.raw : x->text.raw, code, fmt, ap);
    va_end(ap);
    return rc;
}

/* Is the record ending at pos (a '\n', "\r\n" or the end)? */
static int at_eol(const parser *p, size_t pos) {
    return pos >= p->n || p->b[pos] == '\n' || (p->b[pos] == '\r' && pos + 1 < p->n && p->b[pos + 1] == '\n') ||
           (p->b[pos] == '\r' && pos + 1 == p->n);
}

/* Parse one field at p->pos; if keep, copy its content to the arena.
 * Leaves p->pos on the separator or line end; *last = the record ended. */
static int parse_field(parser *p, field *f, int keep, int *last) {
    crn_records *R = p->R;
    const char sep = p->csv ? ',' : '\t';
    f->raw = p->pos;
    f->off = R->data_len;
    f->len = 0;
    if (p->csv && p->pos < p->n && p->b[p->pos] == '"') {
        size_t i = p->pos + 1;
        for (;;) {
            if (i >= p->n) return pfail(p, f->raw, CRN_EFORMAT, "unterminated quoted field (the quote opened here is never closed)");
            if (p->b[i] == '"') {
                if (i + 1 < p->n && p->b[i + 1] == '"') {
                    if (keep) R->data[R->data_len++] = '"';
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            if (keep) R->data[R->data_len++] = p->b[i];
            i++;
        }
        if (!at_eol(p, i) && p->b[i] != sep)
            return pfail(p, i, CRN_EFORMAT, "unexpected character after the closing quote of a field");
        p->pos = i;
    } else {
        size_t i = p->pos;
        while (!at_eol(p, i) && p->b[i] != sep) {
            if (p->csv && p->b[i] == '"')
                return pfail(p, i, CRN_EFORMAT, "quote inside an unquoted CSV field (quote the whole field and double the quote)");
            if (keep) R->data[R->data_len++] = p->b[i];
            i++;
        }
        p->pos = i;
    }
    f->len = R->data_len - f->off;
    *last = at_eol(p, p->pos);
    if (!*last) p->pos++; // the separator
    return 0;
}

/* Skip the line end at p->pos and any blank lines after it. */
static void next_line(parser *p) {
    for (size_t i = p->line_off; i < p->pos; i++) // line breaks inside quoted fields
        if (p->b[i] == '\n') {
            p->line++;
            p->line_off = i + 1;
        }
    for (;;) {
        if (p->pos < p->n && p->b[p->pos] == '\r') p->pos++;
        if (p->pos < p->n && p->b[p->pos] == '\n') p->pos++;
        p->line++;
        p->line_off = p->pos;
        if (p->pos < p->n && (p->b[p->pos] == '\n' || p->b[p->pos] == '\r') && at_eol(p, p->pos)) continue;
        return;
    }
}

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return crn_error_set(e == ENOENT ? CRN_ENOTFOUND : CRN_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return crn_error_set(CRN_EIO, "%s: not a regular file", path);
    }
    size_t cap = (size_t)st.st_size + 1, got = 0;
    uint8_t *b = malloc(cap);
    if (!b) {
        fclose(f);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory reading %zu bytes", path, cap);
    }
    got = fread(b, 1, cap - 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return crn_error_set(CRN_EIO, "%s: read error", path);
    }
    *buf = b;
    *len = got;
    return 0;
}

static int is_number(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Header: find the columns. *ti, *li: 0-based indices (li = -1: none). */
static int parse_header(parser *p, const crn_records_opts *o, long *ti, long *li, long *nf) {
    crn_records *R = p->R;
    size_t start = R->data_len, hdr = p->pos;
    field names[64];
    long k = 0;
    size_t cap = 64;
    field *fs = names;
    int last = 0, rc = 0;
    while (!last) {
        if ((size_t)k == cap) {
            field *nfs = malloc(2 * cap * sizeof *nfs);
            if (!nfs) return crn_error_set(CRN_ENOMEM, "%s: out of memory", R->path);
            memcpy(nfs, fs, cap * sizeof *fs);
            if (fs != names) free(fs);
            fs = nfs;
            cap *= 2;
        }
        if ((rc = parse_field(p, &fs[k], 1, &last))) goto out;
        R->data[R->data_len++] = 0; // names are NUL-terminated in the arena
        k++;
    }
    *nf = k;
    const char *want_t = o->text_col, *want_l = o->label_col ? o->label_col : "label";
    *ti = *li = -1;
    for (int pass = 0; pass < 2; pass++) {
        const char *want = pass == 0 ? want_t : want_l;
        long *idx = pass == 0 ? ti : li;
        if (want && is_number(want)) {
            long v = strtol(want, NULL, 10);
            if (v >= 1 && v <= k) *idx = v - 1;
            else if (pass == 0 || o->need_label || o->label_col) {
                rc = pfail(p, hdr, CRN_EFORMAT, "column %s requested, the header has %ld column%s", want, k, k == 1 ? "" : "s");
                goto out;
            }
            continue;
        }
        for (long j = 0; j < k && *idx < 0; j++) {
            const char *nm = (const char *)R->data + fs[j].off;
            if (want ? !strcmp(nm, want) : (!strcmp(nm, "document") || !strcmp(nm, "text"))) *idx = j;
        }
        if (*idx < 0 && (pass == 0 || o->need_label || o->label_col)) {
            rc = pfail(p, hdr, CRN_EFORMAT, "no %s column '%s' in the header (%ld column%s; use --%s-column NAME|N)",
                       pass == 0 ? "text" : "label", want ? want : "document' or 'text", k, k == 1 ? "" : "s",
                       pass == 0 ? "text" : "label");
            goto out;
        }
    }
    if (*ti == *li) {
        rc = pfail(p, hdr, CRN_EFORMAT, "the text and the label column are the same column (%ld)", *ti + 1);
        goto out;
    }
    R->text_name = strdup((const char *)R->data + fs[*ti].off);
    R->label_name = strdup(*li >= 0 ? (const char *)R->data + fs[*li].off : "");
    if (!R->text_name || !R->label_name) rc = crn_error_set(CRN_ENOMEM, "%s: out of memory", R->path);
out:
    if (fs != names) free(fs);
    R->data_len = start; // the names are copied; reuse the arena
    return rc;
}

/* One data record: all its fields, the selected ones kept. */
static int parse_record(parser *p, long ti, long li, long nf) {
    crn_records *R = p->R;
    if (R->n == R->cap) {
        size_t nc = R->cap ? 2 * R->cap : 1024;
        rec *nr = realloc(R->r, nc * sizeof *nr);
        if (!nr) return crn_error_set(CRN_ENOMEM, "%s: out of memory at line %zu", R->path, p->line);
        R->r = nr;
        R->cap = nc;
    }
    rec *x = &R->r[R->n];
    memset(x, 0, sizeof *x);
    x->line = p->line;
    x->line_off = p->line_off;
    int last = 0;
    long k = 0;
    field dummy;
    while (!last) {
        int keep = k == ti || k == li;
        field *f = k == ti ? &x->text : k == li ? &x->label : &dummy;
        int rc = parse_field(p, f, keep, &last);
        if (rc) return rc;
        k++;
        if (k > nf && !last) break;
    }
    if (k != nf)
        return pfail(p, p->pos, CRN_EFORMAT, "ragged row: %s%ld field%s, the header has %ld", k > nf ? "more than " : "",
                     k, k == 1 ? "" : "s", nf);
    if (x->text.len == 0)
        return crn_records_fail(R, R->n, 0, CRN_EFORMAT, "empty text in column '%s'", R->text_name);
    if (li >= 0 && x->label.len == 0)
        return crn_records_fail(R, R->n, 1, CRN_EFORMAT, "empty label in column '%s'", R->label_name);
    R->n++;
    return 0;
}

static int ends_with_csv(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && !strcasecmp(path + n - 4, ".csv");
}

int crn_records_load(crn_records **out, const char *path, const crn_records_opts *o) {
    *out = NULL;
    crn_records *R = calloc(1, sizeof *R);
    if (!R || !(R->path = strdup(path))) {
        free(R);
        return crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
    }
    int rc = read_file(path, &R->raw, &R->raw_len);
    if (rc) goto fail;
    R->data = malloc(R->raw_len + 1);
    if (!R->data) {
        rc = crn_error_set(CRN_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    crn_textpos bad;
    if ((rc = crn_utf8_validate(R->raw, R->raw_len, &bad))) {
        rc = crn_error_prefix(CRN_EUTF8, "%s:%zu:%zu", path, bad.line, bad.col);
        goto fail;
    }
    parser p = {.R = R, .b = R->raw, .n = R->raw_len, .line = 1};
    p.pos = p.line_off = crn_utf8_bom_len(R->raw, R->raw_len);
    p.csv = o->format == CRN_REC_CSV || (o->format == CRN_REC_AUTO && ends_with_csv(path));
    if (p.pos >= p.n) {
        rc = crn_error_set(CRN_EFORMAT, "%s:1:1: empty file (a header line and data rows are needed)", path);
        goto fail;
    }
    long ti, li, nf;
    if ((rc = parse_header(&p, o, &ti, &li, &nf))) goto fail;
    R->has_label = li >= 0;
    next_line(&p);
    while (p.pos < p.n) {
        if ((rc = parse_record(&p, ti, li, nf))) goto fail;
        next_line(&p);
    }
    if (R->n == 0) {
        rc = crn_error_set(CRN_EFORMAT, "%s:%zu:1: no data rows after the header", path, p.line);
        goto fail;
    }
    *out = R;
    return 0;
fail:
    crn_records_destroy(R);
    return rc;
}

void crn_records_destroy(crn_records *r) {
    if (!r) return;
    free(r->path);
    free(r->raw);
    free(r->data);
    free(r->r);
    free(r->text_name);
    free(r->label_name);
    free(r);
}

size_t crn_records_count(const crn_records *r) { return r->n; }
int crn_records_has_label(const crn_records *r) { return r->has_label; }
const char *crn_records_path(const crn_records *r) { return r->path; }
const char *crn_records_text_name(const crn_records *r) { return r->text_name; }
const char *crn_records_label_name(const crn_records *r) { return r->label_name; }

const uint8_t *crn_records_text(const crn_records *r, size_t i, size_t *len) {
    *len = r->r[i].text.len;
    return r->data + r->r[i].text.off;
}

const uint8_t *crn_records_label(const crn_records *r, size_t i, size_t *len) {
    *len = r->r[i].label.len;
    return r->data + r->r[i].label.off;
}
