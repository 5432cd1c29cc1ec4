#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every source file rcukit ships carries an SPDX licence line (LICENSE: MIT).

  scripts/spdx.py          check: list the tracked files without one, exit 1 if any
  scripts/spdx.py --add    add `SPDX-License-Identifier: MIT` where it is missing

Source files: C++ (.hpp, .cpp, .h), CMake (CMakeLists.txt, .cmake, .in),
shell and Python scripts, the CI entry point. Patches, corpora, data and
Markdown are not source files.
"""
import pathlib
import subprocess
import sys

TAG = "SPDX-License-Identifier:"
LICENCE = "MIT"


def comment_for(path: pathlib.Path):
    name = path.name
    if path.suffix in (".hpp", ".cpp", ".h", ".cc"):
        return "//"
    if name == "CMakeLists.txt" or path.suffix in (".cmake", ".sh", ".py"):
        return "#"
    if name.endswith(".cmake.in"):
        return "#"
    if path.parent.name == ".ci" or path.parent.name == "hooks":
        return "#"
    return None


def tracked_files(root: pathlib.Path):
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True).stdout
    for rel in out.decode().split("\0"):
        if rel and (root / rel).is_file():
            yield root / rel


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    add = "--add" in sys.argv[1:]
    missing = []
    for path in tracked_files(root):
        rel = path.relative_to(root)
        if rel.parts[0] == "tests" and len(rel.parts) > 2 and rel.parts[1] in ("canaries",):
            continue
        if "corpus" in rel.parts or "regressions" in rel.parts:
            continue
        lead = comment_for(path)
        if lead is None:
            continue
        text = path.read_text()
        if TAG in "\n".join(text.splitlines()[:5]):
            continue
        if not add:
            missing.append(str(rel))
            continue
        lines = text.splitlines(keepends=True)
        at = 1 if lines and lines[0].startswith("#!") else 0
        lines.insert(at, f"{lead} {TAG} {LICENCE}\n")
        path.write_text("".join(lines))
        print(f"spdx: added to {rel}")
    if missing:
        print("spdx: files without an SPDX-License-Identifier line (scripts/spdx.py --add):")
        for m in missing:
            print(f"  {m}")
        return 1
    if not add:
        print("spdx: every source file carries its licence line")
    return 0


if __name__ == "__main__":
    sys.exit(main())
