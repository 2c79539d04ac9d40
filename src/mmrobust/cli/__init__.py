"""Command line interface: ``mmrobust <command>``; one module per command group."""
