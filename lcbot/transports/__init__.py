"""Transports carry messages between chat users and the bot (console, WeChat, memory)."""
