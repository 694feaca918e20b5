"""Native code listings (``zjit disasm --native x86_64|aarch64``), annotated with guest pcs.

:func:`native_listing` compiles a verified program for one target and
disassembles every function of the object with capstone:

* ``x86_64``: the object the JIT loads for the policy's default variant (same
  options as :meth:`zjit.backends.native.engine.JitBackend.options`);
* ``aarch64``: the object ``zjit compile --target aarch64`` writes (the options
  of :mod:`zjit.backends.aot`: memory size and read-only ranges read from the
  context).

Annotations (docs/cli.md): function symbols with the guest pc they run from
(``f_<pc>`` guest functions, ``<prefix>entry_<pc>`` entry points, with export
names and source lines); calls of the trap helper with the trap kind and guest
pc their stub passes; the guard branches that jump to such a stub; direct call
targets by symbol; indirect calls through the context by field name (``host_call``,
``fn_memmove``...), and calls of the x86-64 adapters that make them. Guest block pcs show up where a guard of that block exists
(fuel checks at every block leader of metered code, interrupt polls at loop
headers, memory and division guards at their instruction).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from zjit.verifier import VerifiedProgram

from zjit.isa import TrapKind
from zjit.policy import Policy

from .context import FIELDS, OFFSETS, TRAP_STACK
from .llvm.abi import HOST_CALL, MEMMOVE, MEMSET, c_field
from .objfile import elf
from .targets import TARGETS

LISTING_TARGETS = ("x86_64", "aarch64")
TRAP_SYMBOL = "zjit.trap"

_FN_FIELDS = {OFFSETS[f.name]: f.name for f in FIELDS if f.kind == "fn"}
_ADAPTERS = {a: c_field(a) for a in (HOST_CALL, MEMMOVE, MEMSET)}
_ROUTINES = {
    "rt_enter": "runtime: saves registers, runs an entry body, returns 0 (or 1 after a trap)",
    "rt_trap_exit": "runtime: leaves a run after a trap (returns 1 from rt_enter)",
    "rt_syscall": "runtime: one system call",
    "rt_host_request": "runtime: host_call of the native engine (posts a request, waits)",
    "rt_thread_main": "runtime: guest thread start routine of the native engine",
}
_ENTRY_RE = re.compile(r"^(?P<prefix>\w*?)entry_(?P<pc>[0-9a-f]+)$")
_FUNC_RE = re.compile(r"^f_(?P<pc>[0-9a-f]+)$")
_IMM = r"#?(?P<imm>-?(?:0x[0-9a-f]+|\d+))"


@dataclass(frozen=True)
class NativeObject:
    """A compiled object plus what its listing header needs."""

    target: str
    obj: bytes
    entries: dict[int, str]
    """Entry pc -> exported symbol."""
    options: Any
    """The :class:`~zjit.backends.llvm.options.CodegenOptions` it was compiled with."""


def compile_native(program: VerifiedProgram, target: str, policy: Policy | None = None) -> NativeObject:
    """Compile ``program`` for ``target`` the way the engine (x86_64) or ``zjit
    compile`` (aarch64) does; ``policy`` gives the opt level and metering."""
    from .llvm import CodegenOptions, lower
    from .middle.lift import lift
    from .objfile.compiler import compile_ir

    if target not in LISTING_TARGETS:
        raise ValueError(f"unknown target {target!r} (known: {', '.join(LISTING_TARGETS)})")
    policy = policy if policy is not None else Policy(use_cache=False)
    opts = CodegenOptions(triple=TARGETS[target].triple, opt_level=policy.opt_level,
                          fuel=policy.fuel is not None)
    if target == "x86_64":
        from .native.engine import JitBackend

        jit = JitBackend()
        spec = jit.default_specialisation(program, policy)
        if spec is not None:  # else instances could not be created: no JIT code
            opts = dataclasses.replace(jit.options(policy, spec), triple=opts.triple)
    low = lower(lift(program, opts.versioning), opts)
    obj = compile_ir(low.text, triple=opts.triple, opt_level=opts.opt_level, cpu=opts.cpu)
    return NativeObject(target, obj, dict(low.entries), opts)


def native_listing(program: VerifiedProgram, target: str, policy: Policy | None = None) -> str:
    """The annotated machine code of ``program`` for ``target`` (``x86_64`` or
    ``aarch64``); see the module docstring for what is annotated."""
    return format_listing(program, compile_native(program, target, policy))


# --- formatting ----------------------------------------------------------------------

@dataclass
class _Insn:
    addr: int
    size: int
    raw: bytes
    mnemonic: str
    ops: str
    note: str = ""


@dataclass(frozen=True)
class _Func:
    name: str
    section: int
    start: int
    size: int


def _capstone(target: str) -> Any:
    import capstone

    if target == "x86_64":
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)


def _functions(obj: elf.ElfObject) -> list[_Func]:
    """Function symbols in executable sections, by section and address."""
    exec_secs = {s.index for s in obj.sections if s.flags & elf.SHF_EXECINSTR}
    funcs = [_Func(s.name, s.shndx, s.value, s.size) for s in obj.symbols
             if s.type == elf.STT_FUNC and s.shndx in exec_secs and s.name]
    return sorted(funcs, key=lambda f: (f.section, f.start))


def _data_ranges(obj: elf.ElfObject, section: int) -> list[tuple[int, int]]:
    """AArch64 mapping symbols: ``(start, end)`` of ``$d`` (data) runs in a section."""
    marks = sorted((s.value, s.name[:2]) for s in obj.symbols
                   if s.shndx == section and s.name[:2] in ("$d", "$x") and s.type == elf.STT_NOTYPE)
    out: list[tuple[int, int]] = []
    for k, (at, kind) in enumerate(marks):
        if kind == "$d":
            end = marks[k + 1][0] if k + 1 < len(marks) else 1 << 62
            out.append((at, end))
    return out


def _describe_symbol(name: str, program: VerifiedProgram) -> str:
    """The comment on a function's header line."""
    names: dict[int, list[str]] = {}
    for n, pc in sorted(program.exports.items()):
        names.setdefault(pc, []).append(n)

    def where(pc: int) -> str:
        extra = list(names.get(pc, []))
        if pc == program.entry:
            extra.insert(0, "entry")
        d = program.image.debug.get(pc)
        if d is not None:
            extra.append(f"{d.source}:{d.line}")
        return f"pc {pc:#x}" + (f" ({', '.join(extra)})" if extra else "")

    m = _FUNC_RE.match(name)
    if m:
        return f"guest function at {where(int(m['pc'], 16))}"
    m = _ENTRY_RE.match(name)
    if m:
        return f"entry point: runs the guest from {where(int(m['pc'], 16))}"
    if name == TRAP_SYMBOL:
        return "trap helper: stores the trap record in the context and leaves the run"
    if name in _ADAPTERS:
        return f"adapter: calls the C function in ctx.{_ADAPTERS[name]}"
    if name.startswith("body_"):
        return f"entry body (run by rt_enter) for pc {int(name[5:], 16):#x}"
    return _ROUTINES.get(name, "runtime helper")


def _trap_text(kind: int | None, pc: int | None, program: VerifiedProgram) -> str:
    try:
        k = TrapKind(kind).name if kind is not None else "?"
    except ValueError:
        k = "NATIVE_STACK" if kind == TRAP_STACK else str(kind)
    if pc is None:
        return f"trap {k}"
    d = program.image.debug.get(pc)
    return f"trap {k} @{pc:#x}" + (f" ({d.source}:{d.line})" if d is not None else "")


_X86_NAMES = {f"e{r}": f"r{r}" for r in ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp")}
_X86_NAMES |= {f"r{n}d": f"r{n}" for n in range(8, 16)}
_MASK64 = (1 << 64) - 1


class _Arch:
    """What the annotator needs to know about one instruction set."""

    def __init__(self, target: str) -> None:
        self.x86 = target == "x86_64"
        # trap helper arguments (ctx, kind, pc, ...; the guest calling convention:
        # x86_regcallcc, preserve_nonecc) unless the helper says otherwise
        self.args = ("rax", "rcx", "rdx") if self.x86 else ("x20", "x21", "x22")

    def reg(self, name: str) -> str:
        """Canonical (64-bit) register name."""
        if self.x86:
            return _X86_NAMES.get(name, name)
        return "x" + name[1:] if name[:1] == "w" and name[1:].isdigit() else name

    def is_call(self, m: str) -> bool:
        return m == "call" if self.x86 else m in ("bl", "blr")

    def is_branch(self, m: str) -> bool:
        """Jumps of any kind (calls excluded): the next instruction starts a block."""
        if self.x86:
            return m.startswith("j") or m in ("ret", "ud2", "int3")
        return m in ("b", "br", "ret", "brk", "udf", "cbz", "cbnz", "tbz", "tbnz") or m.startswith("b.")

    def target(self, m: str, ops: str) -> int | None:
        """Direct target of a jump or call, if any."""
        if not (self.is_branch(m) or self.is_call(m)):
            return None
        mt = re.search(r"(?:^|#)(0x[0-9a-f]+|\d+)$", ops.strip())
        return int(mt.group(1), 0) if mt else None

    def write(self, m: str, ops: str, known: dict[str, int]) -> tuple[str | None, int | None]:
        """The register an instruction writes (canonical name) and its constant
        value when that is known; ``(None, None)`` when it writes no register."""
        parts = [p.strip() for p in ops.split(",")]
        if not parts or not parts[0] or "[" in parts[0]:
            return None, None
        dest = self.reg(parts[0])
        src = parts[1] if len(parts) > 1 else ""
        imm = re.fullmatch(_IMM, src)
        if self.x86:
            if m in ("cmp", "test", "push", "bt", "call") or m.startswith("j"):
                return None, None
            if m == "mov" and imm:
                return dest, int(imm["imm"], 0) & _MASK64
            if m == "mov" and self.reg(src) in known:
                return dest, known[self.reg(src)]
            if m == "xor" and self.reg(src) == dest:
                return dest, 0
            return dest, None
        if m.startswith("st") or m in ("cmp", "cmn", "tst", "ccmp", "ccmn", "fcmp") or self.is_branch(m):
            return None, None
        shift = 0
        if len(parts) > 2 and parts[2].startswith("lsl #"):
            shift = int(parts[2][5:], 0)
        if m in ("mov", "movz") and src in ("xzr", "wzr"):
            return dest, 0
        if m == "mov" and len(parts) == 2 and self.reg(src) in known:
            return dest, known[self.reg(src)]
        if m in ("mov", "movz") and imm:
            return dest, (int(imm["imm"], 0) << shift) & _MASK64
        if m == "movk" and imm and dest in known:
            return dest, (known[dest] & ~(0xFFFF << shift)) | (int(imm["imm"], 0) << shift)
        return dest, None

    def copy_source(self, m: str, ops: str) -> str | None:
        """Source register of a plain register-to-register move."""
        parts = [p.strip() for p in ops.split(",")]
        if m != "mov" or len(parts) != 2 or "[" in ops or re.fullmatch(_IMM, parts[1]):
            return None
        return self.reg(parts[1])

    def stores(self, m: str, ops: str) -> list[tuple[int, str]]:
        """``(ctx offset, source)`` of stores through the first argument register
        (the trap helper's context): a register name or an immediate."""
        base = self.args[0]
        if self.x86:
            mt = re.fullmatch(r"qword ptr \[(\w+)(?: \+ (0x[0-9a-f]+|\d+))?\], (\w+)", ops)
            if m == "mov" and mt and mt.group(1) == base:
                return [(int(mt.group(2) or "0", 0), self.reg(mt.group(3)))]
            return []
        mt = re.fullmatch(r"(\w+), (?:(\w+), )?\[(\w+)(?:, #(0x[0-9a-f]+|\d+))?\]", ops)
        if m not in ("str", "stp") or not mt or mt.group(3) != base:
            return []
        off = int(mt.group(4) or "0", 0)
        out = [(off, self.reg(mt.group(1)))]
        if m == "stp" and mt.group(2):
            out.append((off + 8, self.reg(mt.group(2))))
        return out

    def ctx_loads(self, insn: _Insn) -> list[tuple[str, int]]:
        """``(register, offset)`` for loads of 8-byte fields at a constant offset
        (``mov reg, qword ptr [reg+off]``, ``ldr``/``ldp``)."""
        if self.x86:
            mt = re.fullmatch(r"(\w+), qword ptr \[\w+ \+ (0x[0-9a-f]+|\d+)\]", insn.ops)
            return [(mt.group(1), int(mt.group(2), 0))] if insn.mnemonic == "mov" and mt else []
        mt = re.fullmatch(r"(x\d+), (?:(x\d+), )?\[x\d+, #(0x[0-9a-f]+|\d+)\]", insn.ops)
        if not mt or insn.mnemonic not in ("ldr", "ldp"):
            return []
        off = int(mt.group(3), 0)
        pair = [(mt.group(2), off + 8)] if insn.mnemonic == "ldp" and mt.group(2) else []
        return [(mt.group(1), off), *pair]

    def call_register(self, insn: _Insn) -> str | None:
        """Register an indirect call goes through (None for memory operands)."""
        ops = insn.ops.strip()
        return self.reg(ops) if re.fullmatch(r"\w+", ops) and not re.fullmatch(_IMM, ops) else None

    def ctx_call_field(self, insn: _Insn, fn_loads: dict[str, set[int]], recent: dict[str, int]) -> str | None:
        """Context field an indirect call goes through: ``call [reg+off]``, or a
        register that only ever holds one function field in this function (host
        function pointers come only from the context), else its latest load."""
        mt = re.fullmatch(r"qword ptr \[\w+ \+ (0x[0-9a-f]+|\d+)\]", insn.ops)
        if self.x86 and mt:
            return _FN_FIELDS.get(int(mt.group(1), 0))
        reg = self.call_register(insn)
        if reg is None:
            return None
        offs = fn_loads.get(reg, set())
        off = next(iter(offs)) if len(offs) == 1 else recent.get(reg)
        return _FN_FIELDS.get(off) if off is not None else None


@dataclass(frozen=True)
class _TrapArgs:
    """Where the trap helper takes the trap kind and pc from: an argument register
    or, when LLVM specialised the helper, a constant."""

    kind: str | int | None
    pc: str | int | None


def _trap_args(insns: list[_Insn], arch: _Arch) -> _TrapArgs:
    """Read the trap helper's stores to ``trap_kind`` and ``trap_pc``: which
    argument register (followed through register moves) or constant each stores."""
    known: dict[str, int] = {}
    origin: dict[str, str] = {}
    found: dict[int, str | int] = {}
    for insn in insns:
        for off, src in arch.stores(insn.mnemonic, insn.ops):
            imm = re.fullmatch(_IMM, src)
            value: str | int = int(imm["imm"], 0) if imm else known.get(src, origin.get(src, src))
            found.setdefault(off, value)
        copy = arch.copy_source(insn.mnemonic, insn.ops)
        dest, val = arch.write(insn.mnemonic, insn.ops, known)
        if dest is None:
            continue
        known.pop(dest, None)
        origin.pop(dest, None)
        if val is not None:
            known[dest] = val
        elif copy is not None:
            origin[dest] = origin.get(copy, copy)
    kind, pc = found.get(OFFSETS["trap_kind"]), found.get(OFFSETS["trap_pc"])
    if kind is None and pc is None:  # unrecognised helper: assume the declared order
        return _TrapArgs(arch.args[1], arch.args[2])
    return _TrapArgs(kind, pc)


def _annotate(insns: list[_Insn], arch: _Arch, symbols: dict[int, str], program: VerifiedProgram,
              trap: _TrapArgs) -> None:
    """Fill in ``note`` (and symbol names of call targets) in one function."""
    trap_addr = next((a for a, n in symbols.items() if n == TRAP_SYMBOL), None)
    targets = {t for i in insns if (t := arch.target(i.mnemonic, i.ops)) is not None}
    stub_of: dict[int, str] = {}
    start = 0
    known: dict[str, int] = {}
    fn_loads: dict[str, set[int]] = {}
    for i in insns:
        for reg, off in arch.ctx_loads(i):
            if off in _FN_FIELDS:
                fn_loads.setdefault(arch.reg(reg), set()).add(off)
    recent: dict[str, int] = {}
    other_call = False

    def value(src: str | int | None) -> int | None:
        return src if isinstance(src, int) or src is None else known.get(src)

    for k, insn in enumerate(insns):
        m = insn.mnemonic
        if k == 0 or insn.addr in targets or arch.is_branch(insns[k - 1].mnemonic):
            start, other_call = insn.addr, False
            known.clear()
        target = arch.target(m, insn.ops)
        if target is not None and target in symbols:
            insn.ops += f" <{symbols[target]}>"
        if arch.is_call(m) and target is not None and target == trap_addr:
            insn.note = _trap_text(value(trap.kind), value(trap.pc), program)
            if not other_call:  # a trap stub (not a slow path that may also trap)
                stub_of[start] = insn.note
        elif arch.is_call(m):
            other_call = True
            fm = _FUNC_RE.match(symbols.get(target, "")) if target is not None else None
            adapter = _ADAPTERS.get(symbols.get(target, "")) if target is not None else None
            if fm:
                insn.note = f"guest CALL of pc {int(fm['pc'], 16):#x}"
            elif adapter is not None:
                insn.note = f"host call through ctx.{adapter} (adapter)"
            else:
                field_name = arch.ctx_call_field(insn, fn_loads, recent)
                if field_name is not None:
                    insn.note = f"host call through ctx.{field_name}"
        elif target is not None and (fm := _FUNC_RE.match(symbols.get(target, ""))):
            insn.note = f"guest tail jump to pc {int(fm['pc'], 16):#x}"
        if arch.is_call(m):
            known.clear()  # caller-saved registers are gone
            continue
        dest, val = arch.write(m, insn.ops, known)
        if dest is not None:
            if val is None:
                known.pop(dest, None)
            else:
                known[dest] = val
        for reg, off in arch.ctx_loads(insn):
            if off in _FN_FIELDS:
                recent[arch.reg(reg)] = off
    for insn in insns:
        target = arch.target(insn.mnemonic, insn.ops.split(" <")[0])
        if target is not None and target in stub_of and not arch.is_call(insn.mnemonic):
            insn.note = f"guard -> {stub_of[target]}"


def format_listing(program: VerifiedProgram, native: NativeObject) -> str:
    """The listing text of a compiled object (see :func:`native_listing`)."""
    obj = elf.parse_elf(native.obj)
    md = _capstone(native.target)
    arch = _Arch(native.target)
    funcs = _functions(obj)
    opts = native.options
    code_bytes = sum(f.size for f in funcs)
    out = [
        f"; zjit native listing: module {program.image.name!r}, target {native.target} ({opts.triple})",
        f"; opt level {opts.opt_level}, {'metered' if opts.fuel else 'unmetered'}, "
        f"memory size {'from the context' if opts.mem_size is None else hex(opts.mem_size)}, "
        f"{len(funcs)} functions, {code_bytes} bytes of code",
        "; addresses are offsets in the object's sections; 'trap KIND @pc' = guest pc a stub reports",
        "",
    ]
    for sec in sorted({f.section for f in funcs}):
        data = obj.sections[sec].data
        symbols = {f.start: f.name for f in funcs if f.section == sec}
        data_ranges = [] if arch.x86 else _data_ranges(obj, sec)
        listed = {f: _disassemble(md, data, f, data_ranges, 1 if arch.x86 else 4)
                  for f in funcs if f.section == sec}
        helper = next((i for f, i in listed.items() if f.name == TRAP_SYMBOL), [])
        trap = _trap_args(helper, arch)
        for f, insns in listed.items():
            out.append(f"{f.name}:{'':<{max(1, 30 - len(f.name))}}; {_describe_symbol(f.name, program)}")
            _annotate(insns, arch, symbols, program, trap)
            width = max((len(i.raw) for i in insns), default=4)
            for i in insns:
                text = f"  {i.addr:6x}:  {i.raw.hex(' '):<{3 * width}} {i.mnemonic:<7} {i.ops}".rstrip()
                out.append(f"{text:<72} ; {i.note}" if i.note else text)
            out.append("")
    return "\n".join(out)


def _disassemble(md: Any, data: bytes, f: _Func, data_ranges: list[tuple[int, int]],
                 step: int) -> list[_Insn]:
    """Instructions of one function (data runs as ``.word``/``.byte`` lines; ``step``
    bytes are skipped at a time where capstone cannot decode)."""
    out: list[_Insn] = []
    at, end = f.start, f.start + f.size
    while at < end:
        run_end = end
        for lo, hi in data_ranges:
            if lo <= at < hi:
                n = min(hi, end) - at
                for k in range(0, n, 4):
                    chunk = data[at + k:at + min(k + 4, n)]
                    word = ".word" if len(chunk) == 4 else ".byte"
                    value = hex(int.from_bytes(chunk, "little")) if len(chunk) == 4 else chunk.hex()
                    out.append(_Insn(at + k, len(chunk), chunk, word, value))
                at += n
                break
            if at < lo < run_end:
                run_end = lo
        else:
            stop = at
            for addr, size, mnem, ops in md.disasm_lite(data[at:run_end], at):
                out.append(_Insn(addr, size, data[addr:addr + size], mnem, ops))
                stop = addr + size
            if stop < run_end:  # undecodable bytes: show them and continue after them
                chunk = data[stop:min(stop + step, run_end)]
                out.append(_Insn(stop, len(chunk), chunk, ".byte", chunk.hex()))
                stop += len(chunk)
            at = stop
    return out

