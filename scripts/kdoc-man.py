#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""kdoc-man.py - man pages from the kernel-doc comments of libp2pio's public headers.

    scripts/kdoc-man.py [--version V] [--strict] -o OUTDIR HEADER...

For every "/** ... */" comment followed by a declaration it writes one page, as liburing
ships one page per function:

    OUTDIR/man3/<function>.3        a function: NAME, SYNOPSIS (#include <p2pio.h> and the
                                    prototype), ARGUMENTS, DESCRIPTION, RETURN VALUE, SEE ALSO
    OUTDIR/man3/<name>.3type        a struct, enum or typedef (as the Linux man-pages do):
                                    its definition, members, description
    OUTDIR/man7/libp2pio.7          the overview: per header, its introduction and its
                                    functions and types with their one-line summaries

The comment's first line is "name() - summary" (a function), "struct name - summary",
"enum name - summary" or "typedef name - summary"; "@arg: text" lines describe arguments
or members; the text after them is the description, and a "Return:" paragraph becomes
RETURN VALUE. Macros documented as "NAME - summary" are listed in libp2pio(7) only.

--strict fails (exit 1) when a public function (a declaration of p2pio_*() in a header) has
no kernel-doc comment, when a comment's name differs from the declaration after it, or when
a function's comment misses one of its parameters. Only Python's standard library is used.
"""

import argparse
import os
import re
import sys

COMMENT_RE = re.compile(r"/\*\*(.*?)\*/", re.S)
FUNC_DECL_RE = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(p2pio_\w+)\s*\(", re.M)
DATE = "2026"


class Doc:
	"""One kernel-doc comment and the declaration it documents."""

	def __init__(self, header, kind, name, summary, params, body, decl):
		self.header = header      # "p2pio/engine.h"
		self.kind = kind          # "function", "struct", "enum", "typedef", "macro"
		self.name = name
		self.summary = summary
		self.params = params      # [(name, text)]
		self.body = body          # [(section, [paragraph lines])]; section None or "Return"
		self.decl = decl          # the declaration's C text

	@property
	def section(self):
		return "3" if self.kind == "function" else "3type"

	@property
	def title(self):
		return self.name if self.kind in ("function", "macro") else "%s %s" % (self.kind, self.name)


def comment_lines(raw):
	"""The comment's text lines, " * " prefixes removed, indentation after them kept."""
	lines = []
	for line in raw.split("\n"):
		line = line.rstrip()
		m = re.match(r"^\s*\*( ?)(.*)$", line)
		if m:
			lines.append(m.group(2))
		else:
			lines.append(line.strip())
	while lines and not lines[0].strip():
		lines.pop(0)
	while lines and not lines[-1].strip():
		lines.pop()
	return lines


def declaration_after(text, pos):
	"""The C declaration that starts after @pos: up to ';' at brace depth 0."""
	depth = 0
	i = pos
	while i < len(text):
		c = text[i]
		if text.startswith("/*", i):
			end = text.find("*/", i + 2)
			if end < 0:
				break
			i = end + 2
			continue
		if c == "{":
			depth += 1
		elif c == "}":
			depth -= 1
		elif c == ";" and depth == 0:
			return text[pos:i + 1].strip()
		elif c == "#" and depth == 0 and (i == 0 or text[i - 1] == "\n"):
			end = text.find("\n", i)
			while end > 0 and text[end - 1] == "\\":
				end = text.find("\n", end + 1)
			return text[pos:end if end > 0 else len(text)].strip()
		i += 1
	return text[pos:].strip()


def decl_name(kind, decl):
	"""The name the declaration declares, to compare with the comment's."""
	if kind == "function":
		m = re.search(r"\b(\w+)\s*\(", decl)
	elif kind in ("struct", "enum"):
		m = re.match(r"(?:typedef\s+)?%s\s+(\w+)" % kind, decl)
	elif kind == "typedef":
		m = re.search(r"\(\s*\*\s*(\w+)\s*\)", decl) or re.search(r"(\w+)\s*;$", decl)
	else:
		m = re.match(r"#define\s+(\w+)", decl)
	return m.group(1) if m else None


def parse_comment(header, raw, decl):
	lines = comment_lines(raw)
	if not lines:
		return None
	m = re.match(r"^(struct|enum|typedef|union)\s+(\w+)\s*-\s*(.*)$", lines[0])
	if m:
		kind, name, summary = m.group(1), m.group(2), m.group(3)
		if kind == "union":
			kind = "struct"
	else:
		m = re.match(r"^(\w+)\(\)\s*-\s*(.*)$", lines[0])
		if m:
			kind, name, summary = "function", m.group(1), m.group(2)
		else:
			m = re.match(r"^([A-Z][A-Z0-9_]*)\s*-\s*(.*)$", lines[0])
			if not m:
				return None
			kind, name, summary = "macro", m.group(1), m.group(2)
	i = 1
	# The summary goes on until a blank line or the first @argument.
	while i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith("@"):
		summary += " " + lines[i].strip()
		i += 1
	params = []
	while i < len(lines):
		pm = re.match(r"^\s*@(\w+|\.\.\.):\s*(.*)$", lines[i])
		if pm:
			params.append([pm.group(1), pm.group(2).strip()])
		elif params and lines[i].startswith((" ", "\t")) and lines[i].strip():
			params[-1][1] += " " + lines[i].strip()
		elif not lines[i].strip():
			pass
		else:
			break
		i += 1
	body = []
	section, para = None, []
	for line in lines[i:]:
		rm = re.match(r"^(Return|Returns|Context|Note)s?:\s*(.*)$", line)
		if rm and rm.group(1).startswith("Return"):
			if para:
				body.append((section, para))
			section, para = "Return", [rm.group(2)] if rm.group(2) else []
		elif not line.strip():
			if para:
				body.append((section, para))
			para = []
		else:
			para.append(line)
	if para:
		body.append((section, para))
	return Doc(header, kind, name, summary.strip(), [tuple(p) for p in params], body, decl)


def parse_header(path, header, strict_errors):
	text = open(path, encoding="utf-8").read()
	docs = []
	documented = set()
	for m in COMMENT_RE.finditer(text):
		decl = declaration_after(text, m.end())
		doc = parse_comment(header, m.group(1), decl)
		if doc is None:
			continue
		if doc.kind != "macro":
			got = decl_name(doc.kind, decl)
			if got != doc.name:
				strict_errors.append("%s: the comment of %s documents %r" %
						     (header, doc.name, (decl.splitlines() or [""])[0]))
				continue
		if doc.kind == "function":
			args = function_args(decl)
			named = {p[0] for p in doc.params}
			for a in args:
				if a not in named:
					strict_errors.append("%s: %s(): no @%s line" % (header, doc.name, a))
		docs.append(doc)
		documented.add(doc.name)
	for m in FUNC_DECL_RE.finditer(text):
		name = m.group(1)
		line = text[m.start():text.find("\n", m.start())]
		if line.lstrip().startswith(("return", "#", "*", "typedef")):
			continue
		if name not in documented:
			strict_errors.append("%s: %s() has no kernel-doc comment" % (header, name))
	return docs, text


def function_args(decl):
	"""Parameter names of a prototype ("void" alone has none)."""
	inner = decl[decl.index("(") + 1:decl.rindex(")")]
	args = []
	for part in inner.split(","):
		part = part.strip()
		if not part or part == "void":
			continue
		if part == "...":
			args.append("...")
			continue
		m = re.search(r"(\w+)\s*(\[[^\]]*\])?$", part)
		if m:
			args.append(m.group(1))
	return args


def header_intro(text):
	"""The header's first comment ("p2pio/x.h - summary" and what follows) and its plain
	(non-kernel-doc) overview comments, as lists of lines."""
	intro = None
	overviews = []
	for m in re.finditer(r"/\*(?!\*)(.*?)\*/", text, re.S):
		lines = comment_lines(m.group(1))
		if not lines or lines[0].startswith(("SPDX", "=")) or len(lines) < 3:
			continue
		if intro is None and re.match(r"^p2pio/\S+\.h - ", lines[0]):
			intro = lines
			continue
		if lines[0].startswith("----"):
			continue
		overviews.append(lines)
	return intro, overviews


# ---- roff -------------------------------------------------------------------------------

def esc(s):
	s = s.replace("\\", "\\e").replace("-", "\\-")
	return s


def line_safe(s):
	"""Escape and keep a leading '.' or "'" from being a request."""
	s = esc(s)
	if s.startswith((".", "'")):
		s = "\\&" + s
	return s


def inline(s, params=(), known=()):
	"""Prose: @arg in italics, func() and P2PIO_CONSTANTS in bold."""
	s = esc(s)
	s = re.sub(r"@(\w+)", lambda m: "\\fI%s\\fP" % m.group(1), s)
	s = re.sub(r"\b(p2pio_\w+)\(\)", lambda m: "\\fB%s\\fP()" % m.group(1), s)
	s = re.sub(r"\b(P2PIO_[A-Z0-9_]+)\b", lambda m: "\\fB%s\\fP" % m.group(1), s)
	if s.startswith((".", "'")):
		s = "\\&" + s
	return s


def paragraphs(out, paras, params):
	"""Kernel-doc paragraphs: wrapped prose becomes filled text, "- " items bullets, and
	indented lines (code, tables) stay as they are."""
	for _, lines in paras:
		mode, buf = None, []

		def flush():
			if not buf:
				return
			if mode == "pre":
				out.extend([".PP", ".nf"])
				out.extend(line_safe(x.replace("\t", "        ")) for x in buf)
				out.append(".fi")
			elif mode == "bullet":
				out.extend([".IP \\(bu 2", inline(" ".join(buf), params)])
			else:
				out.extend([".PP", inline(" ".join(x.strip() for x in buf), params)])
			buf.clear()

		for ln in lines:
			if re.match(r"^\s*- ", ln):
				flush()
				mode = "bullet"
				buf.append(re.sub(r"^\s*- ", "", ln))
			elif mode == "bullet":
				buf.append(ln.strip())
			elif ln.startswith(("\t", "  ")):
				if mode != "pre":
					flush()
				mode = "pre"
				buf.append(ln)
			else:
				if mode != "prose":
					flush()
				mode = "prose"
				buf.append(ln)
		flush()


def sentence(summary, params):
	"""The one-line summary as the description's first sentence."""
	if summary[:1].islower() and not summary.startswith(("p2pio_", "ne", "@")):
		summary = summary[0].upper() + summary[1:]
	return inline(summary if summary.endswith(".") else summary + ".", params)


def name_line(doc):
	return "%s \\- %s" % (esc(doc.name), inline(doc.summary.rstrip(".")))


def th(name, section, version):
	return '.TH %s %s "%s" "p2pio %s" "libp2pio manual"' % (esc(name), section, DATE, version)


def synopsis_code(decl):
	out = [".nf", ".B #include <p2pio.h>", ".PP"]
	for ln in decl.split("\n"):
		out.append(line_safe(ln.replace("\t", "        ")))
	out.append(".fi")
	return out


def see_also(doc, by_name):
	refs = []
	text = doc.summary + " " + " ".join(" ".join(l) for _, l in doc.body) + " " + \
		" ".join(t for _, t in doc.params)
	for m in re.finditer(r"\b(p2pio_\w+)\(\)", text):
		if m.group(1) != doc.name and m.group(1) in by_name:
			refs.append((m.group(1), "3"))
	for m in re.finditer(r"\b(struct|enum)\s+(p2pio_\w+)", doc.decl + " " + text):
		d = by_name.get((m.group(1), m.group(2)))
		if d and d is not doc:
			refs.append((d.name, "3type"))
	seen, uniq = set(), []
	for r in refs:
		if r not in seen:
			seen.add(r)
			uniq.append(r)
	uniq.append(("libp2pio", "7"))
	return ",\n".join("\\fB%s\\fP(%s)" % (esc(n), s) for n, s in uniq)


def function_page(doc, version, by_name):
	params = [p for p, _ in doc.params]
	out = [th(doc.name, "3", version), ".SH NAME",
	       name_line(doc), ".SH SYNOPSIS"]
	out += synopsis_code(doc.decl)
	out.append(".PP")
	out.append("Link with \\fI\\-lp2pio\\fP (\\fBpkg\\-config \\-\\-libs p2pio\\fP).")
	if doc.params:
		out.append(".SH ARGUMENTS")
		for p, t in doc.params:
			out.append(".TP")
			out.append(".I %s" % esc(p))
			out.append(inline(t, params))
	desc = [b for b in doc.body if b[0] is None]
	ret = [b for b in doc.body if b[0] == "Return"]
	out.append(".SH DESCRIPTION")
	out.append(sentence(doc.summary, params))
	paragraphs(out, desc, params)
	if ret:
		out.append(".SH RETURN VALUE")
		paragraphs(out, ret, params)
		if out[out.index(".SH RETURN VALUE") + 1] == ".PP":
			del out[out.index(".SH RETURN VALUE") + 1]
	out.append(".SH SEE ALSO")
	out.append(see_also(doc, by_name))
	return "\n".join(out) + "\n"


def type_page(doc, version, by_name):
	params = [p for p, _ in doc.params]
	out = [th(doc.name, "3type", version), ".SH NAME",
	       name_line(doc), ".SH SYNOPSIS"]
	out += synopsis_code(doc.decl)
	if doc.params:
		out.append(".SH %s" % ("VALUES" if doc.kind == "enum" else
				       "ARGUMENTS" if doc.kind == "typedef" else "MEMBERS"))
		for p, t in doc.params:
			out.append(".TP")
			out.append(".I %s" % esc(p))
			out.append(inline(t, params))
	desc = [b for b in doc.body if b[0] is None]
	ret = [b for b in doc.body if b[0] == "Return"]
	out.append(".SH DESCRIPTION")
	out.append(sentence(doc.summary, params))
	paragraphs(out, desc, params)
	if ret:
		out.append(".SH RETURN VALUE")
		paragraphs(out, ret, params)
	out.append(".SH SEE ALSO")
	out.append(see_also(doc, by_name))
	return "\n".join(out) + "\n"


def overview_page(headers, version):
	out = [th("libp2pio", "7", version), ".SH NAME",
	       "libp2pio \\- load LLM weights from NVMe into GPU memory, peer to peer (p2pio library)",
	       ".SH SYNOPSIS", ".nf", ".B #include <p2pio.h>", ".fi", ".PP",
	       "Link with \\fI\\-lp2pio\\fP; \\fBpkg\\-config \\-\\-cflags \\-\\-libs p2pio\\fP gives the flags.",
	       ".SH DESCRIPTION",
	       "libp2pio moves large language model weights (GGUF files) from NVMe SSDs into NVIDIA",
	       "GPU memory: peer to peer through the \\fBp2pio\\fP kernel module where the platform",
	       "allows, and through pinned host memory everywhere else. Every function returns 0 (or",
	       "a count) on success and a negative errno on failure (\\fBp2pio_strerror\\fP(3)).",
	       "The API has one section per component, each in its own header under",
	       "\\fI<p2pio/...>\\fP, all included by \\fI<p2pio.h>\\fP; each function and type has its",
	       "own page."]
	for header, intro, overviews, docs in headers:
		title = intro[0] if intro else header
		out.append(".SH %s" % esc(header.upper()))
		m = re.match(r"^\S+ - (?:libp2pio: )?(.*)$", title)
		if m:
			out.append(".PP")
			out.append(inline(m.group(1)[:1].upper() + m.group(1)[1:]))
		for lines in overviews:
			out.append(".PP")
			out.append(".nf")
			out.extend(line_safe(x.replace("\t", "        ")) for x in lines)
			out.append(".fi")
		funcs = [d for d in docs if d.kind == "function"]
		types = [d for d in docs if d.kind in ("struct", "enum", "typedef")]
		macros = [d for d in docs if d.kind == "macro"]
		for label, group, sec in (("Functions", funcs, "3"), ("Types", types, "3type"),
					  ("Constants", macros, None)):
			if not group:
				continue
			out.append(".SS %s" % label)
			for d in group:
				out.append(".TP")
				if sec:
					out.append("\\fB%s\\fP(%s)" % (esc(d.name if d.kind == "function" else
									 d.title), sec))
				else:
					out.append(".B %s" % esc(d.name))
				out.append(inline(d.summary))
	out.append(".SH SEE ALSO")
	out.append("\\fBp2pio\\-check\\fP(1), \\fBp2pio\\-load\\fP(1), \\fBp2pio\\-gguf\\fP(1)")
	return "\n".join(out) + "\n"


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("-o", "--outdir", required=True)
	ap.add_argument("--version", default="0")
	ap.add_argument("--strict", action="store_true")
	ap.add_argument("headers", nargs="+")
	a = ap.parse_args()

	errors = []
	headers = []
	all_docs = []
	for path in a.headers:
		header = "p2pio/" + os.path.basename(path)
		docs, text = parse_header(path, header, errors)
		intro, overviews = header_intro(text)
		headers.append((header, intro, overviews, docs))
		all_docs += docs
	by_name = {}
	seen = {}
	for d in all_docs:
		key = d.name if d.kind == "function" else (d.kind, d.name)
		by_name[key] = d
		if d.kind == "function" or d.kind == "macro":
			by_name[d.name] = d
		page = (d.name, d.section)
		if d.kind != "macro":
			if page in seen:
				errors.append("%s: %s documented twice (also in %s)" % (d.header, d.name,
											  seen[page]))
			seen[page] = d.header
	for e in errors:
		print("kdoc-man: %s" % e, file=sys.stderr)
	if errors and a.strict:
		return 1

	os.makedirs(os.path.join(a.outdir, "man3"), exist_ok=True)
	os.makedirs(os.path.join(a.outdir, "man7"), exist_ok=True)
	n = 0
	for d in all_docs:
		if d.kind == "macro":
			continue
		if d.kind == "function":
			page, body = "%s.3" % d.name, function_page(d, a.version, by_name)
		else:
			page, body = "%s.3type" % d.name, type_page(d, a.version, by_name)
		with open(os.path.join(a.outdir, "man3", page), "w", encoding="utf-8") as f:
			f.write(body)
		n += 1
	with open(os.path.join(a.outdir, "man7", "libp2pio.7"), "w", encoding="utf-8") as f:
		f.write(overview_page(headers, a.version))
	print("kdoc-man: %d pages in %s/man3, libp2pio.7 in %s/man7" % (n, a.outdir, a.outdir))
	return 0


if __name__ == "__main__":
	sys.exit(main())
