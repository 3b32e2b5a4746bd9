"""The ``emorec`` command.

``emorec book`` is what ``make book`` runs: execute the chapters with papermill and build the HTML.
"""

from __future__ import annotations

import argparse
import sys

from . import book


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emorec", description="Continuous emotion recognition: the book's tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    book_parser = commands.add_parser(
        "book", help="execute the chapters with papermill and build the HTML (what `make book` runs)",
        description=book.__doc__.split("\n\n")[0])
    book.add_arguments(book_parser)
    book_parser.set_defaults(run=book.run_from_args)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
