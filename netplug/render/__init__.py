"""Pure renderers: plans in, artifacts out (nftables JSON, dnsmasq config). No decisions.

May import: netplug.model, netplug.naming, the standard library.
"""
