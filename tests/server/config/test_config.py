"""The YAML config file and file-based service discovery, on real files in tmp_path."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.config.filesd import FileSDConfig, FileSDWatcher, read_file_sd
from server.config.load import Config, load_config
from server.config.problems import ConfigError
from server.config.targetgroups import JobDefaults
from server.scrape.spec import PROFILE_PATHS, Auth, ProfileSpec, TargetSpec, check_target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``needle``: tests name lines by content, not by counting."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def by_url(targets: list[TargetSpec]) -> dict[str, TargetSpec]:
    return {t.url: t for t in targets}


# --------------------------------------------------------------------------- a valid config


FULL = """
scrape_configs:
  - job_name: checkout
    scrape_interval: 30s
    scrape_timeout: 5s
    scheme: https
    path_prefix: /internal/pprof
    profiles:
      cpu: {enabled: true, path: /debug/pprof/profile, seconds: 10}
      mutex: {enabled: false}
      heap:
        path: /custom/heap
    basic_auth:
      username: scraper
      password_file: secrets/password
    tls_config:
      ca_file: tls/ca.pem
      cert_file: tls/client.pem
      key_file: tls/client.key
      insecure_skip_verify: true
    static_configs:
      - targets: ["127.0.0.1:6060", "http://10.0.0.2:6060"]
        labels: {env: prod}
      - targets:
          - canary.internal:7070
        labels:
          env: canary
          service: checkout-canary
    file_sd_configs:
      - files: ["targets/*.yaml", "more.json"]
        refresh_interval: 1m
      - files: ["/etc/stackyard/sd/*.yml"]
  - job_name: search
    bearer_token: s3cret
    static_configs:
      - targets: [search.internal:6060]
  - job_name: cart
    bearer_token_file: secrets/token
    static_configs:
      - targets: [cart:6060]
"""


@pytest.fixture
def full_config(tmp_path: Path) -> Path:
    write(tmp_path / "secrets" / "password", "hunter2\n")
    write(tmp_path / "secrets" / "token", "  tok-123\n\n")
    for name in ("ca.pem", "client.pem", "client.key"):
        write(tmp_path / "tls" / name, "not checked here\n")
    return write(tmp_path / "stackyard.yaml", FULL)


def test_full_config(full_config: Path, tmp_path: Path) -> None:
    config = load_config(full_config)
    targets = by_url(config.targets)
    assert list(targets) == [
        "https://127.0.0.1:6060",
        "http://10.0.0.2:6060",
        "https://canary.internal:7070",
        "http://search.internal:6060",
        "http://cart:6060",
    ]
    for target in config.targets:
        assert check_target(target) is target
        assert target.source == "config"
        assert target.id is None

    local = targets["https://127.0.0.1:6060"]
    assert local.service == "checkout"
    assert local.labels == {"env": "prod"}
    assert local.instance == "127.0.0.1:6060"
    assert local.interval_s == 30.0
    assert local.timeout_s == 5.0
    assert local.path_prefix == "/internal/pprof"
    profiles = {p.kind: p for p in local.profiles}
    assert list(profiles) == list(PROFILE_PATHS)
    assert profiles["cpu"] == ProfileSpec("cpu", True, "/debug/pprof/profile", 10.0)
    assert profiles["mutex"] == ProfileSpec("mutex", enabled=False)
    assert profiles["heap"] == ProfileSpec("heap", path="/custom/heap")
    assert profiles["goroutine"] == ProfileSpec("goroutine")
    assert [p.kind for p in local.enabled_profiles()] == [k for k in PROFILE_PATHS if k != "mutex"]
    assert local.url_for(profiles["heap"], None) == "https://127.0.0.1:6060/custom/heap"
    assert local.url_for(profiles["goroutine"], None) == "https://127.0.0.1:6060/internal/pprof/goroutine"
    assert local.timeout_for(profiles["cpu"]) == 15.0
    assert local.auth == Auth(
        username="scraper",
        password="hunter2",
        ca_file=str(tmp_path / "tls" / "ca.pem"),
        cert_file=str(tmp_path / "tls" / "client.pem"),
        key_file=str(tmp_path / "tls" / "client.key"),
        insecure_skip_verify=True,
    )

    # A full URL keeps its own scheme; the other job settings still apply.
    assert targets["http://10.0.0.2:6060"].auth == local.auth
    assert targets["http://10.0.0.2:6060"].interval_s == 30.0

    canary = targets["https://canary.internal:7070"]
    assert canary.service == "checkout-canary"
    assert canary.labels == {"env": "canary"}
    assert canary.series_labels() == {"env": "canary", "service": "checkout-canary", "instance": "canary.internal:7070"}

    search = targets["http://search.internal:6060"]
    assert search.service == "search"
    assert search.labels == {}
    assert search.interval_s == 15.0
    assert search.timeout_s is None
    assert search.path_prefix == "/debug/pprof"
    assert search.profiles == tuple(ProfileSpec(k) for k in PROFILE_PATHS)
    assert search.auth == Auth(bearer_token="s3cret")

    assert targets["http://cart:6060"].auth == Auth(bearer_token="tok-123")

    first, second = config.file_sd
    assert first.patterns == (str(tmp_path / "targets" / "*.yaml"), str(tmp_path / "more.json"))
    assert first.refresh_interval_s == 60.0
    assert first.job.job_name == "checkout"
    assert first.job.scheme == "https"
    assert first.job.interval_s == 30.0
    assert first.job.timeout_s == 5.0
    assert first.job.path_prefix == "/internal/pprof"
    assert first.job.profiles == local.profiles
    assert first.job.auth == local.auth
    assert second.patterns == ("/etc/stackyard/sd/*.yml",)
    assert second.refresh_interval_s == 30.0


def test_host_port_uses_the_job_scheme(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        """
        scrape_configs:
          - job_name: api
            scheme: https
            static_configs:
              - targets: [api.internal:8443, api.internal]
        """,
    )
    targets = load_config(path).targets
    assert [t.url for t in targets] == ["https://api.internal:8443", "https://api.internal"]
    assert [t.instance for t in targets] == ["api.internal:8443", "api.internal:443"]


def test_minimal_and_empty_sections(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "a.yaml", "scrape_configs: []\n")) == Config()
    assert load_config(write(tmp_path / "b.yaml", "{}\n")) == Config()
    # ``key:`` with no value is null, which means "not set", as in Prometheus.
    path = write(
        tmp_path / "c.yaml",
        """
        scrape_configs:
          - job_name: x
            scrape_timeout:
            static_configs:
              - targets: ["h:1"]
                labels:
        """,
    )
    (target,) = load_config(path).targets
    assert target.timeout_s is None
    assert target.labels == {}


# --------------------------------------------------------------------------- errors name the file, line and key


UNKNOWN_KEYS = """
scrape_configs:
  - job_name: checkout
    scrape_intervall: 15s       # in a scrape config
    profiles:
      cpu:
        enabled: true
        sekonds: 10             # in profiles.cpu
    static_configs:
      - labels: {env: prod}
        tragets: ["h:1"]        # in static_configs
scrape_config: []               # at the top level
"""


@pytest.mark.parametrize(
    ("needle", "key_path", "hint"),
    [
        ("scrape_intervall", "scrape_configs[0].scrape_intervall", "scrape_interval"),
        ("sekonds", "scrape_configs[0].profiles.cpu.sekonds", "seconds"),
        ("tragets", "scrape_configs[0].static_configs[0].tragets", "targets"),
        ("scrape_config:", "scrape_config", "scrape_configs"),
    ],
)
def test_unknown_keys_name_their_line(tmp_path: Path, needle: str, key_path: str, hint: str) -> None:
    path = write(tmp_path / "stackyard.yaml", UNKNOWN_KEYS)
    error = config_error(path)
    expected = f"{path}:{line_of(path, needle)}: {key_path}: unknown key (did you mean {hint!r}?)"
    assert expected in str(error).splitlines()
    assert len(error.problems) == 4  # all reported at once, in line order
    assert [p.line for p in error.problems] == sorted(p.line or 0 for p in error.problems)


def test_single_unknown_key_message(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            static_configs:
              - targets: ["h:1"]
              - tragets: ["h:2"]
        """,
    )
    error = config_error(path)
    assert str(error) == f"{path}:5: scrape_configs[0].static_configs[1].tragets: unknown key (did you mean 'targets'?)"
    assert (error.file, error.line, error.key_path) == (str(path), 5, "scrape_configs[0].static_configs[1].tragets")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("15x", "'15x' is not a duration"),
        ("15", "15 has no unit"),
        ("500ms", "out of range"),
        ("2d", "out of range"),
        ("[15s]", "expected a duration like 15s, got a list"),
    ],
)
def test_bad_scrape_interval(tmp_path: Path, value: str, message: str) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        f"""
        scrape_configs:
          - job_name: checkout
            scrape_interval: {value}
        """,
    )
    error = config_error(path)
    assert str(error).startswith(f"{path}:3: scrape_configs[0].scrape_interval: ")
    assert message in str(error)


def test_bad_refresh_and_timeout(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            scrape_timeout: 0s
            file_sd_configs:
              - files: [a.yaml]
                refresh_interval: soon
        """,
    )
    lines = str(config_error(path)).splitlines()
    assert lines[0].startswith(f"{path}:3: scrape_configs[0].scrape_timeout: '0s' is out of range")
    assert lines[1].startswith(f"{path}:6: scrape_configs[0].file_sd_configs[0].refresh_interval: 'soon' is not a")


def test_invalid_url_target_names_the_entry_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            static_configs:
              - targets:
                  - 127.0.0.1:6060
                  - ftp://x
                  - http://h:1/?debug=1
                  - host:port
                  - a b:1
                  - h:1/debug
        """,
    )
    lines = str(config_error(path)).splitlines()
    at = "scrape_configs[0].static_configs[0].targets"
    assert lines == [
        f"{path}:6: {at}[1]: invalid target 'ftp://x': scheme 'ftp' is not allowed; use http or https",
        f"{path}:7: {at}[2]: invalid target 'http://h:1/?debug=1': give the base URL only (no query or fragment); "
        "set path_prefix for the pprof path",
        lines[2],
        f"{path}:9: {at}[4]: invalid target: 'a b:1' contains whitespace or control characters",
        f"{path}:10: {at}[5]: invalid target: 'h:1/debug' is neither host:port nor an http:// or https:// URL",
    ]
    assert lines[2].startswith(f"{path}:8: {at}[3]: invalid target 'host:port': 'http://host:port' is not a valid URL")


def test_invalid_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            static_configs:
              - targets: [h:1]
                labels:
                  env: prod
                  bad-name: x
                  __reserved: y
                  version: 1.2
        """,
    )
    lines = str(config_error(path)).splitlines()
    at = "scrape_configs[0].static_configs[0].labels"
    assert lines == [
        f"{path}:7: {at}.bad-name: 'bad-name' is not a valid label name "
        "(letters, digits and _; not starting with a digit)",
        f"{path}:8: {at}.__reserved: label names starting with __ are reserved: '__reserved'",
        f"{path}:9: {at}.version: expected a string, got number 1.2",
    ]


def test_wrong_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            scheme: ftp
            profiles:
              cpu: {enabled: "no"}
              heap: []
            static_configs: {targets: [h:1]}
          - job_name: 42
          - static_configs: []
          - nope
        """,
    )
    assert str(config_error(path)).splitlines() == [
        f"{path}:3: scrape_configs[0].scheme: expected 'http' or 'https', got string 'ftp'",
        f"{path}:5: scrape_configs[0].profiles.cpu.enabled: expected true or false, got string 'no'",
        f"{path}:6: scrape_configs[0].profiles.heap: expected a mapping, got a list",
        f"{path}:7: scrape_configs[0].static_configs: expected a list, got a mapping",
        f"{path}:8: scrape_configs[1].job_name: expected a string, got number 42",
        f"{path}:9: scrape_configs[2].job_name: required, but missing",
        f"{path}:10: scrape_configs[3]: expected a mapping, got string 'nope'",
    ]


def test_profile_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            profiles:
              heep: {enabled: false}
              heap: {seconds: 5}
              cpu: {path: /p}
        """,
    )
    assert str(config_error(path)).splitlines() == [
        f"{path}:4: scrape_configs[0].profiles.heep: unknown profile type (did you mean 'heap'?)",
        f"{path}:5: scrape_configs[0].profiles.heap.seconds: only cpu, allocs, mutex, block take seconds; "
        "heap is a snapshot",
    ]
    # Type and range errors come first: the checks above need a validated config.
    write(path, path.read_text().replace("path: /p", "seconds: 0"))
    assert str(config_error(path)).splitlines() == [
        f"{path}:6: scrape_configs[0].profiles.cpu.seconds: Input should be greater than 0",
    ]


def test_duplicate_job_names_and_targets(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            static_configs:
              - targets: [h:1, h:2]
          - job_name: search
          - job_name: checkout
            static_configs:
              - targets: [h:3]
              - targets: ["http://h:1"]
        """,
    )
    assert str(config_error(path)).splitlines() == [
        f"{path}:6: scrape_configs[2].job_name: duplicate job_name 'checkout' (first at line 2)",
        f"{path}:9: scrape_configs[2].static_configs[1].targets[0]: http://h:1 of service 'checkout' is listed twice "
        "(first at line 4)",
    ]


def test_yaml_syntax_error_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: checkout
            static_configs:
              - targets: ["h:1"
                labels: {env: prod}
        """,
    )
    error = config_error(path)
    assert error.line == 5
    assert str(error).startswith(f"{path}:5: YAML syntax error: while parsing a flow sequence")


def test_yaml_oddities(tmp_path: Path) -> None:
    def error_for(text: str) -> str:
        return str(config_error(write(tmp_path / "c.yaml", text)))

    path = tmp_path / "c.yaml"
    assert error_for("scrape_configs: []\nscrape_configs: []\n") == f"{path}:2: scrape_configs: duplicate key"
    assert error_for("a: 2001-02-30\n") == f"{path}:1: YAML error: invalid value (day is out of range for month)"
    assert error_for("a: b\n\x07\n") == (
        f"{path}:2: YAML syntax error: character U+0007 is not allowed (special characters are not allowed)"
    )
    assert error_for("---\na: 1\n---\nb: 2\n").startswith(f"{path}:3: YAML syntax error: expected a single document")
    assert error_for("- job_name: x\n") == f"{path}:1: expected a mapping at the top level, got a list"
    assert error_for("a: &a [*a]\n") == f"{path}:1: a[0]: an alias contains itself"
    assert error_for("a: &a {<<: *a, b: 1}\n") == f"{path}:1: a: unknown key"
    laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 7)
    )
    assert error_for(laughs) == f"{path}:1: more than 200000 YAML nodes (alias bomb?)"
    assert error_for("# comment\n" * 3 + "scrape_configs: !!python/object:os.system {}\n").startswith(
        f"{path}:4: YAML error: could not determine a constructor"
    )
    path.write_bytes(b"scrape_configs:\n  - job_name: \xff\n")
    assert str(config_error(path)) == f"{path}:2: the file is not valid UTF-8"


def test_merge_keys_keep_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - &defaults
            job_name: a
            scrape_intervall: 15s
          - <<: *defaults
            job_name: b
            static_configs: [{targets: [h:1]}]
        """,
    )
    lines = str(config_error(path)).splitlines()
    assert lines == [
        f"{path}:4: scrape_configs[0].scrape_intervall: unknown key (did you mean 'scrape_interval'?)",
        f"{path}:4: scrape_configs[1].scrape_intervall: unknown key (did you mean 'scrape_interval'?)",
    ]
    write(path, path.read_text().replace("scrape_intervall", "scrape_interval: 20s\n    scheme"))
    write(path, path.read_text().replace("scheme: 15s", "scheme: https"))
    (target,) = load_config(path).targets
    assert (target.service, target.url, target.interval_s) == ("b", "https://h:1", 20.0)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert str(config_error(missing)) == f"{missing}: cannot read the file: No such file or directory"
    for text in ("", "\n\n# only a comment\n"):
        empty = write(tmp_path / "empty.yaml", text)
        assert str(config_error(empty)) == f"{empty}:1: the file is empty; expected a mapping with scrape_configs"
    assert config_error(tmp_path).line is None  # a directory


# --------------------------------------------------------------------------- secrets


def test_secret_files_are_read_relative_to_the_config(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "pw.txt", "pa ss\n")
    write(tmp_path / "conf" / "token", "abc\n")
    path = write(
        tmp_path / "conf" / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: a
            basic_auth: {username: u, password_file: pw.txt}
            static_configs: [{targets: ["h:1"]}]
          - job_name: b
            bearer_token_file: token
            static_configs: [{targets: ["h:2"]}]
        """,
    )
    a, b = load_config(path).targets
    assert a.auth == Auth(username="u", password="pa ss")
    assert b.auth == Auth(bearer_token="abc")


def test_secret_and_auth_errors(tmp_path: Path) -> None:
    write(tmp_path / "empty", "\n")
    write(tmp_path / "ca.pem", "x")
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: a
            basic_auth:
              username: u
              password: p
              password_file: missing.txt
            bearer_token: t
          - job_name: b
            bearer_token_file: empty
            tls_config:
              ca_file: ca.pem
              cert_file: nope.pem
        """,
    )
    assert str(config_error(path)).splitlines() == [
        f"{path}:6: scrape_configs[0].basic_auth.password_file: cannot be combined with password",
        f"{path}:6: scrape_configs[0].basic_auth.password_file: cannot read '{tmp_path}/missing.txt': "
        "No such file or directory",
        f"{path}:7: scrape_configs[0].bearer_token: cannot be combined with basic_auth; use one way to authenticate",
        f"{path}:9: scrape_configs[1].bearer_token_file: '{tmp_path}/empty' is empty",
        f"{path}:12: scrape_configs[1].tls_config.cert_file: needs key_file too",
        f"{path}:12: scrape_configs[1].tls_config.cert_file: no such file: '{tmp_path}/nope.pem'",
    ]


# --------------------------------------------------------------------------- file_sd


@pytest.fixture
def sd_config(tmp_path: Path) -> Config:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: orders
            scrape_interval: 20s
            scheme: https
            profiles: {block: {enabled: false}}
            file_sd_configs:
              - files: ["sd/*.yaml", "sd/*.json", "extra/more.yml"]
        """,
    )
    return load_config(path)


def test_read_file_sd_yaml_json_and_globs(sd_config: Config, tmp_path: Path) -> None:
    (sd,) = sd_config.file_sd
    assert read_file_sd(sd) == []  # nothing matches yet
    write(
        tmp_path / "sd" / "a.yaml",
        """
        - targets: ["10.0.0.1:6060", "http://10.0.0.2:6060"]
          labels: {env: prod}
        - targets: ["10.0.0.3:6060"]
          labels: {service: billing}
        """,
    )
    (tmp_path / "sd" / "b.json").write_text(json.dumps([{"targets": ["10.0.0.4:6060"]}]))
    write(tmp_path / "sd" / "ignored.txt", "- targets: ['10.0.0.9:1']\n")
    write(tmp_path / "extra" / "more.yml", "")  # empty: no targets, as in Prometheus
    targets = read_file_sd(sd)
    assert [(t.url, t.service, t.labels) for t in targets] == [
        ("https://10.0.0.1:6060", "orders", {"env": "prod"}),
        ("http://10.0.0.2:6060", "orders", {"env": "prod"}),
        ("https://10.0.0.3:6060", "billing", {}),
        ("https://10.0.0.4:6060", "orders", {}),
    ]
    for target in targets:
        assert check_target(target) is target
        assert target.source == "file_sd"
        assert target.interval_s == 20.0
        assert [p.kind for p in target.enabled_profiles()] == [k for k in PROFILE_PATHS if k != "block"]


def test_read_file_sd_errors(sd_config: Config, tmp_path: Path) -> None:
    (sd,) = sd_config.file_sd
    bad_yaml = write(
        tmp_path / "sd" / "a.yaml",
        """
        - targets: ["10.0.0.1:6060"]
        - targets: ["ftp://x"]
          lables: {}
        """,
    )
    bad_json = tmp_path / "sd" / "b.json"
    bad_json.write_text('[\n  {"targets": ["h:1"],\n   "labels": {"env": 1}}\n]\n')
    broken_yaml = write(tmp_path / "extra" / "more.yml", "[")
    with pytest.raises(ConfigError) as info:
        read_file_sd(sd)
    # Every broken file is reported; within a file, type errors come before target checks.
    assert str(info.value).splitlines() == [
        f"{broken_yaml}:1: YAML syntax error: while parsing a flow node: expected the node content, "
        "but found '<stream end>'",
        f"{bad_yaml}:3: [1].lables: unknown key (did you mean 'labels'?)",
        f"{bad_json}:3: [0].labels.env: expected a string, got number 1",
    ]
    bad_json.write_text('[{"targets": ["h:1"]}')
    with pytest.raises(ConfigError, match=r"b\.json:1: invalid JSON: Expecting ',' delimiter"):
        read_file_sd(sd)


def test_file_sd_patterns_must_name_yaml_or_json(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stackyard.yaml",
        """
        scrape_configs:
          - job_name: a
            file_sd_configs:
              - files: [ok.json, "targets/*"]
        """,
    )
    assert str(config_error(path)) == (
        f"{path}:4: scrape_configs[0].file_sd_configs[0].files[1]: 'targets/*': file names must end in "
        ".json, .yml, .yaml"
    )
    write(path, path.read_text().replace('[ok.json, "targets/*"]', "[]"))
    assert str(config_error(path)) == (
        f"{path}:4: scrape_configs[0].file_sd_configs[0].files: List should have at least 1 item after validation, "
        "not 0"
    )


def set_mtime(path: Path, seconds: int) -> None:
    """Distinct, explicit mtimes: a rewrite within one timestamp tick would otherwise look unchanged."""
    os.utime(path, ns=(seconds * 1_000_000_000, seconds * 1_000_000_000))


def test_watcher_add_change_remove(tmp_path: Path) -> None:
    sd = FileSDConfig(JobDefaults("orders"), (str(tmp_path / "*.yaml"),), refresh_interval_s=5.0)
    watcher = FileSDWatcher(sd)
    assert watcher.poll() == []  # the first poll always answers
    assert watcher.poll() is None

    a = write(tmp_path / "a.yaml", "- targets: ['h:1']\n")
    set_mtime(a, 1000)
    assert [t.url for t in watcher.poll() or []] == ["http://h:1"]
    assert watcher.poll() is None

    b = write(tmp_path / "b.yaml", "- targets: ['h:2']\n")
    set_mtime(b, 1000)
    assert [t.url for t in watcher.poll() or []] == ["http://h:1", "http://h:2"]

    write(a, "- targets: ['h:3']\n")  # same size: only the mtime tells
    set_mtime(a, 1000)
    assert watcher.poll() is None
    set_mtime(a, 1001)
    assert [t.url for t in watcher.poll() or []] == ["http://h:3", "http://h:2"]

    write(a, "- targets: ['h:3', 'h:4']\n")
    set_mtime(a, 1001)  # same mtime: only the size tells
    assert [t.url for t in watcher.poll() or []] == ["http://h:3", "http://h:4", "http://h:2"]

    b.unlink()
    assert [t.url for t in watcher.poll() or []] == ["http://h:3", "http://h:4"]
    assert watcher.poll() is None
    assert watcher.errors == {}


def test_watcher_keeps_last_good_targets_of_a_broken_file(tmp_path: Path) -> None:
    sd = FileSDConfig(JobDefaults("orders"), (str(tmp_path / "*.yaml"), str(tmp_path / "*.json")))
    watcher = FileSDWatcher(sd)
    a = write(tmp_path / "a.yaml", "- targets: ['h:1']\n  labels: {env: prod}\n")
    b = tmp_path / "b.json"
    b.write_text('[{"targets": ["h:2"]}]')
    first = watcher.poll()
    assert [t.url for t in first or []] == ["http://h:1", "http://h:2"]

    write(a, "- targets: ['h:1']\n  lables: {env: prod}\n")
    set_mtime(a, 2000)
    b.write_text('[{"targets": ["h:2"]')
    set_mtime(b, 2000)
    assert watcher.poll() == first  # files changed, targets kept
    assert watcher.errors == {
        str(a): f"{a}:2: [0].lables: unknown key (did you mean 'labels'?)",
        str(b): f"{b}:1: invalid JSON: Expecting ',' delimiter",
    }
    assert watcher.poll() is None  # still broken, nothing new
    assert set(watcher.errors) == {str(a), str(b)}

    c = write(tmp_path / "c.yaml", "- targets: ['ftp://h:9']\n")  # broken from the start: contributes nothing
    set_mtime(c, 2000)
    assert watcher.poll() == first
    assert watcher.errors[str(c)].startswith(f"{c}:1: [0].targets[0]: invalid target 'ftp://h:9': scheme 'ftp'")

    write(a, "- targets: ['h:1', 'h:5']\n")
    set_mtime(a, 2001)
    assert [t.url for t in watcher.poll() or []] == ["http://h:1", "http://h:5", "http://h:2"]
    assert set(watcher.errors) == {str(b), str(c)}

    b.unlink()  # removing a broken file drops its last good targets and its error
    c.unlink()
    assert [t.url for t in watcher.poll() or []] == ["http://h:1", "http://h:5"]
    assert watcher.errors == {}
    assert watcher.targets() == watcher.targets()


def test_watcher_notices_a_fix_that_keeps_mtime_and_size(tmp_path: Path) -> None:
    """Broken files are retried every poll: a fix may not change what the stat shows (e.g. a chmod)."""
    sd = FileSDConfig(JobDefaults("orders"), (str(tmp_path / "*.yaml"),))
    watcher = FileSDWatcher(sd)
    a = write(tmp_path / "a.yaml", "- targets: ['h:1']\n  lables: {}\n")
    set_mtime(a, 3000)
    assert watcher.poll() == []
    assert str(a) in watcher.errors
    assert watcher.poll() is None  # retried, still broken: nothing to report
    write(a, "- targets: ['h:1']\n  labels: {}\n")
    set_mtime(a, 3000)
    assert [t.url for t in watcher.poll() or []] == ["http://h:1"]
    assert watcher.errors == {}


def test_duplicate_file_sd_targets_are_kept_once(tmp_path: Path) -> None:
    sd = FileSDConfig(JobDefaults("orders"), (str(tmp_path / "*.yaml"),))
    write(tmp_path / "a.yaml", "- targets: ['h:1', 'h:2', 'h:1']\n")
    write(tmp_path / "b.yaml", "- targets: ['h:2', 'h:3']\n  labels: {zone: b}\n")
    assert [(t.url, t.labels) for t in read_file_sd(sd)] == [
        ("http://h:1", {}),
        ("http://h:2", {}),
        ("http://h:3", {"zone": "b"}),
    ]


# --------------------------------------------------------------------------- anything in, only ConfigError out

_KEYS = [
    "scrape_configs",
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "scheme",
    "path_prefix",
    "profiles",
    "cpu",
    "heap",
    "enabled",
    "path",
    "seconds",
    "basic_auth",
    "username",
    "password",
    "password_file",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "ca_file",
    "static_configs",
    "targets",
    "labels",
    "service",
    "file_sd_configs",
    "files",
    "refresh_interval",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["15s", "0s", "1h30m", "http", "https", "127.0.0.1:6060", "http://h:1", "ftp://x", "a.yaml"]),
)
_KEY = st.one_of(st.sampled_from(_KEYS), st.text(max_size=10))
_DATA = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_KEY, children, max_size=5)),
    max_leaves=25,
)


def _only_config_errors(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bytes], None]:
    directory = tmp_path_factory.mktemp("fuzz")
    path = directory / "stackyard.yaml"

    def check(content: bytes) -> None:
        path.write_bytes(content)
        try:
            config = load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))
        else:
            for target in config.targets:
                check_target(target)

    return check


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_random_text_only_raises_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    _only_config_errors(tmp_path_factory)(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(_DATA, st.fixed_dictionaries({"scrape_configs": st.lists(_DATA, max_size=3)})))
def test_random_yaml_only_raises_config_error(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    _only_config_errors(tmp_path_factory)(yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass"))
