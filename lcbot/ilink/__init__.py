"""The WeChat ClawBot channel (iLink bot API): HTTP client, CDN media, stored links, QR linking.

``api`` talks to the service (aiohttp), ``cdn`` encrypts and uploads media, ``store`` keeps
one link (bot token) per lcbot user in the data dir, ``linking`` runs the QR flow. The
transport that uses them is ``lcbot.transports.ilink``.
"""
