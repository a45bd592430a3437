#!/usr/bin/env python3
"""Per-function instruction profile of the hypervisor's exits, from a QEMU trace.

usage: profile-exits.py TRACE ELF [MIN_COUNT]

TRACE comes from QEMU run with `-icount shift=0,sleep=off -d in_asm,exec,nochain
-dfilter TEXT_START..TEXT_END -D TRACE` (docs/performance.md gives the whole command). The
hypervisor's executed translation blocks are split into exits, each from a lower-EL entry of
`el2_vectors` to the block that ends in `eret`; identical exits are grouped, and every group seen
at least MIN_COUNT times (default 8) is printed with its instructions per function (block sizes
from the in_asm listing, function names from llvm-nm of ELF)."""
import bisect
import collections
import glob
import re
import subprocess
import sys


def llvm_nm():
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
    found = glob.glob(f"{sysroot}/lib/rustlib/*/bin/llvm-nm")
    return found[0] if found else "llvm-nm"


def main():
    trace, elf = sys.argv[1], sys.argv[2]
    min_count = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    syms = []
    for line in subprocess.run([llvm_nm(), "-n", "-C", elf], capture_output=True, text=True).stdout.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), re.sub(r"::h[0-9a-f]{16}$", "", parts[2])))
    addrs = [a for a, _ in syms]
    # Every vector table (one per GIC version: el2_vectors, el2_vectors_gicv2).
    tables = {a for a, n in syms if n.startswith("el2_vectors")}

    def function(pc):
        i = bisect.bisect_right(addrs, pc) - 1
        return syms[i][1] if i >= 0 else "?"

    blocks = {}  # first pc -> [(pc, mnemonic)] of its last translation
    current = None
    exits = []
    episode = None
    for line in open(trace, errors="replace"):
        if line.startswith("IN:"):
            current = []
            continue
        m = re.match(r"0x([0-9a-f]+):\s+[0-9a-f]{8}\s+(\S+)", line)
        if m and current is not None:
            if not current:
                blocks[int(m.group(1), 16)] = current
            current.append((int(m.group(1), 16), m.group(2)))
            continue
        if not line.strip():
            current = None
            continue
        m = re.match(r"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/", line)
        if not m:
            continue
        pc = int(m.group(1), 16)
        if episode is None:
            # A lower-EL vector: el2_vectors + 0x400.., one every 0x80.
            if pc & ~0x7FF in tables and pc & 0x7FF >= 0x400 and pc & 0x7F == 0:
                episode = [pc]
            continue
        episode.append(pc)
        block = blocks.get(pc)
        if block and block[-1][1] == "eret":
            exits.append(tuple(episode))
            episode = None

    for sequence, count in collections.Counter(exits).most_common():
        if count < min_count:
            break
        per_function = collections.Counter()
        for pc in sequence:
            for ipc, _ in blocks.get(pc, []):
                per_function[function(ipc)] += 1
        total = sum(per_function.values())
        print(f"== {count} exits of {total} instructions (vector +{sequence[0] & 0x7FF:#x})")
        for name, n in per_function.most_common():
            print(f"   {n:6} {name[:110]}")


if __name__ == "__main__":
    main()
