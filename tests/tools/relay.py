"""Relay every message of one topic to another, unchanged, from a separate process.

Used by the interface tests: the test publishes on --input, this process receives the message
over DDS (deserialising it) and publishes it again on --output (serialising it), so one round
trip exercises both directions across processes.

    python tests/tools/relay.py agechat_msgs/msg/AgeEstimate /relay/in /relay/out
"""

import argparse
import importlib

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy


def load_type(name: str):
    """Return the message class for 'pkg/msg/Type'."""
    package, kind, type_name = name.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), type_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('type', help="message type, e.g. 'agechat_msgs/msg/AgeEstimate'")
    parser.add_argument('input')
    parser.add_argument('output')
    args = parser.parse_args()
    msg_type = load_type(args.type)
    rclpy.init()
    node = rclpy.create_node('relay')
    # Both ends keep their history for a peer matched late: discovery is not symmetric (one side
    # may see the other before the other has matched it) and a volatile writer drops what it
    # sent in that gap. The interface test publishes and reads with the same QoS.
    latched = QoSProfile(
        depth=10,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    publisher = node.create_publisher(msg_type, args.output, latched)
    node.create_subscription(msg_type, args.input, publisher.publish, latched)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
