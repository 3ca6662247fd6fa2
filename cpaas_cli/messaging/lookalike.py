"""Optional replacement of typographic characters by GSM-7 look-alikes.

Word processors put curly quotes, long dashes, ellipses and special spaces
into texts; one of them is enough to turn a message into UCS-2 and cut its
room from 160 to 70 characters. A campaign can ask (off by default) to replace
them by plain GSM-7 characters.

`replace` always replaces; `prefer_gsm` replaces only when that makes the
whole text GSM-7 (if some other character keeps the text UCS-2, the original
typography costs nothing and is kept).
"""

from __future__ import annotations

from cpaas_cli.messaging import gsm

_GROUPS: dict[str, str] = {
    "'": "\u2018\u2019\u201a\u201b\u2032\u2035\u02bc\u00b4\u0060\u2039\u203a",  # single quotes, prime, acute, backtick
    '"': "\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb",  # double quotes, double prime, guillemets
    "-": "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d",  # hyphens, dashes, minus
    " ": "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t",
    "*": "\u2022\u2023\u2219\u00b7",  # bullets, middle dot
}

TABLE: dict[int, str] = {ord(ch): plain for plain, chars in _GROUPS.items() for ch in chars}
TABLE[ord("\u2026")] = "..."  # horizontal ellipsis
for _ch in "\u00ad\u200b\u200c\u200d\u2060\ufeff":  # soft hyphen, zero-width characters, BOM
    TABLE[ord(_ch)] = ""

assert all(gsm.is_gsm7(v) for v in TABLE.values())


def replace(text: str) -> str:
    """The text with every known typographic character replaced by its GSM-7 look-alike."""
    return text.translate(TABLE)


def prefer_gsm(text: str) -> str:
    """The replaced text when that makes it GSM-7, else the original text."""
    if gsm.is_gsm7(text):
        return text
    replaced = text.translate(TABLE)
    return replaced if gsm.is_gsm7(replaced) else text
