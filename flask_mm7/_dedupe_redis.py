"""A dedupe store on a Redis server, shared by every receiver host (``pip install
'flask-mm7[redis]'``).

One Redis hash per key (operation, TransactionID, sender): one field per content fingerprint,
its value a small JSON record (token, answered or not, status, holder, claimed at, expires at).
Claim, renewal, completion and release are Lua scripts, each atomic on the server, and the
last three act only when the record still carries the caller's token: a claim that was taken
over is never completed or released by its old holder. The hash's PEXPIRE follows its latest
record (the lease of a claim, the TTL of an answer), so Redis forgets a key on its own. Each
script touches one key only, as Redis Cluster requires.
"""

from __future__ import annotations

import json
import secrets
import time
import typing as t

import redis

from .dedupe import BUSY, DONE, NEW, Claim, LeaseHolder, holder_dead, holder_id

# Shared by every script: ``now`` and durations are milliseconds (integers, exact in Lua's
# doubles). ``alive`` drops the fields of KEYS[1] that are free at ``now`` and returns the rest;
# ``touch`` sets the hash's expiry to its latest record's.
_COMMON = """
local function alive(now, timeout)
  local live = {}
  local raw = redis.call('HGETALL', KEYS[1])
  for i = 1, #raw, 2 do
    local rec = cjson.decode(raw[i + 1])
    local free = now >= rec.expires or (rec.done == 0 and now - rec.started >= timeout)
    if free then
      redis.call('HDEL', KEYS[1], raw[i])
    else
      live[raw[i]] = rec
    end
  end
  return live
end

local function touch(now)
  local latest = 0
  for _, value in ipairs(redis.call('HVALS', KEYS[1])) do
    latest = math.max(latest, cjson.decode(value).expires)
  end
  if latest > now then
    redis.call('PEXPIRE', KEYS[1], latest - now)
  else
    redis.call('DEL', KEYS[1])
  end
end
"""

# ARGV: digest, token, holder, now, lease, claim timeout, token of a dead holder's claim to take
# over (or ''). Returns {'new', reused} or {'busy'/'done', the record's JSON}.
_CLAIM = (
    _COMMON
    + """
local digest, now = ARGV[1], tonumber(ARGV[4])
local live = alive(now, tonumber(ARGV[6]))
local mine = live[digest]
if mine and not (mine.done == 0 and mine.token == ARGV[7]) then
  return {mine.done == 1 and 'done' or 'busy', cjson.encode(mine)}
end
local reused = 0
for other, _ in pairs(live) do
  if other ~= digest then reused = 1 end
end
redis.call('HSET', KEYS[1], digest, cjson.encode({
  token = ARGV[2], done = 0, holder = ARGV[3], started = now, expires = now + tonumber(ARGV[5])
}))
touch(now)
return {'new', reused}
"""
)

# ARGV: token, now, ttl, status code, status text (JSON). Returns 1 when recorded.
_COMPLETE = (
    _COMMON
    + """
local now = tonumber(ARGV[2])
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  local rec = cjson.decode(raw[i + 1])
  if rec.token == ARGV[1] and rec.done == 0 then
    rec.done, rec.code, rec.text = 1, tonumber(ARGV[4]), ARGV[5]
    rec.expires = now + tonumber(ARGV[3])
    redis.call('HSET', KEYS[1], raw[i], cjson.encode(rec))
    touch(now)
    return 1
  end
end
return 0
"""
)

# ARGV: token, now. Returns 1 when released.
_RELEASE = (
    _COMMON
    + """
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  local rec = cjson.decode(raw[i + 1])
  if rec.token == ARGV[1] and rec.done == 0 then
    redis.call('HDEL', KEYS[1], raw[i])
    touch(tonumber(ARGV[2]))
    return 1
  end
end
return 0
"""
)

# ARGV: digest, token, now, lease. Returns 1 when renewed.
_RENEW = (
    _COMMON
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local rec = cjson.decode(value)
if rec.token ~= ARGV[2] or rec.done ~= 0 then return 0 end
local now = tonumber(ARGV[3])
rec.expires = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
touch(now)
return 1
"""
)


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class RedisStore(LeaseHolder):
    """Records in Redis, shared by every process of every host that uses the same server.

    ``url`` is a redis-py URL (``redis://[:password@]host:6379/0``, ``rediss://`` for TLS,
    ``unix:///run/redis.sock?db=0``; its query string sets redis-py's own options) or a
    ready ``redis.Redis`` client. Keys start with ``prefix``. Claims are leases renewed while
    the handler runs (see :class:`~flask_mm7.dedupe.LeaseHolder`); the clocks of the hosts
    sharing a server must agree to well within the lease (NTP does).
    """

    def __init__(
        self,
        url: str | redis.Redis,
        *,
        ttl: float = 86400,
        claim_timeout: float = 300,
        lease: float = 10,
        prefix: str = "mm7:dedupe:",
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.claim_timeout = claim_timeout
        self.lease = lease
        self.prefix = prefix
        self._clock = clock
        self._init_leases()
        if isinstance(url, str):
            # timeouts so that an unreachable server is a retryable Fault, not a hung request;
            # the URL's own query parameters override them
            self.client: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
            )
        else:
            self.client = url
        self._claim = self.client.register_script(_CLAIM)
        self._complete = self.client.register_script(_COMPLETE)
        self._release = self.client.register_script(_RELEASE)
        self._renew_one = self.client.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"<RedisStore {self.client!r}>"

    def close(self) -> None:
        """Stop renewing claims and close the client's connections."""
        with self._lock:
            self._stop_renewing()
        self.client.close()

    def _key(self, key: str) -> str:
        return self.prefix + key

    def claim(self, key: str, digest: str) -> Claim:
        token = secrets.token_hex(8)
        takeover = ""
        for _ in range(2):
            now = self._clock()
            args: list[str | int] = [digest, token, holder_id(), _ms(now), _ms(self.lease)]
            args += [_ms(self.claim_timeout), takeover]
            state, value = self._claim(keys=[self._key(key)], args=args)
            if state == b"new":
                self._hold(token, key, digest, now)
                return Claim(NEW, token, digest, reused=bool(value))
            record = json.loads(value)
            if state == b"busy" and not takeover and holder_dead(record["holder"]):
                takeover = record["token"]  # its holder died on this host: take it at once
                continue
            break
        text = record.get("text")
        return Claim(
            DONE if state == b"done" else BUSY,
            record["token"],
            digest,
            record.get("code"),
            None if text is None else json.loads(text),
        )

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        try:
            args: list[str | int] = [token, _ms(self._clock()), _ms(self.ttl), int(status_code)]
            args.append(json.dumps(status_text))
            self._complete(keys=[self._key(key)], args=args)
        finally:
            self._unhold(token)

    def release(self, key: str, token: str) -> None:
        try:
            self._release(keys=[self._key(key)], args=[token, _ms(self._clock())])
        finally:
            self._unhold(token)

    def _renew_claims(self, held: list[tuple[float, str, str, str]]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for now, key, digest, token in held:
                args: list[str | int] = [digest, token, _ms(now), _ms(self.lease)]
                self._renew_one(keys=[self._key(key)], args=args, client=pipe)
            pipe.execute()
