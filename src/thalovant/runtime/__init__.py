"""The runtime client's internals: link lifecycle, reply collection, subscriptions, the loop thread.

Nothing here is public API; :mod:`thalovant.client` is.
"""
