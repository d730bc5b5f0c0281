"""Sans-I/O protocol parsers: bytes in, events out.

Nothing in this package may import asyncio or socket, read a clock or touch a
file: the live proxy, tests and fuzzers drive these parsers the same way.
"""
