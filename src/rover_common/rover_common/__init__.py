"""Helpers shared by every rover package; nothing here talks to hardware."""
