"""Every participant-facing string of the study page, per language.

The page shows only strings from here (after the study configuration's overrides,
:mod:`gradreg_study.config`), so a study runs in another language by choosing ``language`` (a
built-in set: :data:`LANGUAGES`) or by giving every string in the configuration's ``texts``.
Placeholders in braces (``{n_trials}``) are filled by the server or the page; an override must
use the same ones (:func:`check`).
"""

from __future__ import annotations

import string
from typing import Mapping

ENGLISH = {
    "page_title": "Image study",
    "loading": "Loading…",
    "noscript": "This study needs JavaScript.",
    "consent_heading": "Image study",
    "consent_intro": "You are invited to take part in a research study on how people see images "
                     "that were changed to fool computer vision programs. You will see "
                     "{n_trials} small images, one at a time, and say what each one shows. It "
                     "takes about {minutes} minutes.",
    "consent_data": "We record only your answers, how long each answer took, when it was given, "
                    "the size of your screen and browser window, and the name and version of "
                    "your web browser. If you came from a recruitment platform, we also store "
                    "the ids it gave us, to pay you and to check that each person takes part "
                    "once. We do not ask for your name, e-mail or any other personal "
                    "information.",
    "consent_voluntary": "Taking part is voluntary. You may stop at any time by closing this "
                         "page.",
    "label_researcher": "Researcher",
    "label_institution": "Institution",
    "label_contact": "Contact",
    "label_approval": "Ethics approval",
    "label_payment": "Payment",
    "label_age_requirement": "Who can take part",
    "label_withdrawal": "Withdrawing your data",
    "consent_button": "I agree, continue",
    "instructions_heading": "Instructions",
    "instructions_body": "Each image is meant to show {noun}: one of {classes}. Some images are "
                         "distorted.",
    "instructions_answer": "For each image, answer “What is this?” by clicking a button or "
                           "pressing its key. If you cannot tell, choose “Can’t tell”.",
    "instructions_first_impression": "Go with your first impression. You will not be told "
                                     "whether an answer was right.",
    "practice_intro": "You start with {n_practice} practice images that do not count.",
    "start_button": "Start",
    "noun_mnist": "a handwritten digit",
    "noun_notmnist": "a letter",
    "noun_svhn": "a house-number digit",
    "noun_other": "an object",
    "progress": "Image {n} of {total}",
    "practice_progress": "Practice {n} of {total}",
    "question": "What is this?",
    "cant_tell": "Can’t tell",
    "feedback_correct": "Correct: it shows {label}.",
    "feedback_wrong": "It shows {label}.",
    "practice_done_heading": "Practice done",
    "practice_done_body": "The study starts now. From here on you will not see whether an "
                          "answer was right.",
    "practice_done_button": "Start the study",
    "done_heading": "Thank you!",
    "done_body": "You have answered every image. Your answers are saved.",
    "done_close": "You can close this page now.",
    "completion_code": "Your completion code: {code}",
    "completion_redirect": "Taking you back to the recruitment platform…",
    "completion_link": "Return to the recruitment platform",
    "mturk_submit": "Submit the HIT",
    "next_participant": "Start for the next person",
    "preview_heading": "Preview",
    "preview_body": "This is a preview of the task. Accept the HIT to take part.",
    "needs_platform": "Please open this study through the link on the recruitment platform.",
    "already_done": "You have already taken part in this study. Thank you!",
    "error_heading": "Something went wrong",
    "error_saved": "Your answers so far are saved.",
    "retry": "Try again",
    "error_unreachable": "The server cannot be reached. Check your connection, then try again.",
    "error_image": "The image could not be loaded. Please try again.",
    "error_unavailable": "The study is not available.",
}

GERMAN = {
    "page_title": "Bilderstudie",
    "loading": "Wird geladen …",
    "noscript": "Diese Studie benötigt JavaScript.",
    "consent_heading": "Bilderstudie",
    "consent_intro": "Wir laden Sie zu einer Forschungsstudie darüber ein, wie Menschen Bilder "
                     "sehen, die verändert wurden, um Bilderkennungsprogramme zu täuschen. Sie "
                     "sehen {n_trials} kleine Bilder, eines nach dem anderen, und sagen, was "
                     "jedes zeigt. Das dauert etwa {minutes} Minuten.",
    "consent_data": "Wir speichern nur Ihre Antworten, wie lange jede Antwort dauerte, wann sie "
                    "gegeben wurde, die Größe Ihres Bildschirms und Browserfensters sowie Name "
                    "und Version Ihres Browsers. Wenn Sie über eine Rekrutierungsplattform "
                    "kommen, speichern wir auch deren Kennungen, um Sie zu bezahlen und zu "
                    "prüfen, dass jede Person nur einmal teilnimmt. Wir fragen weder nach Ihrem "
                    "Namen noch nach Ihrer E-Mail-Adresse oder anderen persönlichen Daten.",
    "consent_voluntary": "Die Teilnahme ist freiwillig. Sie können jederzeit aufhören, indem Sie "
                         "diese Seite schließen.",
    "label_researcher": "Studienleitung",
    "label_institution": "Einrichtung",
    "label_contact": "Kontakt",
    "label_approval": "Ethikvotum",
    "label_payment": "Vergütung",
    "label_age_requirement": "Wer teilnehmen kann",
    "label_withdrawal": "Rücknahme Ihrer Daten",
    "consent_button": "Ich stimme zu, weiter",
    "instructions_heading": "Anleitung",
    "instructions_body": "Jedes Bild soll {noun} zeigen: eines von {classes}. Manche Bilder sind "
                         "verzerrt.",
    "instructions_answer": "Beantworten Sie für jedes Bild „Was ist das?“, indem Sie eine "
                           "Schaltfläche anklicken oder ihre Taste drücken. Wenn Sie es nicht "
                           "erkennen, wählen Sie „Weiß nicht“.",
    "instructions_first_impression": "Folgen Sie Ihrem ersten Eindruck. Sie erfahren nicht, ob "
                                     "eine Antwort richtig war.",
    "practice_intro": "Zuerst kommen {n_practice} Übungsbilder, die nicht zählen.",
    "start_button": "Beginnen",
    "noun_mnist": "eine handgeschriebene Ziffer",
    "noun_notmnist": "einen Buchstaben",
    "noun_svhn": "eine Hausnummernziffer",
    "noun_other": "einen Gegenstand",
    "progress": "Bild {n} von {total}",
    "practice_progress": "Übung {n} von {total}",
    "question": "Was ist das?",
    "cant_tell": "Weiß nicht",
    "feedback_correct": "Richtig: Es zeigt {label}.",
    "feedback_wrong": "Es zeigt {label}.",
    "practice_done_heading": "Übung beendet",
    "practice_done_body": "Jetzt beginnt die Studie. Ab hier sehen Sie nicht mehr, ob eine "
                          "Antwort richtig war.",
    "practice_done_button": "Studie beginnen",
    "done_heading": "Vielen Dank!",
    "done_body": "Sie haben alle Bilder beantwortet. Ihre Antworten sind gespeichert.",
    "done_close": "Sie können diese Seite jetzt schließen.",
    "completion_code": "Ihr Abschlusscode: {code}",
    "completion_redirect": "Sie werden zur Rekrutierungsplattform zurückgeleitet …",
    "completion_link": "Zurück zur Rekrutierungsplattform",
    "mturk_submit": "HIT abschicken",
    "next_participant": "Für die nächste Person starten",
    "preview_heading": "Vorschau",
    "preview_body": "Dies ist eine Vorschau der Aufgabe. Nehmen Sie den HIT an, um "
                    "teilzunehmen.",
    "needs_platform": "Bitte öffnen Sie diese Studie über den Link auf der "
                      "Rekrutierungsplattform.",
    "already_done": "Sie haben bereits an dieser Studie teilgenommen. Vielen Dank!",
    "error_heading": "Etwas ist schiefgegangen",
    "error_saved": "Ihre bisherigen Antworten sind gespeichert.",
    "retry": "Erneut versuchen",
    "error_unreachable": "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung und "
                         "versuchen Sie es erneut.",
    "error_image": "Das Bild konnte nicht geladen werden. Bitte versuchen Sie es erneut.",
    "error_unavailable": "Die Studie ist nicht verfügbar.",
}

LANGUAGES: Mapping[str, Mapping[str, str]] = {"en": ENGLISH, "de": GERMAN}
"""Built-in string sets by language code."""


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a format string."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def check(texts: Mapping[str, str], *, where: str) -> None:
    """Checks a set of strings against :data:`ENGLISH`: same keys, same placeholders.

    Args:
        texts: ``{key: string}``.
        where: what to name in errors (e.g. the configuration file).

    Raises:
        ValueError: an unknown or missing key, a non-string, a malformed format string or
            other placeholders than the English one's.
    """
    unknown = sorted(set(texts) - set(ENGLISH))
    if unknown:
        raise ValueError(f"{where}: unknown text keys {unknown}; the keys are "
                         f"{sorted(ENGLISH)}.")
    missing = sorted(set(ENGLISH) - set(texts))
    if missing:
        raise ValueError(f"{where}: the texts lack {missing} (give every participant-facing "
                         f"string, or choose a built-in language: {sorted(LANGUAGES)}).")
    for key, text in texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: text {key!r} must be a non-empty string, received "
                             f"{text!r}.")
        try:
            have = placeholders(text)
        except ValueError as err:
            raise ValueError(f"{where}: text {key!r} is not a valid format string ({err}); "
                             "write a literal brace as {{ or }}.") from None
        want = placeholders(ENGLISH[key])
        if have != want:
            raise ValueError(f"{where}: text {key!r} must use the placeholders "
                             f"{sorted(want) or 'none'}, received {sorted(have) or 'none'}.")


for _code, _texts in LANGUAGES.items():  # the built-in sets hold themselves to the rule
    check(_texts, where=f"built-in language {_code!r}")
