"""The Arduino's Python twin, beside the firmware it mirrors, split by subject.

- `firmware_twin`: the firmware's logic (rover_protocol.h's rover::Firmware), pure;
- `pty_board`: that logic on a pseudo-terminal, like the board behind /dev/ttyACM0;
- `link_lock`: who owns a link path (shared with the simavr firmware runner);
- `simavr`: the real firmware (.elf) on an emulated ATmega328P instead of the twin;
- `faults`: the bytes a faulty board puts on the wire;
- `cli`: the board as its own process (`ros2 run rover_bridge virtual_arduino`).

The vehicle the board drives is not here: rover_sim gives it one.
"""
