"""Publish rover/cmd as fast as asked, from its own process (the flood in test_bridge_node).

python flood_publisher.py --rate 1000 --seconds 2.5 --final-steering 0.25 --final-throttle 0.25
Cycles steering through 0.00..0.49 at 100 steps per second, then holds the final value for 0.5 s.
Prints "published N messages in T s" at the end.
"""
import argparse
import time

import rclpy
from geometry_msgs.msg import TwistStamped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rate', type=float, default=1000.0)
    parser.add_argument('--seconds', type=float, default=2.5)
    parser.add_argument('--final-steering', type=float, default=0.25)
    parser.add_argument('--final-throttle', type=float, default=0.25)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node('flood_publisher')
    pub = node.create_publisher(TwistStamped, 'rover/cmd', 10)
    msg = TwistStamped()
    deadline = time.monotonic() + 15.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)  # discovery: flood only once the bridge listens
    time.sleep(0.3)
    period = 1.0 / args.rate
    start = next_time = time.monotonic()
    count = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= args.seconds + 0.5:
            break
        if elapsed < args.seconds:
            msg.twist.angular.z = 0.01 * (int(elapsed * 100) % 50)
            msg.twist.linear.x = 0.2
        else:
            msg.twist.angular.z = args.final_steering
            msg.twist.linear.x = args.final_throttle
        pub.publish(msg)
        count += 1
        next_time += period
        delay = next_time - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(f'published {count} messages in {time.monotonic() - start:.3f} s', flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
