"""Sub-commands of `msr`: one module per command, each with `register(subparsers)`."""
