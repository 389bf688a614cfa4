"""The interactive terminal client (Textual): `mailbag tui`, or plain `mailbag` on a TTY."""
