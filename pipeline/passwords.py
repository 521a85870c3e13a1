"""Salted scrypt hashes of the passwords users present to the gateway and the web console (never stored in clear)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from typing import Callable

N, R, P = 2**14, 8, 1
MIN_LENGTH = 12
_UNKNOWN_SALT = secrets.token_bytes(16)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:  # an unknown user (or one with no password) costs the same scrypt: timing tells no names
        hashlib.scrypt(password.encode(), salt=_UNKNOWN_SALT, n=N, r=R, p=P, dklen=32)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                  dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


CREDENTIAL_CACHE_SECONDS = 60
MAX_FAILED_SIGN_INS = 5  # per key (user name, client address or both), within FAILED_SIGN_IN_WINDOW_S
FAILED_SIGN_IN_WINDOW_S = 15 * 60
KEYS_BEFORE_PRUNING = 10_000


class FailedSignIns:
    """Recent failed sign-ins per key: a key with MAX_FAILED_SIGN_INS of them in the window is refused before its
    password is checked, so guessing runs at five tries per quarter hour, not at scrypt's twenty a second. Keys whose
    failures are all older than the window are forgotten once there are many, so made-up names cannot fill memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._times: dict[object, list[float]] = {}
        self._reported: dict[object, float] = {}  # when a key's throttled tries were last audited
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._times)

    def throttled(self, key: object) -> bool:
        now = self._clock()
        with self._lock:
            recent = [t for t in self._times.get(key, []) if now - t < FAILED_SIGN_IN_WINDOW_S]
            if recent:
                self._times[key] = recent
            else:
                self._times.pop(key, None)
            return len(recent) >= MAX_FAILED_SIGN_INS

    def failed(self, key: object) -> None:
        now = self._clock()
        with self._lock:
            self._times.setdefault(key, []).append(now)
            if len(self._times) > KEYS_BEFORE_PRUNING:
                self._times = {k: times for k, times in self._times.items() if now - times[-1] < FAILED_SIGN_IN_WINDOW_S}

    def succeeded(self, key: object) -> None:
        with self._lock:
            self._times.pop(key, None)

    def first_refusal(self, key: object) -> bool:
        """True for the first throttled try of a key in a window: the one worth an audit entry."""
        now = self._clock()
        with self._lock:
            if now - self._reported.get(key, -FAILED_SIGN_IN_WINDOW_S) < FAILED_SIGN_IN_WINDOW_S:
                return False
            if len(self._reported) > KEYS_BEFORE_PRUNING:
                self._reported = {k: t for k, t in self._reported.items() if now - t < FAILED_SIGN_IN_WINDOW_S}
            self._reported[key] = now
            return True


class SignInRefused(ValueError):
    """Credentials that named a user (`name`) and did not sign them in."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name


class Throttled(SignInRefused):
    """Too many failed sign-ins for these credentials' user: refused without checking the password."""


class BasicAuth:
    """HTTP Basic credentials checked against the stored hashes. A header that verified is remembered for a minute
    (scrypt costs ~50 ms a try, and Kibana and API clients send the same header with every request), together with
    the stored hash it verified against: each request reads the user's current hash, so a new or removed password
    ends the remembered credential at once."""

    def __init__(self, stored_hash: Callable[[str], str | None], lock: threading.Lock,
                 failures: FailedSignIns | None = None):
        self.stored_hash, self.lock = stored_hash, lock
        self.failures = failures  # when given, failed sign-ins are counted per user name and throttled
        self._verified: dict[str, tuple[str, str, float]] = {}  # header digest -> (name, its hash's digest, until)

    def user_name(self, header: str | None) -> str:
        """The verified user's name; ValueError with what is wrong otherwise (SignInRefused once a name was read)."""
        if not header or not header.startswith("Basic "):
            raise ValueError("authentication required: HTTP Basic with your fcmon user name and password")
        key = hashlib.sha256(header.encode()).hexdigest()
        cached = self._verified.pop(key, None)
        if cached and cached[2] > time.monotonic():
            with self.lock:
                current = self.stored_hash(cached[0])
            if current is not None and hmac.compare_digest(credential_digest(current), cached[1]):
                self._verified[key] = cached
                return cached[0]
        try:
            name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("malformed Basic credentials") from exc
        if self.failures is not None and self.failures.throttled(name):
            raise Throttled(f"too many failed sign-ins for {name}: wait {FAILED_SIGN_IN_WINDOW_S // 60} minutes", name)
        with self.lock:
            stored = self.stored_hash(name)
        if not verify_password(password, stored):
            if self.failures is not None:
                self.failures.failed(name)
            raise SignInRefused("unknown user or wrong password (set one with `fcmon user set-password NAME`)", name)
        if self.failures is not None:
            self.failures.succeeded(name)
        now = time.monotonic()
        if len(self._verified) > KEYS_BEFORE_PRUNING:
            self._verified = {k: v for k, v in self._verified.items() if v[2] > now}
        self._verified[key] = (name, credential_digest(stored or ""), now + CREDENTIAL_CACHE_SECONDS)
        return name


def credential_digest(password_hash: str) -> str:
    """What a remembered sign-in keeps of the stored hash it verified against: a new password changes it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()
