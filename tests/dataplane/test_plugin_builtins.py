"""Built-in plugins and plugin configuration, without a server."""

from __future__ import annotations

import pytest
import re2  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from memorygraph.errors import Code, ConfigError
from memorygraph.plugins.builtin import Enricher, Quota, Redactor, Validator, luhn_valid
from memorygraph.plugins.calls import HookCall, PluginRejected
from memorygraph.plugins.config import parse_plugins
from memorygraph.plugins.pipeline import LoadedPlugin, PluginPipeline
from memorygraph.plugins.schema import (
    EnricherConfig,
    Hook,
    PluginSpec,
    QuotaConfig,
    RedactorConfig,
    ValidatorConfig,
)
from prometheus_client import REGISTRY


def call(content: str | None = "hello", **kwargs: object) -> HookCall:
    return HookCall(Hook.BEFORE_CREATE_NODE, "prompt", content=content, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to ada.lovelace+ml@example.co.uk today", "write to [redacted] today"),
        ("call +44 20 7946 0958 now", "call [redacted] now"),
        ("call (415) 555-0100 or 415.555.0100", "call [redacted] or [redacted]"),
        # International numbers with as few as six digits, and two characters between some.
        ("ring +49 (30) 123 456 today", "ring [redacted] today"),
        ("ring +44 (20) 794 609 or +1-2-34-56", "ring [redacted] or [redacted]"),
        ("card 4111-1111-1111-1111 ok", "card [redacted] ok"),
        ("card 4111 1111 1111 1112 fails Luhn", "card 4111 1111 1111 1112 fails Luhn"),
        ("key sk-proj_abcdefghijklmnopqrstuv", "key [redacted]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [redacted]"),
        ("gh ghp_" + "a" * 36, "gh [redacted]"),
        (
            "on 2024-01-15 at 12:30, order 12345, v1.2.3",
            "on 2024-01-15 at 12:30, order 12345, v1.2.3",
        ),
    ],
)
def test_redactor_finds_each_kind_and_leaves_lookalikes(text: str, expected: str) -> None:
    assert Redactor("pii", RedactorConfig()).redact(text) == expected


def test_redactor_hash_mode_is_stable_and_covers_metadata() -> None:
    redactor = Redactor("pii", RedactorConfig(mode="hash", patterns=["email"]))
    first = call("from bob@example.com", metadata={"reply_to": "bob@example.com"})
    redactor.handle(first)
    assert first.content is not None and first.content.startswith("from [email:")
    assert first.metadata["reply_to"] == first.content.removeprefix("from ")
    assert "bob" not in first.content


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


def test_validator_checks_each_rule_with_invalid_argument() -> None:
    validator = Validator(
        "v",
        ValidatorConfig(
            max_content_length=10,
            allow_patterns=["[a-z ]+"],
            deny_patterns=["secret"],
            required_metadata=["app"],
            allowed_models=["m1"],
        ),
    )
    validator.handle(call("fine text", metadata={"app": "x"}, details={"model": "m1"}))
    cases = [
        (call("much too long text", metadata={"app": "x"}), "at most 10"),
        (call("UPPER", metadata={"app": "x"}), "none of the allowed"),
        (call("a secret", metadata={"app": "x"}), "denied pattern 'secret'"),
        (call("fine"), "metadata must include app"),
        (call("fine", metadata={"app": "x"}, details={"model": "m2"}), "model 'm2'"),
    ]
    for bad, reason in cases:
        with pytest.raises(PluginRejected) as info:
            validator.handle(bad)
        assert info.value.code == Code.INVALID_ARGUMENT and reason in str(info.value)


def test_validator_names_the_first_denied_pattern_of_the_first_text_that_has_one() -> None:
    """Deny patterns are searched for in every text a user wrote: the refusal names the first
    text (content, texts, metadata) with a match, and the first pattern in order it matches."""
    validator = Validator(
        "v", ValidatorConfig(deny_patterns=["(?i)password\\s*[:=]", "^rm ", "token=\\w+"])
    )
    validator.handle(call("a password is not given", texts={"model": "farm rm x"}))
    cases = [
        (call("my Password: x token=abc"), "content matches the denied pattern '(?i)password"),
        (
            call("ok", texts={"model": "m", "role": "rm -rf /"}),
            "role matches the denied pattern '^rm '",
        ),
        (call("rm x", metadata={"k": "token=1"}), "content matches the denied pattern '^rm '"),
        (call("ok", metadata={"k": "token=1"}), "metadata['k'] matches the denied pattern 'token"),
    ]
    for bad, reason in cases:
        with pytest.raises(PluginRejected) as info:
            validator.handle(bad)
        assert reason in str(info.value)


def _first_denied(patterns: list[str], texts: list[tuple[str, str]]) -> str | None:
    """What the validator must refuse a call for: the first text, in order, that one of the
    patterns is found in, and the first such pattern; None when none is."""
    for name, text in texts:
        for pattern in patterns:
            if text and re2.search(pattern, text):
                return f"{name} matches the denied pattern {pattern!r}"
    return None


# Patterns with and without assertions (which the validator cannot search for in texts joined
# together), in one alternation with others or alone; texts that hold them, straddle two texts
# or come close.
_PATTERNS = st.lists(
    st.sampled_from(
        [
            *("ab", "(?i)B+c", "a.c", "x*", "\\d{2}", "[^a]b", "(a|bc)+d", "(?s)a.b", "é"),
            *("^b", "a$", "\\bab", "b\\B", "\\Aa", "\\Qa|b\\E", "\\Qb", "c\\z"),
        ]
    ),
    min_size=1,
    max_size=3,
)
_TEXT = st.text(alphabet="abcdxé 1\n", max_size=8)


@settings(max_examples=400, deadline=None)
@given(_PATTERNS, _TEXT, st.dictionaries(st.sampled_from(["model", "role"]), _TEXT), _TEXT)
def test_validator_refuses_exactly_the_texts_a_deny_pattern_is_found_in(
    patterns: list[str], content: str, texts: dict[str, str], value: str
) -> None:
    """A call is refused when, and only when, a deny pattern is found in one of its texts, and
    the refusal names the first such text and pattern, whether the validator searched all
    texts at once first (patterns without assertions) or each text by itself. A match that
    straddles two texts refuses nothing."""
    validator = Validator("v", ValidatorConfig(deny_patterns=patterns))
    checked = call(content, texts=texts, metadata={"k": value})
    expected = _first_denied(
        patterns, [("content", content), *texts.items(), ("metadata['k']", value)]
    )
    if expected is None:
        validator.handle(checked)
    else:
        with pytest.raises(PluginRejected) as info:
            validator.handle(checked)
        assert expected in str(info.value)


def test_validator_with_patterns_too_large_to_search_for_together_searches_each() -> None:
    """Each pattern compiles, their alternation is past RE2's memory budget: every text is
    searched for each pattern, and a match is still refused."""
    validator = Validator("v", ValidatorConfig(deny_patterns=["x\\pL{400}", "y\\pL{400}"]))
    validator.handle(call("y" + "1" * 400, texts={"model": "x"}))
    with pytest.raises(PluginRejected, match="model matches the denied pattern 'y"):
        validator.handle(call("ok", texts={"model": "y" + "é" * 400}))


def test_validator_refuses_what_an_unclosed_literal_pattern_matches() -> None:
    """An unclosed \\Q takes everything after it as literal text: in one alternation with a
    pattern that closes it, it would match something else. Such patterns are searched for one
    at a time."""
    validator = Validator("v", ValidatorConfig(deny_patterns=["\\Qb", "\\Qa|b\\E"]))
    with pytest.raises(PluginRejected, match="content matches the denied pattern"):
        validator.handle(call("b"))
    with pytest.raises(PluginRejected, match="content matches the denied pattern"):
        validator.handle(call("a|b"))
    validator.handle(call("a"))


def test_validator_passes_a_match_only_found_across_two_texts() -> None:
    validator = Validator("v", ValidatorConfig(deny_patterns=["(?i)password\\s*[:=]", "b\\nc"]))
    validator.handle(call("my password", texts={"model": ": x", "role": "b"}, metadata={"k": "c"}))
    with pytest.raises(PluginRejected, match="model matches the denied pattern"):
        validator.handle(call("ok", texts={"model": "a password = 1"}))


def test_enricher_adds_content_facts() -> None:
    enriched = call("héllo")
    Enricher("facts", EnricherConfig()).handle(enriched)
    assert enriched.metadata["mg.chars"] == "5"
    assert enriched.metadata["mg.approx_tokens"] == "2"  # 6 UTF-8 bytes / 4, rounded up
    assert len(enriched.metadata["mg.content_sha256"]) == 64


def test_quota_rate_window_and_node_count() -> None:
    now = [0.0]
    quota = Quota(
        "q",
        QuotaConfig(max_writes_per_minute=2, max_nodes_per_session=3),
        count_nodes=lambda session, limit: 1,
        clock=lambda: now[0],
        refresh_seconds=1000,
    )
    quota.handle(call(session_id="s"))
    quota.handle(call(session_id="s"))
    with pytest.raises(PluginRejected, match="writes for this minute"):
        quota.handle(call(session_id="s"))
    now[0] = 61.0
    with pytest.raises(PluginRejected, match="already holds 3 nodes") as info:
        quota.handle(call(session_id="s"))
    assert info.value.code == Code.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: 2\nplugins: []\n", "version"),
        ("plugins:\n  - {name: a, type: magic}\n", "plugins.0.type"),
        ("plugins:\n  - {name: a, type: webhook, config: {url: 'http://x'}}\n", "list of hooks"),
        (
            "plugins:\n  - {name: a, type: webhook, hooks: [before_create_node], "
            "config: {url: 'ftp://x'}}\n",
            "url",
        ),
        ("plugins:\n  - {name: a, type: redactor, hooks: [before_lunch]}\n", "hooks"),
        ("plugins:\n  - {name: a, type: quota}\n", "max_nodes_per_session"),
        ("plugins:\n  - {name: a, type: enricher}\n  - {name: a, type: enricher}\n", "unique"),
        ("plugins: [\n", "not valid YAML"),
    ],
)
def test_bad_plugin_files_are_refused_naming_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid|YAML") as info:
        parse_plugins(text)
    assert fragment in str(info.value)


class _Scribble:
    """A plugin that appends to the content and a metadata entry, then fails if told to."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name, self.fail = name, fail

    def handle(self, call: HookCall) -> None:
        call.content = f"{call.content}+{self.name}"
        call.metadata[self.name] = "seen"
        if self.fail:
            raise RuntimeError("broken")


def _pipeline(*plugins: tuple[_Scribble, str]) -> PluginPipeline:
    return PluginPipeline(
        [
            LoadedPlugin(
                PluginSpec(
                    name=impl.name,
                    type="enricher",
                    order=order,
                    failure_policy=policy,  # type: ignore[arg-type]
                    hooks=[Hook.BEFORE_CREATE_NODE],
                ),
                impl,
            )
            for order, (impl, policy) in enumerate(plugins)
        ]
    )


def test_before_hooks_keep_what_succeeded_and_leave_the_callers_call_alone() -> None:
    pipeline = _pipeline(
        (_Scribble("a"), "Fail"), (_Scribble("b", fail=True), "Ignore"), (_Scribble("c"), "Fail")
    )
    original = call("q", metadata={"k": "v"})
    result = pipeline.before(original)
    assert result.content == "q+a+c"  # b failed under Ignore: its changes are dropped
    assert result.metadata == {"k": "v", "a": "seen", "c": "seen"}
    assert (original.content, original.metadata) == ("q", {"k": "v"})


def test_a_failing_plugin_under_fail_refuses_the_call_as_unavailable() -> None:
    pipeline = _pipeline((_Scribble("a"), "Fail"), (_Scribble("b", fail=True), "Fail"))
    original = call("q")
    with pytest.raises(PluginRejected) as info:
        pipeline.before(original)
    assert info.value.code == Code.UNAVAILABLE and info.value.plugin == "b"
    assert original.content == "q" and original.metadata == {}


def _runs(plugin: str, outcome: str) -> float:
    labels = {"plugin": plugin, "hook": "before_create_node", "outcome": outcome}
    return REGISTRY.get_sample_value("memorygraph_plugin_executions_total", labels) or 0.0


def test_every_plugin_run_is_counted_by_outcome_and_timed() -> None:
    pipeline = _pipeline((_Scribble("m1"), "Fail"), (_Scribble("m2", fail=True), "Ignore"))
    timed = {"plugin": "m1", "hook": "before_create_node"}
    before = REGISTRY.get_sample_value("memorygraph_plugin_duration_seconds_count", timed) or 0.0
    for _ in range(3):
        pipeline.before(call("q"))
    assert (_runs("m1", "ok"), _runs("m2", "error"), _runs("m2", "ok")) == (3, 3, 0)
    after = REGISTRY.get_sample_value("memorygraph_plugin_duration_seconds_count", timed)
    assert after == before + 3
