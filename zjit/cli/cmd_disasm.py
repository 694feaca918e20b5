"""``zjit disasm MODULE [--native x86_64|aarch64] [--ir] [-o OUT]``: list a module.

Without options: the ZASM listing of :func:`zjit.asm.disassemble` (it assembles
back to the same module). ``--native``/``--ir`` go through the backend hook below.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from zjit.cli.exits import EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from zjit.errors import ContainerError, ZjitError

from ._tooling import add_format_option, fail, load_module, report

# --- hook for the JIT backend -------------------------------------------------------
# ``--native TARGET`` and ``--ir`` call into LISTING_MODULE, which the JIT side
# provides with:
#     native_listing(program: VerifiedProgram, target: str, policy: Policy | None) -> str
#         generated machine code (capstone), annotated with guest pcs; ``-O`` and
#         ``--metered`` choose the policy (opt level, fuel metering) it compiles for
# ``--ir`` prints the JIT's SSA IR via zjit.backends.middle.lift.ir_listing.
# Until that module (or the function) exists the options print "not available" and
# exit 2.
LISTING_MODULE = "zjit.backends.listing"
NATIVE_TARGETS = ("x86_64", "aarch64")


def add_parser(p: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    p.add_argument("module", metavar="MODULE",
                   help=".zasm.bin, ROM, module.json, assembly source (.s) or raw code (.bin)")
    add_format_option(p)
    p.add_argument("--native", choices=NATIVE_TARGETS, default=None,
                   help="list the generated machine code for TARGET instead")
    p.add_argument("-O", dest="opt_level", type=int, choices=(0, 1, 2), default=2,
                   help="with --native: optimisation level (default 2)")
    p.add_argument("--metered", action="store_true",
                   help="with --native: code with fuel metering (a guard at every block)")
    p.add_argument("--ir", action="store_true", help="list the JIT's SSA IR (docs/jit.md) instead")
    p.add_argument("-o", "--output", metavar="OUT", help="write the listing to OUT instead of stdout")


def _backend_listing(args: argparse.Namespace, image: Any) -> str | None:
    """The native/IR listing, or None when the backend hook is not available."""
    if args.ir:
        # The JIT's own SSA IR (docs/jit.md); importing the lifter needs no LLVM.
        from zjit.backends.middle.lift import ir_listing
        from zjit.verifier import verify

        return str(ir_listing(verify(image)))
    try:
        listing: Any = importlib.import_module(LISTING_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (LISTING_MODULE, "zjit.backends"):
            raise
        return None
    from zjit.verifier import verify

    program = verify(image)
    if args.native:
        from zjit.policy import Policy

        fn = getattr(listing, "native_listing", None)
        policy = Policy(opt_level=args.opt_level, fuel=0 if args.metered else None, use_cache=False)
        return None if fn is None else str(fn(program, args.native, policy))
    fn = getattr(listing, "ir_listing", None)
    return None if fn is None else str(fn(program))


def main(args: argparse.Namespace) -> int:
    """Print the listing; exit 3 when the module cannot be loaded (or verified, for
    the native/IR listings), 2 when a requested listing is not available."""
    from zjit.asm import disassemble

    path: str = args.module
    if args.native and args.ir:
        fail("choose one of --native and --ir", "disasm")
        return EXIT_USAGE
    try:
        image = load_module(path, args.format)
        if args.native or args.ir:
            text = _backend_listing(args, image)
            if text is None:
                what = f"--native {args.native}" if args.native else "--ir"
                fail(f"{what} listing not available in this build", "disasm")
                return EXIT_USAGE
        else:
            text = disassemble(image)
    except ZjitError as err:
        report(err, path)
        return EXIT_REJECTED
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            report(ContainerError("BAD_PATH", f"cannot write {args.output}: {exc.strerror or exc}",
                                  path=args.output), args.output)
            return EXIT_REJECTED
    else:
        sys.stdout.write(text)
    return EXIT_OK
