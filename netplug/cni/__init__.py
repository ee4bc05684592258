"""The CNI protocol without I/O: env checks, config loading (the Go skel's job).

May import: netplug.model, netplug.errors.
"""
