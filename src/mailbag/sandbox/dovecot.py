"""A throwaway Dovecot (IMAP, POP3, LMTP) on loopback ports.

Runs Dovecot's master in the foreground as a child process with a generated
configuration in a private directory. As root, Dovecot refuses to run its
login processes as root, so they run as the packaged `dovenull` user and mail
is owned by an unprivileged system user that this module creates if needed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailbag.errors import SandboxError
from mailbag.sandbox.certs import SandboxCerts

MAIL_USER_AS_ROOT = "mailbag-sandbox"
INSTALL_HINT = (
    "install Dovecot: sudo apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd "
    "(or run scripts/setup, which does it for you)"
)


#: what this sandbox's Dovecot 2.3 offers after login (COMPRESS=DEFLATE from imap_zlib)
DOVECOT_IMAP_CAPABILITIES = [
    "IMAP4rev1",
    "SASL-IR",
    "LOGIN-REFERRALS",
    "ID",
    "ENABLE",
    "IDLE",
    "SORT",
    "SORT=DISPLAY",
    "THREAD=REFERENCES",
    "THREAD=REFS",
    "THREAD=ORDEREDSUBJECT",
    "MULTIAPPEND",
    "URL-PARTIAL",
    "CATENATE",
    "UNSELECT",
    "CHILDREN",
    "NAMESPACE",
    "UIDPLUS",
    "LIST-EXTENDED",
    "I18NLEVEL=1",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "ESORT",
    "SEARCHRES",
    "WITHIN",
    "CONTEXT=SEARCH",
    "LIST-STATUS",
    "BINARY",
    "MOVE",
    "SNIPPET=FUZZY",
    "PREVIEW=FUZZY",
    "PREVIEW",
    "STATUS=SIZE",
    "SAVEDATE",
    "LITERAL+",
    "NOTIFY",
    "SPECIAL-USE",
    "COMPRESS=DEFLATE",
]


#: the lowest port `free_ports` picks from (below it: well-known and common services)
_SANDBOX_PORTS_FROM = 10_000


def _below_ephemeral() -> range | None:
    """Ports below the kernel's ephemeral range (Linux), which it never hands out on its
    own: None where that range is unknown or leaves too few below it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return range(_SANDBOX_PORTS_FROM, low) if low - _SANDBOX_PORTS_FROM >= 2_000 else None


def _bind_one_of(s: socket.socket, ports: range, tries: int = 50) -> bool:
    import random

    for port in random.sample(ports, min(tries, len(ports))):
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return True
    return False


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports: the sockets are held open together, since one
    closed before the next is asked for can be handed out again (Dovecot then refused a
    config with the same port twice: "duplicate listener").

    Picked at random below the kernel's ephemeral range where it is known: a port the
    kernel gave (bind to port 0) is free only until a server binds it, and meanwhile
    any connection this machine opens may be given it as its own port (seen: the SMTP
    sandbox failing to bind during a test run, "address already in use")."""
    ports = _below_ephemeral()
    held = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in held:
            if ports is None or not _bind_one_of(s, ports):
                s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def find_dovecot(extra: tuple[str, ...] = ("/usr/sbin/dovecot",)) -> Path:
    for candidate in (shutil.which("dovecot"), *extra):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise SandboxError("Dovecot is not installed (no 'dovecot' binary found)", hint=INSTALL_HINT)


def _check_protocol_installed(protocol: str) -> None:
    # Debian splits the protocols into packages; a missing one makes dovecot fail obscurely
    lib = {"imap": "imap", "pop3": "pop3", "lmtp": "lmtp"}[protocol]
    for base in ("/usr/lib/dovecot", "/usr/libexec/dovecot"):
        if Path(base, lib).exists():
            return
    raise SandboxError(f"Dovecot's {protocol} service is not installed", hint=INSTALL_HINT)


@dataclass(frozen=True)
class DovecotPorts:
    imap: int  # plaintext + STARTTLS
    imaps: int  # implicit TLS
    pop3: int  # plaintext + STLS
    pop3s: int  # implicit TLS
    lmtp: int


def _mail_identity() -> tuple[int, int, str, str, str]:
    """(uid, gid, internal user, internal group, login user) for the services."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        import grp

        group = grp.getgrgid(os.getegid()).gr_name
        return me.pw_uid, me.pw_gid, me.pw_name, group, me.pw_name
    try:
        entry = pwd.getpwnam(MAIL_USER_AS_ROOT)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                MAIL_USER_AS_ROOT,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(MAIL_USER_AS_ROOT)
    for needed in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(needed)
        except KeyError as exc:
            raise SandboxError(f"system user {needed!r} missing", hint=INSTALL_HINT) from exc
    return entry.pw_uid, entry.pw_gid, "dovecot", "dovecot", "dovenull"


class Dovecot:
    """One Dovecot instance. Use `start()`/`stop()`; `restart()` keeps ports and mail."""

    def __init__(
        self,
        root: Path,
        certs: SandboxCerts,
        users: Mapping[str, str],
        *,
        protocols: Iterable[str] = ("imap", "pop3", "lmtp"),
        domain: str = "sandbox.test",
        oauth2_introspection_url: str | None = None,
        imap_without: Iterable[str] = (),
    ) -> None:
        self.root = root
        #: IMAP capabilities this server must not offer (e.g. QRESYNC, to test the
        #: CONDSTORE-only path a client takes with servers that lack it)
        self.imap_without = frozenset(c.upper() for c in imap_without)
        #: when set, XOAUTH2/OAUTHBEARER logins are validated at this RFC 7662 endpoint
        self.oauth2_introspection_url = oauth2_introspection_url
        self.certs = certs
        self.users = dict(users)
        self.protocols = tuple(protocols)
        self.domain = domain
        self.ports = DovecotPorts(*free_ports(5))
        self.binary = find_dovecot()
        for proto in self.protocols:
            _check_protocol_installed(proto)
        self.uid, self.gid, self._internal_user, self._internal_group, self._login_user = (
            _mail_identity()
        )
        self.config_file = root / "dovecot.conf"
        self.log_file = root / "log" / "dovecot.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # --- configuration -------------------------------------------------------------

    def mail_home(self, user: str) -> Path:
        return self.root / "mail" / user

    def maildir(self, user: str) -> Path:
        return self.mail_home(user) / "Maildir"

    def _write_config(self) -> None:
        for sub in ("run", "log", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        lines = [
            f"{user}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{self.mail_home(user)}"
            for user, password in self.users.items()
        ]
        users_file = self.root / "users"
        users_file.write_text("\n".join(lines) + "\n")
        users_file.chmod(0o644)
        for user in self.users:
            home = self.mail_home(user)
            home.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(home, self.uid, self.gid)
        if os.geteuid() == 0:
            os.chown(self.root / "mail", self.uid, self.gid)
        p = self.ports
        mechanisms = "plain login"
        oauth2_passdb = ""
        # tests make many failed logins from 127.0.0.1 on purpose; anvil's growing
        # penalty (2 s doubling to 15 s per attempt) would slow every later login
        anvil_extra = "\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }"
        if self.oauth2_introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            oauth2_passdb = self._write_oauth2_config()
        listeners = []
        if "imap" in self.protocols:
            listeners.append(_login_service("imap", p.imap, "imaps", p.imaps))
        if "pop3" in self.protocols:
            listeners.append(_login_service("pop3", p.pop3, "pop3s", p.pop3s))
        if "lmtp" in self.protocols:
            listeners.append(f"""
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {p.lmtp}
  }}
}}""")
        conf = f"""# generated by mailbag.sandbox: a throwaway Dovecot on loopback
base_dir = {self.root}/run
state_dir = {self.root}/run
log_path = {self.log_file}
instance_name = mailbag-sandbox-{p.imap}
protocols = {" ".join(self.protocols)}
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.certs.cert_file}
ssl_key = <{self.certs.key_file}
ssl_min_protocol = TLSv1.2
# plaintext logins only after STARTTLS, as a real provider would insist (Dovecot
# exempts connections whose remote and local address are equal, i.e. loopback:
# clients here must upgrade because their settings say so, not because we force it)
disable_plaintext_auth = yes
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mailbox_list_index = yes
default_internal_user = {self._internal_user}
default_internal_group = {self._internal_group}
default_login_user = {self._login_user}
postmaster_address = postmaster@{self.domain}
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
pop3_uidl_format = %08Xu%08Xv
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {users_file}
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {users_file}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
}}
protocol imap {{
  # COMPRESS=DEFLATE (RFC 4978), which the IMAP client may use
  mail_plugins = $mail_plugins imap_zlib{self._capability_setting()}
  mail_max_userip_connections = 64
  imap_idle_notify_interval = 1 secs
}}
protocol lmtp {{
  postmaster_address = postmaster@{self.domain}
}}
service anvil {{
  chroot ={anvil_extra}
}}
{"".join(listeners)}
"""
        self.config_file.write_text(conf)

    def _capability_setting(self) -> str:
        """`imap_capability` without the capabilities in `imap_without` (empty: Dovecot's own).

        The setting replaces the whole list (plugins' capabilities included), so the
        list is spelled out here. Dovecot still accepts what it no longer offers; a
        client that reads the list, as it must, does not use it."""
        if not self.imap_without:
            return ""
        unknown = self.imap_without - {c.upper() for c in DOVECOT_IMAP_CAPABILITIES}
        if unknown:
            raise SandboxError(
                f"cannot remove {sorted(unknown)}: not among Dovecot's capabilities",
                hint=f"choose from {' '.join(DOVECOT_IMAP_CAPABILITIES)}",
            )
        kept = [c for c in DOVECOT_IMAP_CAPABILITIES if c.upper() not in self.imap_without]
        return f"\n  imap_capability = {' '.join(kept)}"

    def _write_oauth2_config(self) -> str:
        """Dovecot 2.3's oauth2 passdb: every token is checked by POSTing it to the
        introspection endpoint; the answer must be active and name the login user."""
        assert self.oauth2_introspection_url is not None
        ext = self.root / "dovecot-oauth2.conf.ext"
        ext.write_text(
            f"""introspection_mode = post
introspection_url = {self.oauth2_introspection_url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""
        )
        ext.chmod(0o644)  # a throwaway test secret; the auth process must read it
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
"""

    # --- process control -----------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        # free_ports() can race with other processes on a busy machine: when Dovecot
        # reports a port in use, pick new ports and try again
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return
            except SandboxError:
                if attempt == 2 or "Address already in use" not in self._tail_logs():
                    raise
                self._clear_logs()
                self.ports = DovecotPorts(*free_ports(5))

    def _clear_logs(self) -> None:
        for f in (self.root / "log" / "master.out", self.log_file):
            f.unlink(missing_ok=True)

    def _start_once(self, timeout: float) -> None:
        if self._proc is None:
            self._write_config()
        log = (self.root / "log" / "master.out").open("ab")
        self._proc = subprocess.Popen(
            [*_die_with_parent(), str(self.binary), "-F", "-c", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wanted = []
        if "imap" in self.protocols:
            wanted += [self.ports.imap, self.ports.imaps]
        if "pop3" in self.protocols:
            wanted += [self.ports.pop3, self.ports.pop3s]
        if "lmtp" in self.protocols:
            wanted.append(self.ports.lmtp)
        deadline = time.monotonic() + timeout
        for port in wanted:
            while True:
                if self._proc.poll() is not None:
                    code, self._proc = self._proc.returncode, None
                    raise SandboxError(
                        f"Dovecot exited at start (code {code}): {self._tail_logs()}",
                        hint=f"see {self.log_file}",
                    )
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise SandboxError(
                            f"Dovecot did not open port {port} in {timeout:.0f}s",
                            hint=f"see {self.log_file}",
                        ) from None
                    time.sleep(0.02)

    def _tail_logs(self) -> str:
        text = ""
        for f in (self.root / "log" / "master.out", self.log_file):
            if f.exists():
                text += f.read_text(errors="replace")[-1500:]
        return text.strip() or "(no log output)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # the master's children (login, imap, ...) go with it; wait until ports are free
        self._wait_ports_closed()

    def _wait_ports_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for port in (self.ports.imap, self.ports.imaps):
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    time.sleep(0.05)
                except OSError:
                    break

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def doveadm(self, *args: str, check: bool = True) -> str:
        """Run a doveadm command against this instance and return its stdout."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        res = subprocess.run(
            [doveadm, "-c", str(self.config_file), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and res.returncode != 0:
            raise SandboxError(f"doveadm {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout

    def kick(self, user: str) -> None:
        """Drop every connection of `user` (for fault tests). `doveadm kick` only
        signals the processes; this returns once those that served `user` are gone
        (at most 30 s: a loaded machine may take seconds), so the next command on a
        dropped connection fails for sure and a new login never meets the old session
        still at work."""
        before = self._session_pids(user)
        self.doveadm("kick", user, check=False)
        deadline = time.monotonic() + 30
        while before & self._session_pids(user) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _session_pids(self, user: str) -> set[str]:
        """The processes `doveadm who` lists for `user`: lines like
        `alice@sandbox.test 1 pop3 (7332) (127.0.0.1)`."""
        pids: set[str] = set()
        for line in self.doveadm("who", user, check=False).splitlines():
            fields = line.split("(")
            if line.split(" ", 1)[0] == user and len(fields) > 1:
                pids.update(fields[1].split(")")[0].split())
        return pids


def _login_service(proto: str, plain_port: int, tls_name: str, tls_port: int) -> str:
    """A login service with a STARTTLS listener and an implicit-TLS one, on loopback."""
    return f"""
service {proto}-login {{
  inet_listener {proto} {{
    address = 127.0.0.1
    port = {plain_port}
  }}
  inet_listener {tls_name} {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}"""


def _die_with_parent() -> list[str]:
    """A prefix that makes Dovecot stop when the process that started it dies, even
    by SIGKILL or a timeout that skips clean-up (otherwise it would keep its ports
    and files for good). util-linux's `setpriv --pdeathsig` sets the kernel's
    parent-death signal for the process it runs, where there is one (Linux)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
