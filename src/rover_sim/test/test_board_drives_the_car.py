"""The simulated rover's composition: rover_bridge's virtual Arduino drives rover_sim's bicycle model."""
import time

import serial

from rover_bridge import protocol as p
from rover_bridge.twin.firmware_twin import FirmwareConfig
from rover_bridge.twin.pty_board import VirtualArduino
from rover_sim.vehicle_model import BicycleModel


def test_commands_on_the_wire_move_the_car(tmp_path):
    car = BicycleModel()
    with VirtualArduino(link=str(tmp_path / 'arduino'), config=FirmwareConfig(arming_ms=50), boot_delay=0.05,
                        vehicle=car) as board:
        with serial.Serial(board.port, 115200, timeout=0) as host:
            end = time.monotonic() + 1.5  # boot and arming (0.1 s), then driving
            seq = 0
            while time.monotonic() < end:
                host.write(p.encode(p.Command(5000, 4000), seq))
                seq = (seq + 1) & 0xFF
                host.read(4096)  # take the board's TELEMETRY, as the bridge does
                time.sleep(1 / 30)
            applied, pose = board.applied(), board.pose()
    assert (applied.mode, applied.steering, applied.throttle) == (p.Mode.AUTONOMOUS, 0.5, 0.4)
    assert pose.x > 0.1 and pose.y > 0 and pose.yaw > 0 and pose.speed > 0  # forward, turning left
    assert car.distance > 0.1
