"""The real services of the local stack: how each is installed (once, cached), started, probed.

Sources, all package registries (see ../shared/STACK.md for why these):
Kafka and Neo4j from Maven Central, Weaviate built from its Go module, PostgreSQL, Redis,
Prometheus and kcat from Debian's packages. Each service binds 127.0.0.1 on the ports of
the settings, keeps its data under `stack_home/data/<name>` and its log under `stack_home/run`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workers.settings import Settings
from workers.stack.process import ManagedProcess, StackError

FILES = Path(__file__).parent / "files"
DEBIAN_PACKAGES = {"redis-server": "redis-server", "prometheus": "prometheus", "kcat": "kcat"}


def run(argv: list[str], what: str, *, env: dict[str, str] | None = None, user: str | None = None,
        timeout: float = 1800) -> str:
    """Run an install step; on failure raise StackError with what failed and the output's tail."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, user=user, group=user,
                              extra_groups=[] if user else None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise StackError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


_APT = threading.Lock()  # services install in parallel threads; apt allows one user at a time


def ensure_debian_packages(binaries: dict[str, str]) -> None:
    """Install the Debian packages whose binaries are missing (needs root, as on CI)."""
    with _APT:
        missing = [pkg for binary, pkg in binaries.items() if shutil.which(binary) is None]
        if not missing:
            return
        if os.geteuid() != 0:
            raise StackError(f"missing Debian packages {missing}: run `sudo apt-get install {' '.join(missing)}`")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=300"]  # another apt (unattended upgrades, a user) may hold the lock
        run(["apt-get", *wait, "update", "-q"], "apt-get update", env=env)
        run(["apt-get", *wait, "install", "-y", "-q", "--no-install-recommends", *missing],
            f"apt-get install {' '.join(missing)}", env=env)


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except OSError:
        return False


@dataclass
class Service:
    """Base of every service: a name, its addresses, a managed process."""

    settings: Settings
    name: str = "service"
    stop_signal: int = signal.SIGTERM

    @property
    def data_dir(self) -> Path:
        return self.settings.stack_home / "data" / self.name

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.settings.stack_home / "run", stop_signal=self.stop_signal)

    def addresses(self) -> str:
        raise NotImplementedError

    def install(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def after_ready(self) -> None:
        """One-time setup once the service answers (users, databases)."""


def _maven_lib(settings: Settings, name: str, version: str, pom: str, prop: str) -> Path:
    """Resolve a JVM distribution's jars from Maven Central into the cache (once per version)."""
    lib = settings.cache_dir / name / version / "lib"
    marker = lib.parent / ".complete"
    if marker.exists():
        return lib
    if shutil.which("mvn") is None:
        raise StackError(f"{name}: Maven (mvn) is needed to fetch {name} {version} from Maven Central")
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    run(["mvn", "-q", "-B", "-f", str(FILES / pom), f"-D{prop}={version}",
         "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={lib}"],
        f"{name} {version}: resolving its jars from Maven Central")
    marker.write_text(version)
    return lib


@dataclass
class Kafka(Service):
    name: str = "kafka"

    def addresses(self) -> str:
        return f"{self.settings.kafka_bootstrap} (controller :{self.settings.kafka_controller_port})"

    def install(self) -> None:
        _maven_lib(self.settings, "kafka", self.settings.kafka_version, "kafka-pom.xml", "kafka.version")

    def _config(self) -> Path:
        host, port = self.settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        ctl = self.settings.kafka_controller_port
        conf = self.data_dir / "server.properties"
        conf.parent.mkdir(parents=True, exist_ok=True)
        text = (FILES / "kafka-server.properties").read_text()
        conf.write_text(text.format(host=host, port=port, controller_port=ctl, log_dir=self.data_dir / "log"))
        (self.data_dir / "log4j2.yaml").write_text((FILES / "kafka-log4j2.yaml").read_text())
        return conf

    def start(self) -> None:
        lib = self.settings.cache_dir / "kafka" / self.settings.kafka_version / "lib"
        conf = self._config()
        java = ["java", "-cp", f"{lib}/*"]
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = run([*java, "kafka.tools.StorageTool", "random-uuid"], "kafka: cluster id").strip()
            run([*java, "kafka.tools.StorageTool", "format", "-t", cluster_id.splitlines()[-1], "-c", str(conf)],
                "kafka: formatting the KRaft storage")
        heap = self.settings.kafka_heap
        self.process.start([
            "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}", "-cp", f"{lib}/*",
            "kafka.Kafka", str(conf),
        ])

    def ready(self) -> bool:
        host, port = self.settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
        return tcp_open(host, int(port))


@dataclass
class Postgres(Service):
    name: str = "postgres"
    stop_signal: int = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave

    def addresses(self) -> str:
        pg = self.settings.postgres
        return f"{pg.host}:{pg.port} db={pg.database} user={pg.user}"

    @staticmethod
    def bin_dir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            ensure_debian_packages({"/usr/lib/postgresql/15/bin/postgres": "postgresql"})
            found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise StackError("postgres: no server binary under /usr/lib/postgresql/*/bin")
        return Path(found[-1]).parent

    @staticmethod
    def run_as() -> str | None:
        """initdb and postgres refuse root: run them as the Debian `postgres` user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError("postgres: running as root needs the `postgres` user (Debian package)") from exc
        return "postgres"

    def install(self) -> None:
        self.bin_dir()

    def _own(self, path: Path) -> None:
        if (user := self.run_as()) is not None:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        pg = self.settings.postgres
        bin_dir, user = self.bin_dir(), self.run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._own(self.data_dir)
            pwfile = self.data_dir.parent / ".pgpass-init"
            pwfile.write_text(pg.password + "\n")
            self._own(pwfile)
            try:
                run([str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", pg.user,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                    "postgres: initdb", user=user)
            finally:
                pwfile.unlink(missing_ok=True)
        self.process.start([
            str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(pg.port),
            "-c", f"listen_addresses={pg.host}", "-c", "unix_socket_directories=",
            "-c", "max_connections=200", "-c", "shared_buffers=128MB", "-c", "fsync=on",
            "-c", "synchronous_commit=on",
        ], user=user)

    def ready(self) -> bool:
        pg = self.settings.postgres
        done = subprocess.run([str(self.bin_dir() / "pg_isready"), "-h", pg.host, "-p", str(pg.port)],
                              capture_output=True, check=False)
        return done.returncode == 0

    def after_ready(self) -> None:
        pg = self.settings.postgres
        env = {"PGPASSWORD": pg.password}
        base = ["psql", "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-d", "postgres", "-tAc"]
        exists = run([*base, f"SELECT 1 FROM pg_database WHERE datname = '{pg.database}'"],
                     "postgres: checking the database", env=env)
        if exists.strip() != "1":
            run([*base, f'CREATE DATABASE "{pg.database}"'], "postgres: creating the database", env=env)


@dataclass
class Redis(Service):
    name: str = "redis"

    def addresses(self) -> str:
        return self.settings.redis_url

    def install(self) -> None:
        ensure_debian_packages({"redis-server": "redis-server"})

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start([
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.settings.redis_port),
            "--dir", str(self.data_dir), "--daemonize", "no", "--save", "",
            # AOF fsync'd every write: Redis holds sink offsets, which must survive a crash.
            "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes",
        ])

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.settings.redis_port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@dataclass
class Neo4j(Service):
    name: str = "neo4j"

    def addresses(self) -> str:
        return f"{self.settings.neo4j_uri} user={self.settings.neo4j_user}"

    def install(self) -> None:
        _maven_lib(self.settings, "neo4j", self.settings.neo4j_version, "neo4j-pom.xml", "neo4j.version")

    def _java(self, lib: Path) -> list[str]:
        heap = self.settings.neo4j_heap
        return ["java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
                "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "--enable-native-access=ALL-UNNAMED",
                "-Dfile.encoding=UTF-8", "-cp", f"{lib}/*"]

    def start(self) -> None:
        lib = self.settings.cache_dir / "neo4j" / self.settings.neo4j_version / "lib"
        home, conf_dir = self.data_dir, self.data_dir / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        conf = (FILES / "neo4j.conf").read_text().format(home=home, bolt_port=self.settings.neo4j_port)
        (conf_dir / "neo4j.conf").write_text(conf)
        env = {"NEO4J_HOME": str(home), "NEO4J_CONF": str(conf_dir)}
        if not (home / "data" / "dbms").exists():
            run([*self._java(lib), "org.neo4j.cli.AdminTool", "dbms", "set-initial-password",
                 self.settings.neo4j_password.get_secret_value()], "neo4j: setting the initial password", env=env)
        self.process.start([*self._java(lib), "org.neo4j.server.CommunityEntryPoint",
                            f"--home-dir={home}", f"--config-dir={conf_dir}"], env=env)

    def ready(self) -> bool:
        return tcp_open("127.0.0.1", self.settings.neo4j_port)


@dataclass
class Weaviate(Service):
    name: str = "weaviate"

    def addresses(self) -> str:
        return f"http://{self.settings.weaviate_http} grpc={self.settings.weaviate_grpc}"

    @property
    def binary(self) -> Path:
        return self.settings.cache_dir / "weaviate" / self.settings.weaviate_version / "weaviate-server"

    def install(self) -> None:
        if self.binary.exists():
            return
        if shutil.which("go") is None:
            raise StackError("weaviate: Go is needed to build weaviate-server from its module")
        staging = self.binary.parent / "bin.partial"
        staging.mkdir(parents=True, exist_ok=True)
        version = self.settings.weaviate_version
        run(["go", "install", f"github.com/weaviate/weaviate/cmd/weaviate-server@v{version}"],
            f"weaviate: building v{version} from the Go module proxy (takes ~6 min cold)",
            env={"GOBIN": str(staging), "GOFLAGS": "-mod=mod"})
        (staging / "weaviate-server").replace(self.binary)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        host, port = self.settings.weaviate_http.rsplit(":", 1)
        s = self.settings
        env = {
            "PERSISTENCE_DATA_PATH": str(self.data_dir), "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "DEFAULT_VECTORIZER_MODULE": "none", "API_BASED_MODULES_DISABLED": "true",
            "CLUSTER_HOSTNAME": "node1", "CLUSTER_BIND_ADDR": "127.0.0.1",
            "CLUSTER_GOSSIP_BIND_PORT": str(s.weaviate_gossip_port),
            "CLUSTER_DATA_BIND_PORT": str(s.weaviate_data_port),
            "RAFT_PORT": str(s.weaviate_raft_port), "RAFT_INTERNAL_RPC_PORT": str(s.weaviate_raft_rpc_port),
            "RAFT_BOOTSTRAP_EXPECT": "1", "RAFT_JOIN": "node1", "RAFT_TIMEOUTS_MULTIPLIER": "1",
            "GRPC_PORT": str(self.settings.port_of(self.settings.weaviate_grpc)), "DISABLE_TELEMETRY": "true",
            "GO_PROFILING_DISABLE": "true", "PROMETHEUS_MONITORING_ENABLED": "true",
            "PROMETHEUS_MONITORING_PORT": str(s.weaviate_metrics_port), "LOG_LEVEL": "warning",
            "QUERY_DEFAULTS_LIMIT": "100",
            # Objects are stored (and the batch answered) before their vectors enter the HNSW
            # graph, which a background queue fills; search covers the queued ones by brute force.
            "ASYNC_INDEXING": "true",
        }
        self.process.start([str(self.binary), "--scheme", "http", "--host", host, "--port", port], env=env)

    def ready(self) -> bool:
        return http_ok(f"http://{self.settings.weaviate_http}/v1/.well-known/ready")


@dataclass
class Prometheus(Service):
    name: str = "prometheus"

    def addresses(self) -> str:
        return f"http://{self.settings.prometheus_listen}"

    def install(self) -> None:
        ensure_debian_packages({"prometheus": "prometheus", "kcat": "kcat"})

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "prometheus.yml"
        conf.write_text((FILES / "prometheus.yml").read_text().format(
            targets=self.data_dir / "targets", weaviate_metrics_port=self.settings.weaviate_metrics_port))
        (self.data_dir / "targets").mkdir(exist_ok=True)
        self.process.start([
            "prometheus", f"--config.file={conf}", f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address={self.settings.prometheus_listen}", "--storage.tsdb.retention.time=2d",
        ])

    def ready(self) -> bool:
        return http_ok(f"http://{self.settings.prometheus_listen}/-/ready")


def all_services(settings: Settings) -> list[Service]:
    return [Kafka(settings), Postgres(settings), Redis(settings), Neo4j(settings),
            Weaviate(settings), Prometheus(settings)]
