"""A real chat server embedding the plexisandbox Supervisor: web chat, admin panel, modules.

Run it with `python -m examples.chat_server` (or `python examples/chat_server/run.py`).
"""
