"""The runtime routines every object carries (backends/llvm/runtime_asm.py).

Their machine code is given as bytes next to the instructions they encode; here
capstone checks that the bytes are those instructions, and unicorn runs
``rt_enter``/``rt_trap_exit`` on both targets: a body that clobbers every
callee-saved register and then leaves through ``rt_trap_exit`` (or returns)
still hands its caller back all of them, with status 1 (or 0).
"""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest
from zjit.backends.context import OFFSETS, STATUS_OK, STATUS_TRAPPED, Ctx
from zjit.backends.llvm.runtime_asm import RT_ENTER, RT_TRAP_EXIT, Routine, routines, runtime_text
from zjit.backends.objfile.compiler import compile_ir_inprocess
from zjit.backends.objfile.linker import link_image
from zjit.backends.targets import AARCH64_TRIPLE, X86_64_TRIPLE, data_layout

unicorn = pytest.importorskip("unicorn")
capstone = pytest.importorskip("capstone")

TRIPLES = [X86_64_TRIPLE, AARCH64_TRIPLE]


def _disasm(triple: str, code: bytes) -> list[str]:
    if triple == X86_64_TRIPLE:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    return [f"{m} {o}".strip() for _a, _s, m, o in md.disasm_lite(code, 0)]


def _norm(text: str) -> str:
    """Numbers in one base, so ``#0x108`` and ``#264`` compare equal."""
    return re.sub(r"0x[0-9a-f]+|\d+", lambda m: str(int(m.group(0), 0)), text.replace("#", ""))


@pytest.mark.parametrize("triple", TRIPLES)
def test_bytes_are_the_listed_instructions(triple: str) -> None:
    for routine in routines(triple):
        listed = [_norm(text) for _, text in routine.code]
        assert [_norm(t) for t in _disasm(triple, routine.bytes)] == listed, routine.name


def test_exit_sp_offset_is_the_contexts() -> None:
    x86 = {r.name: r for r in routines(X86_64_TRIPLE)}
    a64 = {r.name: r for r in routines(AARCH64_TRIPLE)}
    off = OFFSETS["exit_sp"]
    assert any(f"[rdi + {off:#x}], rsp" in t for _, t in x86[RT_ENTER].code)
    assert any(f"[x0, #{off}]" in t for _, t in a64[RT_TRAP_EXIT].code)


# A test-only routine that breaks the C ABI on purpose: it overwrites every
# callee-saved register, as guest code does before a trap leaves the run.
_X86_CLOBBER = b"\x48\x89\xf8" + b"".join(bytes([0x48 | (r >= 8), 0xC7, 0xC0 | (r & 7)]) + struct.pack("<i", -1 - r)
                        for r in (3, 5, 12, 13, 14, 15)) + b"\xc3"
_A64_CLOBBER = b"".join(struct.pack("<I", 0x92800000 | r << 5 | r) for r in range(19, 30)) + b"".join(
    struct.pack("<I", 0x9E6703E0 | d) for d in range(8, 16)) + struct.pack("<I", 0xD65F03C0)
"""``ptr clobber(ptr ctx)`` returns ctx; x86-64: ``mov rax, rdi``, ``mov
rbx/rbp/r12..r15, -1-n``; aarch64: ``movn x19..x29, #n`` (x29 too), ``fmov
d8..d15, xzr``, ``ret``."""


def _module(triple: str) -> str:
    code = _X86_CLOBBER if triple == X86_64_TRIPLE else _A64_CLOBBER
    clobber = Routine("clobber", "ptr", ("ptr",), ((code, "clobber every callee-saved register"),))
    return "\n".join([
        f'target datalayout = "{data_layout(triple)}"',
        f'target triple = "{triple}"',
        runtime_text(triple),
        clobber.ir(),
        "define internal void @trapping(ptr %ctx) {",
        "  %c = call ptr @clobber(ptr %ctx)",
        f"  call void @{RT_TRAP_EXIT}(ptr %c) noreturn",
        "  unreachable",
        "}",
        "define internal void @returning(ptr %ctx) {",
        "  %c = call ptr @clobber(ptr %ctx)",
        "  ret void",
        "}",
        "define i32 @enter_trapping(ptr %ctx) {",
        f"  %s = call i32 @{RT_ENTER}(ptr %ctx, ptr @trapping)",
        "  ret i32 %s",
        "}",
        "define i32 @enter_returning(ptr %ctx) {",
        f"  %s = call i32 @{RT_ENTER}(ptr %ctx, ptr @returning)",
        "  ret i32 %s",
        "}",
        "@llvm.compiler.used = appending global [2 x ptr] [ptr @rt_host_request, ptr @rt_thread_main], "
        'section "llvm.metadata"',
    ])


class _Machine:
    """A unicorn CPU with the linked test module, a stack and a context."""

    CODE, STACK, CTX, SENTINEL = 0x40_0000, 0x80_0000, 0xC0_0000, 0xD0_0000

    def __init__(self, triple: str) -> None:
        from unicorn import arm64_const, x86_const

        self.x86 = triple == X86_64_TRIPLE
        if self.x86:
            self.uc: Any = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
            self.c = x86_const
            self.saved = {f"r{n}": getattr(x86_const, f"UC_X86_REG_R{n.upper()}")
                          for n in ("bx", "bp", "12", "13", "14", "15")}
        else:
            self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM)
            self.c = arm64_const
            cpacr = arm64_const.UC_ARM64_REG_CPACR_EL1
            self.uc.reg_write(cpacr, self.uc.reg_read(cpacr) | (3 << 20))
            self.saved = {f"x{n}": getattr(arm64_const, f"UC_ARM64_REG_X{n}") for n in range(19, 31)}
            self.saved |= {f"d{n}": getattr(arm64_const, f"UC_ARM64_REG_D{n}") for n in range(8, 16)}
        obj = compile_ir_inprocess(_module(triple), triple=triple, opt_level=2)
        self.image = link_image(obj, self.CODE)
        prot = {"rx": unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC, "r": unicorn.UC_PROT_READ,
                "rw": unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE}
        for r in self.image.regions:
            self.uc.mem_map(self.CODE + r.offset, r.size, prot[r.perms])
            self.uc.mem_write(self.CODE + r.offset, r.data)
        for base in (self.STACK, self.CTX):
            self.uc.mem_map(base, 0x10000, unicorn.UC_PROT_READ | unicorn.UC_PROT_WRITE)
        self.uc.mem_map(self.SENTINEL, 0x1000, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
        self.uc.mem_write(self.CTX, bytes(Ctx()))

    def call(self, symbol: str) -> tuple[int, dict[str, int]]:
        uc, c = self.uc, self.c
        for k, (name, reg) in enumerate(self.saved.items()):
            if name != "x30":  # the link register carries the return address
                uc.reg_write(reg, 0x1111 * (k + 1))
        top = self.STACK + 0x10000 - 64
        if self.x86:
            uc.mem_write(top, struct.pack("<Q", self.SENTINEL))  # return address
            uc.reg_write(c.UC_X86_REG_RSP, top)
            uc.reg_write(c.UC_X86_REG_RDI, self.CTX)
            uc.emu_start(self.image.symbols[symbol], self.SENTINEL, count=10_000)
            status = uc.reg_read(c.UC_X86_REG_RAX) & 0xFFFF_FFFF
            assert uc.reg_read(c.UC_X86_REG_RSP) == top + 8
        else:
            uc.reg_write(c.UC_ARM64_REG_SP, top)
            uc.reg_write(c.UC_ARM64_REG_X0, self.CTX)
            uc.reg_write(c.UC_ARM64_REG_LR, self.SENTINEL)
            uc.emu_start(self.image.symbols[symbol], self.SENTINEL, count=10_000)
            status = uc.reg_read(c.UC_ARM64_REG_X0) & 0xFFFF_FFFF
            assert uc.reg_read(c.UC_ARM64_REG_SP) == top
        return status, {name: uc.reg_read(reg) for name, reg in self.saved.items() if name != "x30"}


@pytest.mark.parametrize("triple", TRIPLES)
def test_trap_exit_returns_from_rt_enter_with_callee_saved_registers(triple: str) -> None:
    m = _Machine(triple)
    want = {name: 0x1111 * (k + 1) for k, name in enumerate(m.saved) if name != "x30"}
    status, regs = m.call("enter_trapping")
    assert status == STATUS_TRAPPED
    assert regs == want
    status, regs = m.call("enter_returning")
    assert status == STATUS_OK
    assert regs == want
    exit_sp = struct.unpack_from("<Q", m.uc.mem_read(m.CTX + OFFSETS["exit_sp"], 8))[0]
    assert m.STACK < exit_sp < m.STACK + 0x10000  # rt_enter's frame, on the stack it ran on
