"""The sim board's machine.WDT (sim/board/machine.py starts it): loaded only when
the firmware starts a watchdog."""
import machine


class WDT:
    def __init__(self, timeout):
        from time import ticks_ms

        machine._wdt = [timeout, ticks_ms()]

    def feed(self):
        from time import ticks_ms

        machine.wdt_check()  # a chip would have reset during the gap already
        if machine._wdt is not None:
            machine._wdt[1] = ticks_ms()
