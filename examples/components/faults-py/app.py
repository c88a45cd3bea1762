"""Misbehaving functions of `sealbox:faults/faults@0.1.0` (../wit/faults.wit), in
Python, for the runtime's tests: an uncaught exception, an endless loop, and
allocation without bound."""

import wit_world

# Kept at module level so nothing allocated by `hog` can be freed.
HELD = []

MIB = 1 << 20


class FaultError(Exception):
    pass


class WitWorld(wit_world.WitWorld):
    def raise_error(self, message: str) -> str:
        raise FaultError(message)

    def spin(self) -> int:
        n = 0
        while True:
            n = (n + 1) & 0xFFFF_FFFF_FFFF_FFFF

    def hog(self, megabytes: int) -> int:
        while megabytes == 0 or len(HELD) < megabytes:
            # bytearray() writes every byte, so the pages are really touched.
            HELD.append(bytearray(MIB))
        return len(HELD)
