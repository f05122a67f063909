"""Jobs behind the command line: each takes a plain configuration and writes a run directory. The click
commands in ``advwsl.commands`` only wire options to them."""
