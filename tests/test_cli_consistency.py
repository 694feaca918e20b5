"""The command line speaks one language (issue 12, item 6): every error line names a
stable code, ``run --json`` reports rejections as JSON, ``--reg`` presets registers,
error lists are bounded (text and JSON), and ``zjit cache`` / ``ZJIT_CACHE_DIR``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_tools import run

from zjit.cli._tooling import MAX_JSON_ERRORS, MAX_SHOWN
from zjit.errors import CODES, WARNING_CODES
from zjit.isa import TrapKind
from zjit.policy import CACHE_DIR_VARIABLE, Policy, default_cache_path
from zjit.runtime import available_backends

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STABLE = set(CODES) | set(WARNING_CODES) | {k.name for k in TrapKind}
SUMMARY = re.compile(r"zjit: (rejected: |\S+: )?\.\.\. \d+ more error\(s\)$|zjit: \S+: rejected \(\d+ error\(s\)\)$"
                     r"|    \(source \S+\)$")


def garbage(tmp_path: Path, size: int = 1 << 20) -> Path:
    """``size`` bytes that are not text and not valid code (a whole number of words)."""
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes((i * 7919 + (i >> 8) * 31 + 0xAA) & 0xFF for i in range(size)))
    return path


def failing_lines(tmp_path: Path) -> list[tuple[list[str], int]]:
    """Command lines that fail, with their exit status."""
    hello, bad = str(EXAMPLES / "hello.s"), tmp_path / "bad.s"
    bad.write_text("        PUBLIC main\nmain:   LD8 HL, (DE)\n        JR mian\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    return [
        (["compile", hello, "--target", "x86_64", "-o", "/proc/nope/x"], 3),
        (["compile", hello, "--target", "x86_64", "-o", str(afile / "x")], 3),
        (["compile", hello, "--target", "x86_64", "-o", str(tmp_path / "o"), "--cpu", ""], 2),
        (["asm", hello, "-o", "/proc/nope/x.zasm.bin"], 3),
        (["asm", str(bad)], 3),
        (["disasm", hello, "-o", "/proc/nope/x.s"], 3),
        (["disasm", hello, "--ir", "--native", "x86_64"], 2),
        (["verify", str(garbage(tmp_path, 4096))], 3),
        (["verify", str(tmp_path / "missing.zasm.bin")], 3),
        (["run", str(tmp_path / "missing.zasm.bin")], 3),
        (["run", str(garbage(tmp_path, 4096)), "--engine", "interp"], 3),
        (["run", hello, "--engine", "interp", "--call", "nope"], 3),
        (["run", hello, "--reg", "XX=1"], 2),
        (["run", hello, "--reg", "HL=0x1" + "0" * 16], 2),
        (["run", hello, "--fuel", "-1"], 2),
        (["run", hello, "--stdin", str(tmp_path / "missing.txt")], 2),
        (["run", str(EXAMPLES / "loop.s"), "--engine", "interp", "--fuel", "20"], 1),
        (["fuzz", "--engines", ","], 2),
        (["fuzz", "--engines", "interp,bogus"], 2),
        (["fuzz", "--count", "-1"], 2),
        (["fuzz", "--jobs", "0"], 2),
        (["fuzz", "--out", str(afile)], 2),
        (["fuzz", "--replay", str(tmp_path / "missing.s")], 3),
        (["cache"], 2),
        (["bogus"], 2),
    ]


def test_every_error_line_names_a_stable_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, status in failing_lines(tmp_path):
        rc, _, err = run(argv, capsys)
        assert rc == status, (argv, err)
        lines = err.splitlines()
        assert lines, argv
        usage = False
        for line in lines:
            usage = line.startswith("usage:") or (usage and line.startswith(" "))
            if usage or SUMMARY.match(line):
                continue
            named = STABLE & set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", line))
            assert named, f"{argv}: no stable code in {line!r}"


def test_compile_to_an_unwritable_place(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(["compile", str(EXAMPLES / "hello.s"), "--target", "x86_64", "-o", "/proc/nope/x"], capsys)
    assert rc == 3 and err.startswith("/proc/nope/x: BAD_PATH") and "cannot write" in err


# --------------------------------------------------------------------------- bounded error lists


def test_verify_of_a_megabyte_of_garbage_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = garbage(tmp_path)
    rc, out, err = run(["verify", str(path)], capsys)
    lines = err.splitlines()
    assert rc == 3 and out == ""
    assert len(lines) <= 2 * MAX_SHOWN + 2
    total = int(re.search(r"rejected \((\d+) error\(s\)\)", lines[-1]).group(1))  # type: ignore[union-attr]
    assert total > 100_000
    assert lines[-2] == f"zjit: {path}: ... {total - MAX_SHOWN} more error(s)"
    rc, out, _ = run(["verify", str(path), "--json"], capsys)
    doc = json.loads(out)
    assert rc == 3 and doc["ok"] is False
    assert len(doc["errors"]) == MAX_JSON_ERRORS and doc["omitted"] == total - MAX_JSON_ERRORS
    assert {e["category"] for e in doc["errors"]} == {"verify"}
    rc, out, _ = run(["verify", str(EXAMPLES / "hello.s"), "--json"], capsys)
    assert rc == 0 and json.loads(out)["errors"] == [] and json.loads(out)["omitted"] == 0


# --------------------------------------------------------------------------- zjit run


def test_run_json_reports_a_rejected_module_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text("        PUBLIC main\nmain:   LD8 HL, (DE)\n        JR mian\n")
    rc, out, err = run(["run", str(bad), "--json", "--engine", "interp"], capsys)
    doc = json.loads(out)
    assert rc == 3 and doc["status"] == "rejected" and doc["file"] == str(bad)
    assert [(e["code"], e["line"]) for e in doc["errors"]] == [("ASM_SYNTAX", 2), ("ASM_LABEL", 3)]
    assert doc["omitted"] == 0 and err.count("zjit: rejected: ") == 2
    # a verifier rejection (every error of it) carries source lines when the module has them
    words = tmp_path / "w.s"
    words.write_text("        PUBLIC main\nmain:   WORD 0xffffffff\n        WORD 0xfffffffe\n        RET\n")
    rc, out, _ = run(["run", str(words), "--json", "--engine", "interp"], capsys)
    doc = json.loads(out)
    assert rc == 3 and [(e["code"], e["pc"], e["source"]) for e in doc["errors"]] == [
        ("BAD_OPCODE", 0, f"{words}:2"), ("BAD_OPCODE", 4, f"{words}:3")]
    rc, out, _ = run(["run", str(tmp_path / "missing.zasm.bin"), "--json"], capsys)
    assert rc == 3 and json.loads(out)["errors"][0]["code"] == "BAD_PATH"


@pytest.mark.parametrize("engine", available_backends())
def test_run_presets_registers(engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["run", str(EXAMPLES / "call.s"), "--call", "square", "--reg", "HL=5", "--reg", "de=7",
                      "--json", "--engine", engine], capsys)
    regs = json.loads(out)["registers"]
    assert rc == 0 and (regs["HL"], regs["DE"]) == (25, 7)
    rc, out, _ = run(["run", str(EXAMPLES / "call.s"), "--call", "square", "--reg", "HL=-3", "--reg", "HL=0x10",
                      "--json", "--engine", engine], capsys)
    assert rc == 0 and json.loads(out)["registers"]["HL"] == 256  # the last one counts


def test_run_presets_registers_of_the_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "add.s"
    src.write_text("        PUBLIC main\nmain:   ADD64 HL, HL, DE\n        RET\n")
    rc, out, _ = run(["run", str(src), "--reg", "HL=-1", "--reg", "DE=3", "--json", "--engine", "interp"],
                     capsys)
    assert rc == 0 and json.loads(out)["registers"]["HL"] == 2


def test_reg_on_the_fast_command_line_path() -> None:
    """``--reg`` is parsed without argparse on plain command lines, as argparse would."""
    from zjit.cli import cmd_run

    fast = cmd_run.parse_plain(["m.s", "--reg", "hl=5", "--reg=DE=0x10"])
    assert fast is not None and fast.reg == [("HL", 5), ("DE", 16)]
    assert cmd_run.parse_plain(["m.s", "--reg", "HX=5"]) is None  # argparse reports it


# --------------------------------------------------------------------------- the code cache


def test_cache_dir_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == str(tmp_path / "mine")
    assert Policy().resolved_cache_path == str(tmp_path / "mine")
    assert Policy(cache_dir=tmp_path / "p").resolved_cache_path == str(tmp_path / "p")
    monkeypatch.setenv(CACHE_DIR_VARIABLE, "")
    assert default_cache_path() == str(tmp_path / "xdg" / "zjit")


@pytest.mark.skipif("jit" not in available_backends(), reason="needs the jit backend")
def test_cache_info_and_clear(tmp_path: Path) -> None:
    env = {**os.environ, CACHE_DIR_VARIABLE: str(tmp_path / "cache")}

    def zjit(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zjit", *argv], env=env, capture_output=True, text=True,
                              timeout=120)

    info = json.loads(zjit("cache", "info", "--json").stdout)
    assert (info["exists"], info["entries"], info["chosen_by"]) == (False, 0, CACHE_DIR_VARIABLE)
    for name in ("hello", "loop"):
        assert zjit("run", str(EXAMPLES / f"{name}.s")).returncode == 0  # the jit fills the cache
    info = json.loads(zjit("cache", "info", "--json").stdout)
    assert info["directory"] == str(tmp_path / "cache") and info["trusted"] and info["entries"] == 2
    assert info["bytes"] == sum(p.stat().st_size for p in (tmp_path / "cache").glob("??/*.zjc"))
    text = zjit("cache", "info").stdout
    assert f"directory: {tmp_path / 'cache'}" in text and "entries:   2 (" in text
    p = zjit("cache", "clear")
    assert p.returncode == 0 and p.stdout.startswith("removed 2 entries")
    assert not list((tmp_path / "cache").glob("??/*.zjc"))
    assert (tmp_path / "cache" / "hmac-key").exists()  # the key stays
    assert json.loads(zjit("cache", "info", "--json", "--dir", str(tmp_path / "cache")).stdout)["entries"] == 0


def test_cache_clear_leaves_an_untrusted_cache_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cache"
    (root / "ab").mkdir(parents=True)
    entry = root / "ab" / ("ab" + "0" * 62 + ".zjc")
    entry.write_bytes(b"x" * 100)
    os.chmod(root, 0o777)
    rc, out, err = run(["cache", "clear", "--dir", str(root)], capsys)
    assert rc == 3 and "BAD_PATH" in err and "writable by group or others" in err and entry.exists()
    rc, out, _ = run(["cache", "info", "--dir", str(root), "--json"], capsys)
    info = json.loads(out)
    assert rc == 0 and not info["trusted"] and info["entries"] == 0
    os.chmod(root, 0o700)
    os.chmod(root / "ab", 0o777)  # one entry directory fails its checks: skipped, never read
    rc, out, _ = run(["cache", "clear", "--dir", str(root)], capsys)
    assert rc == 0 and "left alone: ab/: writable by group or others" in out and entry.exists()
