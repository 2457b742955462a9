"""The exit codes of the ``deepbatch`` command line (see :mod:`deepbatch.cli`)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C
