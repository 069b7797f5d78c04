"""`chat`: a terminal client of dialogue_node's typed-chat service (agechat/chat).

ros2 run dialogue_node chat --age senior --emotion happy   # interactive; empty line/Ctrl-D quits
ros2 run dialogue_node chat --age child --once "오늘 날씨 어때?"   # one request, reply on stdout
"""

from __future__ import annotations

import argparse
import sys
import uuid

import rclpy
from rclpy.node import Node

from agechat_msgs.srv import Chat


def ask(
    node: Node, client, text: str, age: str, emotion: str, conversation_id: str, timeout_s: float
):
    """Send one request; return the response or None on timeout."""
    future = client.call_async(
        Chat.Request(text=text, age_group=age, emotion=emotion, conversation_id=conversation_id)
    )
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
    return future.result() if future.done() else None


def main(argv=None) -> int:
    """Entry point of the chat executable."""
    parser = argparse.ArgumentParser(
        description='Type to agechat\'s dialogue_node (agechat/chat service).'
    )
    parser.add_argument('--age', default='adult', help='child | adult | senior')
    parser.add_argument(
        '--emotion', default='neutral', help='angry disgust fear happy sad surprise neutral'
    )
    parser.add_argument('--service', default='agechat/chat')
    parser.add_argument('--once', help='send this text, print the reply and exit')
    parser.add_argument(
        '--timeout', type=float, default=10.0, help='seconds to wait for the service / a reply'
    )
    parser.add_argument(
        '--verbose', action='store_true', help='print labels, tokens and timing with each reply'
    )
    args, ros_args = parser.parse_known_args(argv if argv is not None else sys.argv[1:])
    rclpy.init(args=[sys.argv[0]] + ros_args)
    node = rclpy.create_node('agechat_chat_client')
    client = node.create_client(Chat, args.service)
    try:
        if not client.wait_for_service(timeout_sec=args.timeout):
            print(
                f'[chat] service {args.service} not available after {args.timeout} s: '
                'start dialogue_node (and use the same ROS_DOMAIN_ID)',
                file=sys.stderr,
            )
            return 2
        conversation = '' if args.once else f'chat-{uuid.uuid4().hex[:8]}'
        lines = [args.once] if args.once is not None else None
        while True:
            if lines is not None:
                if not lines:
                    return 0
                text = lines.pop()
            else:
                try:
                    text = input('you> ')
                except EOFError:
                    return 0
                if not text.strip():
                    return 0
            response = ask(node, client, text, args.age, args.emotion, conversation, args.timeout)
            if response is None:
                print('[chat] no reply in time', file=sys.stderr)
                if args.once is not None:
                    return 1
                continue
            if not response.success:
                print(f'[chat] refused: {response.error}', file=sys.stderr)
                if args.once is not None:
                    return 1
                continue
            reply = response.reply
            print(
                reply.reply_text if args.once is not None else f'bot> {reply.reply_text}',
                flush=True,
            )
            if args.verbose:
                print(
                    f'     [{reply.age_group}/{reply.emotion}, {reply.model}, '
                    f'{reply.new_tokens} tokens{", capped" if reply.hit_token_cap else ""}]',
                    flush=True,
                )
    except KeyboardInterrupt:
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    raise SystemExit(main())
