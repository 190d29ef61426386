"""eBPF for the host: instructions, a label assembler, maps, loading, tcx links and test runs.

Classic BPF (`supervisor.bpf`) can only drop or keep what a socket sees.
Answering a request in the kernel, with no process woken, needs an eBPF
program at the interface's ingress that rewrites the frame and sends it back
out. This module is the part of that which is not about any one protocol:
the bpf(2) system call through ctypes (no libbpf, no compiler: programs are
written as instructions, like the classic filters), hash maps, program
loading (the verifier's log becomes the error text) and attaching.

Attaching is a tcx link (Linux 6.6+): the link lives exactly as long as its
file descriptor, so when the process exits, however it exits, the kernel
detaches the program. The older tc/cls_bpf attachment outlives its process,
and a program still answering from a map nobody updates could answer for IPs
this node no longer owns: that attachment is deliberately not offered.
`Unavailable` says why eBPF cannot be used here (no CAP_BPF, an old kernel);
callers fall back to their user-space path.

`test_run` runs a program on a frame without a network (BPF_PROG_TEST_RUN),
so tests check a program against the Python code it replaces.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# bpf(2) commands (include/uapi/linux/bpf.h, enum bpf_cmd).
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM = 0, 1, 2, 3
PROG_LOAD, PROG_TEST_RUN, MAP_LOOKUP_BATCH, LINK_CREATE = 5, 10, 24, 28
MAP_TYPE_HASH, MAP_TYPE_ARRAY = 1, 2
PROG_TYPE_SCHED_CLS = 3
# enum bpf_attach_type; Debian's 6.1 headers predate it, the value is fixed ABI.
ATTACH_TCX_INGRESS = 46
# Hash map entries are allocated when inserted, not all at creation.
F_NO_PREALLOC = 1
# tcx verdicts: NEXT hands the packet to the next program and then the stack.
TCX_NEXT, TCX_PASS, TCX_DROP, TCX_REDIRECT = -1, 0, 2, 7
# Helper function ids (enum bpf_func_id).
FUNC_MAP_LOOKUP_ELEM, FUNC_KTIME_GET_NS, FUNC_REDIRECT, FUNC_CSUM_DIFF = 1, 5, 23, 28

# struct __sk_buff field offsets the programs here read.
SKB_LEN, SKB_PKT_TYPE, SKB_PROTOCOL, SKB_VLAN_PRESENT, SKB_IFINDEX, SKB_DATA, SKB_DATA_END = 0, 4, 16, 20, 40, 76, 80

_SYSCALL_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_ATTR_SIZE = 144  # covers every command used here; the kernel checks the unused tail is zero

# Instruction classes, sizes and operations (include/uapi/linux/bpf_common.h, bpf.h).
LDX_W, LDX_H, LDX_B, LDX_DW = 0x61, 0x69, 0x71, 0x79
STX_W, STX_H, STX_DW = 0x63, 0x6B, 0x7B
ST_W, ST_H = 0x62, 0x6A
MOV64_X, MOV64_K, ADD64_K, ADD64_X = 0xBF, 0xB7, 0x07, 0x0F
MOV32_X = 0xBC  # the low 32 bits, zero-extended
AND64_K, OR64_X, XOR64_K, RSH64_K = 0x57, 0x4F, 0xA7, 0x77
JA, JEQ_K, JNE_K, JGT_X, JEQ_X, JNE_X = 0x05, 0x15, 0x55, 0x2D, 0x1D, 0x5D
# 32-bit compares: a loaded u32 against an immediate that would sign-extend in a 64-bit one.
JEQ32_K, JNE32_K, JEQ32_X, JNE32_X = 0x16, 0x56, 0x1E, 0x5E
CALL, EXIT = 0x85, 0x95
ATOMIC_ADD_DW = 0xDB  # BPF_STX | BPF_ATOMIC | BPF_DW with imm BPF_ADD: lock *(u64 *)(dst + off) += src
LD_IMM64 = 0x18
PSEUDO_MAP_FD = 1
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

_JUMPS = frozenset({JA, JEQ_K, JNE_K, JGT_X, JEQ_X, JNE_X, JEQ32_K, JNE32_K, JEQ32_X, JNE32_X})


@dataclass(frozen=True, slots=True)
class Insn:
    """One instruction; `label` is the jump target of a jump, resolved by `assemble`."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    label: str = ""


@dataclass(frozen=True, slots=True)
class Label:
    name: str


@dataclass(frozen=True, slots=True)
class MapFd:
    """A 64-bit load of a map's file descriptor into `dst` (two instruction slots)."""

    dst: int
    name: str


Item = Insn | Label | MapFd


class Unavailable(OSError):
    """eBPF cannot be used here; the text says why and what would allow it."""

    def __str__(self) -> str:
        return str(self.strerror)


class Refused(Unavailable):
    """The verifier refused the program: a fault in the program, not in the host."""


def assemble(body: Iterable[Item], maps: dict[str, int]) -> bytes:
    """Resolve labels and map descriptors into the kernel's 8-byte instructions."""
    items = list(body)
    labels: dict[str, int] = {}
    pc = 0
    for item in items:
        if isinstance(item, Label):
            labels[item.name] = pc
        else:
            pc += 2 if isinstance(item, MapFd) else 1
    out: list[bytes] = []
    for item in items:
        if isinstance(item, Label):
            continue
        if isinstance(item, MapFd):
            out.append(_encode(LD_IMM64, item.dst, PSEUDO_MAP_FD, 0, maps[item.name]))
            out.append(_encode(0, 0, 0, 0, 0))
            continue
        off = item.off
        if item.label:
            if item.code not in _JUMPS:
                raise ValueError(f"instruction {item.code:#x} has a label but is not a jump")
            off = labels[item.label] - len(out) - 1
        out.append(_encode(item.code, item.dst, item.src, off, item.imm))
    return b"".join(out)


def _encode(code: int, dst: int, src: int, off: int, imm: int) -> bytes:
    # An immediate is 32 bits; one given unsigned (a u32 compared by a 32-bit jump) is the same bits.
    if 1 << 31 <= imm < 1 << 32:
        imm -= 1 << 32
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


@functools.cache
def _syscall() -> tuple[ctypes.CDLL, int]:
    number = _SYSCALL_BPF.get(platform.machine())
    if number is None:
        raise Unavailable(errno.ENOSYS, f"no bpf(2) system call number known for {platform.machine()}")
    return ctypes.CDLL(None, use_errno=True), number


def bpf(cmd: int, attr: bytearray) -> int:
    """The bpf(2) system call on `attr` (read back into it); OSError on failure."""
    lib, number = _syscall()
    buffer = (ctypes.c_char * len(attr)).from_buffer(attr)
    result = int(lib.syscall(number, cmd, buffer, len(attr)))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def _address(buffer: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buffer)


class _Held:
    """A kernel object held by a file descriptor: closing it lets the kernel free it (a link: detach it)."""

    fd: int

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Map(_Held):
    """A BPF map of fixed-size keys and values, owned by this object's file descriptor.

    A hash map's entries are allocated as inserted; an array (u32 keys
    0..max_entries-1) exists whole, zeroed, from the start.
    """

    def __init__(self, name: str, key_size: int, value_size: int, max_entries: int, *,
                 kind: int = MAP_TYPE_HASH) -> None:  # fmt: skip
        attr = bytearray(_ATTR_SIZE)
        flags = F_NO_PREALLOC if kind == MAP_TYPE_HASH else 0
        struct.pack_into("<IIIII", attr, 0, kind, key_size, value_size, max_entries, flags)
        attr[28 : 28 + 15] = name.encode()[:15].ljust(15, b"\0")
        self.fd = _checked(MAP_CREATE, attr, f"creating BPF map {name}", needs="CAP_BPF")
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self._key = ctypes.create_string_buffer(key_size)
        self._value = ctypes.create_string_buffer(value_size)

    def _elem(self, cmd: int, key: bytes, value: bytes | None = None) -> None:
        ctypes.memmove(self._key, key, self.key_size)
        if value is not None:
            ctypes.memmove(self._value, value, self.value_size)
        attr = bytearray(_ATTR_SIZE)
        # Delete takes no value: the kernel refuses a non-zero field it does not read.
        value_at = 0 if cmd == MAP_DELETE_ELEM else _address(self._value)
        struct.pack_into("<IIQQQ", attr, 0, self.fd, 0, _address(self._key), value_at, 0)
        bpf(cmd, attr)

    def update(self, key: bytes, value: bytes) -> None:
        """Insert or replace (BPF_ANY); OSError E2BIG when the map is full."""
        self._elem(MAP_UPDATE_ELEM, key, value)

    def lookup(self, key: bytes) -> bytes | None:
        try:
            self._elem(MAP_LOOKUP_ELEM, key)
        except FileNotFoundError:
            return None
        return self._value.raw

    def delete(self, key: bytes) -> bool:
        try:
            self._elem(MAP_DELETE_ELEM, key)
        except FileNotFoundError:
            return False
        return True

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry, read in batches (BPF_MAP_LOOKUP_BATCH): a few system calls, not one per entry."""
        chunk = min(256, self.max_entries)
        keys = ctypes.create_string_buffer(self.key_size * chunk)
        values = ctypes.create_string_buffer(self.value_size * chunk)
        # The batch cursor is opaque; a hash map's and an array's fit in 8 bytes.
        cursor_in, cursor_out = ctypes.create_string_buffer(8), ctypes.create_string_buffer(8)
        first = True
        while True:
            attr = bytearray(_ATTR_SIZE)
            struct.pack_into(
                "<QQQQIIQQ", attr, 0, 0 if first else _address(cursor_in), _address(cursor_out),
                _address(keys), _address(values), chunk, self.fd, 0, 0,
            )  # fmt: skip
            done = False
            try:
                bpf(MAP_LOOKUP_BATCH, attr)
            except FileNotFoundError:
                done = True  # the last batch, possibly with entries in it
            count = struct.unpack_from("<I", attr, 32)[0]
            k, v = keys.raw, values.raw
            for i in range(count):
                yield k[i * self.key_size : (i + 1) * self.key_size], v[i * self.value_size : (i + 1) * self.value_size]
            if done or count == 0:
                return
            ctypes.memmove(cursor_in, cursor_out, 8)
            first = False


class Program(_Held):
    """A loaded program (SCHED_CLS for tcx ingress), owned by this object's file descriptor."""

    def __init__(self, name: str, code: bytes, *, attach_type: int = ATTACH_TCX_INGRESS) -> None:
        attr = bytearray(_ATTR_SIZE)
        license_ = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(1 << 16)
        insns = ctypes.create_string_buffer(code, len(code))
        struct.pack_into(
            "<IIQQIIQ", attr, 0, PROG_TYPE_SCHED_CLS, len(code) // 8, _address(insns), _address(license_),
            1, len(log), _address(log),
        )  # fmt: skip
        attr[48 : 48 + 15] = name.encode()[:15].ljust(15, b"\0")
        struct.pack_into("<I", attr, 68, attach_type)
        try:
            self.fd = bpf(PROG_LOAD, attr)
        except OSError as exc:
            # EPERM: no capability. The verifier refuses with EACCES (or EINVAL).
            if exc.errno == errno.EPERM:
                raise Unavailable(exc.errno, f"loading a BPF program needs CAP_BPF and CAP_NET_ADMIN ({exc})") from exc
            # The verifier's last words say which instruction it refused, and why.
            tail = log.value.decode(errors="replace").strip().splitlines()[-6:]
            raise Refused(exc.errno, f"the kernel refused BPF program {name}: {exc}: {' | '.join(tail)}") from exc
        self.name = name

    def attach_ingress(self, ifindex: int) -> Link:
        """Run this program on every frame `ifindex` receives, until the returned link is closed."""
        attr = bytearray(_ATTR_SIZE)
        struct.pack_into("<IIII", attr, 0, self.fd, ifindex, ATTACH_TCX_INGRESS, 0)
        fd = _checked(LINK_CREATE, attr, "attaching at tcx ingress", needs="CAP_NET_ADMIN",
                      unsupported="this kernel has no tcx links (Linux 6.6 or later)")  # fmt: skip
        return Link(fd, ifindex)

    def test_run(self, frame: bytes, *, ifindex: int = 0) -> tuple[int, bytes]:
        """Run the program once on `frame` (BPF_PROG_TEST_RUN): its verdict and the frame as it left it.

        `ifindex` (a device in this network namespace) is the skb's device;
        0 leaves the kernel's default, the loopback.
        """
        attr = bytearray(_ATTR_SIZE)
        data_in = ctypes.create_string_buffer(frame, len(frame))
        data_out = ctypes.create_string_buffer(len(frame) + 256)
        ctx = bytearray(192)  # struct __sk_buff, zero but for the device
        struct.pack_into("<I", ctx, SKB_IFINDEX, ifindex)
        ctx_in = ctypes.create_string_buffer(bytes(ctx), len(ctx))
        struct.pack_into(
            "<IIIIQQIIIIQQ", attr, 0, self.fd, 0, len(frame), len(data_out), _address(data_in), _address(data_out),
            1, 0, len(ctx) if ifindex else 0, 0, _address(ctx_in) if ifindex else 0, 0,
        )  # fmt: skip
        bpf(PROG_TEST_RUN, attr)
        verdict, _, size = struct.unpack_from("<iII", attr, 4)
        return verdict, data_out.raw[:size]


class Link(_Held):
    """An attachment; closing it (or the process ending) detaches the program."""

    def __init__(self, fd: int, ifindex: int) -> None:
        self.fd, self.ifindex = fd, ifindex


def _checked(cmd: int, attr: bytearray, what: str, *, needs: str, unsupported: str = "") -> int:
    """bpf(2), with a refusal this host will never lift turned into `Unavailable` saying what would."""
    try:
        return bpf(cmd, attr)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise Unavailable(exc.errno, f"{what} needs {needs} ({exc})") from exc
        if exc.errno in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise Unavailable(exc.errno, f"{what}: {unsupported + ': ' if unsupported else ''}{exc}") from exc
        raise
