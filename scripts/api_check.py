#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keeps docs/API.md true to the public headers.

The public surface is read from the compiler, not guessed: clang++ parses
<rcukit/rcukit.hpp> and dumps its declarations (-ast-dump=json); every
declaration in namespace rcukit (and rcukit::rcu, rcukit::rb), outside the
detail namespaces, that a user can name is collected: classes, their public
members (functions, member templates, fields, types, constants, nested
classes, using-declarations), and namespace-level functions, types,
constants and concepts.

docs/API.md declares the same surface in ```cpp blocks, class by class
(`class X {` ... `};`, members one per line) and at namespace level. The
check fails when a public name is missing from the document, or the
document names something the headers do not have.

  scripts/api_check.py            check (exit 1 on drift), print a summary
  scripts/api_check.py --list     print the surface read from the headers
Needs clang++-14 (or $RCUKIT_API_CXX).
"""
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CXX = os.environ.get("RCUKIT_API_CXX", "clang++-14")

# Namespaces whose names are public (relative to rcukit::).
PUBLIC_NAMESPACES = {"", "rcu", "rb"}
# Members every class has or that are not part of a contract.
SKIP_MEMBERS = {"operator="}
# Scopes documented once for several types (the flavour policies share one
# interface; qsbr's extra members are documented on their own).
ALIASES = {"rcu::mb": "rcu::memb", "rcu::bp": "rcu::memb"}


def header_surface():
    src = '#include <rcukit/rcukit.hpp>\n'
    cmd = [CXX, "-std=c++20", f"-I{ROOT / 'include'}", "-fsyntax-only", "-x", "c++", "-",
           "-Xclang", "-ast-dump=json", "-Xclang", "-ast-dump-filter", "-Xclang", "rcukit"]
    out = subprocess.run(cmd, input=src.encode(), capture_output=True, check=True).stdout.decode()
    dec = json.JSONDecoder()
    objs, i = [], 0
    while i < len(out):
        while i < len(out) and out[i].isspace():
            i += 1
        if i >= len(out):
            break
        o, i = dec.raw_decode(out, i)
        objs.append(o)

    names = set()

    def member_name(node):
        kind = node.get("kind")
        if node.get("isImplicit"):
            return None
        if kind in ("CXXConstructorDecl", "CXXDestructorDecl", "CXXDeductionGuideDecl", "StaticAssertDecl",
                    "FriendDecl", "AccessSpecDecl"):
            return None
        name = node.get("name")
        if not name:
            return None
        if kind == "UsingDecl":
            name = name.split("::")[-1]
        return name

    def visit_record(node, scope):
        tag = node.get("tagUsed", "class")
        access = "public" if tag in ("struct", "union") else "private"
        for ch in node.get("inner", []) or []:
            kind = ch.get("kind")
            if kind == "AccessSpecDecl":
                access = ch.get("access", access)
                continue
            if access != "public":
                continue
            if kind == "FunctionTemplateDecl":
                inner = [c for c in ch.get("inner", []) if c.get("kind") in ("CXXMethodDecl", "FunctionDecl")]
                if not inner:
                    continue  # a constructor template
            name = member_name(ch)
            if name is None or name in SKIP_MEMBERS or name == scope.split("::")[-1]:
                continue
            if kind == "CXXRecordDecl" and not ch.get("completeDefinition"):
                names.add((scope, name))
                continue
            names.add((scope, name))
            if kind == "CXXRecordDecl":
                visit_record(ch, f"{scope}::{name}")
            if kind == "ClassTemplateDecl":
                for c in ch.get("inner", []):
                    if c.get("kind") == "CXXRecordDecl" and c.get("completeDefinition"):
                        visit_record(c, f"{scope}::{name}")

    def visit_namespace(node, path):
        rel = "::".join(path[1:])
        if path[0] != "rcukit" or "detail" in path or rel not in PUBLIC_NAMESPACES:
            return
        for ch in node.get("inner", []) or []:
            kind = ch.get("kind")
            if kind == "NamespaceDecl":
                visit_namespace(ch, path + [ch.get("name", "")])
                continue
            name = member_name(ch)
            if name is None:
                continue
            scope = rel
            if kind == "CXXRecordDecl":
                if ch.get("completeDefinition"):
                    names.add((scope, name))
                    visit_record(ch, f"{scope}::{name}".lstrip(":"))
                continue
            if kind == "ClassTemplateDecl":
                names.add((scope, name))
                for c in ch.get("inner", []):
                    if c.get("kind") == "CXXRecordDecl" and c.get("completeDefinition"):
                        visit_record(c, f"{scope}::{name}".lstrip(":"))
                continue
            if kind in ("FunctionDecl", "FunctionTemplateDecl", "TypeAliasDecl", "TypedefDecl", "VarDecl",
                        "EnumDecl", "ConceptDecl", "UsingDecl", "TypeAliasTemplateDecl", "VarTemplateDecl"):
                names.add((scope, name))

    # Names declared in a detail namespace (and redeclared at namespace scope
    # by an out-of-line definition) are not public.
    hidden = set()

    def collect_detail(node, in_detail):
        for ch in node.get("inner", []) or []:
            if ch.get("kind") == "NamespaceDecl":
                collect_detail(ch, in_detail or ch.get("name") == "detail")
            elif in_detail and ch.get("name"):
                hidden.add(ch["name"])

    for o in objs:
        if o.get("kind") == "NamespaceDecl":
            collect_detail(o, o.get("name") == "detail")
            visit_namespace(o, [o.get("name", "")])
    return {(s, n) for s, n in names if not (s in ("", "rcu", "rb") and n in hidden and (s, n) != ("rb", n))}


DECL_CLASS = re.compile(r"^\s*(?:template\s*<.*>\s*)?(?:class|struct)\s+(\w+)\b([^;]*)$")
FUNC = re.compile(r"(operator\s*(?:\(\)|[^\s(]+)|~?\w+)\s*\(")
USING = re.compile(r"^\s*using\s+(?:\w+::)*(\w+)\s*(=|;)")
FIELD = re.compile(r"^\s*(?:static\s+)?(?:constexpr\s+|inline\s+|const\s+)*[\w:<>,\s*&]+?\b(\w+)\s*(?:\[[^\]]*\])?\s*(?:=[^;]*|\{[^}]*\})?;")
ENUM = re.compile(r"\benum\s+(?:class\s+)?(\w+)")
CONCEPT = re.compile(r"^\s*(?:template\s*<.*>\s*)?concept\s+(\w+)")
NAMESPACE = re.compile(r"^\s*namespace\s+([\w:]+)\s*\{")
NOT_NAMES = {"return", "if", "for", "while", "sizeof", "decltype", "requires", "noexcept", "static_assert",
             "alignas", "alignof", "switch", "template", "operator"}


def doc_surface(text):
    names = set()
    blocks = re.findall(r"```cpp\n(.*?)```", text, re.S)
    for block in blocks:
        ns = ""
        stack = []  # class scopes
        for raw in block.splitlines():
            line = raw.split("//")[0].rstrip()
            if not line.strip():
                continue
            m = NAMESPACE.match(line)
            if m:
                parts = m.group(1).split("::")
                ns = "::".join(p for p in parts if p != "rcukit")
                continue
            scope = stack[-1] if stack else ns
            if re.match(r"^\s*friend\b", line):
                continue  # friends are not members (the headers' side skips them too)
            m = re.match(r"^\s*(?:template\s*<[^>]*>\s*)?(?:class|struct)\s+(\w+)\s*;", line)
            if m:
                names.add((scope, m.group(1)))
                continue
            m = DECL_CLASS.match(line)
            if m and "{" in line:
                name = m.group(1)
                names.add((scope, name))
                if not line.rstrip().endswith("};"):
                    stack.append(f"{scope}::{name}".lstrip(":"))
                continue
            if re.match(r"^\s*\};", line):
                if stack:
                    stack.pop()
                continue
            if re.match(r"^\s*}\s*(//.*)?$", line):
                continue
            m = CONCEPT.match(line)
            if m:
                names.add((scope, m.group(1)))
                continue
            m = ENUM.search(line)
            if m:
                names.add((scope, m.group(1)))
                f = re.search(r"\}\s*(\w+)\s*(=|;)", line)  # enum class e { ... } member = ...;
                if f:
                    names.add((scope, f.group(1)))
                continue
            m = USING.match(line)
            if m:
                names.add((scope, m.group(1)))
                continue
            fm = FUNC.search(line)
            if fm and not line.strip().startswith(("public", "private")):
                n = re.sub(r"\s+", " ", fm.group(1)).strip()
                own = scope.split("::")[-1]
                if n not in NOT_NAMES and n != own:  # constructors are not listed
                    names.add((scope, n))
                continue
            m = FIELD.match(line)
            if m and m.group(1) not in NOT_NAMES:
                names.add((scope, m.group(1)))
    return names


def norm(scope, name):
    scope = ALIASES.get(scope, scope)
    name = re.sub(r"\s+", " ", name).replace("operator ==", "operator==")
    return scope, name


def main():
    hdr = {norm(*n) for n in header_surface()}
    if "--list" in sys.argv[1:]:
        for s, n in sorted(hdr):
            print(f"{s + '::' if s else ''}{n}")
        return 0
    doc_text = (ROOT / "docs" / "API.md").read_text()
    doc = {norm(*n) for n in doc_surface(doc_text)}
    missing = sorted(hdr - doc)
    extra = sorted(doc - hdr)
    if missing:
        print("api_check: public names the headers declare that docs/API.md does not:")
        for s, n in missing:
            print(f"  {s + '::' if s else ''}{n}")
    if extra:
        print("api_check: names docs/API.md declares that the headers do not have:")
        for s, n in extra:
            print(f"  {s + '::' if s else ''}{n}")
    if missing or extra:
        return 1
    print(f"api_check: docs/API.md declares exactly the {len(hdr)} public names of the headers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
