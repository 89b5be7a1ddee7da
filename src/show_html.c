/* show_html.c — the `charrnn show` page (one self-contained HTML file: inline
 * CSS and JS, no external resource) and its CSV, from a crn_show (show.h).
 *
 * Text is data: every character of the text and of every token goes through
 * html_text() (& < > " ' as entities, control characters as their visible
 * Control Pictures U+2400..) or, inside the JSON data block, through
 * json_str() (< > & as \u escapes, so no "</script" can appear). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "show.h"

#define SURPRISE_LEVELS 10 /* classes s0..s9 */
#define NEURON_LEVELS 11   /* classes n0..n10, n5 = 0 */

static const char *const surprise_colours[SURPRISE_LEVELS] = {
    "#ffffff", "#fff3cf", "#ffe6a3", "#ffd27f", "#ffbb62", "#ff9f4e", "#f97f40", "#ea5c38", "#d23b32", "#a8202b",
};
static const char *const neuron_colours[NEURON_LEVELS] = {
    "#2166ac", "#4393c3", "#7fb4d8", "#b4d3e8", "#dde9f3", "#ffffff",
    "#fae1d6", "#f4b49a", "#e8836a", "#d2544a", "#b2182b",
};

static void html_text(FILE *f, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        case '\n': case '\t': fputc(c, f); break;
        default:
            if (c < 0x20) fprintf(f, "&#x%x;", 0x2400 + c); /* ␍ ␀ ... drawn, never interpreted */
            else if (c == 0x7f) fputs("&#x2421;", f);
            else fputc(c, f);
        }
    }
}

static void html_str(FILE *f, const char *s) { html_text(f, (const uint8_t *)s, strlen(s)); }

static void json_str(FILE *f, const uint8_t *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"') fputs("\\\"", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v, int digits) {
    if (isfinite(v)) fprintf(f, "%.*g", digits, v);
    else fputs("null", f);
}

/* Colour class of a character on the main text. */
/* Colour class of a character on the main text: whole bits (a log scale,
 * also for the probabilities of a generated text: class i is p in
 * (2^-(i+1), 2^-i]). */
static int surprise_level(const crn_show_char *c) {
    if (isnan(c->bits)) return -1;
    return (int)fmin(fmax(floor(c->bits), 0), SURPRISE_LEVELS - 1);
}

/* Scale of a unit's colours: hidden states of bounded cells are in [-1, 1];
 * cell states (and ReLU states) get their largest magnitude in the text. */
static double unit_scale(const crn_show *s, size_t j, int bounded) {
    if (bounded) return 1;
    double mx = 0;
    size_t units = (size_t)s->layers * s->hidden;
    for (size_t i = 0; i < s->n_chars; i++) mx = fmax(mx, fabs(s->act[i * units + j]));
    return mx > 0 ? mx : 1;
}

static const char CSS[] =
    "body{font:15px/1.45 system-ui,'Noto Sans','NanumGothic',sans-serif;margin:0;background:#fafafa;color:#222}"
    "header,main{max-width:1200px;margin:0 auto;padding:0 16px}"
    "h1{font-size:20px;margin:14px 0 4px}h2{font-size:17px;margin:18px 0 6px}h3{font-size:14px;margin:12px 0 4px}"
    ".stats{color:#555;margin:2px 0}.cap{background:#fff4c2;border:1px solid #e0c040;padding:4px 8px;margin:6px 0}"
    ".grid{display:grid;grid-template-columns:minmax(0,1fr) 260px;gap:16px;align-items:start}"
    ".txt{white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:plaintext;tab-size:8;"
    "font-family:'DejaVu Sans Mono','NanumGothicCoding',monospace;font-size:14px;line-height:1.6;background:#fff;"
    "border:1px solid #ddd;padding:8px;max-height:70vh;overflow:auto}"
    ".neuron .txt{max-height:12em}"
    ".txt span{cursor:pointer;border-radius:2px}.txt span.sel{outline:2px solid #000;outline-offset:0}"
    ".nl::before{content:'\\21b5';color:#aaa}.sx{background:#eee;color:#888}.pre{opacity:.55}"
    ".legend{display:flex;flex-wrap:wrap;align-items:center;gap:0;margin:4px 0;font-size:12px}"
    ".legend span{display:inline-block;min-width:30px;text-align:center;padding:1px 3px;border:1px solid #ccc;"
    "margin-right:-1px}.legend b{margin-right:8px;font-weight:600}"
    "#info{position:sticky;top:8px;background:#fff;border:1px solid #bbb;padding:8px;font-size:13px;min-height:120px}"
    "#info .ch{font-size:26px;font-family:'DejaVu Sans Mono','NanumGothicCoding',monospace}"
    "#info table{border-collapse:collapse;width:100%}#info td{padding:1px 4px}#info tr.act{font-weight:700}"
    "#info .bar{background:#7fb4d8;height:8px}"
    "@media (max-width:700px){.grid{grid-template-columns:1fr}#info{position:fixed;bottom:0;left:0;right:0;top:auto}}";

static void write_classes(FILE *f) {
    for (int i = 0; i < SURPRISE_LEVELS; i++)
        fprintf(f, ".s%d{background:%s%s}", i, surprise_colours[i], i >= 8 ? ";color:#fff" : "");
    for (int i = 0; i < NEURON_LEVELS; i++)
        fprintf(f, ".n%d{background:%s%s}", i, neuron_colours[i], i <= 1 || i >= 9 ? ";color:#fff" : "");
}

static void legend_surprise(FILE *f, enum crn_show_mode mode) {
    fputs("<div class=\"legend\" id=\"legend\">", f);
    if (mode == CRN_SHOW_GENERATED) {
        fputs("<b>probability of the chosen character</b>", f);
        for (int i = 0; i < SURPRISE_LEVELS; i++)
            fprintf(f, "<span class=\"s%d\">%s%.2g</span>", i, i < SURPRISE_LEVELS - 1 ? "&gt;" : "&le;",
                    exp2(-(i + 1 < SURPRISE_LEVELS ? i + 1 : i)));
    } else {
        fputs("<b>surprise, bits = &minus;log<sub>2</sub> p</b>", f);
        for (int i = 0; i < SURPRISE_LEVELS; i++)
            fprintf(f, "<span class=\"s%d\">%d%s</span>", i, i, i == SURPRISE_LEVELS - 1 ? "+" : "");
    }
    fputs("<span class=\"sx\">not predicted</span></div>\n", f);
}

static void legend_neuron(FILE *f, double scale) {
    fputs("<div class=\"legend\"><b>activation</b>", f);
    for (int i = 0; i < NEURON_LEVELS; i++) {
        fprintf(f, "<span class=\"n%d\">", i);
        if (i == 0 || i == 5 || i == NEURON_LEVELS - 1) fprintf(f, "%+.2g", (i - 5) / 5.0 * scale);
        else fputs("&nbsp;", f);
        fputs("</span>", f);
    }
    fputs("</div>\n", f);
}

/* One span per character: class ("s3", "n7", "sx"), plus "nl" for a line
 * break (drawn with a marker) and "pre" for prefix characters. */
static void text_spans(FILE *f, const crn_show *s, const int *level, char kind) {
    for (size_t i = 0; i < s->n_chars; i++) {
        const crn_show_char *c = &s->chars[i];
        if (level[i] < 0) fputs("<span class=\"sx", f);
        else fprintf(f, "<span class=\"%c%d", kind, level[i]);
        if (s->text[c->byte + c->len - 1] == '\n') fputs(" nl", f); /* "\n" or "\r\n" */
        if (c->prefix) fputs(" pre", f);
        fputs("\">", f);
        html_text(f, s->text + c->byte, c->len);
        fputs("</span>", f);
    }
}

static void write_data(FILE *f, const crn_show *s, const crn_vocab *v, enum crn_show_mode mode) {
    size_t units = (size_t)s->layers * s->hidden;
    fprintf(f, "<script type=\"application/json\" id=\"crn-data\">{\"mode\":\"%s\",\"k\":%u,\"tok\":[",
            mode == CRN_SHOW_GENERATED ? "generated" : "surprise", s->top_k);
    for (uint32_t id = 0; id < crn_vocab_size(v); id++) {
        size_t len;
        const uint8_t *t = crn_vocab_token(v, id, &len);
        if (id) fputc(',', f);
        json_str(f, t, len);
    }
    fputs("],\n\"bits\":[", f);
    for (size_t i = 0; i < s->n_chars; i++) {
        if (i) fputc(',', f);
        json_num(f, s->chars[i].bits, 4);
    }
    fputs("],\n\"first\":[", f);
    for (size_t i = 0; i < s->n_chars; i++) fprintf(f, "%s%u", i ? "," : "", s->ids[s->chars[i].tok]);
    fputs("],\n\"ti\":[", f);
    for (size_t i = 0; i < s->n_chars * s->top_k; i++) fprintf(f, "%s%u", i ? "," : "", s->top_ids[i]);
    fputs("],\n\"tp\":[", f);
    for (size_t i = 0; i < s->n_chars * s->top_k; i++) {
        if (i) fputc(',', f);
        json_num(f, s->top_p[i], 3);
    }
    fputs("],\n\"units\":[", f);
    for (size_t u = 0; u < s->n_units; u++) {
        const crn_show_unit *x = &s->units[u];
        size_t j = (size_t)x->layer * s->hidden + x->index;
        fprintf(f, "%s{\"name\":\"%u:%u\",\"feat\":\"%s\",\"v\":[", u ? ",\n" : "", x->layer, x->index,
                crn_show_feature_name(x->feature));
        for (size_t i = 0; i < s->n_chars; i++) {
            if (i) fputc(',', f);
            json_num(f, s->act[i * units + j], 3);
        }
        fputs("]}", f);
    }
    fputs("]}</script>\n", f);
}

static const char JS[] =
    "(function(){'use strict';\n"
    "var D=JSON.parse(document.getElementById('crn-data').textContent),K=D.k;\n"
    "var info=document.getElementById('info'),pinned=-1,cur=-1;\n"
    "var boxes=document.querySelectorAll('.txt');\n"
    "boxes.forEach(function(b){for(var i=0;i<b.children.length;i++)b.children[i].crnIndex=i;});\n"
    "function vis(t){return t==='\\n'?'\\u21b5':t===' '?'\\u2423':t==='\\t'?'\\u21e5':t;}\n"
    "function el(tag,text,cls){var e=document.createElement(tag);if(text!==undefined)e.textContent=text;"
    "if(cls)e.className=cls;return e;}\n"
    "function mark(i,on){boxes.forEach(function(b){var c=b.children[i];if(c)c.classList.toggle('sel',on);});}\n"
    "function show(i){if(i<0||i>=D.bits.length)return;if(cur>=0)mark(cur,false);cur=i;mark(i,true);\n"
    " info.textContent='';var ch=boxes[0].children[i].textContent;\n"
    " var h=el('div');h.appendChild(el('bdi',vis(ch),'ch'));h.appendChild(el('span',' #'+i));info.appendChild(h);\n"
    " var b=D.bits[i];\n"
    " info.appendChild(el('div',b===null?'not predicted (the first token)':\n"
    "  (D.mode==='generated'?'p = '+Math.pow(2,-b).toPrecision(3)+' ('+b.toFixed(2)+' bits)':\n"
    "  b.toFixed(2)+' bits (p = '+Math.pow(2,-b).toPrecision(3)+')')));\n"
    " if(b!==null){info.appendChild(el('div','candidates the model weighed here:'));\n"
    "  var t=el('table');t.id='cands';for(var j=0;j<K;j++){var p=D.tp[i*K+j],id=D.ti[i*K+j];if(!p)continue;\n"
    "   var r=el('tr',undefined,id===D.first[i]?'act':'');r.appendChild(el('td',vis(D.tok[id]),'tok'));\n"
    "   r.appendChild(el('td',(100*p).toFixed(1)+'%'));var bc=el('td'),bar=el('div',undefined,'bar');\n"
    "   bar.style.width=Math.round(100*p)+'px';bc.appendChild(bar);r.appendChild(bc);t.appendChild(r);}\n"
    "  info.appendChild(t);}\n"
    " D.units.forEach(function(u){info.appendChild(el('div','unit '+u.name+' ('+u.feat+'): '+(+u.v[i]).toFixed(3)));});}\n"
    "function target(e){var t=e.target;return t&&t.crnIndex!==undefined&&t.parentNode.classList&&"
    "t.parentNode.classList.contains('txt')?t.crnIndex:-1;}\n"
    "document.addEventListener('mouseover',function(e){var i=target(e);if(i>=0&&pinned<0)show(i);});\n"
    "document.addEventListener('click',function(e){var i=target(e);if(i<0)return;pinned=pinned===i?-1:i;show(i);});\n"
    "var m=/sel=(\\d+)/.exec(location.hash);if(m){pinned=+m[1];show(pinned);}\n"
    "})();\n";

static void write_header(FILE *f, const crn_show *s, const crn_show_page *pg) {
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>charrnn show: ", f);
    html_str(f, pg->title ? pg->title : "text");
    fprintf(f, "</title>\n<style>%s", CSS);
    write_classes(f);
    fputs("</style></head>\n<body><header><h1>", f);
    html_str(f, pg->title ? pg->title : "text");
    fputs("</h1><p class=\"stats\">model ", f);
    html_str(f, pg->model_name ? pg->model_name : "?");
    double bpc = crn_show_bits_per_char(s);
    fprintf(f, " &middot; %zu characters, %zu tokens &middot; <b id=\"bpc\">", s->n_chars, s->n_tokens);
    if (isfinite(bpc)) fprintf(f, "%.3f bits/char", bpc);
    else fputs("bits/char: n/a", f);
    fputs("</b>", f);
    if (s->n_unk) fprintf(f, " &middot; %zu tokens unknown to the model", s->n_unk);
    if (s->n_invalid) fprintf(f, " &middot; %zu invalid UTF-8 sequences replaced", s->n_invalid);
    fputs("</p>\n", f);
    if (pg->note) {
        fputs("<p class=\"stats\">", f);
        html_str(f, pg->note);
        fputs("</p>\n", f);
    }
    if (s->total_chars > s->n_chars)
        fprintf(f, "<p class=\"cap\" id=\"cap\">Showing the first %zu of %zu characters (--max-chars %zu); "
                "bits/char are of the part shown.</p>\n", s->n_chars, s->total_chars, s->n_chars);
    fputs("</header>\n", f);
}

static void write_neurons(FILE *f, const crn_show *s, int *level) {
    size_t units = (size_t)s->layers * s->hidden;
    if (!s->n_units) return;
    fprintf(f, "<section id=\"neurons\"><h2>Neurons (%s)</h2>\n", s->cell_state ? "LSTM cell state c" : "hidden state h");
    for (size_t u = 0; u < s->n_units; u++) {
        const crn_show_unit *x = &s->units[u];
        size_t j = (size_t)x->layer * s->hidden + x->index;
        double scale = unit_scale(s, j, !s->cell_state);
        fprintf(f, "<div class=\"neuron\"><h3>layer %u, unit %u: ", x->layer, x->index);
        if (x->feature >= 0) fprintf(f, "%s (r = %+.2f)", crn_show_feature_label(x->feature), x->corr);
        else fputs("follows none of the features", f);
        fputs("</h3>\n", f);
        legend_neuron(f, scale);
        for (size_t i = 0; i < s->n_chars; i++) {
            double a = s->act[i * units + j] / scale;
            level[i] = (int)fmin(fmax(lround(a * 5) + 5, 0), NEURON_LEVELS - 1);
        }
        fputs("<div class=\"txt\">", f);
        text_spans(f, s, level, 'n');
        fputs("</div></div>\n", f);
    }
    fputs("</section>\n", f);
}

int crn_show_write_html(FILE *f, const char *name, const crn_show *s, const crn_vocab *v, const crn_show_page *pg) {
    int *level = malloc(s->n_chars * sizeof *level);
    if (!level) return crn_error_set(CRN_ENOMEM, "out of memory");
    write_header(f, s, pg);
    fputs("<main><div class=\"grid\"><section id=\"main\">\n", f);
    legend_surprise(f, pg->mode);
    for (size_t i = 0; i < s->n_chars; i++) level[i] = surprise_level(&s->chars[i]);
    fputs("<div class=\"txt\" id=\"text\">", f);
    text_spans(f, s, level, 's');
    fputs("</div></section>\n<aside id=\"info\">Hover over or tap a character to see what the model expected "
          "there.</aside></div>\n", f);
    write_neurons(f, s, level);
    fputs("</main>\n", f);
    write_data(f, s, v, pg->mode);
    fprintf(f, "<script>%s</script>\n</body></html>\n", JS);
    free(level);
    if (fflush(f) || ferror(f)) return crn_error_set(CRN_EIO, "%s: write error", name);
    return 0;
}

static void csv_field(FILE *f, const uint8_t *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

int crn_show_write_csv(FILE *f, const char *name, const crn_show *s, const crn_vocab *v) {
    size_t units = (size_t)s->layers * s->hidden;
    fputs("index,char,tokens,prefix,bits,p", f);
    for (uint32_t j = 0; j < s->top_k; j++) fprintf(f, ",top%u,top%u_p", j + 1, j + 1);
    for (uint32_t l = 0; l < s->layers; l++)
        for (uint32_t j = 0; j < s->hidden; j++) fprintf(f, ",l%u.%c%u", l, s->cell_state ? 'c' : 'h', j);
    fputc('\n', f);
    for (size_t i = 0; i < s->n_chars; i++) {
        const crn_show_char *c = &s->chars[i];
        fprintf(f, "%zu,", i);
        csv_field(f, s->text + c->byte, c->len);
        fprintf(f, ",%zu,%d,", c->ntok, c->prefix);
        if (!isnan(c->bits)) fprintf(f, "%.6f,%.6g", c->bits, exp2(-c->bits));
        else fputc(',', f);
        for (uint32_t j = 0; j < s->top_k; j++) {
            size_t len;
            float p = s->top_p[i * s->top_k + j];
            const uint8_t *t = crn_vocab_token(v, s->top_ids[i * s->top_k + j], &len);
            fputc(',', f);
            if (p > 0) csv_field(f, t, len);
            fputc(',', f);
            if (p > 0) fprintf(f, "%.6g", (double)p);
        }
        for (size_t j = 0; j < units; j++) fprintf(f, ",%.6g", (double)s->act[i * units + j]);
        fputc('\n', f);
    }
    if (fflush(f) || ferror(f)) return crn_error_set(CRN_EIO, "%s: write error", name);
    return 0;
}
