"""The lead fields of the product contract, read from shared/domain/lead-fields.txt: the one list
that the Rust crates read too (through the domain crate's build script).

    LEAD_FIELDS           every field, in the contract's order (the lake's column order)
    LEAD_DATE_FIELDS      the fields of kind `date`, in that order
    LEAD_REQUIRED_FIELDS  the fields every lead has
"""

import pathlib

SOURCE = pathlib.Path(__file__).resolve().parent.parent / "shared" / "domain" / "lead-fields.txt"


def _read():
    fields = []
    for number, line in enumerate(SOURCE.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != 3:
            raise ValueError(f"{SOURCE}:{number}: expected `name kind presence`, found {line!r}")
        fields.append(tuple(words))
    return fields


_FIELDS = _read()
LEAD_FIELDS = [name for name, _, _ in _FIELDS]
LEAD_DATE_FIELDS = [name for name, kind, _ in _FIELDS if kind == "date"]
LEAD_REQUIRED_FIELDS = [name for name, _, presence in _FIELDS if presence == "required"]
