"""The simulated board (machine, network, dht, simboard) and host tooling.

On MICROPYPATH or sys.path this directory is the board's module path; as a
package it offers the host side: sim.mosquitto (a test broker), sim.firmware
(run app/ in-process under CPython).
"""
