"""Run the ``mmocc`` command line: ``python -m mmocc``."""

from mmocc.cli import main

if __name__ == "__main__":
    main()
