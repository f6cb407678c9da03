"""Create an API key from the command line: `python -m logpipe.ops.keys --org acme --scopes ingest,read [--name NAME]`
(what `make key` runs). The key is printed alone on the last line."""

import argparse
import re
import sys

from logpipe.access.keys import create_key
from logpipe.access.models import Scope
from logpipe.models import ORGANIZATION_ID_PATTERN

ORGANIZATION_ID = re.compile(ORGANIZATION_ID_PATTERN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create an API key; prints it alone on the last line.")
    parser.add_argument("--org", required=True, help="organization id")
    parser.add_argument("--scopes", default="ingest,read", help="comma-separated: ingest, read, admin")
    parser.add_argument("--name", default="", help="a label to recognise the key by")
    args = parser.parse_args(argv)
    if not ORGANIZATION_ID.fullmatch(args.org):
        parser.error("--org must be an organization id such as acme (letters, digits, . _ : -)")
    try:
        scopes = [Scope(scope.strip()) for scope in args.scopes.split(",") if scope.strip()]
    except ValueError:
        parser.error(f"scopes must be among {', '.join(scope.value for scope in Scope)}")
    created = create_key(args.org, scopes, args.name)
    print(f"created key {created.id} for {created.organization_id} with scopes {','.join(created.scopes)}")
    print(created.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
