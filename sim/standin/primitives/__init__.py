"""Host stand-in for micropython-async's primitives package: only what fireant uses.

Written for fireant from the documented API; the board installs the real package.
"""
from .ringbuf_queue import RingbufQueue  # noqa: F401
