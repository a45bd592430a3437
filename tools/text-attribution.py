#!/usr/bin/env python3
"""Where the hypervisor's `.text` bytes go, by source file and by inlined function.

usage: text-attribution.py ELF [files|inlined|in FUNCTION] [N]

ELF is the aarch64 hypervisor built with line tables, which changes no code:
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p tantalum-aarch64 \\
        --target aarch64-unknown-none-softfloat --target-dir target/lines
Every 4-byte address of `.text` goes through `llvm-symbolizer --inlines` (Debian's `llvm`
package); each is counted for the innermost source file (`files`), for the innermost function
of this project inlined into more than two functions (`inlined`: helpers whose copies add up),
or, inside the functions whose name contains FUNCTION, for the frame just inside it (`in`).
docs/performance.md ("The hypervisor's `.text`") has what it found."""
import collections
import json
import shutil
import subprocess
import sys


def text_section(elf):
    out = subprocess.run(["readelf", "-SW", elf], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 5 and parts[1] == ".text":
            return int(parts[3], 16), int(parts[5], 16)
    sys.exit(f"{elf}: no .text section")


def frames(elf):
    symbolizer = shutil.which("llvm-symbolizer")
    if not symbolizer:
        sys.exit("llvm-symbolizer not found: apt-get install llvm")
    start, size = text_section(elf)
    addresses = "".join(f"{a:#x}\n" for a in range(start, start + size, 4))
    out = subprocess.run(
        [symbolizer, f"--obj={elf}", "--inlines", "--functions=linkage", "--demangle", "--output-style=JSON"],
        input=addresses, capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        symbols = json.loads(line).get("Symbol") or []
        if symbols:
            yield symbols


def ours(frame):
    name = frame["FileName"]
    return name and "/rustc/" not in name and "rustlib" not in name and ".cargo" not in name


def main():
    elf = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "files"
    pattern = sys.argv[3] if mode == "in" and len(sys.argv) > 3 else None
    rest = sys.argv[4:] if mode == "in" else sys.argv[3:]
    top = int(rest[0]) if rest else 40
    counts = collections.Counter()
    callers = collections.defaultdict(set)
    for symbols in frames(elf):
        outer = symbols[-1]["FunctionName"]
        if mode == "files":
            counts[symbols[0]["FileName"].split("/src/")[-1] or "?"] += 4
        elif mode == "inlined":
            inner = next((f for f in symbols if ours(f)), None)
            if inner:
                key = f'{inner["FunctionName"]} ({inner["FileName"].split("/")[-1]})'
                counts[key] += 4
                callers[key].add(outer)
        elif mode == "in" and pattern in outer:
            frame = symbols[-2] if len(symbols) > 1 else symbols[0]
            counts[f'{frame["FunctionName"][:100]} ({frame["FileName"].split("/")[-1]})'] += 4
    if mode == "inlined":
        rows = sorted(((n, len(callers[k]), k) for k, n in counts.items() if len(callers[k]) > 2), reverse=True)
        for n, c, k in rows[:top]:
            print(f"{n:7} {c:3} callers  {k[:120]}")
        return
    for k, n in counts.most_common(top):
        print(f"{n:7}  {k[:130]}")


if __name__ == "__main__":
    main()
