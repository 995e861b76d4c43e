#!/usr/bin/env python3
"""Print the dependency graph between pixltoken's C files and check its rules.

    python3 tools/src_graph.py            # print the graph
    python3 tools/src_graph.py --check    # also exit 1 on any violation
    python3 tools/src_graph.py --edges    # also list every edge and its reasons

What it reads: every .c and .h under src/ (recursively).  A *module* is a
file's path without its extension, so src/verify/verify.c and its header
src/verify/verify.h are one node; a header without a .c is a node of its own.

What counts as an edge A -> B ("A depends on B"), from a token-level reading
of the C with comments, strings and character literals removed:

  include  A.c or A.h has `#include "x.h"` and x.h resolves (next to the
           including file, then under src/, which is the -I of the build)
           to a header of module B.  Quoted includes that resolve to no file
           of ours (PostgreSQL's "postgres.h", ...) are not counted.
  uses     A.c or A.h contains, as a token, the name of a function or a
           file-scope variable that B.c defines without `static` and that
           one of our headers names (an exported name): a call, a read, a
           write or taking its address all count.  Macros are not followed
           (a macro's header is an include edge anyway); a local variable
           that shadows an exported name would count, and none does.

Floors and arrows up: the modules are ordered by the greedy feedback-arc-set
heuristic of Eades, Lin and Smyth (sinks last, sources first, otherwise the
node with the largest out-degree minus in-degree, ties by name), so an edge
from a module to one earlier in that order runs *up*: those are the arrows
up, and they exist only inside circles.  Floor 0 holds the modules that
depend on nothing of ours along downward edges; a module's floor is one
above the highest floor it depends on.  A circle is a strongly connected
component of more than one module.

Layer rules (checked once src/ has subdirectories): the directories are the
layers, lowest first, as LAYERS below says; files directly in src/ form the
top layer.  An edge may only run to a strictly lower layer, or stay within
its own directory: so common/ depends on nothing of ours above it, writer/
and verify/ never depend on each other, and nobody depends on the top
(pixltoken.c).

Also listed: exported names that no other file uses (candidates for
`static`; SQL-callable functions, named by PG_FUNCTION_INFO_V1, and _PG_init
are called by the server and are not listed).

--check fails when there is a circle, an arrow up, a layer violation, or an
exported name no other file of ours uses.  Python 3 standard library only.
"""

import os
import re
import sys
from collections import defaultdict

# Lowest first; directories on one rank may not depend on each other.
LAYERS = [
    ("common",),
    ("usage",),
    ("verify", "writer"),
    ("admin",),
]

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SRC = os.path.join(ROOT, "src")

TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\S")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def strip_c(text):
    """Remove comments, string and char literals (kept as "" and '')."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j) or " ")
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_preprocessor(text):
    """(code without preprocessor lines, preprocessor lines) of stripped C."""
    code, pre = [], []
    lines = text.split("\n")
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith("#"):
            block = [line]
            while block[-1].endswith("\\") and k + 1 < len(lines):
                k += 1
                block.append(lines[k])
            pre.append("\n".join(block))
            code.append("")
        else:
            code.append(line)
        k += 1
    return "\n".join(code), "\n".join(pre)


def top_level_definitions(code):
    """Names a .c file defines at file scope: [(name, is_static)]."""
    defs = []
    toks = TOKEN.findall(code)
    depth = 0
    decl = []
    for t in toks:
        if depth > 0:
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
                if depth == 0:
                    decl = []
            continue
        if t == "{":
            name = declared_name(decl, brace=True)
            if name:
                defs.append((name, "static" in decl))
            depth = 1
            if "=" in decl:
                # an initialised variable: its initialiser ends with ';'
                decl = ["="]
            else:
                decl = []
            continue
        if t == ";":
            if decl and decl != ["="] and not ({"extern", "typedef"} & set(decl)):
                name = declared_name(decl, brace=False)
                if name:
                    defs.append((name, "static" in decl))
            decl = []
            continue
        decl.append(t)
    return defs


def declared_name(decl, brace):
    """The name a file-scope declaration defines, or None."""
    if not decl or decl[0] in ("struct", "union", "enum", "typedef") and "(" not in decl and "=" not in decl:
        return None
    if {"extern", "typedef"} & set(decl):
        return None
    if brace and "=" not in decl:
        # a function definition: name ( params ) {
        if decl[-1] != ")":
            return None
        for k, t in enumerate(decl):
            if t == "(" and k > 0 and re.match(r"[A-Za-z_]", decl[k - 1]):
                return decl[k - 1]
        return None
    # a variable: the identifier before '=', '[', ',' or the end
    head = decl[: decl.index("=")] if "=" in decl else decl
    if "(" in head:
        # a prototype (not a definition) or a macro call such as
        # PG_FUNCTION_INFO_V1(x); function-pointer variables: (*name)
        m = [head[k + 1] for k in range(len(head) - 1) if head[k] == "*" and k > 0 and head[k - 1] == "("]
        return m[0] if m and "=" in decl else None
    if "[" in head:
        head = head[: head.index("[")]
    if "," in head:
        head = head[: head.index(",")]
    names = [t for t in head if re.match(r"[A-Za-z_]", t)]
    return names[-1] if len(names) >= 2 else None


def module_of(path):
    rel = os.path.relpath(path, SRC)
    return os.path.splitext(rel)[0]


def display(mod, files):
    return mod + (".c" if mod + ".c" in files else ".h")


def load():
    files = {}
    for d, _, names in os.walk(SRC):
        for name in sorted(names):
            if name.endswith((".c", ".h")):
                p = os.path.join(d, name)
                with open(p, encoding="utf-8") as f:
                    files[os.path.relpath(p, SRC)] = f.read()
    return files


def build(files):
    modules = sorted({os.path.splitext(f)[0] for f in files})
    edges = defaultdict(set)  # (a, b) -> reasons
    stripped = {}
    for f, text in files.items():
        s = strip_c(text)
        stripped[f] = split_preprocessor(s)
    # include edges (read from the raw text: the file name is a string)
    unresolved = defaultdict(list)
    for f, text in files.items():
        a = os.path.splitext(f)[0]
        for inc in INCLUDE.findall(strip_comments_only(text)):
            cands = [os.path.normpath(os.path.join(os.path.dirname(f), inc)), os.path.normpath(inc)]
            hit = next((c for c in cands if c in files), None)
            if hit is None:
                continue
            b = os.path.splitext(hit)[0]
            if b != a:
                edges[(a, b)].add("include " + inc)
    # exported names
    header_tokens = set()
    for f, (code, pre) in stripped.items():
        if f.endswith(".h"):
            header_tokens.update(TOKEN.findall(code + "\n" + pre))
    defined_by = {}
    static_by = defaultdict(set)
    fmgr = set()
    for f, text in files.items():
        if f.endswith(".h"):
            # called by the server by name (a background worker's main)
            fmgr.update(re.findall(r"PGDLLEXPORT[^;]*?\b(\w+)\s*\(", strip_c(text)))
    for f, (code, pre) in stripped.items():
        if not f.endswith(".c"):
            continue
        fmgr.update(re.findall(r"PG_FUNCTION_INFO_V1\s*\(\s*(\w+)\s*\)", code))
        for name, is_static in top_level_definitions(code):
            if is_static:
                static_by[name].add(f)
            else:
                defined_by.setdefault(name, f[:-2])
    exported = {n: m for n, m in defined_by.items() if n in header_tokens}
    used_elsewhere = defaultdict(set)
    for f, (code, pre) in stripped.items():
        a = os.path.splitext(f)[0]
        for t in set(TOKEN.findall(code + "\n" + pre)):
            b = defined_by.get(t)
            if b is None or b == a:
                continue
            if f.endswith(".c") and t in static_by and f in static_by[t]:
                continue  # its own static of the same name
            used_elsewhere[t].add(a)
            if t in exported:
                edges[(a, b)].add("uses " + t)
    file_local = sorted(
        (m, n) for n, m in defined_by.items()
        if not used_elsewhere[n] and n not in fmgr and n != "_PG_init"
    )
    return modules, edges, file_local


def strip_comments_only(text):
    return re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def sccs(nodes, succ):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def eades_order(nodes, succ):
    """Order with few backward edges: dependents first, dependencies last."""
    out_e = {v: set(succ[v]) for v in nodes}
    in_e = {v: set() for v in nodes}
    for v in nodes:
        for w in succ[v]:
            in_e[w].add(v)
    left = set(nodes)
    s1, s2 = [], []

    def remove(v):
        left.discard(v)
        for w in out_e[v]:
            in_e[w].discard(v)
        for u in in_e[v]:
            out_e[u].discard(v)

    while left:
        changed = True
        while changed:
            changed = False
            for v in sorted(left):
                if not out_e[v]:
                    s2.insert(0, v)
                    remove(v)
                    changed = True
            for v in sorted(left):
                if v in left and not in_e[v]:
                    s1.append(v)
                    remove(v)
                    changed = True
        if left:
            v = max(sorted(left), key=lambda x: len(out_e[x]) - len(in_e[x]))
            s1.append(v)
            remove(v)
    return s1 + s2


def layer_of(mod):
    parts = mod.split(os.sep)
    if len(parts) == 1:
        return len(LAYERS), ""
    for rank, dirs in enumerate(LAYERS):
        if parts[0] in dirs:
            return rank, parts[0]
    return None, parts[0]


def main(argv):
    check = "--check" in argv
    show_edges = "--edges" in argv
    files = load()
    modules, edges, file_local = build(files)
    succ = defaultdict(set)
    for (a, b) in edges:
        succ[a].add(b)
    order = eades_order(modules, succ)
    pos = {v: k for k, v in enumerate(order)}
    up = sorted((a, b) for (a, b) in edges if pos[b] < pos[a])
    floor = {}
    for v in reversed(order):
        below = [floor[w] for w in succ[v] if pos[w] > pos[v]]
        floor[v] = 1 + max(below) if below else 0
    nfloors = 1 + max(floor.values()) if floor else 0
    circles = [c for c in sccs(modules, succ) if len(c) > 1]
    ncfiles = sum(1 for f in files if f.endswith(".c"))
    nhfiles = len(files) - ncfiles
    n_inc = sum(1 for r in edges.values() if any(x.startswith("include") for x in r))
    n_call = sum(1 for r in edges.values() if any(x.startswith("uses") for x in r))
    print("src/: %d .c files, %d .h files, %d modules; %d edges (%d with an include, %d with a use)"
          % (ncfiles, nhfiles, len(modules), len(edges), n_inc, n_call))
    print("floors: %d" % nfloors)
    for fl in range(nfloors - 1, -1, -1):
        print("  floor %d: %s" % (fl, " ".join(display(m, files) for m in sorted(modules) if floor[m] == fl)))
    print("circles: %d" % len(circles))
    for k, c in enumerate(circles, 1):
        print("  circle %d (%d files): %s" % (k, len(c), " ".join(display(m, files) for m in c)))
    print("arrows up: %d" % len(up))
    for a, b in up:
        print("  %s -> %s (%s)" % (display(a, files), display(b, files), ", ".join(sorted(edges[(a, b)]))))
    csucc = defaultdict(set)
    for (a, b), r in edges.items():
        if any(x.startswith("uses") for x in r):
            csucc[a].add(b)
    corder = eades_order(modules, csucc)
    cpos = {v: k for k, v in enumerate(corder)}
    cup = sum(1 for a in modules for b in csucc[a] if cpos[b] < cpos[a])
    ccircles = [c for c in sccs(modules, csucc) if len(c) > 1]
    print("uses alone (includes ignored): %d circles (%s files), %d arrows up"
          % (len(ccircles), "+".join(str(len(c)) for c in ccircles) or "0", cup))
    violations = []
    has_dirs = any(os.sep in m for m in modules)
    if has_dirs:
        for (a, b) in sorted(edges):
            ra, da = layer_of(a)
            rb, db = layer_of(b)
            if ra is None or rb is None:
                violations.append("%s -> %s: directory not in LAYERS" % (a, b))
            elif da == db:
                continue
            elif rb >= ra:
                violations.append("%s -> %s (%s)" % (display(a, files), display(b, files),
                                                     ", ".join(sorted(edges[(a, b)]))))
        print("layer rules (%s < top): %d violations"
              % (" < ".join("|".join(d) for d in LAYERS), len(violations)))
        for v in violations:
            print("  " + v)
    else:
        print("layer rules: not checked (src/ has no subdirectories)")
    print("exported names no other file uses: %d" % len(file_local))
    for m, n in file_local:
        print("  %s: %s" % (display(m, files), n))
    if show_edges:
        print("edges:")
        for (a, b) in sorted(edges):
            print("  %s -> %s (%s)" % (display(a, files), display(b, files), ", ".join(sorted(edges[(a, b)]))))
    if check and (circles or up or violations or file_local):
        print("src_graph: check FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
