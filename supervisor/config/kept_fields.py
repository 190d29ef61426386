"""The fields of MetalLB's API that metalloid keeps but does not act on.

metalloid's CRDs declare every field MetalLB's do, so nothing a MetalLB
manifest sets is pruned by the API server. Some of those fields ask for
behaviour metalloid does not have (yet). Such a field is neither an error
(MetalLB accepts it, and the object is otherwise honoured) nor silently dropped: parsing records each occurrence as an
`InertField` on the `Config`, and `metalloid check` prints a warning naming
the object, the field and what MetalLB would have done with it.

`KEPT_NOT_ACTED_ON` is the one list. The parsers take their "known fields"
from it (a kept field is known, so it is not reported as a typo), the
Kubernetes side can turn `Config.inert_fields` into Warning Events and
ConfigurationState conditions, and docs/configuring.md lists the same
entries (a test keeps the two in step). A field leaves this list the day
metalloid implements it.

Pure data and one pure helper; no parsing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.config.model import InertField, Source

WHOLE_OBJECT = "spec"
"""The `path` of an entry that covers a whole kind (metalloid uses none of its fields)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptField:
    """One field (or, with path `spec`, one whole kind) that is kept but not acted on."""

    kind: str
    path: str  # dotted, from the object's root: "spec.bfdProfile"
    metallb_effect: str  # what MetalLB does with it, completing "MetalLB uses it to ..."

    @property
    def key(self) -> str:
        """The field's name inside `spec` ("" for a whole kind)."""
        return "" if self.path == WHOLE_OBJECT else self.path.removeprefix("spec.")


# Empty since BGPAdvertisement.serviceSelectors is acted on (issue 17): every field of MetalLB's
# API that metalloid declares is honoured. The mechanism stays for the next field MetalLB adds.
KEPT_NOT_ACTED_ON: tuple[KeptField, ...] = ()


def kept_keys(kind: str) -> frozenset[str]:
    """The `spec` keys of `kind` that are kept but not acted on."""
    return frozenset(f.key for f in KEPT_NOT_ACTED_ON if f.kind == kind and f.key)


def kept_field(kind: str, path: str) -> KeptField | None:
    return next((f for f in KEPT_NOT_ACTED_ON if f.kind == kind and f.path == path), None)


def inert_field(kind: str, namespace: str, name: str, path: str, source: Source) -> InertField | None:
    """The occurrence record for `path` of an object, or None when the field is not in the list."""
    entry = kept_field(kind, path)
    if entry is None:
        return None
    return InertField(kind=kind, namespace=namespace, name=name, path=path, source=source,
                      metallb_effect=entry.metallb_effect)
