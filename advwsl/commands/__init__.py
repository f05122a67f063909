"""Click commands of the ``advwsl`` CLI, one module per command family; the option vocabulary they share
is in :mod:`.options`. Commands parse options, call one job of :mod:`advwsl.jobs` and print."""
