"""English detection with ``langdetect``, seeded as C4 did so results are reproducible."""

from __future__ import annotations

from taskmix.errors import ConfigError


def _langdetect():
    try:
        import langdetect
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "language detection needs langdetect>=1.0.9 (pip install 'taskmix[clean]'), "
            "or switch it off (--no-langdetect)"
        ) from err
    return langdetect


def check_langdetect() -> None:
    """Raise a ConfigError now (before any work) when langdetect is not installed."""
    _langdetect()


def detect_language(text: str, language: str = "en", min_prob: float = 0.99) -> str | None:
    """None when ``text`` is ``language`` with probability >= ``min_prob``, else the reason.

    langdetect samples n-grams at random: ``DetectorFactory.seed = 0`` before every call makes
    the answer a function of the text alone (TFDS sets it the same way).
    """
    langdetect = _langdetect()
    langdetect.DetectorFactory.seed = 0
    try:
        predictions = langdetect.detect_langs(text)
    except langdetect.lang_detect_exception.LangDetectException:
        return "no_features"
    if not predictions:
        return "no_prediction"
    best = predictions[0]
    if best.lang != language:
        return f"other_language:{best.lang}"
    if best.prob < min_prob:
        return "low_confidence"
    return None
