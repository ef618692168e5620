#!/usr/bin/env python3
"""pgcluster.py: a throwaway PostgreSQL cluster for ppflow's tests.

Creates a cluster with initdb in a fresh temporary directory, listening only
on 127.0.0.1 on a free port, its unix socket in that directory. Two roles:
  ppflow     superuser, trust authentication (the tests' own user)
  ppflow_pw  ordinary user that must give a password (for secret-leak checks)
and a database `ppflow` owned by ppflow. initdb refuses to run as root, so as
root the server runs as the `postgres` system user of Debian's package (or a
dedicated user `ppflow-pg`, created when that one is missing). A watchdog
process stops and removes the cluster if the process that started it dies
without doing so (a killed test run leaves nothing behind).

The tests' clusters skip durability (fsync = off, full_page_writes = off):
nothing in them outlives the run. Cluster(durable=True) keeps PostgreSQL's
defaults instead (fsync, synchronous_commit and full_page_writes on: every
commit waits for its WAL to reach the disk; shared_buffers 128MB), as the
benchmark needs.

As a module:
    with pgcluster.Cluster() as pg:
        pg.conninfo            # "host=127.0.0.1 port=N dbname=ppflow user=ppflow"
        pg.conninfo_password   # ... user=ppflow_pw password=SECRET
        pg.sql("SELECT 1")     # psql output (unaligned, tuples only)
        pg.restart("fast")     # or "immediate" (a crash)
From the command line:
    pgcluster.py start --info FILE   starts a cluster, writes its details to FILE (JSON)
                                     and prints shell `export` lines
    pgcluster.py stop --info FILE    stops it and removes its directory
    pgcluster.py exec -- CMD...      runs CMD with PG_CONNINFO, PG_CONNINFO_PASSWORD and
                                     PG_PASSWORD set, then stops the cluster (always);
                                     exits with CMD's status (77 when PostgreSQL is absent)
"""
import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SUPERUSER = "ppflow"
PASSWORD_USER = "ppflow_pw"
DATABASE = "ppflow"
FALLBACK_USER = "ppflow-pg"


class Unavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_bindir():
    """The newest PostgreSQL server bin directory (Debian keeps one per version)."""
    env = os.environ.get("PPFLOW_PG_BINDIR")
    if env:
        return env
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.path.exists(os.path.join(d, "initdb")):
            try:
                found.append((int(os.path.basename(os.path.dirname(d)).split(".")[0]), d))
            except ValueError:
                pass
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise Unavailable("PostgreSQL server binaries (initdb) not found; install Debian's "
                      "postgresql package")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def server_user():
    """(name, uid, gid) the server runs as; None when not root (runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        try:
            pw = pwd.getpwnam(name)
            return name, pw.pw_uid, pw.pw_gid
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    FALLBACK_USER], check=True, stdout=subprocess.DEVNULL)
    pw = pwd.getpwnam(FALLBACK_USER)
    return FALLBACK_USER, pw.pw_uid, pw.pw_gid


class Cluster:
    def __init__(self, watch=True, durable=False):
        self.bindir = find_bindir()
        self.watch = watch
        self.durable = durable
        self.dir = None
        self.port = None
        self.watchdog = None
        self.password = "pgpw-" + secrets.token_hex(12)
        self.user = server_user()

    # ---- life cycle -----------------------------------------------------

    def as_server(self, args, **kw):
        """Runs ARGS as the server's user."""
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user[0], "--"] + cmd
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        return subprocess.run(cmd, cwd=self.dir, text=True, **kw)

    def bin(self, name):
        return os.path.join(self.bindir, name)

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def log(self):
        return os.path.join(self.dir, "server.log")

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="ppflow-pg-")
        try:
            os.chmod(self.dir, 0o755)
            if self.user:
                os.chown(self.dir, self.user[1], self.user[2])
            r = self.as_server([self.bin("initdb"), "-D", self.data, "-U", SUPERUSER,
                                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            if r.returncode != 0:
                raise RuntimeError("initdb failed:\n" + r.stdout[-3000:])
            with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
                f.write("# written by tests/pg/pgcluster.py\n"
                        "local all all trust\n"
                        "host all %s 127.0.0.1/32 scram-sha-256\n"
                        "host all all 127.0.0.1/32 trust\n" % PASSWORD_USER)
            for attempt in range(5):
                self.port = free_port()
                with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                    f.write("\n# tests/pg/pgcluster.py\n"
                            "listen_addresses = '127.0.0.1'\n"
                            "port = %d\n"
                            "unix_socket_directories = '%s'\n"
                            "max_connections = 60\n"
                            "log_min_messages = warning\n" % (self.port, self.dir))
                    if not self.durable:
                        f.write("fsync = off\nfull_page_writes = off\nshared_buffers = 32MB\n")
                if self.server("start").returncode == 0:
                    break
            else:
                raise RuntimeError("PostgreSQL did not start:\n" + self.server_log())
            if self.watch:
                self.start_watchdog(os.getpid())
            self.sql("CREATE DATABASE %s" % DATABASE, dbname="postgres")
            self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT CREATE ON DATABASE %s TO %s"
                     % (PASSWORD_USER, self.password, DATABASE, PASSWORD_USER))
        except BaseException:
            self.stop()
            raise
        return self

    def server(self, action, mode="fast"):
        args = [self.bin("pg_ctl"), action, "-D", self.data, "-w", "-t", "60"]
        if action in ("start", "restart"):
            args += ["-l", self.log]
        if action in ("stop", "restart"):
            args += ["-m", mode]
        return self.as_server(args)

    def server_log(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no server log)"

    def restart(self, mode="fast"):
        """Restarts the server; MODE fast (clean) or immediate (like a crash)."""
        r = self.server("restart", mode)
        if r.returncode != 0:
            raise RuntimeError("restart failed:\n%s\n%s" % (r.stdout, self.server_log()))

    def stop_server(self, mode="fast"):
        self.server("stop", mode)

    def start_server(self):
        r = self.server("start")
        if r.returncode != 0:
            raise RuntimeError("start failed:\n%s\n%s" % (r.stdout, self.server_log()))

    def stop(self):
        """Stops the server and removes its directory. Safe to call twice."""
        if not self.dir:
            return
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self.server("stop", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        if self.watchdog:  # it ends once the directory is gone
            try:
                self.watchdog.wait(10)
            except subprocess.TimeoutExpired:
                self.watchdog.kill()
                self.watchdog.wait()
            self.watchdog = None

    def start_watchdog(self, pid):
        self.watchdog = subprocess.Popen([sys.executable, os.path.abspath(__file__), "watch", "--dir", self.dir,
                          "--pid", str(pid), "--bindir", self.bindir]
                         + (["--user", self.user[0]] if self.user else []),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- using it -------------------------------------------------------

    def conninfo_for(self, user=SUPERUSER, dbname=DATABASE, password=None):
        s = "host=127.0.0.1 port=%d dbname=%s user=%s" % (self.port, dbname, user)
        if password:
            s += " password=%s" % password
        return s

    @property
    def conninfo(self):
        return self.conninfo_for()

    @property
    def conninfo_password(self):
        return self.conninfo_for(PASSWORD_USER, password=self.password)

    def sql(self, query, dbname=DATABASE, check=True):
        """Runs QUERY with psql as the superuser; returns its output (unaligned,
        tuples only, no trailing newline)."""
        r = subprocess.run([self.bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-c", query, self.conninfo_for(dbname=dbname)],
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("psql failed: %s\nquery: %s" % (r.stderr.strip(), query))
        return r.stdout.rstrip("\n")

    def json(self, query):
        """The value of QUERY, a query returning one json value, parsed."""
        out = self.sql(query)
        return json.loads(out) if out else None

    def info(self):
        return {"dir": self.dir, "port": self.port, "bindir": self.bindir,
                "user": self.user[0] if self.user else None, "conninfo": self.conninfo,
                "conninfo_password": self.conninfo_password, "password": self.password}

    @classmethod
    def from_info(cls, info):
        c = cls.__new__(cls)
        c.dir, c.port, c.bindir = info["dir"], info["port"], info["bindir"]
        c.password, c.watch, c.watchdog = info["password"], False, None
        c.user = None
        if info.get("user"):
            pw = pwd.getpwnam(info["user"])
            c.user = (info["user"], pw.pw_uid, pw.pw_gid)
        return c


def watch(args):
    """Stops the cluster in ARGS.dir once process ARGS.pid is gone."""
    while os.path.isdir(args.dir):
        try:
            os.kill(args.pid, 0)
        except ProcessLookupError:
            data = os.path.join(args.dir, "data")
            cmd = [os.path.join(args.bindir, "pg_ctl"), "stop", "-D", data, "-m", "immediate",
                   "-w"]
            if args.user:
                cmd = ["runuser", "-u", args.user, "--"] + cmd
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                subprocess.run(cmd, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(args.dir, ignore_errors=True)
            return 0
        except PermissionError:
            pass
        time.sleep(0.5)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start a cluster and describe it in --info")
    p.add_argument("--info", required=True)
    p = sub.add_parser("stop", help="stop the cluster described in --info")
    p.add_argument("--info", required=True)
    p = sub.add_parser("exec", help="run a command against a fresh cluster")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("watch", help=argparse.SUPPRESS)
    p.add_argument("--dir", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--bindir", required=True)
    p.add_argument("--user")
    a = ap.parse_args(argv)

    if a.cmd == "watch":
        return watch(a)
    if a.cmd == "stop":
        with open(a.info) as f:
            Cluster.from_info(json.load(f)).stop()
        os.unlink(a.info)
        return 0
    try:
        c = Cluster(watch=a.cmd == "exec")
    except Unavailable as e:
        print("pgcluster: %s" % e, file=sys.stderr)
        return 77
    if a.cmd == "start":
        c.start()
        fd = os.open(a.info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(c.info(), f)
        print("export PG_CONNINFO='%s'" % c.conninfo)
        print("# the password user's conninfo is in %s" % a.info)
        return 0
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("exec needs a command")
    with c:
        env = dict(os.environ, PG_CONNINFO=c.conninfo, PG_CONNINFO_PASSWORD=c.conninfo_password,
                   PG_PASSWORD=c.password, PG_BINDIR=c.bindir)
        proc = subprocess.Popen(cmd, env=env)

        def forward(sig, _frame):
            proc.send_signal(sig)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = proc.wait()
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
