"""What kind of answer a question asks for (a day, a date or year, a number), and whether a text has one: shared
by evidence selection (a sentence with what is asked for scores higher) and the answerability check."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WANTS_DAY = re.compile(
    r"\b(exact date|what date|which date|which day|what day|on what day|genaue[sn]? datum|an welchem tag|"
    r"welche[nm]? datum)\b|哪一天|哪天|几号|具体日期", re.IGNORECASE)
_WANTS_DATE = re.compile(
    r"\b(when|what year|which year|in what year|what month|which month|since when|how long ago|wann|welche[nm]? "
    r"jahr|in welchem jahr|welche[nm]? monat|seit wann)\b|何时|什么时候|哪一年|哪年|几月|哪个月|多久", re.IGNORECASE)
_WANTS_NUMBER = re.compile(
    r"\b(how many|how much|what percentage|what share|what proportion|how large|how big|how high|wie viele?|"
    r"wie hoch|wie groß|wie gross|welchen anteil)\b|多少|几个|几家|几种|多大|多高", re.IGNORECASE)
_MONTH_NAMES = ("january february march april may june july august september october november december "
                "jan feb mar apr jun jul aug sep sept oct nov dec "
                "januar februar märz maerz april mai juni juli august september oktober november dezember")
_MONTHS = _MONTH_NAMES.split()
_MONTH = re.compile(r"\b(" + "|".join(m for m in _MONTHS if m != "may") + r")\b", re.IGNORECASE)  # "may" is a verb too
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b|\d{4}年")
_DAY = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}(st|nd|rd|th)?\.?\s+(" + "|".join(_MONTHS) + r")\b|\b("
    + "|".join(_MONTHS) + r")\.?\s+\d{1,2}(st|nd|rd|th)?\b|\d{1,2}月\d{1,2}日|\d{1,2}日", re.IGNORECASE)
# A number standing on its own (90.000, 8,2, 3.5%), not the digits of a name such as Qwen2.5-VL or Qwen-7B.
_NUMBER = re.compile(
    r"(?<![\w.\-])\d[\d.,]*(?![\w\-])|\d+(?:%|\s?(?:percent|prozent|million|billion|mio|mrd))|"
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|hundred|thousand|million|billion|"
    r"dozens?|eins|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|hundert|tausend|millionen?|milliarden?)\b|"
    r"[一二三四五六七八九十百千万亿两]+|\d+(?:[万亿千百]|个|名|家|种|次|位)", re.IGNORECASE)


def wants(question: str) -> str | None:
    if _WANTS_DAY.search(question):
        return "day"
    if _WANTS_NUMBER.search(question):
        return "number"
    if _WANTS_DATE.search(question):
        return "date"
    return None


def has_what_is_wanted(kind: str | None, text: str, given: Sequence[str] = ()) -> bool:
    """Whether `text` has the kind of answer asked for; the question's own names and numbers (`given`, folded)
    are no answer to it and do not count."""
    if given:
        text = re.sub("|".join(rf"(?<![\w.\-]){re.escape(g)}[\w.\-]*" for g in given), " ", text,
                      flags=re.IGNORECASE)
    if kind == "day":
        return bool(_DAY.search(text))
    if kind == "date":
        return bool(_YEAR.search(text) or _DAY.search(text) or _MONTH.search(text))
    if kind == "number":
        return bool(_NUMBER.search(text))
    return True
