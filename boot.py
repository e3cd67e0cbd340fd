# Runs before main.py. Kept minimal: silence the ESP vendor debug output on the UART.
try:
    import esp

    esp.osdebug(None)
except ImportError:
    pass
