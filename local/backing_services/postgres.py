"""PostgreSQL from the system's packages (Debian ``postgresql``): a private cluster, database/user/password
``logpipe``, superuser ``postgres`` with a random password in <cluster home>/superuser-password.

As root, initdb/pg_ctl run as the ``postgres`` system user (or a ``logpipe`` system user created for it),
since PostgreSQL refuses to run as root. When that user cannot traverse the state folder (a clone under
/root), the cluster lives in /var/tmp/logpipe-<hash of the state path>/postgres instead, recorded in
<state>/postgres/location; that folder names its clone in ``owner``. `down --purge` removes it, and every
`up`/`down` removes such folders whose clone is gone (their server stopped first), so deleted clones and CI
runs leave nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from .process import (
    HOST,
    RunAs,
    ServiceError,
    apt_install,
    fail_with_log,
    pid_alive,
    port_open,
    read_pid,
    redact,
    run,
    say,
    stop_pid,
    url_address,
    write_if_changed,
)
from .service import Service
from .settings import PG_DB, PG_PASSWORD, PG_USER

SUPERUSER = "postgres"
RUN_USERS = ("postgres", "logpipe")  # when root: the first that exists runs PostgreSQL, else logpipe is made
START_TIMEOUT = 60
STOP_TIMEOUT = 60
FALLBACK_ROOT = Path("/var/tmp")
FALLBACK_PREFIX = "logpipe-"
OWNER_FILE = "owner"  # in a fallback folder: the state folder of the clone it belongs to


def c_locale() -> str:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "C"
    return "C.UTF-8" if any(x.lower() in ("c.utf8", "c.utf-8") for x in out.split()) else "C"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = c_locale()
    return env


def find_bindir(data: Path) -> Path | None:
    candidates: list[Path] = []
    if os.environ.get("LOGPIPE_PG_BINDIR"):
        candidates.append(Path(os.environ["LOGPIPE_PG_BINDIR"]))
    with contextlib.suppress(OSError):  # an existing cluster must be run by the same major version
        candidates.append(Path(f"/usr/lib/postgresql/{(data / 'PG_VERSION').read_text().strip()}/bin"))
    if shutil.which("pg_config"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30).stdout
            candidates.append(Path(out.strip()))

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path.parent.name))

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    return next((c for c in candidates if all((c / tool).exists() for tool in ("initdb", "pg_ctl", "psql"))), None)


def stop_cluster(bindir: Path | None, data: Path, home: Path, user: RunAs | None) -> None:
    """pg_ctl stop -m fast; signals when that fails."""
    pid = read_pid(data / "postmaster.pid")
    if bindir:
        try:
            run(
                [bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT), "-s", "stop"],
                timeout=STOP_TIMEOUT + 15, what="postgresql: pg_ctl stop", env=clean_env(), cwd=home, user=user,
            )  # fmt: skip
        except ServiceError as exc:
            say(f"{exc}\npostgresql: falling back to signals")
    if pid and pid_alive(pid, f"-D {data}"):
        stop_pid("postgresql", pid, f"-D {data}")  # SIGTERM = smart shutdown, SIGKILL as last resort


def cluster_owner(data: Path) -> RunAs | None:
    """The unprivileged user owning an existing cluster, when we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(OSError, KeyError):
        st = (data / "PG_VERSION").stat()
        if st.st_uid != 0:
            return RunAs(pwd.getpwuid(st.st_uid).pw_name, st.st_uid, st.st_gid)
    return None


def remove_orphaned_fallbacks() -> None:
    """Remove /var/tmp/logpipe-*/ clusters whose clone (state folder) no longer exists."""
    for folder in FALLBACK_ROOT.glob(f"{FALLBACK_PREFIX}*"):
        try:
            owner = Path((folder / OWNER_FILE).read_text().strip())
        except OSError:
            continue  # not ours to judge
        if owner.exists():
            continue
        data = folder / "postgres" / "data"
        pid = read_pid(data / "postmaster.pid")
        if pid and pid_alive(pid, f"-D {data}"):
            stop_cluster(find_bindir(data), data, folder / "postgres", cluster_owner(data))
        shutil.rmtree(folder, ignore_errors=True)
        say(f"postgresql: removed {folder}, the cluster of the deleted clone {owner.parent.parent}")


class Postgres(Service):
    name = "postgresql"
    url_variable = "DATABASE_URL"
    port_variable = "LOGPIPE_PG_PORT"

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.state = cfg.state / "postgres"
        self.location_file = self.state / "location"
        self._bindir: Path | None = None

    # -- places -------------------------------------------------------------------------------------------
    @property
    def fallback_folder(self) -> Path:
        digest = hashlib.sha256(str(self.cfg.state).encode()).hexdigest()[:12]
        return FALLBACK_ROOT / f"{FALLBACK_PREFIX}{digest}"

    @property
    def home(self) -> Path:
        """Where data, socket, log and superuser password live: <state>/postgres, or the fallback under
        /var/tmp when `choose_home` recorded it (only a record matching this state folder counts, so a copied
        repo does not share the original's cluster)."""
        fallback = self.fallback_folder / "postgres"
        try:
            if Path(self.location_file.read_text().strip()) == fallback:
                return fallback
        except OSError:
            pass
        return self.state

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    @property
    def sockets(self) -> Path:
        return self.home / "run"

    @property
    def pwfile(self) -> Path:
        return self.home / "superuser-password"

    # -- the lifecycle's questions -----------------------------------------------------------------------
    @property
    def external(self) -> str | None:
        return self.cfg.database_external

    @property
    def port(self) -> int:
        return self.cfg.pg_port

    def external_address(self) -> tuple[str, int]:
        return url_address(self.cfg.database_url, 5432)

    def our_pid(self) -> int | None:
        # the postmaster's command line is `.../postgres -D <data>`: only our own cluster matches
        pid = read_pid(self.data / "postmaster.pid")
        return pid if pid and pid_alive(pid, f"-D {self.data}") else None

    def running_port(self, pid: int) -> int | None:
        try:  # postmaster.pid: pid, data dir, start time, port, ...
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def answers(self, host: str, port: int) -> bool:
        return port_open(host, port)

    def details(self) -> str:
        return f"data {self.data}, log {self.log}"

    def check_external(self) -> None:
        host, port = self.external_address()
        if not port_open(host, port, 5):
            raise ServiceError(f"postgresql: DATABASE_URL={redact(self.cfg.database_url)} is not reachable")
        self.check_usable(self.cfg.database_url)

    def wait_ours(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_open(HOST, self.port):
            if time.monotonic() > deadline or not pid_alive(pid, f"-D {self.data}"):
                raise fail_with_log(
                    self.name, f"our server (pid {pid}) runs but does not answer on {HOST}:{self.port}", self.log
                )
            time.sleep(0.5)
        with contextlib.suppress(OSError):
            if (self.data / "logpipe.conf").read_text() != self.config_text():
                say("postgresql: services.py's settings changed; run `down` then `up` to apply them")
        self.ensure_binaries()
        self.bootstrap_sql()

    def check_foreign(self) -> None:
        try:
            self.check_usable(self.cfg.database_url)  # with psql when installed; else migrations will tell
        except ServiceError as exc:
            raise ServiceError(
                f"postgresql: {HOST}:{self.port} is taken by a server that does not accept "
                f"{PG_USER}/{PG_PASSWORD} on database {PG_DB} ({str(exc).splitlines()[-1]}). Create that "
                "role/database there, stop that server, set LOGPIPE_PG_PORT to a free port, or set DATABASE_URL"
            ) from None

    # -- provisioning ------------------------------------------------------------------------------------
    def bindir(self) -> Path | None:
        if not self._bindir:
            self._bindir = find_bindir(self.data)
        return self._bindir

    def ensure_binaries(self) -> Path:
        if not self.bindir():
            apt_install(["postgresql"], "postgresql: initdb/pg_ctl not found (Debian package: postgresql)")
            if not self.bindir():
                raise ServiceError("postgresql: still no initdb/pg_ctl after installing; set LOGPIPE_PG_BINDIR")
        bindir = self.bindir()
        assert bindir is not None
        try:
            pg_version = (self.data / "PG_VERSION").read_text().strip()
        except OSError:
            return bindir
        out = run([bindir / "pg_ctl", "--version"], timeout=30, what="pg_ctl --version")
        major = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
        if major and major.group(1) != pg_version:
            raise ServiceError(
                f"postgresql: the cluster in {self.data} is version {pg_version} but {bindir} "
                f"is {out.strip()}; install postgresql-{pg_version} or remove {self.data} to start afresh"
            )
        return bindir

    def run_user(self) -> RunAs | None:
        """None when not root (run as ourselves); else the unprivileged user that owns the cluster: the owner of
        an existing data directory, else the first of RUN_USERS (created if none exists)."""
        if os.geteuid() != 0:
            return None
        if owner := cluster_owner(self.data):
            return owner
        for name in RUN_USERS:
            with contextlib.suppress(KeyError):
                pw = pwd.getpwnam(name)
                return RunAs(name, pw.pw_uid, pw.pw_gid)
        say("postgresql: creating system user `logpipe` to run PostgreSQL (it refuses to run as root)")
        run(
            ["useradd", "--system", "--user-group", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
             "logpipe"],
            timeout=60, what="useradd logpipe",
        )  # fmt: skip
        pw = pwd.getpwnam("logpipe")
        return RunAs("logpipe", pw.pw_uid, pw.pw_gid)

    def can_traverse(self, user: RunAs, path: Path) -> bool:
        try:
            run(["test", "-x", str(path)], timeout=30, what="traverse check", user=user, cwd=Path("/"))
            return True
        except ServiceError:
            return False

    def choose_home(self, user: RunAs | None) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        if self.home != self.state or (self.state / "data" / "PG_VERSION").exists():
            return self.home  # decided on an earlier run
        home = self.state
        if user is not None:
            self.state.chmod(0o755)
            if not self.can_traverse(user, self.state):
                folder = self.fallback_folder
                folder.mkdir(mode=0o755, exist_ok=True)
                folder.chmod(0o755)
                (folder / OWNER_FILE).write_text(f"{self.cfg.state}\n")
                home = folder / "postgres"
                say(
                    f"postgresql: user {user.name} cannot traverse {self.state}; "
                    f"the cluster lives in {home} instead (recorded in {self.location_file})"
                )
                write_if_changed(self.location_file, f"{home}\n")
        home.mkdir(parents=True, exist_ok=True)
        return home

    def config_text(self) -> str:
        return f"""# Written by local/services.py whenever it starts the cluster; included by postgresql.conf.
listen_addresses = '{HOST}'
port = {self.port}
unix_socket_directories = '{self.sockets}'
max_connections = 200            # several runners with pools + test sessions
# The consumer's inserts touch every index of the day partition and, at random places (client-chosen uuids),
# the whole (organization_id, id) index of log_event_ids: with too few buffers the inserting backends spend
# their time evicting and writing dirty pages themselves (pg_stat_bgwriter.buffers_backend). See docs/sink.md.
shared_buffers = 1GB
work_mem = 16MB
maintenance_work_mem = 128MB
effective_cache_size = 2GB
max_wal_size = 2GB               # bulk COPY batches: fewer forced checkpoints
checkpoint_timeout = 15min
# fsync and synchronous_commit stay ON: the consumer commits Kafka offsets only after PostgreSQL
# has committed a batch, so an acknowledged-but-lost commit would silently drop events. Batches are
# large, so the per-commit flush is cheap anyway.
fsync = on
synchronous_commit = on
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
"""

    def initdb(self, user: RunAs | None, bindir: Path) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        say(f"postgresql: initdb in {self.data}" + (f" (as user {user.name})" if user else ""))
        shutil.rmtree(self.data, ignore_errors=True)  # a half-made cluster from an interrupted run
        self.data.mkdir(mode=0o700, parents=True)
        self.sockets.mkdir(mode=0o755, exist_ok=True)
        if not self.pwfile.exists():
            self.pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        self.pwfile.chmod(0o600)
        if user is not None:
            for path in (self.home, self.data, self.sockets, self.pwfile):
                os.chown(path, user.uid, user.gid)
        run(
            [bindir / "initdb", "-D", self.data, "-U", SUPERUSER, f"--pwfile={self.pwfile}",
             "-A", "scram-sha-256", "-E", "UTF8", f"--locale={c_locale()}", "--no-instructions"],
            timeout=180, what="postgresql: initdb", env=clean_env(), cwd=self.home, user=user,
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write("\n# local/services.py settings\ninclude 'logpipe.conf'\n")

    def write_config(self, user: RunAs | None) -> None:
        path = self.data / "logpipe.conf"
        if write_if_changed(path, self.config_text(), mode=0o600) and user is not None:
            os.chown(path, user.uid, user.gid)

    def start(self) -> int | None:
        bindir = self.ensure_binaries()
        user = self.run_user()
        self.choose_home(user)
        self.initdb(user, bindir)
        self.write_config(user)
        self.sockets.mkdir(mode=0o755, exist_ok=True)
        self.log.touch()
        if user is not None:
            os.chown(self.sockets, user.uid, user.gid)
            os.chown(self.log, user.uid, user.gid)
        try:
            run(
                [bindir / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", str(START_TIMEOUT), "-s", "start"],
                timeout=START_TIMEOUT + 15, what="postgresql: pg_ctl start", env=clean_env(),
                cwd=self.home, user=user, new_session=True,
            )  # fmt: skip
        except ServiceError as exc:
            raise fail_with_log(self.name, f"failed to start ({str(exc).splitlines()[0]})", self.log) from None
        self.bootstrap_sql()
        return self.our_pid()

    def psql(self, url: str, sql: str, *, what: str, password: str | None = None, timeout: float = 60) -> str:
        env = clean_env()
        env["PGCONNECT_TIMEOUT"] = "5"
        if password is not None:
            env["PGPASSWORD"] = password
        bindir = self.bindir()
        assert bindir is not None
        return run(
            [bindir / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
            timeout=timeout, what=what, env=env, stdin_text=sql,
        )  # fmt: skip

    def bootstrap_sql(self) -> None:
        """Create role and database idempotently, as the superuser over TCP.

        The role owns the schema like the RDS master user: it may create roles (migration 0005 creates the
        functions' database roles), which a cluster bootstrapped before that gains here on the next `up`.
        """
        password = self.pwfile.read_text().strip()
        url = f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"
        sql = f"""
SELECT format('CREATE ROLE %I LOGIN CREATEDB CREATEROLE PASSWORD %L', '{PG_USER}', '{PG_PASSWORD}')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}')\\gexec
SELECT format('ALTER ROLE %I CREATEROLE', '{PG_USER}')
 WHERE NOT (SELECT rolcreaterole FROM pg_roles WHERE rolname = '{PG_USER}')\\gexec
SELECT format('CREATE DATABASE %I OWNER %I', '{PG_DB}', '{PG_USER}')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{PG_DB}')\\gexec
"""
        self.psql(url, sql, what="postgresql: creating role/database logpipe", password=password)

    def check_usable(self, url: str) -> None:
        if self.bindir():  # without psql here, the migration step will tell
            self.psql(url, "SELECT 1;", what=f"postgresql: connecting to {redact(url)}", timeout=20)

    def stop(self, pid: int) -> None:
        stop_cluster(self.bindir(), self.data, self.home, self.run_user())

    def purge(self) -> None:
        """Remove the cluster kept outside the clone (the /var/tmp fallback); it must be stopped."""
        folder = self.fallback_folder
        if self.home.is_relative_to(folder) and folder.exists():
            shutil.rmtree(folder)
            self.location_file.unlink(missing_ok=True)
            say(f"postgresql: removed {folder}")
