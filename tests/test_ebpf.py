"""supervisor/ebpf.py: the assembler, maps, loading (the verifier's refusal as an error) and test runs.

Needs CAP_BPF (root in CI); the in-kernel ARP tests use the same module on a real program.
"""

from __future__ import annotations

import struct

import pytest

from supervisor import ebpf
from supervisor.ebpf import EXIT, JEQ_K, MOV64_K, R0, R1, R2, Insn, Label, MapFd


def test_labels_and_map_loads_are_resolved() -> None:
    code = ebpf.assemble([
        MapFd(R1, "m"),                        # slots 0-1
        Insn(JEQ_K, R1, 0, 0, 0, "out"),       # slot 2: jumps over slot 3
        Insn(MOV64_K, R0, imm=1),              # slot 3
        Label("out"),
        Insn(EXIT),                            # slot 4
    ], {"m": 7})  # fmt: skip
    slots = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    assert slots[0] == (ebpf.LD_IMM64, R1 | (ebpf.PSEUDO_MAP_FD << 4), 0, 7) and slots[1] == (0, 0, 0, 0)
    assert slots[2] == (JEQ_K, R1, 1, 0)  # offset from the next instruction
    assert slots[4] == (EXIT, 0, 0, 0)
    with pytest.raises(ValueError, match="not a jump"):
        ebpf.assemble([Insn(MOV64_K, R0, label="out"), Label("out")], {})


def test_a_refused_program_says_why() -> None:
    # r2 is read before anything wrote it: the verifier refuses, and names the register.
    bad = ebpf.assemble([Insn(ebpf.MOV64_X, R0, R2), Insn(EXIT)], {})
    with pytest.raises(ebpf.Refused, match=r"refused BPF program bad.*R2"):
        ebpf.Program("bad", bad)


def test_maps_update_lookup_delete_and_list_in_batches() -> None:
    table = ebpf.Map("t", 4, 8, 600)
    try:
        for i in range(600):
            table.update(struct.pack("<I", i), struct.pack("<Q", i * 3))
        with pytest.raises(OSError):  # full: the caller decides what to do without the entry
            table.update(struct.pack("<I", 600), bytes(8))
        assert table.lookup(struct.pack("<I", 5)) == struct.pack("<Q", 15)
        assert table.delete(struct.pack("<I", 5)) and not table.delete(struct.pack("<I", 5))
        assert table.lookup(struct.pack("<I", 5)) is None
        listed = dict(table.items())  # more than one batch of 256
        assert len(listed) == 599 and listed[struct.pack("<I", 599)] == struct.pack("<Q", 1797)
    finally:
        table.close()
    array = ebpf.Map("a", 4, 8, 3, kind=ebpf.MAP_TYPE_ARRAY)
    try:
        array.update(struct.pack("<I", 1), struct.pack("<Q", 9))
        assert dict(array.items()) == {struct.pack("<I", i): struct.pack("<Q", 9 if i == 1 else 0) for i in range(3)}
    finally:
        array.close()


def test_test_run_returns_the_verdict_and_the_frame() -> None:
    program = ebpf.Program("seven", ebpf.assemble([Insn(MOV64_K, R0, imm=ebpf.TCX_REDIRECT), Insn(EXIT)], {}))
    try:
        frame = bytes(range(60))
        assert program.test_run(frame) == (ebpf.TCX_REDIRECT, frame)
    finally:
        program.close()
    assert program.fd == -1
