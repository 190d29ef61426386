"""The difference between two FRR configurations as the vtysh commands that turn one into the other.

Pure (text in, text out). The bgp plugin applies a new configuration by
sending only this delta through one `vtysh -f` instead of running
frr-reload.py, which reads FRR's whole running configuration back, diffs it
in Python twice and runs every removal as its own `vtysh -c` process: at
1,000 Services that costs tens of seconds for a change of one line. The delta
is computed against the configuration this plugin applied last, so it is
only valid while FRR still runs exactly that; the plugin falls back to a full
frr-reload.py on its first apply, after FRR restarted and when a delta fails.

A configuration is read as entries `(context, line)`: the context is the
chain of node-opening lines above the line (`router bgp 64500`, ` address-family
ipv4 unicast`), found by indentation, the layout FRR's own `show
running-config` uses and `frrconf.render` writes. Removed entries are sent
first, as `no LINE` in their context (children before parents), then added
entries in the new configuration's order. Two FRR rules shape it:

- `no neighbor A remote-as N` deletes the whole neighbor: its other lines are
  not removed one by one (FRR would refuse them), and every line the new
  configuration has for A is sent again.
- a removed `route-map`, `router bgp`, `bfd` or BFD `profile` block goes with
  one `no HEADER`; an address-family block has no such command, so its lines
  are removed one by one.
- `network P route-map B` replaces `network P route-map A` in place: the old
  line is not removed first (that would withdraw P for a moment).
"""

from __future__ import annotations

from dataclasses import dataclass

Context = tuple[str, ...]
Entry = tuple[Context, str]

# Lines that open a node in vtysh: what follows them, indented, belongs to it.
_OPENERS = ("route-map ", "router bgp", "bfd", "profile ", "address-family ")
# Blocks that one `no HEADER` removes whole.
_REMOVABLE_BLOCKS = ("route-map ", "router bgp", "bfd", "profile ")
_NEIGHBOR = "neighbor "


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    """The vtysh script (for `vtysh -f`) and how many configuration lines it removes and adds."""

    script: str
    removed: int
    added: int

    @property
    def empty(self) -> bool:
        return not self.removed and not self.added


def entries(text: str) -> list[Entry]:
    """Every configuration line of `text` with its context, in order; `!`, blank and exit lines dropped."""
    found: list[Entry] = []
    stack: list[tuple[int, str]] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith("!") or stripped in ("exit", "exit-address-family", "end"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        found.append((tuple(header for _, header in stack), line))
        if stripped.startswith(_OPENERS):
            stack.append((depth, line))
    return found


def _opens(line: str) -> bool:
    return line.strip().startswith(_OPENERS)


def _negate(line: str) -> str:
    indent = line[: len(line) - len(line.lstrip(" "))]
    stripped = line.strip()
    return indent + (stripped[3:] if stripped.startswith("no ") else "no " + stripped)


def _neighbor_of(line: str) -> str | None:
    """`A` for a `neighbor A remote-as N` line."""
    words = line.split()
    if len(words) >= 3 and words[0] == "neighbor" and words[2] == "remote-as":
        return words[1]
    return None


def _network_of(line: str) -> str | None:
    """`P` for a `network P [route-map M]` line."""
    words = line.split()
    return words[1] if len(words) >= 2 and words[0] == "network" else None


def _about(line: str, neighbor: str) -> bool:
    return line.strip().startswith(f"{_NEIGHBOR}{neighbor} ")


def compute(old: str, new: str) -> Delta:
    """The commands that turn the running configuration `old` into `new`."""
    before, after = entries(old), entries(new)
    before_set, after_set = set(before), set(after)
    removed = [e for e in before if e not in after_set]
    # Neighbors whose `remote-as` line goes: FRR deletes them whole (per router).
    gone: set[tuple[str, str]] = set()
    for context, line in removed:
        neighbor = _neighbor_of(line.strip())
        if neighbor is not None and context:
            gone.add((context[0], neighbor))
    # Blocks removed whole with one `no HEADER`.
    whole = {(*context, line) for context, line in removed if line.strip().startswith(_REMOVABLE_BLOCKS)}
    added_networks = {(context, _network_of(line)) for context, line in after
                      if _network_of(line) is not None and (context, line) not in before_set}
    commands: list[Entry] = []
    for context, line in reversed(removed):
        if _network_of(line) is not None and (context, _network_of(line)) in added_networks:
            continue  # replaced in place by the added line
        if any(context[:i] in whole for i in range(1, len(context) + 1)):
            continue  # its block goes whole
        if context and any(context[0] == router and _about(line, n) and _neighbor_of(line.strip()) is None
                           for router, n in gone):
            continue  # goes with its neighbor
        if _opens(line) and not line.strip().startswith(_REMOVABLE_BLOCKS):
            continue  # an address-family header: its lines were removed one by one
        commands.append((context, _negate(line)))
    added = [e for e in after
             if e not in before_set or (e[0] and any(e[0][0] == router and _about(e[1], n) for router, n in gone))]
    commands += added
    return Delta(script=_script(commands), removed=len(removed), added=len(added))


def _exit_for(header: str) -> str:
    indent = header[: len(header) - len(header.lstrip(" "))]
    return indent + ("exit-address-family" if header.strip().startswith("address-family") else "exit")


def _script(commands: list[Entry]) -> str:
    """The commands with the context lines that enter their nodes and the exits that leave them."""
    out: list[str] = []
    open_: Context = ()
    for context, line in commands:
        common = 0
        while common < min(len(open_), len(context)) and open_[common] == context[common]:
            common += 1
        while len(open_) > common:
            out.append(_exit_for(open_[-1]))
            open_ = open_[:-1]
        for header in context[common:]:
            out.append(header)
            open_ += (header,)
        out.append(line)
        if _opens(line):
            open_ += (line,)
    while open_:
        out.append(_exit_for(open_[-1]))
        open_ = open_[:-1]
    return "\n".join(out) + ("\n" if out else "")
