"""docker-compose.yml, Dockerfile and .env.example checked for structure and cross-references (no Docker engine here)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
ENV_EXAMPLE = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
VARIABLE = re.compile(r"(?<!\$)\$\{(\w+)(?::?-[^}]*)?\}")


def fcmon_services() -> list[str]:
    return [name for name, s in SERVICES.items() if "build" in s]


def test_the_expected_services_are_there():
    assert {"kafka", "elasticsearch", "kibana", "gateway", "worker", "crawler", "web", "maintenance"} <= set(SERVICES)
    assert SERVICES["maintenance"]["environment"]["FCMON_USER"] == "${FCMON_MAINTENANCE_USER}"  # the purges need a supervisor or admin
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "KAFKA_PROCESS_ROLES" in SERVICES["kafka"]["environment"]  # KRaft, no ZooKeeper


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_service_has_an_image_or_a_build_whose_dockerfile_exists(name):
    service = SERVICES[name]
    assert "image" in service or "build" in service
    if "build" in service:
        build = service["build"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def test_every_variable_used_is_declared_in_env_example():
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert used and used <= set(ENV_EXAMPLE), f"not in .env.example: {sorted(used - set(ENV_EXAMPLE))}"


def test_passwords_come_from_the_env_file_and_security_is_on():
    es = SERVICES["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true" and es["ELASTIC_PASSWORD"] == "${ELASTIC_PASSWORD}"
    assert SERVICES["kibana"]["environment"]["ELASTICSEARCH_PASSWORD"] == "${KIBANA_PASSWORD}"
    assert all(v.startswith("change-me") for k, v in ENV_EXAMPLE.items() if "PASSWORD" in k or "KEY" in k)


def test_host_ports_do_not_clash_and_bind_to_loopback():
    ports = [str(p) for s in SERVICES.values() for p in s.get("ports", [])]
    resolved = [VARIABLE.sub(lambda m: ENV_EXAMPLE[m.group(1)], p) for p in ports]
    host_ports = [p.rsplit(":", 1)[0] for p in resolved]
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert all(p.startswith("127.0.0.1:") for p in host_ports)


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_service_has_a_healthcheck_or_says_it_is_one_shot(name):
    check = SERVICES[name].get("healthcheck")
    assert check, f"{name} has no healthcheck"
    assert check.get("disable") or check.get("test")


@pytest.mark.parametrize("name", list(SERVICES))
def test_depends_on_names_existing_services(name):
    assert set(SERVICES[name].get("depends_on", {})) <= set(SERVICES)


def test_no_mapping_repeats_a_key():
    """YAML loaders keep the last of two equal keys silently; Compose refuses the file."""
    class StrictKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode)]
            assert len(keys) == len(set(keys)), f"line {node.start_mark.line + 1}: {sorted({k for k in keys if keys.count(k) > 1})}"
            return super().construct_mapping(node, deep)
    yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=StrictKeys)


def test_the_daemons_come_back_after_a_crash_or_a_reboot():
    fcmon_daemons = {name for name, s in SERVICES.items() if "build" in s and "profiles" not in s}
    assert fcmon_daemons == {"gateway", "worker", "audit-indexer", "maintenance", "web", "crawler"}
    assert all(SERVICES[name]["restart"] == "unless-stopped" for name in fcmon_daemons | {"kafka", "elasticsearch", "kibana"})


def test_named_volumes_are_declared():
    named = {v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", []) if not v.startswith((".", "/"))}
    assert named <= set(COMPOSE["volumes"])


def test_kibana_talks_to_the_gateway_not_to_elasticsearch():
    assert "gateway:9201" in SERVICES["kibana"]["environment"]["ELASTICSEARCH_HOSTS"]
    assert "--listen" in SERVICES["gateway"]["command"] and "0.0.0.0:9201" in SERVICES["gateway"]["command"]


def test_kibana_suggests_values_the_way_the_gateway_forwards():
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["kibana"]["volumes"]}
    settings = yaml.safe_load((ROOT / mounted["/usr/share/kibana/config/kibana.yml"]).read_text())
    assert settings["server.host"] == "0.0.0.0"  # the image's own file says so; ours replaces it
    assert settings["uiSettings.overrides"]["autocomplete:valueSuggestionMethod"] == "terms_agg"  # not _terms_enum


@pytest.mark.parametrize("name", fcmon_services())
def test_fcmon_services_run_commands_that_exist_on_kafka(name):
    from pipeline.cli import cli
    service = SERVICES[name]
    assert service["environment"]["FCMON_BUS"] == "kafka"
    command = service["command"]
    assert command[0] in cli.commands or command[0] == "--help"
    if command[0] in cli.commands and len(command) > 1 and not command[1].startswith("-"):
        assert command[1] in cli.commands[command[0]].commands
    options = {o for p in cli.commands.get(command[0], cli).params for o in p.opts}
    assert {c for c in command[1:] if c.startswith("--")} <= options


def test_the_dockerfile_copies_what_exists_and_installs_the_kafka_extra():
    text = (ROOT / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "[kafka" in text and "USER fcmon" in text
