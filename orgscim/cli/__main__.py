"""``python -m orgscim.cli``: the same as the ``orgscim`` command."""

from . import main

main()
