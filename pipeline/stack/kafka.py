"""A single-node Apache Kafka (KRaft, broker and controller in one process) from Maven Central."""
from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

from pipeline.stack import StackError, cache_dir, free_port, java_home, maven, versions, wait_for

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fcmon.stack</groupId><artifactId>kafka-libs</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""

# Replication factors of one for the internal topics (one node); no wait before the first rebalance (tests and a
# single analyst's machine gain nothing from it); topics are created by fcmon with the configs docs/kafka.md states.
SERVER = """process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


def libs() -> Path:
    """The broker's jars, fetched once into the cache."""
    v = versions()
    target = cache_dir() / f"kafka-{v['KAFKA_VERSION']}"
    if (target / "libs" / ".complete").is_file():
        return target / "libs"
    target.mkdir(parents=True, exist_ok=True)
    (target / "pom.xml").write_text(POM.format(kafka=v["KAFKA_VERSION"], log4j=v["LOG4J_VERSION"]))
    maven("dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory=libs", cwd=target,
          what=f"org.apache.kafka:kafka_2.13:{v['KAFKA_VERSION']}")
    (target / "libs" / ".complete").touch()
    return target / "libs"


class Kafka:
    """One broker in `home` (data, config, log); `start` formats the storage the first time only."""

    def __init__(self, home: Path, port: int | None = None, controller_port: int | None = None):
        self.home = home
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def java(self, *args: str, heap: str = "512m") -> list[str]:
        return [str(java_home(17) / "bin" / "java"), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp", f"{libs()}/*", *args]

    def configure(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(LOG4J.format(log=self.log))
        properties = self.home / "server.properties"
        properties.write_text(SERVER.format(port=self.port, controller_port=self.controller_port,
                                            data=self.home / "data"))
        if not (self.home / "data" / "meta.properties").is_file():
            cluster_id = subprocess.run(self.java("kafka.tools.StorageTool", "random-uuid", heap="128m"),
                                        capture_output=True, text=True, check=True).stdout.strip()
            formatted = subprocess.run(self.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                                                 str(properties), heap="128m"), capture_output=True, text=True)
            if formatted.returncode:
                raise StackError(f"Kafka's storage could not be formatted: {formatted.stderr.strip()[-300:]}")
        return properties

    def start(self, timeout: float = 60) -> Kafka:
        properties = self.configure()
        with (self.home / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen(self.java("kafka.Kafka", str(properties)), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: metadata_answers(self.port), f"Kafka on {self.bootstrap}", timeout, self.proc, self.log)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def metadata_answers(port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers a Metadata request (v4) naming at least one broker: serving, not just listening."""
    client = b"fcmon-stack"
    # header v1: api_key 3 (Metadata), version 4, correlation id, client id; body: all topics (null), no creation
    request = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", -1, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(conn, 4))[0]
        answer = _read(conn, size)
    correlation, _throttle, brokers = struct.unpack(">iii", answer[:12])
    return correlation == 7 and brokers > 0


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data
