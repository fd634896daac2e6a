#!/usr/bin/env python3
"""Where the instructions of one guest exit round trip go, per stage (kernel,
ioreq task, devices task) and per function, from a QEMU trace of the bench
scenario. Run `cargo xtask bench` first (it builds everything), then:

  qemu-system-riscv64 -machine virt -nographic -bios default -m 256M \
    -icount shift=0 -monitor none -serial stdio \
    -kernel target/riscv64gc-unknown-none-elf/release/mica-kernel \
    -initrd target/mica/riscv64/bench/boot.img \
    -d in_asm,exec,nochain -D /tmp/trace.log   # stop it after "bench: done"
  python3 tools/trace-profile.py /tmp/trace.log mmio   # or: sbi

Every executed translation block is charged with its instructions to the
function (nm) of each pc; U-mode blocks are told apart (the tasks share link
addresses) by matching their bytes against each task ELF. The stage list is
one round trip; the function table averages 100 of them. A trap that cuts a
block short is charged whole: figures are within a few instructions.
"""
import os, sys, subprocess, bisect, collections, re
REL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "target/riscv64gc-unknown-none-elf/release/")
ELFS = {"kernel": REL+"mica-kernel", "ioreq": REL+"mica-ioreq", "devices": REL+"mica-devices",
        "guest": REL+"mica-guest-bench", "vmm": REL+"mica-vm-manager", "init": REL+"mica-init"}
def syms(path):
    out = subprocess.run(["nm", "-n", "-C", "--defined-only", path], capture_output=True, text=True).stdout
    a, n = [], []
    for l in out.splitlines():
        p = l.split(" ", 2)
        if len(p) == 3 and p[1] in "tTwW" and not p[2].startswith(".L"):
            a.append(int(p[0], 16)); n.append(p[2])
    return a, n
S = {k: syms(v) for k, v in ELFS.items()}
def sym(k, pc):
    a, n = S[k]
    i = bisect.bisect_right(a, pc) - 1
    if i < 0: return "?"
    s = n[i]
    s = re.sub(r"::h[0-9a-f]{16}$", "", s)
    return s[:110]
# instruction words of U tasks, to tell ioreq from devices (same link address)
import struct
def load_text(path):
    # read the ELF's loadable executable segment bytes
    data = open(path, "rb").read()
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    segs = []
    for i in range(e_phnum):
        o = e_phoff + i * e_phentsize
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, o)
        if p_type == 1 and (p_flags & 1):
            segs.append((p_vaddr, data[p_offset:p_offset + p_filesz]))
    return segs
TEXT = {k: load_text(ELFS[k]) for k in ("ioreq", "devices", "vmm", "init")}
def word_at(k, pc, n):
    for va, b in TEXT[k]:
        if va <= pc < va + len(b):
            return b[pc - va:pc - va + n]
    return None
def classify_u(pcs_hex):
    # pcs_hex: list of (pc, hexstr)
    best = None
    for k in ("ioreq", "devices", "vmm", "init"):
        ok = 0
        for pc, h in pcs_hex:
            w = bytes.fromhex(h)[::-1]
            if word_at(k, pc, len(w)) == w: ok += 1
        if ok == len(pcs_hex): return k
    return "user?"
log = sys.argv[1]
tbs = {}
pending = None
seq = []
cur = None
with open(log, "r", errors="replace") as f:
    for line in f:
        if line.startswith("IN:"):
            cur = []; pending = cur; continue
        if cur is not None and line.startswith("0x"):
            m = re.match(r"0x([0-9a-f]+):\s+([0-9a-f]+)", line)
            if m: cur.append((int(m.group(1), 16), m.group(2)))
            continue
        if line.startswith("Trace"):
            cur = None
            p = line.split()
            ptr = p[2]; fields = p[3].strip("[]").split("/")
            pc = int(fields[1], 16); flags = int(fields[2], 16)
            if pending is not None and pending and pending[0][0] == pc:
                idx = flags & 7
                mode = {1: "kernel", 5: "guest", 0: "U", 3: "M"}.get(idx, "?%d" % idx)
                if mode == "U": mode = classify_u(pending[:4])
                tbs[ptr] = (mode, [x[0] for x in pending])
                pending = None
            seq.append(ptr)
print("TB execs", len(seq), file=sys.stderr)
# guest segments: find the round trips of the last measurement (mmio): consecutive non-guest runs
runs = []  # (start index, end index) of non-guest stretches
i = 0; n = len(seq)
modes = [tbs.get(p, ("?", []))[0] for p in seq]
j = 0
while j < n:
    if modes[j] != "guest":
        k = j
        while k < n and modes[k] != "guest": k += 1
        runs.append((j, k)); j = k
    else: j += 1
def cost(a, b):
    return sum(len(tbs[seq[x]][1]) for x in range(a, b) if seq[x] in tbs)
sizes = [cost(a, b) for a, b in runs]
# print histogram of sizes of runs near the end
print("last 30 run sizes:", sizes[-30:], file=sys.stderr)
which = sys.argv[2] if len(sys.argv) > 2 else "mmio"
if which == "mmio":
    # The most common size of the runs long enough to be a round trip
    # through both services (as the bench picks its stage breakdown).
    trips = [s for s in sizes if s >= 1000]
    if not trips:
        sys.exit("no round trip of 1,000 instructions or more in the trace")
    common = max(set(trips), key=trips.count)
    sel = [r for r, s in zip(runs, sizes) if s == common]
else:
    sel = [r for r, s in zip(runs, sizes) if 100 <= s <= 1000]
sel = sel[50:150] if len(sel) > 150 else sel
print("selected", len(sel), "runs", file=sys.stderr)
N = len(sel)
# stage breakdown for one representative run, then function aggregate
a, b = sel[len(sel)//2]
stages = []
for x in range(a, b):
    m, pcs = tbs[seq[x]]
    if stages and stages[-1][0] == m: stages[-1][1] += len(pcs)
    else: stages.append([m, len(pcs), x])
print("== stages of one round trip (mode, instructions, first function)")
for m, c, x in stages:
    pcs = tbs[seq[x]][1]
    k = m if m in S else "kernel"
    print(f"{m:8} {c:6}  {sym(k, pcs[0]) if m in S else ''}")
print("total", sum(s[1] for s in stages))
print("== functions of each stage of that round trip")
at = a
for m, c, x in stages:
    k = m if m in S else "kernel"
    fns = collections.Counter()
    for y in range(x, x + 10**9):
        if y >= b or tbs[seq[y]][0] != m: break
        for pc in tbs[seq[y]][1]:
            fns[sym(k, pc) if m in S else hex(pc)] += 1
    print(f"-- {m} {c}")
    for f, n in fns.most_common(12):
        print(f"   {n:6} {f}")
agg = collections.Counter()
for a, b in sel:
    for x in range(a, b):
        m, pcs = tbs[seq[x]]
        for pc in pcs:
            agg[(m, sym(m, pc) if m in S else hex(pc))] += 1
print("== per function, per round trip")
tot = 0
for (m, s), c in agg.most_common(70):
    print(f"{c/N:8.1f} {m:8} {s}")
print("sum", sum(agg.values())/N)
print("== memcpy/memset callers (instructions inside, per round trip; count of calls)")
callers = collections.Counter(); calls = collections.Counter()
for a, b in sel:
    prev = None; inmem = None
    for x in range(a, b):
        m, pcs = tbs[seq[x]]
        f = sym(m, pcs[0]) if m in S else "?"
        ism = f in ("compiler_builtins::mem::memcpy", "memcpy", "memset", "compiler_builtins::mem::memset", "memmove", "compiler_builtins::mem::memmove")
        if ism:
            if inmem is None:
                inmem = (m, prev); calls[inmem] += 1
            callers[inmem] += len(pcs)
        else:
            inmem = None; prev = f
for k, c in callers.most_common(30):
    print(f"{c/N:8.1f} {calls[k]/N:5.1f} {k[0]:8} {k[1]}")
