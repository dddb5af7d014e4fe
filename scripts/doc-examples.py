#!/usr/bin/env python3
"""Every public item of the library crates has an example or says why not.

Reads the HTML that `cargo doc --workspace --no-deps` wrote under target/doc (rustdoc's
own view of what is public, re-exports included) and checks each item page: its top
documentation must hold a Rust code example, or a sentence starting "No example:" that
says why (a value only the library hands out, an error enum, a constant). Methods are
covered by their type's page. Exits 1 and lists the items that have neither.

usage: scripts/doc-examples.py [DOC_DIR]   (default: target/doc, or $CARGO_TARGET_DIR/doc)
"""

import html
import os
import re
import sys
from pathlib import Path

CRATES = ["switchboard_protocol", "switchboard", "switchboard_hub", "switchboard_loadgen"]
ITEM_PAGE = re.compile(r"^(struct|enum|trait|fn|type|macro|constant|static|union)\.[^.]+\.html$")
TOP_DOC = re.compile(r'<details class="toggle top-doc" open>(.*?)</details>', re.S)
EXAMPLE = 'rust-example-rendered'
WHY_NOT = re.compile(r"\bNo example:")


def doc_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return Path(target) / "doc"


def main() -> int:
    root = doc_dir()
    missing, checked = [], 0
    for crate in CRATES:
        crate_dir = root / crate
        if not crate_dir.is_dir():
            print(f"doc-examples: {crate_dir} is missing: run cargo doc --workspace --no-deps first",
                  file=sys.stderr)
            return 1
        for page in sorted(crate_dir.rglob("*.html")):
            if not ITEM_PAGE.match(page.name):
                continue
            text = page.read_text(errors="ignore")
            if "Redirecting to" in text[:2000]:
                continue  # a re-export's second path: the item's own page is checked
            checked += 1
            top = TOP_DOC.search(text)
            body = top.group(1) if top else ""
            plain = html.unescape(re.sub(r"<[^>]+>", " ", body))
            if EXAMPLE not in body and not WHY_NOT.search(plain):
                missing.append(str(page.relative_to(root)))
    for item in missing:
        print(f"no example and no 'No example:' reason: {item}")
    print(f"doc-examples: {checked} public items, {checked - len(missing)} with an example "
          f"or a reason, {len(missing)} without")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
