"""``python -m archsim`` is the ``archsim`` command."""

from archsim.cli import main

main()
