"""The whole config file (``stackyard serve|collect --config``): read, checked, and turned into a :class:`Config`.

Loading happens in three steps, so that every mistake can be reported as
``file:line: key.path: what is wrong``:

1. the text is composed with line numbers kept (:mod:`server.config.yamllines`);
2. the data is validated by strict pydantic models (``extra="forbid"``,
   :mod:`server.config.validation`), whose error ``loc`` is looked up in that line map;
3. the validated models are turned into the domain model: scrape jobs into
   :mod:`server.scrape.spec` targets (:mod:`server.config.scrapejobs`), file-SD
   blocks into sources read later (:mod:`server.config.filesd`), tokens, rules
   and receivers (:mod:`server.config.sections`); given a network policy,
   target and webhook names are resolved and checked too
   (:mod:`server.config.preflight`).

All problems found in one step are reported together, so a user fixes every
typo in one round rather than one per restart.

Adding a top-level section: add a field to :class:`ConfigModel`, a builder
beside those of :mod:`server.config.sections` and a field to :class:`Config`;
unknown keys and line numbers then work without more code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from server.alerts.receivers import Receiver
from server.alerts.rules import Rule
from server.auth.tokens import TokenEntry
from server.config.filesd import FileSDConfig
from server.config.problems import ConfigError, KeyPath, Source
from server.config.scrapejobs import ScrapeConfigModel, build_scrape_section
from server.config.sections import AuthModel, build_alert_sections, tokens_of
from server.config.validation import StrictModel, describe_value, validate
from server.config.yamllines import parse_yaml, read_text
from server.network.policy import NetworkPolicy
from server.scrape.spec import TargetSpec


class ConfigModel(StrictModel):
    """One field per top-level section."""

    scrape_configs: list[ScrapeConfigModel] = Field(default_factory=list)
    auth: AuthModel | None = None
    # Checked by the same parsers as the API (server.alerts), so both report the same mistakes.
    rules: list[dict[str, Any]] = Field(default_factory=list)
    receivers: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Config:
    """A loaded config: static targets now, file-SD sources to read (and watch) later."""

    targets: list[TargetSpec] = field(default_factory=list)
    file_sd: list[FileSDConfig] = field(default_factory=list)
    auth_tokens: list[TokenEntry] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)


def load_config(path: Path, policy: NetworkPolicy | None = None) -> Config:
    """Read and check the whole config; raises :class:`ConfigError` listing every problem found.

    With ``policy`` (``stackyard serve`` and ``collect`` pass the configured
    one), a static target the scraper would refuse, or a receiver's webhook
    the dispatcher would refuse, is a problem of the file, reported before
    anything starts: written as a denied address, or a name resolving only
    into denied networks. Names that do not resolve now pass (see
    :mod:`server.config.preflight`).
    """
    file = str(path)
    text = read_text(path, file)
    data, lines = parse_yaml(text, file)
    if data is None:
        raise ConfigError.single(file, 1, "the file is empty; expected a mapping with scrape_configs")
    if not isinstance(data, dict):
        raise ConfigError.single(
            file, lines.get(()), f"expected a mapping at the top level, got {describe_value(data)}"
        )
    src = Source(file, lines, path.parent)
    model: ConfigModel = validate(ConfigModel.model_validate, ConfigModel, data, src)
    places: dict[str, tuple[KeyPath, str]] = {}  # target key -> where it is written, and how
    targets, file_sd = build_scrape_section(model.scrape_configs, src, policy, places)
    rules, receivers = build_alert_sections(model.rules, model.receivers, src, policy)
    if policy is not None:
        from server.config.preflight import refused_urls  # resolves names: only callers with a policy pay for it

        # Targets and webhooks together, so all names resolve in one parallel round.
        refused = refused_urls([*(t.url for t in targets), *(r.webhook_url for r in receivers)], policy)
        for target in targets:
            if target.url in refused:
                at, address = places[target.key]
                src.add(at, f"invalid target {address!r}: {refused[target.url]}")
        accepted = {r.webhook_url for r in receivers}
        for i, data in enumerate(model.receivers):
            url = data.get("webhook_url") if isinstance(data, dict) else None
            if isinstance(url, str) and url.strip() in accepted and url.strip() in refused:
                src.add(("receivers", i, "webhook_url"), refused[url.strip()])
    src.raise_if_any()
    return Config(targets=targets, file_sd=file_sd, auth_tokens=tokens_of(model.auth), rules=rules, receivers=receivers)
