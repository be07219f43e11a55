"""The core's own plugin, registered under the name ``builtin`` through the same hooks as any plugin.

It registers nothing yet; the concrete datasets live in the first-party ``datasets`` plugin.
"""
