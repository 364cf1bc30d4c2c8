"""VIP purchases: plans, orders, the two payment channels and applying a payment to a membership exactly once.

- ``plans``: what can be bought (from the migration, like the VIP catalogue) and each level's 1-month price.
- ``orders``: creating an order (prices from the server only), reading and listing a user's orders.
- ``channel``: the ``PaymentChannel`` protocol, what a verified notification or query says (``TradeEvent``),
  ``build_channels(settings)``, and key loading.
- ``alipay`` / ``wechat``: the providers, signing and verifying with their SDKs' pure functions and talking
  HTTP through Tornado's ``AsyncHTTPClient`` (both SDKs' own HTTP calls block).
- ``membership``: calendar-month arithmetic, stacking, upgrades and refunds, as pure functions.
- ``apply``: the one function that moves an order to ``paid`` and extends the membership, in one transaction,
  whichever notification, query or process gets there first; refunds and closes likewise.
- ``reconcile``: the periodic job querying orders still pending and closing expired ones.
"""
from services.payments.channel import PaymentChannel, PaymentChannels, TradeEvent, build_channels

__all__ = ["PaymentChannel", "PaymentChannels", "TradeEvent", "build_channels"]
