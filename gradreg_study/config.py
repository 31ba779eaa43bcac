"""The study configuration: consent, language, practice, data-quality rule, recruitment platform.

A study folder holds ``study_config.json`` (:data:`FILENAME`; ``make-stimuli`` writes a template,
:func:`write_template`). ``serve`` validates it before it binds a socket and refuses a consent
section that still holds template placeholders. Every key (unknown keys are errors, so a typo
never passes silently)::

    {
      "language": "en",                      # a built-in string set (gradreg_study.texts)
      "texts": {},                           # overrides of single strings (same placeholders)
      "consent": {                           # shown on the consent page; all required to serve
        "researcher": "...", "institution": "...", "contact": "...",
        "approval": "...", "payment": "...", "age_requirement": "...", "withdrawal": "..."
      },
      "instructions": "",                    # an extra paragraph on the instructions page
      "practice": {"trials": 3, "feedback": true},   # clean images first, never analysed
      "quality": {"min_response_ms": 300,    # faster answers are flagged too_fast
                  "min_attention": 0.5,      # the pre-registered population rule
                  "max_too_fast_share": 0.1},
      "platform": {"name": "none",           # none | prolific | mturk | pid
                   "completion_code": "",    # shown on the end page (prolific: required)
                   "completion_url": "",     # redirect after the end page; {code} {pid} filled
                   "repeat": "resume",       # a platform id seen again: resume | refuse
                   "mturk_sandbox": false},
      "mode": "online",                      # online | kiosk (the next person starts fresh)
      "abandon_after_minutes": 60,           # then the Latin-square row goes to a newcomer
      "public_hosts": []                     # host names participants use (Host allow-list)
    }
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import urllib.parse
from typing import Mapping

from gradreg_study import texts as _texts

FILENAME = "study_config.json"
PLATFORMS = ("none", "prolific", "mturk", "pid")
MODES = ("online", "kiosk")
REPEAT = ("resume", "refuse")
CONSENT_FIELDS = ("researcher", "institution", "contact", "approval", "payment",
                  "age_requirement", "withdrawal")
PLACEHOLDER = re.compile(r"^<.*>$", re.S)
"""A template value not yet filled in (``"<your name>"``)."""
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MTURK_SUBMIT = {False: "https://www.mturk.com", True: "https://workersandbox.mturk.com"}


class ConfigError(ValueError):
    """The study configuration is missing, malformed or incomplete."""


@dataclasses.dataclass(frozen=True)
class Platform:
    """The recruitment platform (module docstring)."""

    name: str = "none"
    completion_code: str = ""
    completion_url: str = ""
    repeat: str = "resume"
    mturk_sandbox: bool = False

    @property
    def mturk_origin(self) -> str:
        """The MTurk site that frames the task and receives the form (sandbox or live)."""
        return MTURK_SUBMIT[bool(self.mturk_sandbox)]


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A validated study configuration (:func:`parse`); the default is a local pilot."""

    language: str = "en"
    texts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    consent: Mapping[str, str] = dataclasses.field(default_factory=dict)
    instructions: str = ""
    practice_trials: int = 0
    practice_feedback: bool = True
    min_response_ms: int = 300
    min_attention: float = 0.5
    max_too_fast_share: float = 0.1
    platform: Platform = Platform()
    mode: str = "online"
    abandon_after_minutes: float = 60.0
    public_hosts: tuple[str, ...] = ()
    source: str = "(defaults)"

    def strings(self) -> dict[str, str]:
        """Every participant-facing string: the language's set with the overrides applied."""
        return {**_texts.LANGUAGES.get(self.language, {}), **self.texts}

    def missing_consent(self) -> list[str]:
        """Consent fields that are empty or still template placeholders."""
        return [k for k in CONSENT_FIELDS
                if not self.consent.get(k, "").strip() or PLACEHOLDER.match(self.consent[k])]

    def check_ready(self) -> None:
        """Raises :class:`ConfigError` unless a real study can run (every consent field filled).

        A research ethics committee asks for each of :data:`CONSENT_FIELDS`; ``serve`` refuses
        to show participants a consent page without them.
        """
        missing = self.missing_consent()
        if missing:
            raise ConfigError(f"{self.source}: fill in consent {missing} before serving the "
                              "study to participants (each is shown on the consent page).")


def _expect(value, kinds, where: str, what: str):
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: expected {what} ({names}), received {value!r}.")
    return value


def _section(raw: Mapping, keys: set, where: str) -> dict:
    _expect(raw, (dict,), where, "an object")
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed {sorted(keys)}.")
    return dict(raw)


def _url(value: str, where: str) -> str:
    _expect(value, (str,), where, "a URL")
    if not value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(f"{where}: expected an http(s) URL, received {value!r}.")
    try:
        value.format(code="c", pid="p")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{where}: only the placeholders {{code}} and {{pid}} may appear, "
                          f"received {value!r}.") from None
    return value


def parse(raw: Mapping, *, source: str = "(configuration)") -> StudyConfig:
    """Validates a configuration object.

    Args:
        raw: the decoded JSON object.
        source: where it came from (named in errors).

    Returns:
        The :class:`StudyConfig`.

    Raises:
        ConfigError: an unknown key, a wrong type or value, naming the key and what was
            received and expected.
    """
    top = _section(raw, {"language", "texts", "consent", "instructions", "practice", "quality",
                         "platform", "mode", "abandon_after_minutes", "public_hosts",
                         "comment"}, source)
    language = _expect(top.get("language", "en"), (str,), f"{source}: language", "a code")
    overrides = _section(top.get("texts", {}), set(_texts.ENGLISH), f"{source}: texts")
    try:
        if language not in _texts.LANGUAGES:
            _texts.check(overrides,
                         where=f"{source}: texts (language {language!r} is not built in)")
        else:
            _texts.check({**_texts.LANGUAGES[language], **overrides}, where=f"{source}: texts")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    consent = _section(top.get("consent", {}), set(CONSENT_FIELDS), f"{source}: consent")
    for k, v in consent.items():
        _expect(v, (str,), f"{source}: consent.{k}", "text")
    practice = _section(top.get("practice", {}), {"trials", "feedback"}, f"{source}: practice")
    trials = _expect(practice.get("trials", 0), (int,), f"{source}: practice.trials",
                     "a count")
    if not 0 <= trials <= 20:
        raise ConfigError(f"{source}: practice.trials must be in [0, 20], received {trials}.")
    quality = _section(top.get("quality", {}), {"min_response_ms", "min_attention",
                                                "max_too_fast_share"}, f"{source}: quality")
    min_ms = _expect(quality.get("min_response_ms", 300), (int,),
                     f"{source}: quality.min_response_ms", "milliseconds")
    if not 0 <= min_ms <= 10_000:
        raise ConfigError(f"{source}: quality.min_response_ms must be in [0, 10000], received "
                          f"{min_ms}.")
    shares = {}
    for key, default in (("min_attention", 0.5), ("max_too_fast_share", 0.1)):
        v = _expect(quality.get(key, default), (int, float), f"{source}: quality.{key}",
                    "a share")
        if not 0 <= v <= 1:
            raise ConfigError(f"{source}: quality.{key} must be in [0, 1], received {v}.")
        shares[key] = float(v)
    plat = _section(top.get("platform", {}), {f.name for f in dataclasses.fields(Platform)},
                    f"{source}: platform")
    platform = Platform(**plat)
    if platform.name not in PLATFORMS:
        raise ConfigError(f"{source}: platform.name must be one of {list(PLATFORMS)}, "
                          f"received {platform.name!r}.")
    if platform.repeat not in REPEAT:
        raise ConfigError(f"{source}: platform.repeat must be one of {list(REPEAT)}, received "
                          f"{platform.repeat!r}.")
    _expect(platform.mturk_sandbox, (bool,), f"{source}: platform.mturk_sandbox", "true/false")
    code = _expect(platform.completion_code, (str,), f"{source}: platform.completion_code",
                   "a code")
    if code and not CODE.match(code):
        raise ConfigError(f"{source}: platform.completion_code must be 1-64 characters of "
                          f"A-Z a-z 0-9 _ -, received {code!r}.")
    _url(platform.completion_url, f"{source}: platform.completion_url")
    if platform.name == "prolific" and not (code and platform.completion_url):
        raise ConfigError(f"{source}: Prolific needs platform.completion_code and "
                          "platform.completion_url (e.g. https://app.prolific.com/submissions/"
                          "complete?cc={code}).")
    mode = _expect(top.get("mode", "online"), (str,), f"{source}: mode", "text")
    if mode not in MODES:
        raise ConfigError(f"{source}: mode must be one of {list(MODES)}, received {mode!r}.")
    if mode == "kiosk" and platform.name != "none":
        raise ConfigError(f"{source}: kiosk mode is for a lab without a recruitment platform; "
                          f"received platform {platform.name!r}.")
    abandon = _expect(top.get("abandon_after_minutes", 60), (int, float),
                      f"{source}: abandon_after_minutes", "minutes")
    if not 0 <= abandon <= 7 * 24 * 60:
        raise ConfigError(f"{source}: abandon_after_minutes must be in [0, 10080], received "
                          f"{abandon}.")
    hosts = _expect(top.get("public_hosts", []), (list,), f"{source}: public_hosts",
                    "a list of host names")
    for h in hosts:
        if not isinstance(h, str) or not HOST.match(h):
            raise ConfigError(f"{source}: public_hosts holds {h!r}; expected host names "
                              "without scheme or port (e.g. study.example.edu).")
    return StudyConfig(
        language=language, texts=overrides, consent=consent,
        instructions=_expect(top.get("instructions", ""), (str,), f"{source}: instructions",
                             "text"),
        practice_trials=trials,
        practice_feedback=_expect(practice.get("feedback", True), (bool,),
                                  f"{source}: practice.feedback", "true/false"),
        min_response_ms=min_ms, **shares, platform=platform, mode=mode,
        abandon_after_minutes=float(abandon), public_hosts=tuple(h.lower() for h in hosts),
        source=source)


def load(path) -> StudyConfig:
    """Reads and validates a configuration file.

    Raises:
        ConfigError: no such file, invalid JSON, or an invalid configuration.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"no study configuration at {path}; write one with "
                          "`human_study.py make-stimuli` or copy the README's example.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}).") from None
    return parse(raw, source=str(path))


TEMPLATE = {
    "comment": "Study configuration (gradreg_study.config). Replace every <...> value.",
    "language": "en",
    "texts": {},
    "consent": {
        "researcher": "<name of the responsible researcher>",
        "institution": "<institution>",
        "contact": "<e-mail address or phone for questions>",
        "approval": "<ethics committee and approval reference>",
        "payment": "<payment, or 'none'>",
        "age_requirement": "<e.g. 18 years or older>",
        "withdrawal": "<how participants can have their answers deleted>",
    },
    "instructions": "",
    "practice": {"trials": 3, "feedback": True},
    "quality": {"min_response_ms": 300, "min_attention": 0.5, "max_too_fast_share": 0.1},
    "platform": {"name": "none", "completion_code": "", "completion_url": "",
                 "repeat": "resume", "mturk_sandbox": False},
    "mode": "online",
    "abandon_after_minutes": 60,
    "public_hosts": [],
}


def write_template(study_dir) -> pathlib.Path:
    """Writes :data:`TEMPLATE` as ``<study_dir>/study_config.json`` unless one exists.

    Returns:
        The configuration's path (an existing file is left as it is).
    """
    from gradreg_tf.cache import atomic_write

    path = pathlib.Path(study_dir) / FILENAME
    if not path.exists():
        text = json.dumps(TEMPLATE, indent=2, ensure_ascii=False) + "\n"
        atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(text, encoding="utf-8"))
    return path
