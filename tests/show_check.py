#!/usr/bin/env python3
"""show_check.py — checks of `charrnn show` pages for tests/cli_show.sh.

  show_check.py page PAGE TEXT [--prefix N]   the page parses as HTML; #text holds one coloured span per
                                              character (grapheme cluster) whose texts join to TEXT (NFC);
                                              every neuron panel the same; exactly our two scripts; no
                                              element of the text's making; prints the span count
  show_check.py csvsum CSV                    summed bits of the non-prefix rows
  show_check.py dom DUMP N                    a --dump-dom of PAGE#sel=N: the info box shows character N's
                                              candidates (prints them) and span N is selected
  show_check.py png PNG HEX...                a screenshot: not blank, and each colour HEX (a legend swatch)
                                              covers at least 40 pixels
Exit status 1 with a message on the first failed check.
"""
import csv
import html.parser
import re
import struct
import sys
import unicodedata
import zlib


def die(msg):
    print("show_check: " + msg, file=sys.stderr)
    sys.exit(1)


class Page(html.parser.HTMLParser):
    """Collects the spans of every .txt box, script elements, ids and the title."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.boxes = []        # [(box id, [(class, text)])]
        self.stack = []        # open elements: (tag, attrs)
        self.scripts = 0
        self.ids = set()
        self.title = ""
        self.info = []         # text inside #info
        self.info_rows = []    # [(class, [cell texts])] of table#cands
        self.errors = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.scripts += 1
        cls = a.get("class", "")
        if tag == "div" and "txt" in cls.split():
            self.boxes.append((a.get("id", ""), []))
        if tag == "span" and self.stack and self.stack[-1][0] == "div" and "txt" in self.stack[-1][1].get("class", "").split():
            self.boxes[-1][1].append([cls, ""])
        if tag == "tr" and self.inside("cands"):
            self.info_rows.append([cls, []])
        if tag == "td" and self.inside("cands"):
            self.info_rows[-1][1].append("")
        if tag not in ("meta", "br", "img", "input", "link"):
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def inside(self, ident):
        return any(a.get("id") == ident for _, a in self.stack)

    def handle_data(self, data):
        if not self.stack:
            return
        tag, a = self.stack[-1]
        if tag == "title":
            self.title += data
        if tag == "span" and len(self.stack) > 1 and "txt" in self.stack[-2][1].get("class", "").split():
            self.boxes[-1][1][-1][1] += data
        if self.inside("info"):
            self.info.append(data)
        if tag == "td" and self.inside("cands"):
            self.info_rows[-1][1][-1] += data


def parse(path):
    p = Page()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    p.close()
    return p


def check_page(path, text_path):
    p = parse(path)
    with open(text_path, encoding="utf-8", errors="replace", newline="") as f:
        want = unicodedata.normalize("NFC", f.read().lstrip("\ufeff"))
    # control characters other than tab and line break are drawn as Control Pictures
    want = "".join(chr(0x2400 + ord(c)) if ord(c) < 0x20 and c not in "\t\n" else
                   "\u2421" if c == "\x7f" else c for c in want)
    if not p.boxes or p.boxes[0][0] != "text":
        die(f"{path}: no <div class=txt id=text>")
    spans = p.boxes[0][1]
    bad = [c for c, _ in spans if not re.fullmatch(r"(s\d|sx)( nl)?( pre)?", c)]
    if bad:
        die(f"{path}: spans without a colour class: {bad[:5]}")
    got = "".join(t for _, t in spans)
    if got != want[:len(got)] or (len(got) < len(want) and "cap" not in p.ids):
        die(f"{path}: the spans' text differs from the text (or was cut without a message):\n"
            f"  got  {got[:200]!r}\n  want {want[:200]!r}")
    # one span per character: grapheme clusters never split (a mark never starts a span), a line break
    # ends its own character (CR LF is one cluster, UAX #29)
    for _, t in spans:
        if not t or unicodedata.category(t[0]).startswith("M") or t[0] == "\u200d" or ("\n" in t and t not in ("\n", "\u240d\n")):
            die(f"{path}: span {t!r} starts with a combining mark (a character split in two)")
    for ident, box in p.boxes[1:]:
        if [t for _, t in box] != [t for _, t in spans]:
            die(f"{path}: a neuron panel's characters differ from the text's")
        if any(not re.fullmatch(r"(n\d+|sx)( nl)?( pre)?", c) for c, _ in box):
            die(f"{path}: a neuron span without a colour class")
    if p.scripts != 2:
        die(f"{path}: {p.scripts} script elements (expected 2: the data and the code)")
    if "pwn" in p.ids:
        die(f"{path}: an element of the text's making (id=pwn)")
    if not p.title.startswith("charrnn show: "):
        die(f"{path}: title {p.title!r}")
    print(len(spans), len(p.boxes) - 1)


def csvsum(path):
    total = 0.0
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["prefix"] == "0" and row["bits"] != "":
                total += float(row["bits"])
    print(f"{total:.6f}")


def dom(path, n):
    p = parse(path)
    spans = p.boxes[0][1] if p.boxes else []
    if n >= len(spans) or "sel" not in spans[n][0].split():
        die(f"{path}: span {n} is not selected")
    if not p.info_rows:
        die(f"{path}: the info box shows no candidates: {''.join(p.info)[:200]!r}")
    for cls, cells in p.info_rows:
        if len(cells) < 2 or not re.fullmatch(r"\d+\.\d%", cells[1]):
            die(f"{path}: a candidate row without a probability: {cells}")
    if "pwn" in p.ids or "PWNED" in p.title:
        die(f"{path}: the text ran as code")
    print(" ".join(f"{cells[0]}={cells[1]}{'*' if cls == 'act' else ''}" for cls, cells in p.info_rows))


def png_pixels(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        die(f"{path}: not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or inter:
                die(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {inter})")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    counts = {}
    for line in rows:
        for x in range(0, stride, bpp):
            px = line[x:x + 3]
            counts[px] = counts.get(px, 0) + 1
    return w, h, counts


def png(path, colours):
    w, h, counts = png_pixels(path)
    top = max(counts.values())
    if len(counts) < 50 or top > 0.97 * w * h:
        die(f"{path}: looks blank ({len(counts)} colours, the commonest covers {100 * top / (w * h):.1f}%)")
    for hexc in colours:
        px = bytes.fromhex(hexc.lstrip("#"))
        if counts.get(px, 0) < 40:
            die(f"{path}: legend colour {hexc} covers {counts.get(px, 0)} pixels (expected >= 40)")
    print(f"{w}x{h}, {len(counts)} colours")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "page" and len(sys.argv) == 4:
        check_page(sys.argv[2], sys.argv[3])
    elif cmd == "csvsum" and len(sys.argv) == 3:
        csvsum(sys.argv[2])
    elif cmd == "dom" and len(sys.argv) == 4:
        dom(sys.argv[2], int(sys.argv[3]))
    elif cmd == "png" and len(sys.argv) >= 3:
        png(sys.argv[2], sys.argv[3:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
