"""Composition roots: the agent, the in-process CNI handler and the CLI.

May import: netplug (every layer), the standard library.
"""
