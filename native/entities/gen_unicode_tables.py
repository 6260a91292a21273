"""Print the tables of src/unicode.rs from the running Python's `unicodedata`.

Run with the project's venv (the reference's Python): .venv/bin/python native/entities/gen_unicode_tables.py
"""

import sys
import unicodedata

zeros = []
decimals = set()
for code in range(sys.maxunicode + 1):
    char = chr(code)
    if char.isdecimal():
        decimals.add(code)
        if unicodedata.decimal(char) == 0:
            zeros.append(code)
# Each run of decimal digits is 0..=9 in order: its zero identifies it.
assert decimals == {zero + k for zero in zeros for k in range(10)}
assert all(unicodedata.decimal(chr(zero + k)) == k for zero in zeros for k in range(10))
spaces = [code for code in range(128, sys.maxunicode + 1) if chr(code).isspace()]
print(f"// Python {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}")
print(f"const DECIMAL_ZEROS: [u32; {len(zeros)}] = [{', '.join(hex(z) for z in zeros)}];")
print(f"non-ASCII spaces ({len(spaces)}): {', '.join(hex(s) for s in spaces)}")
