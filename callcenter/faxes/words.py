"""The result of a fax job in words, in the console's languages (en, ru).

A job's ``result`` column holds one of the keys below; the words are made here so the REST
API, the bus and the client history all say the same thing. Backend result codes (T.30 codes
of spandsp, HylaFAX reasons, Asterisk FAXERROR) are kept in ``detail`` for the admin; the few
T.30 codes every fax engine shares get words of their own.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "ru")

_RESULTS: dict[str, dict[str, str]] = {
    "": {"en": "", "ru": ""},
    "queued": {"en": "waiting to be sent", "ru": "ожидает отправки"},
    "sent": {"en": "sent: all {pages} pages confirmed by the far end",
             "ru": "отправлен: все страницы ({pages}) подтверждены получателем"},
    "partial": {"en": "failed: pages 1–{confirmed} of {pages} sent",
                "ru": "не отправлен: переданы страницы 1–{confirmed} из {pages}"},
    "none_sent": {"en": "failed: none of the {pages} pages was confirmed",
                  "ru": "не отправлен: ни одна из {pages} страниц не подтверждена"},
    "busy": {"en": "the fax number was busy", "ru": "номер факса был занят"},
    "no_answer": {"en": "no answer from the fax number", "ru": "номер факса не ответил"},
    "line_error": {"en": "the line failed before every page was confirmed"
                         " ({confirmed} of {pages})",
                   "ru": "сбой линии: подтверждено страниц {confirmed} из {pages}"},
    "interrupted": {"en": "interrupted, pages {confirmed} of {pages} confirmed",
                    "ru": "прерван, подтверждено страниц: {confirmed} из {pages}"},
    "cancelled": {"en": "cancelled", "ru": "отменён"},
    "unknown": {"en": "failed, result unknown: pages {confirmed} of {pages} confirmed",
                "ru": "ошибка, результат неизвестен: подтверждено страниц {confirmed} из"
                      " {pages}"},
    "page_mismatch": {"en": "failed: the far end confirmed more pages than the {pages} of"
                            " this document", "ru": "ошибка: получатель подтвердил больше"
                            " страниц, чем {pages} в документе"},
    "no_line": {"en": "the fax line is not connected", "ru": "факсовая линия не подключена"},
}

_STATES: dict[str, dict[str, str]] = {
    "queued": {"en": "queued", "ru": "в очереди"},
    "converting": {"en": "converting", "ru": "преобразуется"},
    "dialing": {"en": "dialing", "ru": "набор номера"},
    "sending": {"en": "sending page {page} of {pages}",
                "ru": "отправка страницы {page} из {pages}"},
    "sent": {"en": "sent", "ru": "отправлен"},
    "failed": {"en": "failed", "ru": "ошибка"},
    "retry_scheduled": {"en": "retry scheduled", "ru": "повтор запланирован"},
    "cancelled": {"en": "cancelled", "ru": "отменён"},
}

# T.30 completion codes (spandsp's t30_api.h numbering, which the HylaFAX and Asterisk
# spandsp paths share): the ones a user can act on.
_T30: dict[int, dict[str, str]] = {
    0: {"en": "OK", "ru": "успешно"},
    1: {"en": "the far end's answer tone went on too long", "ru": "слишком длинный тон ответа"},
    2: {"en": "the far end did not answer as a fax machine",
        "ru": "на том конце ответил не факсимильный аппарат"},
    3: {"en": "no fax handshake from the far end", "ru": "нет факсимильного приветствия"},
    4: {"en": "timed out waiting for the operator", "ru": "истекло время ожидания оператора"},
    5: {"en": "the carrier did not stop in time", "ru": "несущая не остановилась вовремя"},
    6: {"en": "the modems could not train at any speed",
        "ru": "модемы не смогли согласовать скорость"},
    7: {"en": "operator intervention failed", "ru": "вмешательство оператора не удалось"},
    8: {"en": "the far end is not compatible", "ru": "удалённый аппарат несовместим"},
    9: {"en": "the far end cannot receive faxes", "ru": "удалённый аппарат не принимает факсы"},
    10: {"en": "the far end cannot send faxes", "ru": "удалённый аппарат не передаёт факсы"},
    11: {"en": "the far end cannot receive this resolution",
         "ru": "удалённый аппарат не поддерживает это разрешение"},
    12: {"en": "the far end cannot receive this paper size",
         "ru": "удалённый аппарат не поддерживает этот размер бумаги"},
    13: {"en": "unexpected message from the far end", "ru": "неожиданное сообщение от аппарата"},
    26: {"en": "no carrier from the far end", "ru": "нет несущей от удалённого аппарата"},
    49: {"en": "the call was dropped", "ru": "соединение оборвалось"},
}


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else "en"


def result_words(job: dict[str, Any], lang: str = "en") -> str:
    """The job's result as a sentence (empty while it has none)."""
    lang = _lang(lang)
    key = job.get("result") or ""
    text = _RESULTS.get(key, {"en": key, "ru": key})[lang].format(
        pages=job.get("pages") or 0, confirmed=job.get("pages_confirmed") or 0)
    code = job.get("t30_code")
    if key not in ("sent", "") and isinstance(code, int) and code in _T30 and code != 0:
        text = f"{text} ({_T30[code][lang]})"
    return text


def state_words(job: dict[str, Any], lang: str = "en") -> str:
    lang = _lang(lang)
    state = job.get("state") or ""
    words = _STATES.get(state, {"en": state, "ru": state})[lang]
    return words.format(page=max(1, job.get("page") or 1), pages=job.get("pages") or 0)


def t30_words(code: int, lang: str = "en") -> str:
    return _T30.get(code, {"en": f"T.30 code {code}", "ru": f"код T.30 {code}"})[_lang(lang)]
