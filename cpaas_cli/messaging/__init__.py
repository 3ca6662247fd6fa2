"""Messaging core, pure: GSM-7/UCS-2 encoding, segment counting, the splitter, look-alike replacement, templates."""
