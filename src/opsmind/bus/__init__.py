"""Event bus between stages: topics, consumer groups, at-least-once delivery with explicit ack."""

from opsmind.bus.protocols import Bus, Message, Subscription

__all__ = ["Bus", "Message", "Subscription"]
