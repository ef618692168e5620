#!/usr/bin/env python3
"""ppmock: a loopback mock of the Proofpoint HTTP APIs used by ppflow's tests.

Single file, Python 3 standard library only.  See tests/mock/README.md.

    python3 tests/mock/ppmock.py --port 0 --port-file PATH [--host 127.0.0.1]
        [--seed N] [--now ISO8601] [--now-advances] [--principal P] [--secret S]
        [--rate PER_MINUTE_PER_BUCKET] [--tls-cert F --tls-key F] [--log FILE]
        [--casb-path /api/v1/alerts] [--trap-key K] [--eti-key K]
        [--ess-user U --ess-password P] [--casb-token-path P] [--casb-key K]
        [--casb-secret S] [--casb-token T] [--exit-with-parent]

Everything the API returns is a pure function of (seed, time); the control
endpoints under /__mock/ let tests inspect requests, inject faults and compute
the expected record set.
"""

import argparse
import base64
import calendar
import collections
import datetime
import gzip
import hashlib
import html
import http.server
import ipaddress
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

NS = 1_000_000_000          # nanoseconds per second; all times are int ns since epoch
MS = 1_000_000              # nanoseconds per millisecond
MINUTE = 60 * NS
HOUR = 3600 * NS
DAY = 86400 * NS

# --------------------------------------------------------------------------
# Time parsing / formatting
# --------------------------------------------------------------------------

_DT_RE = re.compile(
    r'^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9})\d*)?)?'
    r'([Zz]|[+-]\d{2}(?::?\d{2})?)?$')
_DUR_RE = re.compile(
    r'^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:[.,](\d{1,9})\d*)?S)?)?$')


def parse_dt(s):
    """ISO-8601 date-time -> int ns since epoch. No offset means UTC."""
    m = _DT_RE.match(s)
    if not m:
        raise ValueError('malformed date-time %r' % s)
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    sec = int(m.group(6) or 0)
    frac = int((m.group(7) or '').ljust(9, '0'))
    datetime.datetime(y, mo, d, h, mi, sec)   # range validation (raises ValueError)
    off = 0
    tz = m.group(8)
    if tz and tz not in 'Zz':
        sign = -1 if tz[0] == '-' else 1
        hh = int(tz[1:3])
        mm = int(tz[-2:]) if len(tz) > 3 else 0
        if hh > 23 or mm > 59:
            raise ValueError('bad UTC offset %r' % tz)
        off = sign * (hh * 3600 + mm * 60)
    return (calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0)) - off) * NS + frac


def parse_dur(s):
    """ISO-8601 duration (weeks/days/hours/minutes/seconds) -> ns."""
    m = _DUR_RE.match(s)
    if not m or not any(m.groups()):
        raise ValueError('malformed duration %r' % s)
    w, d, h, mi, sec = (int(m.group(i) or 0) for i in range(1, 6))
    frac = int((m.group(6) or '').ljust(9, '0'))
    return ((((w * 7 + d) * 24 + h) * 60 + mi) * 60 + sec) * NS + frac


def parse_interval(s):
    """ISO-8601 interval: start/end, duration/end or start/duration -> (start, end)."""
    parts = s.split('/')
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError('interval must be start/end, duration/end or start/duration')
    a, b = parts
    if a[0] in 'Pp' and b[0] in 'Pp':
        raise ValueError('interval cannot be duration/duration')
    if a[0] in 'Pp':
        end = parse_dt(b)
        return end - parse_dur(a), end
    if b[0] in 'Pp':
        start = parse_dt(a)
        return start, start + parse_dur(b)
    return parse_dt(a), parse_dt(b)


def _gm(ns):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ns // NS))


def fmt_ms(ns):
    """2024-05-02T10:00:20.123Z (event times)."""
    return '%s.%03dZ' % (_gm(ns), (ns // MS) % 1000)


def fmt_s(ns):
    """2024-05-02T10:00:20Z (queryEndTime; floors sub-second parts)."""
    return _gm(ns) + 'Z'


def fmt_day(ns):
    return time.strftime('%Y-%m-%d', time.gmtime(ns // NS))


def floor_to(ns, unit):
    return ns - ns % unit


def round_minute(ns):
    return floor_to(ns + MINUTE // 2, MINUTE)


# --------------------------------------------------------------------------
# Deterministic randomness: a SHA-256 counter-mode byte stream per key
# (independent of Python's random module, so stable across versions)
# --------------------------------------------------------------------------

class R:
    __slots__ = ('key', 'ctr', 'buf', 'pos')

    def __init__(self, *parts):
        self.key = '\x1f'.join(str(p) for p in parts).encode()
        self.ctr = 0
        self.buf = b''
        self.pos = 0

    def bytes(self, n):
        out = bytearray()
        while len(out) < n:
            if self.pos >= len(self.buf):
                self.buf = hashlib.sha256(self.key + b'\x1e' + str(self.ctr).encode()).digest()
                self.ctr += 1
                self.pos = 0
            take = min(n - len(out), len(self.buf) - self.pos)
            out += self.buf[self.pos:self.pos + take]
            self.pos += take
        return bytes(out)

    def below(self, n):
        return int.from_bytes(self.bytes(8), 'big') % n if n > 0 else 0

    def rng(self, a, b):
        return a + self.below(b - a + 1)

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, pct):
        return self.below(10000) < pct * 100

    def hex(self, n):
        return self.bytes((n + 1) // 2).hex()[:n]

    def uuid(self):
        b = bytearray(self.bytes(16))
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        return str(uuid.UUID(bytes=bytes(b)))

    def uuid_layout(self):
        """32 random hex digits in the 8-4-4-4-12 layout, no version bits: the
        shape of the SIEM messages' `id` in recorded responses."""
        h = self.hex(32)
        return '%s-%s-%s-%s-%s' % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def ip(self, pool=('198.51.100', '203.0.113', '192.0.2')):
        return '%s.%d' % (self.choice(pool), self.rng(1, 254))


def sha_hex(*parts):
    return hashlib.sha256('\x1f'.join(str(p) for p in parts).encode()).hexdigest()


# --------------------------------------------------------------------------
# Data pools
# --------------------------------------------------------------------------

STREAMS = ('messagesDelivered', 'messagesBlocked', 'clicksPermitted', 'clicksBlocked')
MESSAGE_STREAMS = ('messagesDelivered', 'messagesBlocked')
SIEM_PATHS = collections.OrderedDict([
    ('/v2/siem/all', STREAMS),
    ('/v2/siem/issues', ('messagesDelivered', 'clicksPermitted')),
    ('/v2/siem/messages/blocked', ('messagesBlocked',)),
    ('/v2/siem/messages/delivered', ('messagesDelivered',)),
    ('/v2/siem/clicks/blocked', ('clicksBlocked',)),
    ('/v2/siem/clicks/permitted', ('clicksPermitted',)),
])
SYSLOG_TOKEN = {'messagesDelivered': 'MSGDLV', 'messagesBlocked': 'MSGBLK',
                'clicksPermitted': 'CLKPER', 'clicksBlocked': 'CLKBLK'}
SYSLOG_PRI = {'messagesDelivered': 134, 'messagesBlocked': 132,       # local0.info / local0.warning
              'clicksPermitted': 134, 'clicksBlocked': 132}
THREAT_STATUSES = ('active', 'cleared', 'falsePositive')
THREAT_TYPES = ('url', 'attachment', 'messageText')

CUSTOMER_ID = '3f6b2a1c-7d4e-4c1a-9b2f-0e5d6c7b8a90'
CORP = 'corp.example'
FIRST = ['jane', 'john', 'ana', 'mehdi', 'li', 'olga', 'pat', 'sam', 'noor', 'yuki', 'jose', 'eve',
         'raj', 'kim', 'lars', 'ines']
LAST = ['doe', 'smith', 'garcia', 'haddad', 'wang', 'ivanova', 'example', 'lee', 'khan', 'tanaka',
        'silva', 'nguyen', 'patel', 'park', 'berg', 'moreau']
SENDER_DOMAINS = ['example.net', 'mailer.example.org', 'bad-cdn.example', 'invoices.example.com',
                  'secure-login.example', 'xn--bcher-kva.example', 'shipping.example.net']
URL_HOSTS = ['login-verify.example.org', 'files.example.org', 'bad-cdn.example', 'docs-share.example.net',
             'o365-auth.example.com', 'parcel-track.example']
SUBJECTS = [
    'Updated remittance advice',
    'Invoice #4471 overdue',
    'R\u00e9union trimestrielle \u2013 ordre du jour',
    '\u0421\u0447\u0451\u0442 \u043d\u0430 \u043e\u043f\u043b\u0430\u0442\u0443 \u211617',
    '\u8acb\u6c42\u66f8\u306e\u3054\u78ba\u8a8d\u3092\u304a\u9858\u3044\u3057\u307e\u3059',
    'RE: "Urgent" wire transfer C:\\Payments\\Q2.xlsx',
    'Line one\u2028line two',
    'Your parcel \U0001F4E6 is waiting',
    'Tab\tseparated "quoted" \\ subject',
    None,
    '',
    'Password expiry notice',
]
USER_AGENTS = ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
               'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
               'Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)',
               'curl/8.5.0']
MODULES = ['av', 'spf', 'dkimv', 'spam', 'pdr', 'sandbox', 'urldefense', 'zerohour', 'dmarc']
CLASS_BY_TYPE = {'url': ['phish', 'malware', 'spam'], 'attachment': ['malware'], 'messageText': ['impostor', 'phish']}
ACTORS = ['TA204', 'TA505', 'TA542', 'TA577', 'TA4557']
FAMILIES = ['Corporate Credential Phishing', 'Downloader', 'Banking Trojan', 'Keylogger', 'Stealer', 'Impostor']
MALWARE = ['ExampleLoader', 'DemoStealer', 'SampleRAT', 'TestBot']
TECHNIQUES = ['Malicious archive', 'Social Engineering', 'HTML smuggling', 'OneNote attachment']
BRANDS = ['Microsoft', 'DHL', 'DocuSign', 'Adobe']
DEPARTMENTS = ['Finance', 'HR', 'Engineering', 'Sales', 'Legal', None]
TITLES = ['CFO', 'Accountant', 'Engineer', 'Recruiter', 'Counsel', None]


def person(r):
    f, l = r.choice(FIRST), r.choice(LAST)
    return f, l, '%s.%s@%s' % (f, l, CORP)


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------

class Gen:
    """All API data as a pure function of (seed, time)."""

    N_THREATS = 48
    N_CAMPAIGNS = 40

    def __init__(self, seed):
        self.seed = seed
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()
        self.campaigns = [self._campaign_stub(j) for j in range(self.N_CAMPAIGNS)]
        self.threats = [self._threat(k) for k in range(self.N_THREATS)]
        self.threat_by_id = {t['id']: t for t in self.threats}
        self.campaign_by_id = {c['id']: c for c in self.campaigns}
        self.url_threats = [t for t in self.threats if t['type'] == 'url']

    # ---- catalogs -------------------------------------------------------
    def _campaign_stub(self, j):
        r = R(self.seed, 'campaign', j)
        return {'id': r.uuid(), 'idx': j,
                'name': '%s Lure | %s | campaign %02d' % (r.choice(['Invoice', 'Parcel', 'Payroll', 'MFA']),
                                                         r.choice(MALWARE), j),
                'notable': r.chance(20), 'verticallyTargeted': r.chance(30)}

    def _threat(self, k):
        r = R(self.seed, 'threat', k)
        tid = sha_hex(self.seed, 'threat-id', k)
        ttype = r.choice(['url'] * 5 + ['attachment'] * 3 + ['messageText'] * 2)
        cls = r.choice(CLASS_BY_TYPE[ttype])
        if ttype == 'url':
            host = r.choice(URL_HOSTS)
            value = 'https://%s/%s/%s' % (host, r.choice(['o365', 'login', 'inv', 'track', 'd']), r.hex(8))
            if r.chance(20):
                value += '?u=%s&ref=caf%%C3%%A9' % r.hex(6)
        elif ttype == 'attachment':
            value = r.hex(64)
        else:
            f, l, _ = person(r)
            value = '%s.%s@%s' % (f, l, r.choice(SENDER_DOMAINS))
        camp = self.campaigns[r.below(self.N_CAMPAIGNS)]['id'] if r.chance(60) else None
        return {'id': tid, 'idx': k, 'type': ttype, 'classification': cls, 'threat': value,
                'campaignID': camp, 'severity': r.rng(1, 100), 'attackSpread': r.rng(1, 500),
                'notable': r.chance(15)}

    def threat_url(self, tid):
        return 'https://threatinsight.proofpoint.com/%s/threat/email/%s' % (CUSTOMER_ID, tid)

    # ---- SIEM buckets ---------------------------------------------------
    # Recipients of one message: each gives its own event (same GUID, QID,
    # messageTime and content; its own `recipient` and `id`).
    RECIPIENT_COUNTS = [1] * 11 + [2] * 5 + [3] * 2 + [4] * 2      # 45 % of messages: 2-4

    def bucket(self, stream, b, rate):
        """Core events of one stream in UTC minute b: list of core dicts sorted by time.

        Messages: 0..rate messages, each giving one event per recipient. Clicks:
        0..rate clicks."""
        ck = (stream, b, rate)
        with self._lock:
            v = self._cache.get(ck)
            if v is not None:
                self._cache.move_to_end(ck)
                return v
        n = R(self.seed, 'count', b, stream).below(rate + 1)
        evs = []
        for j in range(n):
            r = R(self.seed, 'core', b, stream, j)
            t = b * MINUTE + r.below(60000) * MS
            if stream in MESSAGE_STREAMS:
                guid = base64.b64encode(r.bytes(24), b'-_').decode()[:32]
                nthreats = r.choice([1, 1, 1, 2, 2, 3])
                threats = [(r.below(self.N_THREATS), self._status(r)) for _ in range(nthreats)]
                reclass = r.chance(25)
                nrcpt = r.choice(self.RECIPIENT_COUNTS)
                blocked = stream == 'messagesBlocked'
                drift = blocked and r.chance(50)             # documented-sample style, no `id`
                sparse = not blocked and r.chance(10)        # delivered, most members null
                for q in range(nrcpt):
                    ev = {'t': t, 'stream': stream, 'b': b, 'i': len(evs), 'm': j, 'q': q, 'n': nrcpt,
                          'guid': guid, 'threats': threats, 'reclass': reclass, 'drift': drift,
                          'sparse': sparse}
                    # The event's identity: its `id`; a record without one is
                    # identified by the SHA-256 of its bytes (see identity()).
                    ev['key'] = None if drift else R(self.seed, 'msgid', b, stream, j, q).uuid_layout()
                    evs.append(ev)
            else:
                ev = {'t': t, 'stream': stream, 'b': b, 'i': len(evs), 'key': r.uuid(),
                      'threats': [(self.url_threats[r.below(len(self.url_threats))]['idx'], self._status(r))],
                      'reclass': r.chance(20)}
                evs.append(ev)
        evs.sort(key=lambda e: (e['t'], e['i']))
        with self._lock:
            self._cache[ck] = evs
            while len(self._cache) > 50000:
                self._cache.popitem(last=False)
        return evs

    def identity(self, ev):
        """What identifies the event's record: `id` when the record has one,
        else "sha256:" + the hex SHA-256 of the record's bytes as sent."""
        k = ev['key']
        if k is None:
            k = ev['key'] = 'sha256:' + hashlib.sha256(jdump(self.record(ev))).hexdigest()
        return k

    @staticmethod
    def _status(r):
        x = r.below(100)
        return 'active' if x < 70 else ('cleared' if x < 90 else 'falsePositive')

    def events(self, stream, start, end, rate, statuses=None, types=None):
        """Core events with start <= t < end that pass the filters."""
        out = []
        if end <= start:
            return out
        for b in range(start // MINUTE, -(-end // MINUTE)):
            for ev in self.bucket(stream, b, rate):
                if start <= ev['t'] < end and self.matches(ev, statuses, types):
                    out.append(ev)
        return out

    def matches(self, ev, statuses, types):
        for k, st in ev['threats']:
            if statuses is not None and st.lower() not in statuses:
                continue
            if types is not None and self.threats[k]['type'].lower() not in types:
                continue
            return True
        return False

    # ---- full records ---------------------------------------------------
    def record(self, ev):
        if ev['stream'] in MESSAGE_STREAMS:
            return self._message(ev)
        return self._click(ev)

    # Member order of recorded SIEM events (tests/mock/README.md, "Evidence").
    MESSAGE_ORDER = ['spamScore', 'phishScore', 'threatsInfoMap', 'messageTime', 'impostorScore', 'malwareScore',
                     'cluster', 'subject', 'quarantineFolder', 'quarantineRule', 'policyRoutes', 'modulesRun',
                     'messageSize', 'headerFrom', 'headerReplyTo', 'fromAddress', 'ccAddresses', 'replyToAddress',
                     'toAddresses', 'xmailer', 'messageParts', 'completelyRewritten', 'id', 'QID', 'GUID', 'sender',
                     'recipient', 'senderIP', 'messageID']
    THREAT_ORDER = ['threatID', 'threatStatus', 'classification', 'threatUrl', 'threatTime', 'threat', 'campaignID',
                    'threatType', 'detectionType', 'actors']
    CLICK_ORDER = ['url', 'classification', 'clickTime', 'threatTime', 'userAgent', 'campaignId', 'campaignID', 'id',
                   'clickIP', 'sender', 'recipient', 'senderIP', 'GUID', 'threatID', 'threatURL', 'threatStatus',
                   'messageID']

    @staticmethod
    def _ordered(d, order):
        """D's members in ORDER (members ORDER does not name: alphabetically, after)."""
        out = collections.OrderedDict((k, d[k]) for k in order if k in d)
        for k in sorted(d):
            if k not in out:
                out[k] = d[k]
        return out

    @staticmethod
    def _sorted(d):
        return collections.OrderedDict(sorted(d.items()))

    def _message(self, ev):
        # Everything is drawn from the message's own stream, so the events of
        # its recipients are equal but for `recipient` and `id`.
        r = R(self.seed, 'body', ev['b'], ev['stream'], ev['m'])
        t = ev['t']
        blocked = ev['stream'] == 'messagesBlocked'
        drift = ev['drift']                           # documented-sample style (fixture casing)
        sparse = ev['sparse']
        msg_time = t - r.rng(60, 2 * 86400) * NS - r.below(1000) * MS if ev['reclass'] else t
        sdom = r.choice(SENDER_DOMAINS)
        sender = '' if r.chance(4) else '%s@%s' % (r.hex(32), sdom)
        rcpts = []
        while len(rcpts) < ev['n']:
            a = person(r)[2]
            if a in rcpts:
                a = a.replace('@', '.%d@' % len(rcpts))
            rcpts.append(a)
        from_local = r.choice(['billing', 'no-reply', 'hr', 'ceo', 'support'])
        from_addr = '%s@%s' % (from_local, sdom)
        subject = r.choice(SUBJECTS)
        mid = '' if r.chance(3) else '<%s.%d@%s>' % (r.hex(12), r.rng(1000, 9999), sdom)
        rec = {}
        rec['GUID'] = ev['guid']
        rec['QID'] = None if (not blocked and r.chance(50)) else '%s-%d' % (r.hex(10), r.rng(1, 9))
        if not drift:
            rec['id'] = ev['key']
        rec['messageID'] = mid
        rec['messageTime'] = fmt_ms(msg_time)
        rec['sender'] = sender
        rec['senderIP'] = r.ip()
        rec['recipient'] = [rcpts[ev['q']]]
        rec['subject'] = subject
        rec['fromAddress'] = from_addr if (drift or r.chance(15)) else [from_addr]
        rec['toAddresses'] = list(rcpts)
        rec['ccAddresses'] = [] if r.chance(70) else [person(r)[2]]
        rec['replyToAddress'] = [] if r.chance(80) else ['reply-%s@%s' % (r.hex(4), sdom)]
        rec['headerFrom'] = '"%s Team" <%s>' % (from_local.capitalize(), from_addr)
        rec['headerReplyTo'] = None if r.chance(80) else '<reply@%s>' % sdom
        if drift or r.chance(30):
            rec['headerTo'] = ', '.join(rcpts)
            rec['headerCC'] = None
        rec['xmailer'] = None if r.chance(60) else r.choice(['Microsoft Outlook 16.0', 'PHPMailer 6.9.1'])
        rec['spamScore'] = r.rng(0, 100)
        rec['phishScore'] = r.rng(0, 100)
        rec['malwareScore'] = r.rng(0, 100)
        # An integer in recorded responses; 0.0 (a float) in some of them.
        imp = r.choice([0, 0, 0, 0, 0, 10, 20, 30, 45, 70, 100])
        rec['impostorScore'] = 0.0 if (imp == 0 and r.chance(25)) else imp
        if drift:
            rec['clusterId'] = 'corpexample_hosted'
        else:
            rec['cluster'] = 'corpexample_hosted'
        rec['quarantineFolder'] = r.choice(['Attachment Defense', 'Phish', 'Malware']) if blocked else None
        rec['quarantineRule'] = r.choice(['module.sandbox.threat', 'module.urldefense.phish']) if blocked else None
        rec['policyRoutes'] = ['default_inbound'] + (['executives'] if r.chance(20) else [])
        rec['modulesRun'] = [m for m in MODULES if r.chance(75)] or ['av']
        x = r.below(100)
        if x < 6:
            size = 2 ** 32 + r.below(2 ** 31)                  # > uint32
        elif x < 8:
            size = 2 ** 53 + 1 + 2 * r.below(1000)             # not exactly representable as double
        else:
            size = r.rng(900, 250000)
        rec['messageSize'] = size
        threats = [self.threats[k] for k, _ in ev['threats']]
        has_url = any(th['type'] == 'url' for th in threats)
        rec['completelyRewritten'] = r.choice([True, True, False, 'true']) if has_url else r.choice(['na', 'na', False])
        no_sandbox = r.chance(20)                  # parts without sandboxStatus, as recorded
        parts = [collections.OrderedDict([
            ('disposition', 'inline'), ('filename', 'text.html'), ('contentType', 'text/html'),
            ('oContentType', 'text/html'), ('md5', r.hex(32)), ('sha256', r.hex(64)),
            ('sandboxStatus', r.choice([None, 'unsupported', 'NOT_SUPPORTED']))])]
        for th in threats:
            if th['type'] == 'attachment':
                parts.append(collections.OrderedDict([
                    ('disposition', 'attached'), ('filename', r.choice(['invoice.zip', 'scan_0042.iso', 'r\u00e9sum\u00e9.docm'])),
                    ('contentType', 'application/zip'), ('oContentType', 'application/octet-stream'),
                    ('md5', r.hex(32)), ('sha256', th['threat']),
                    ('sandboxStatus', r.choice(['threat', 'THREAT', 'clean', 'inprogress']))]))
        if no_sandbox:
            for p in parts:
                del p['sandboxStatus']
        rec['messageParts'] = parts if not r.chance(5) else None
        tim = []
        for n, ((k, st), th) in enumerate(zip(ev['threats'], threats)):
            if ev['reclass'] and n == 0:
                ttime = t
            else:
                ttime = min(t, msg_time) - r.rng(0, 3 * 86400) * NS - r.below(1000) * MS
            e = {}
            e['threatId' if drift else 'threatID'] = th['id']
            e['threatStatus'] = st
            cls = th['classification']
            e['classification'] = cls.upper() if drift else cls
            e['threat'] = th['threat']
            e['threatTime'] = fmt_ms(ttime)
            e['threatType'] = th['type'].upper() if (drift and th['type'] != 'messageText') else th['type']
            e['threatUrl'] = self.threat_url(th['id'])
            e['campaignId' if drift else 'campaignID'] = th['campaignID']
            if not drift and r.chance(30):
                e['detectionType'] = 'NONE'
                e['actors'] = [{'id': sha_hex('actor', a)[:32], 'name': a, 'type': 'ACTOR'}
                               for a in ACTORS[:r.rng(0, 2)]]
            tim.append(self._sorted(e) if drift else self._ordered(e, self.THREAT_ORDER))
        rec['threatsInfoMap'] = tim
        if sparse:
            # Delivered events that carry little more than the threat: most
            # members null, `sender` and `messageID` empty, size 0 (recorded).
            for k in ('subject', 'policyRoutes', 'modulesRun', 'headerFrom', 'headerReplyTo', 'fromAddress',
                      'ccAddresses', 'replyToAddress', 'toAddresses', 'xmailer', 'messageParts', 'QID'):
                rec[k] = None
            rec.pop('headerTo', None)
            rec.pop('headerCC', None)
            rec['messageSize'] = 0
            rec['sender'] = ''
            rec['messageID'] = ''
            rec['completelyRewritten'] = True
        # Recorded events list members in the API's order; the documented
        # sample (fixture style) alphabetically.
        return self._sorted(rec) if drift else self._ordered(rec, self.MESSAGE_ORDER)

    def _click(self, ev):
        r = R(self.seed, 'body', ev['b'], ev['stream'], ev['i'])
        t = ev['t']
        k, st = ev['threats'][0]
        th = self.threats[k]
        if ev['reclass']:
            click_time, threat_time = t - r.rng(60, 7200) * NS - r.below(1000) * MS, t
        else:
            click_time, threat_time = t, t - r.rng(0, 3 * 86400) * NS - r.below(1000) * MS
        sdom = r.choice(SENDER_DOMAINS)
        rec = {}
        rec['id'] = ev['key']
        rec['GUID'] = base64.b64encode(r.bytes(24), b'-_').decode()[:32]
        rec['messageID'] = '<%s.%d@%s>' % (r.hex(12), r.rng(1000, 9999), sdom)
        rec['url'] = th['threat']
        rec['clickTime'] = fmt_ms(click_time)
        rec['clickIP'] = r.ip()
        rec['userAgent'] = r.choice(USER_AGENTS)
        rec['sender'] = '%s@%s' % (r.hex(32), sdom)
        rec['senderIP'] = r.ip()
        rcpt = person(r)[2]
        rec['recipient'] = [rcpt] if r.chance(15) else rcpt            # an array in some recorded responses
        cls = th['classification']
        rec['classification'] = cls.upper() if r.chance(10) else cls
        rec['threatID'] = th['id']
        rec['threatURL'] = (('https://threatinsight.proofpoint.com/#/%s/threat/u/%s' % (CUSTOMER_ID, th['id']))
                            if r.chance(20) else self.threat_url(th['id']))
        rec['threatTime'] = fmt_ms(threat_time)
        rec['threatStatus'] = st
        x = r.below(100)
        if x < 70:
            rec['campaignId'] = th['campaignID']
        elif x < 80:
            rec['campaignID'] = th['campaignID']                      # unconfirmed casing
        # else: no campaign member at all (recorded)
        return self._ordered(rec, self.CLICK_ORDER)


# --------------------------------------------------------------------------
# Output formatting
# --------------------------------------------------------------------------

def jdump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(',', ':')).encode('utf-8')


def _sl_escape(s):
    return (s.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')
            .replace('\r', '\\r').replace('\t', '\\t'))


def syslog_line(stream, t, rec):
    """<PRI>1 TIMESTAMP HOST APP - TOKEN - key="value" ...   (mock invention; see README)"""
    pairs = []
    for k, v in rec.items():
        if v is None:
            continue
        if isinstance(v, bool):
            s = 'true' if v else 'false'
        elif isinstance(v, (int, float)):
            s = json.dumps(v)
        elif isinstance(v, str):
            s = v
        else:
            s = json.dumps(v, ensure_ascii=False, separators=(',', ':'))
        pairs.append('%s="%s"' % (k, _sl_escape(s)))
    return '<%d>1 %s tap-api-v2.proofpoint.com tap - %s - %s' % (
        SYSLOG_PRI[stream], fmt_ms(t), SYSLOG_TOKEN[stream], ' '.join(pairs))


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class Resp:
    __slots__ = ('status', 'body', 'ctype', 'headers')

    def __init__(self, status, body=b'', ctype='text/plain; charset=utf-8', headers=None):
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.status = status
        self.body = body
        self.ctype = ctype
        self.headers = list(headers or [])


def text(status, msg, headers=None):
    return Resp(status, msg if msg.endswith('\n') else msg + '\n', headers=headers)


def jresp(obj, status=200, headers=None):
    return Resp(status, jdump(obj), 'application/json', headers)


class BadRequest(Exception):
    def __init__(self, msg, status=400):
        Exception.__init__(self, msg)
        self.status = status


class Req:
    def __init__(self, method, path, query, params, headers, body):
        self.method, self.path, self.query, self.params, self.headers, self.body = \
            method, path, query, params, headers, body

    def one(self, name, default=None):
        v = self.params.get(name)
        if v is None:
            return default
        if len(v) != 1:
            raise BadRequest('parameter %s given more than once' % name)
        return v[0]

    def int_param(self, name, default, lo, hi):
        v = self.one(name)
        if v is None:
            return default
        if not re.fullmatch(r'\d{1,9}', v) or not lo <= int(v) <= hi:
            raise BadRequest('parameter %s must be an integer in [%d, %d]' % (name, lo, hi))
        return int(v)


FAULT_KINDS = ('status', '429', 'reset', 'truncate', 'slow', 'stall', 'gzip_corrupt', 'redirect_loop',
               'generate')
GENERATE_MAX = 1 << 40      # bytes a generated body may announce (it is never held in memory)


def _pieces(items):
    """A generated body's pieces: [{"text": S | "hex": H, "times": N}] -> [(bytes, N)]."""
    if not isinstance(items, list) or not items:
        raise BadRequest('generate needs pieces: a list of {"text" or "hex", "times"}')
    out = []
    for it in items:
        if not isinstance(it, dict) or ('text' in it) == ('hex' in it):
            raise BadRequest('each piece has exactly one of "text" and "hex"')
        try:
            data = it['text'].encode('utf-8') if 'text' in it else bytes.fromhex(it['hex'])
        except (AttributeError, ValueError):
            raise BadRequest('piece text must be a string, hex must be hex digits')
        times = it.get('times', 1)
        if not isinstance(times, int) or times < 1 or not data:
            raise BadRequest('piece times must be an integer >= 1 and its data not empty')
        out.append((data, times))
    if sum(len(d) * n for d, n in out) > GENERATE_MAX:
        raise BadRequest('generated body larger than %d bytes' % GENERATE_MAX)
    return out


class Fault:
    def __init__(self, d):
        if not isinstance(d, dict):
            raise BadRequest('fault must be a JSON object')
        kind = str(d.get('kind', ''))
        if kind not in FAULT_KINDS:
            raise BadRequest('unknown fault kind %r; known: %s' % (kind, ', '.join(FAULT_KINDS)))
        self.kind = kind
        self.path = str(d.get('path', ''))
        # a redirect loop needs more than one redirect to be a loop: default 50
        self.count = int(d.get('count', 50 if kind == 'redirect_loop' else 1))
        self.status = int(d.get('status', 500))
        self.body = d.get('body')
        self.headers = d.get('headers') or {}
        self.retry_after = d.get('retry_after', 1)
        self.seconds = float(d.get('seconds', 30 if kind == 'stall' else 2))
        # generate: a 200 (or STATUS) whose body is PIECES, each repeated TIMES,
        # sent in chunks as it is produced (gigabytes cost no memory).
        self.pieces = _pieces(d.get('pieces')) if kind == 'generate' else []
        if kind == 'generate':
            self.status = int(d.get('status', 200))
        # generate: chunked transfer coding, so the size is not announced up front
        self.chunked = bool(d.get('chunked', False))
        if kind == 'status' and not 100 <= self.status <= 599:
            raise BadRequest('status must be 100..599')
        if self.count < 1:
            raise BadRequest('count must be >= 1')

    def describe(self):
        return {'kind': self.kind, 'path': self.path, 'count': self.count, 'status': self.status,
                'body': self.body, 'retry_after': self.retry_after, 'seconds': self.seconds}


class Clock:
    def __init__(self, fixed_ns=None, advances=False):
        self.lock = threading.Lock()
        self.set(fixed_ns, advances)

    def set(self, fixed_ns, advances=False):
        with self.lock:
            self.fixed = fixed_ns
            self.advances = advances
            self.mono0 = time.monotonic_ns()

    def now(self):
        with self.lock:
            if self.fixed is None:
                return time.time_ns()
            if self.advances:
                return self.fixed + (time.monotonic_ns() - self.mono0)
            return self.fixed


# --------------------------------------------------------------------------
# URL Defense decoder (v1/v2/v3; strict, v3 run lengths counted in bytes)
# --------------------------------------------------------------------------

class URLDefenseError(ValueError):
    pass


_UD_PREFIX = re.compile(r'https://urldefense(?:\.proofpoint)?\.com/(v\d)/')
_B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
_RUN_LEN = {c: i + 2 for i, c in enumerate(_B64URL)}


def urldefense_decode(s):
    m = _UD_PREFIX.search(s)
    if not m:
        raise URLDefenseError('does not appear to be a URL Defense URL')
    v = m.group(1)
    if v in ('v1', 'v2'):
        m2 = re.search(r'u=(.+?)&k=' if v == 'v1' else r'u=(.+?)&[dc]=', s)
        if not m2:
            raise URLDefenseError('error parsing URL')
        u = m2.group(1)
        if v == 'v2':
            u = u.replace('-', '%').replace('_', '/')
        return html.unescape(urllib.parse.unquote(u, errors='replace'))
    if v != 'v3':
        raise URLDefenseError('unrecognized version in: %s' % s)
    m3 = re.search(r'v3/__(.+?)__;(.*?)!', s)
    if not m3:
        raise URLDefenseError('error parsing URL')
    target, rep = m3.group(1), m3.group(2)
    m4 = re.match(r'^([A-Za-z0-9+.\-]+:)/([^/].+)$', target, re.S)
    if m4:
        target = m4.group(1) + '//' + m4.group(2)
    target = urllib.parse.unquote(target, errors='replace')
    rep = rep.rstrip('=')
    if any(c not in _B64URL for c in rep):
        raise URLDefenseError('bad base64 alphabet in replacement string')
    if len(rep) % 4 == 1:
        raise URLDefenseError('bad base64 length')
    try:
        repb = base64.urlsafe_b64decode(rep + '=' * (-len(rep) % 4))
        repb.decode('utf-8')
    except (ValueError, UnicodeDecodeError):
        raise URLDefenseError('replacement string is not valid base64url UTF-8')
    out = bytearray()
    pos = 0
    i = 0
    n = len(target)
    while i < n:
        c = target[i]
        if c != '*':
            out += c.encode('utf-8')
            i += 1
            continue
        if i + 2 < n and target[i + 1] == '*':
            x = target[i + 2]
            if x not in _RUN_LEN:
                raise URLDefenseError('bad run-length code %r' % x)
            want = _RUN_LEN[x]
            i += 3
        else:
            want = 1
            i += 1
        if pos + want > len(repb):
            raise URLDefenseError('marker overruns the replacement bytes')
        out += repb[pos:pos + want]
        pos += want
    try:
        return bytes(out).decode('utf-8')
    except UnicodeDecodeError:
        raise URLDefenseError('decoded URL is not valid UTF-8')


# --------------------------------------------------------------------------
# The other Proofpoint APIs
# --------------------------------------------------------------------------

FORENSIC_TYPES = {
    'url': ['dns', 'network', 'url', 'redirect_chain', 'cookie', 'screenshot'],
    'attachment': ['attachment', 'file', 'process', 'registry', 'mutex', 'dropper', 'ids', 'network', 'behavior'],
    'messageText': ['behavior', 'url'],
}
PLATFORMS = [{'name': 'Win10', 'os': 'win', 'version': 'win10'},
             {'name': 'Win7', 'os': 'win', 'version': 'win7'},
             {'name': 'static', 'os': 'static', 'version': '0'},
             {'name': 'pps', 'os': 'pps'}]                    # no version (recorded)
TRAP_STATES = ['New', 'Open', 'Assigned', 'Closed', 'Ignored']
TRAP_LISTS = {1: 'Blocked IPs', 2: 'Blocked Domains', 3: 'Blocked URLs', 4: 'Blocked Hashes', 5: 'Empty List'}
ETI_CATEGORIES = [('CnC', 'Malware Command and Control Server'), ('Bot', 'Known Infected Bot'),
                  ('Spam', 'Known Spam Source'), ('Drop', 'Drop site for logs or stolen credentials'),
                  ('SpywareCnC', 'Spyware Reporting Server'), ('DynDNS', 'Domain or IP related to a Dynamic DNS Entry'),
                  ('MobileCnC', 'Known CnC for Mobile specific Family'), ('Phishing', 'Phishing site'),
                  ('Scanner', 'Host performing scanning')]
ETI_DOMAIN_RES = ('reputation', 'urls', 'samples', 'ips', 'events', 'nameservers', 'whois', 'geoloc')
ETI_IP_RES = ('reputation', 'urls', 'samples', 'domains', 'events', 'geoloc')
ESS_ORGS = {'corp.example': 57, 'subsidiary.example': 12, 'empty.example': 0}
ESS_TYPES = ['end_user'] * 8 + ['silent_user', 'organization_admin', 'functional_account']
CASB_TITLES = [('Sensitive file shared externally', 'Data Leakage'), ('Impossible travel', 'Compromised Account'),
               ('Mass download', 'Data Exfiltration'), ('Suspicious OAuth app consent', 'Malicious App'),
               ('Login from TOR exit node', 'Suspicious Login')]
CLOUD_SERVICES = ['Microsoft 365', 'Google Workspace', 'Box', 'Salesforce', 'Slack']


def _bool_param(req, name, default=False):
    v = req.one(name)
    if v is None:
        return default
    if v.lower() in ('true', '1'):
        return True
    if v.lower() in ('false', '0'):
        return False
    raise BadRequest('parameter %s must be true or false' % name)


def _dt_param(req, name):
    v = req.one(name)
    if v is None:
        return None
    try:
        return parse_dt(v)
    except ValueError as e:
        raise BadRequest('invalid %s: %s' % (name, e))


class OtherApis:
    """TAP forensics / URL decode / campaign / people / threat, TRAP, ETI, Essentials, CASB."""

    def _init_other_routes(self):
        rt = self.routes
        rt.append(('GET', re.compile(r'/v2/forensics$'), self.forensics))
        rt.append(('POST', re.compile(r'/v2/url/decode$'), self.url_decode))
        rt.append(('GET', re.compile(r'/v2/campaign/ids$'), self.campaign_ids))
        rt.append(('GET', re.compile(r'/v2/campaign/([^/]+)$'), self.campaign_detail))
        rt.append(('GET', re.compile(r'/v2/people/(vap|top-clickers)$'), self.people))
        rt.append(('GET', re.compile(r'/v2/threat/summary/([^/]+)$'), self.threat_summary))
        rt.append(('GET', re.compile(r'/api/incidents$'), self.trap_incidents))
        rt.append(('GET', re.compile(r'/api/incidents/(\d+)\.json$'), self.trap_incident))
        rt.append(('GET', re.compile(r'/api/lists/(\d+)/members\.json$'), self.trap_members))
        rt.append(('GET', re.compile(r'/v1/repcategories$'), self.eti_repcategories))
        rt.append(('GET', re.compile(r'/v1/(domains|ips)/([^/]+)/([a-z]+)$'), self.eti_lookup))
        rt.append(('GET', re.compile(r'/v1/samples/([0-9A-Fa-f]{32})$'), self.eti_sample))
        rt.append(('GET', re.compile(r'/api/v1/orgs/([^/]+)$'), self.ess_org))
        rt.append(('GET', re.compile(r'/api/v1/orgs/([^/]+)/users$'), self.ess_users))
        rt.append(('GET', re.compile(r'/api/v1/orgs/([^/]+)/domains$'), self.ess_domains))
        rt.append(('GET', re.compile(re.escape(self.args.casb_path) + '$'), self.casb_alerts))
        rt.append(('POST', re.compile(re.escape(self.args.casb_token_path) + '$'), self.casb_token))
        rt.append(('GET', re.compile(r'/generic/v1/items$'), self.generic_offset))
        rt.append(('GET', re.compile(r'/generic/v1/cursor$'), self.generic_cursor))
        rt.append(('GET', re.compile(r'/generic/v1/links$'), self.generic_links))
        rt.append(('POST', re.compile(r'/generic/v1/search$'), self.generic_search))

    # ---- TAP forensics ----------------------------------------------------
    @staticmethod
    def _blacklisted(r):
        """`what.blacklisted`: a bool, or in some recorded responses 0/1."""
        v = r.chance(55)
        return int(v) if r.chance(30) else v

    def _evidence(self, r, etype, th):
        host = urllib.parse.urlsplit(th['threat']).hostname if th['type'] == 'url' else r.choice(URL_HOSTS)
        ip = r.ip()
        if etype == 'attachment':
            what = {'sha256': r.hex(64), 'md5': r.hex(32), 'blacklisted': self._blacklisted(r), 'offset': r.rng(0, 4096),
                    'rule': 'zip_with_exe', 'size': r.rng(1000, 900000)}
            disp = 'Attachment with suspicious content'
        elif etype == 'cookie':
            what = {'action': 'set', 'domain': host, 'key': 'sid', 'value': r.hex(16)}
            disp = 'Cookie set by %s' % host
        elif etype == 'dns':
            what = {'host': host, 'cnames': [], 'ips': [ip], 'nameservers': ['ns1.' + host],
                    'nameserversList': ['ns1.' + host, 'ns2.' + host]}
            disp = 'DNS lookup of host: %s' % host
        elif etype == 'dropper':
            what = {'path': 'C:\\Users\\user\\AppData\\Local\\Temp\\%s.exe' % r.hex(6), 'rule': 'dropper',
                    'url': 'https://%s/%s.bin' % (host, r.hex(6))}
            disp = 'Dropped executable'
        elif etype == 'file':
            what = {'path': 'C:\\Users\\user\\AppData\\Roaming\\%s.dll' % r.hex(6), 'action': 'create',
                    'sha256': r.hex(64), 'md5': r.hex(32), 'size': r.rng(1000, 500000), 'rule': 'file_create'}
            disp = 'File created: %s' % what['path']
        elif etype == 'ids':
            what = {'name': 'ETPRO TROJAN Example Loader CnC Checkin', 'signatureId': r.rng(2800000, 2899999)}
            disp = 'IDS alert: %s' % what['name']
        elif etype == 'mutex':
            what = {'name': 'Global\\%s' % r.hex(12), 'path': 'C:\\Windows\\System32\\rundll32.exe'}
            disp = 'Mutex created'
        elif etype == 'network':
            what = {'action': 'connect', 'ip': ip, 'port': r.choice([80, 443, 8080, 4444]),
                    'type': r.choice(['tcp', 'udp'])}
            disp = '%s connection to %s:%d' % (what['type'].upper(), ip, what['port'])
        elif etype == 'process':
            what = {'action': 'create', 'path': 'C:\\Windows\\System32\\cmd.exe'}
            disp = 'Process created: %s' % what['path']
        elif etype == 'registry':
            what = {'action': 'set', 'key': 'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run',
                    'name': r.hex(6), 'value': 'C:\\Users\\user\\evil.exe', 'rule': 'persistence'}
            disp = 'Registry run key set'
        elif etype == 'url':
            what = {'url': th['threat'] if th['type'] == 'url' else 'https://%s/' % host,
                    'blacklisted': self._blacklisted(r), 'ip': ip, 'httpStatus': r.choice([200, 302, 404]),
                    'md5': r.hex(32), 'sha256': r.hex(64), 'size': r.rng(100, 90000), 'offset': 0, 'rule': 'url_rule'}
            disp = 'URL: %s' % what['url']
        elif etype in ('screenshot', 'redirect_chain'):
            what = {'url': 'https://screens.example.invalid/%s' % r.hex(12)}
            disp = 'Screenshot' if etype == 'screenshot' else 'Redirect chain'
        else:
            what = {'rule': 'suspicious_behavior'}
            disp = 'Suspicious behavior'
        ev = collections.OrderedDict([('type', etype), ('display', disp),
                                      ('engine', r.choice(['iee', 'static', 'tstatic', 'cuckoo', 'av'])),
                                      ('malicious', r.chance(40))])
        if etype == 'screenshot' or r.chance(10):
            ev['note'] = disp
        ev['time'] = 0
        ev['what'] = what
        ev['platforms'] = [r.choice(PLATFORMS)]
        return ev

    def _threat_report(self, th, scope='THREAT'):
        r = R(self.gen.seed, 'forensics', th['id'])
        rep = collections.OrderedDict([('scope', scope), ('id', th['id']), ('name', th['threat']),
                                       ('threatStatus', 'active')])
        if r.chance(50):
            rep['type'] = th['type']
        rep['forensics'] = [self._evidence(r, t, th) for t in FORENSIC_TYPES[th['type']] if r.chance(80)]
        return rep

    def _campaign_report(self, camp):
        members = [t for t in self.gen.threats if t['campaignID'] == camp['id']]
        # A CAMPAIGN report has no threatStatus (recorded).
        rep = collections.OrderedDict([('scope', 'CAMPAIGN'), ('id', camp['id']), ('name', camp['name'])])
        ev = []
        for th in members:
            ev.extend(self._threat_report(th)['forensics'][:3])
        rep['forensics'] = ev
        return rep

    def forensics(self, req):
        bad = self.basic_required(req)
        if bad:
            return bad
        tid, cid = req.one('threatId'), req.one('campaignId')
        inc = _bool_param(req, 'includeCampaignForensics')
        if (tid is None) == (cid is None):
            raise BadRequest('exactly one of threatId or campaignId must be given')
        if cid is not None and req.one('includeCampaignForensics') is not None:
            raise BadRequest('includeCampaignForensics is only valid with threatId')
        reports = []
        if tid is not None:
            th = self.gen.threat_by_id.get(tid.lower())
            if not th:
                return text(404, 'Not Found: unknown threat ID')
            reports.append(self._threat_report(th))
            if inc and th['campaignID']:
                reports.append(self._campaign_report(self.gen.campaign_by_id[th['campaignID']]))
        else:
            camp = self.gen.campaign_by_id.get(cid.lower())
            if not camp:
                return text(404, 'Not Found: unknown campaign ID')
            reports.append(self._campaign_report(camp))
        return jresp(collections.OrderedDict([('generated', fmt_ms(self.clock.now())), ('reports', reports)]))

    # ---- TAP URL decoder --------------------------------------------------
    def url_decode(self, req):
        auth = self.basic_ok(req)
        if auth is False or ('Authorization' in req.headers and not auth):
            return text(401, 'Unauthorized: invalid credentials')
        try:
            d = json.loads(req.body.decode('utf-8'))
        except ValueError:
            raise BadRequest('body must be JSON: {"urls": [...]}')
        if not isinstance(d, dict) or not isinstance(d.get('urls'), list) or not d['urls'] \
                or not all(isinstance(u, str) for u in d['urls']):
            raise BadRequest('body must be {"urls": [<string>, ...]}')
        out = []
        for u in d['urls']:
            e = collections.OrderedDict([('encodedUrl', u)])
            try:
                e['decodedUrl'] = urldefense_decode(u)
                if auth:
                    r = R(self.gen.seed, 'urldecode', u)
                    e['messageGuid'] = base64.b64encode(r.bytes(21), b'-_').decode()[:28]
                    e['clusterName'] = 'corpexample_hosted'
                    e['recipientEmail'] = person(r)[2]
                e['success'] = True
            except URLDefenseError as ex:
                e['success'] = False
                e['error'] = str(ex)
            out.append(e)
        return jresp({'urls': out})

    # ---- TAP campaigns ----------------------------------------------------
    def campaign_updates(self, start, end):
        """[(campaign idx, latest update time)] for updates with start <= t < end, in API order."""
        latest = {}
        for h in range(start // HOUR, -(-end // HOUR)):
            r = R(self.gen.seed, 'campaign-updates', h)
            for _ in range(r.below(4)):
                j = r.below(self.gen.N_CAMPAIGNS)
                t = h * HOUR + r.below(3600000) * MS
                if start <= t < end and t > latest.get(j, -1):
                    latest[j] = t
        # Newest first, as in the recorded response.
        return sorted(latest.items(), key=lambda kv: (-kv[1], kv[0]))

    def campaign_ids(self, req):
        bad = self.basic_required(req)
        if bad:
            return bad
        iv = req.one('interval')
        if not iv:
            raise BadRequest('interval is required')
        try:
            start, end = parse_interval(iv)
        except ValueError as e:
            raise BadRequest('invalid interval: %s' % e)
        if not 30 * NS <= end - start <= DAY:
            raise BadRequest('the interval must be at least 30 seconds and at most 1 day')
        size = req.int_param('size', 100, 1, 200)
        page = req.int_param('page', 1, 1, 10 ** 6)
        end = min(end, max(start, floor_to(self.clock.now(), NS)))
        ups = self.campaign_updates(start, end)
        sel = ups[(page - 1) * size: page * size]
        if not sel:
            return text(404, 'Not Found: no campaigns in the interval')
        out = []
        for j, t in sel:
            c = self.gen.campaigns[j]
            out.append(collections.OrderedDict([('id', c['id']), ('lastUpdatedAt', fmt_ms(t)),
                                                ('notable', c['notable']),
                                                ('verticallyTargeted', c['verticallyTargeted'])]))
        return jresp({'campaigns': out})

    def campaign_detail(self, req, cid):
        bad = self.basic_required(req)
        if bad:
            return bad
        c = self.gen.campaign_by_id.get(cid.lower())
        if not c:
            return text(404, 'Not Found: unknown campaign ID')
        r = R(self.gen.seed, 'campaign-detail', c['idx'])
        day0 = floor_to(self.clock.now(), DAY) - (1 + c['idx'] % 20) * DAY

        def named(pool, k):
            return [{'id': R(self.gen.seed, 'named', n).uuid(), 'name': n} for n in pool[:k]]
        d = collections.OrderedDict()
        d['id'] = c['id']
        d['name'] = c['name']
        d['description'] = ('Invoice-themed messages linking to an archive that drops a loader.\r\n'
                            'Targets: finance departments; lure language: "Zahlungserinnerung", \u00abfacture\u00bb.')
        d['startDate'] = fmt_ms(day0)
        d['notable'] = c['notable']
        d['actors'] = named(ACTORS[r.below(3):], r.rng(0, 2))
        d['families'] = named(FAMILIES[r.below(3):], r.rng(1, 2))
        d['malware'] = named(MALWARE[r.below(2):], r.rng(0, 2))
        d['techniques'] = named(TECHNIQUES[r.below(2):], r.rng(1, 2))
        d['brands'] = named(BRANDS[r.below(2):], r.rng(0, 2))
        members = []
        for th in self.gen.threats:
            if th['campaignID'] == c['id']:
                m = collections.OrderedDict([('id', th['id']), ('threat', th['threat']), ('threatStatus', 'active'),
                                             ('type', th['type'])])
                if th['idx'] % 3 == 0:
                    m['subType'] = 'ATTACHMENT' if th['type'] == 'attachment' else 'URL'
                m['threatTime'] = fmt_ms(day0 + (th['idx'] + 1) * 600 * NS)
                members.append(m)
        d['campaignMembers'] = members
        return jresp(d)

    # ---- TAP people -------------------------------------------------------
    @staticmethod
    def _people_guid(r):
        """identity.guid as recorded: hex in a 10-4-4-4-12 layout."""
        h = r.hex(34)
        return '%s-%s-%s-%s-%s' % (h[:10], h[10:14], h[14:18], h[18:22], h[22:])

    def people_users(self, kind, w):
        """(all users of window W in API order, total, interval end) for vap/top-clickers."""
        vap = kind == 'vap'
        end = floor_to(self.clock.now(), NS)          # recorded intervals end at a whole second
        total = {14: 137, 30: 221, 90: 348}[w] if vap else {14: 64, 30: 118, 90: 203}[w]
        users = []
        for k in range(total):
            r = R(self.gen.seed, 'people', kind, w, k)
            f, l, email = person(r)
            ident = collections.OrderedDict([
                ('guid', self._people_guid(r)), ('customerUserId', None if r.chance(60) else 'u%05d' % k),
                ('emails', [email] + (['%s@%s' % (f, CORP)] if r.chance(30) else [])),
                ('name', '%s %s' % (f.capitalize(), l.capitalize())), ('department', r.choice(DEPARTMENTS)),
                ('location', r.choice([None, 'Paris', 'Z\u00fcrich', 'New York'])), ('title', r.choice(TITLES)),
                ('vip', r.chance(10))])
            fams = [FAMILIES[i] for i in range(len(FAMILIES)) if r.chance(40)] or [FAMILIES[0]]
            if vap:
                sc = [r.rng(10, 900) for _ in fams]
                stats = collections.OrderedDict([('attackIndex', sum(sc)),
                                                 ('families', [{'name': n.lower(), 'score': s}
                                                               for n, s in zip(fams, sc)])])
                users.append(collections.OrderedDict([('identity', ident), ('threatStatistics', stats)]))
            else:
                cl = [r.rng(1, 12) for _ in fams]
                stats = collections.OrderedDict([('clickCount', sum(cl)),
                                                 ('families', [{'name': n, 'clicks': c}
                                                               for n, c in zip(fams, cl)])])
                users.append(collections.OrderedDict([('identity', ident), ('clickStatistics', stats)]))
        if vap:
            users.sort(key=lambda u: (-u['threatStatistics']['attackIndex'], u['identity']['guid']))
        else:
            users.sort(key=lambda u: (-u['clickStatistics']['clickCount'], u['identity']['guid']))
        return users, total, end

    def people(self, req, kind):
        bad = self.basic_required(req)
        if bad:
            return bad
        w = req.one('window')
        if w not in ('14', '30', '90'):
            raise BadRequest('window is required and must be 14, 30 or 90')
        w = int(w)
        vap = kind == 'vap'
        size = req.int_param('size', 1000 if vap else 100, 1, 1000 if vap else 200)
        page = req.int_param('page', 1, 1, 10 ** 6)
        users, total, end = self.people_users(kind, w)
        d = collections.OrderedDict()
        d['users'] = users[(page - 1) * size: page * size]
        if vap:
            d['totalVapUsers'] = total
            d['interval'] = '%s/%s' % (fmt_s(end - w * DAY), fmt_s(end))
            d['averageAttackIndex'] = round(sum(u['threatStatistics']['attackIndex'] for u in users) / total, 2)
            d['vapAttackIndexThreshold'] = 1100.25
        else:
            d['totalTopClickers'] = total
            d['interval'] = '%s/%s' % (fmt_s(end - w * DAY), fmt_s(end))
        return jresp(d)

    # ---- TAP threat summary -----------------------------------------------
    def threat_summary(self, req, tid):
        bad = self.basic_required(req)
        if bad:
            return bad
        th = self.gen.threat_by_id.get(tid.lower())
        if not th:
            return text(404, 'Not Found: unknown threat ID')
        r = R(self.gen.seed, 'threat-summary', th['idx'])
        d = collections.OrderedDict()
        d['id'] = th['id']
        d['identifiedAt'] = fmt_ms(floor_to(self.clock.now(), DAY) - (1 + th['idx'] % 5) * DAY
                                   + th['idx'] * 61 * NS)
        d['name'] = th['threat']
        d['type'] = {'messageText': 'message text'}.get(th['type'], th['type'])
        d['category'] = th['classification']
        d['status'] = 'active'
        d['severity'] = th['severity']
        d['attackSpread'] = th['attackSpread']
        d['notable'] = th['notable']
        if th['idx'] % 2:
            d['verticals'] = ['Financial Services', 'Healthcare'][:r.rng(1, 2)]
            d['geographies'] = ['US', 'DE', 'JP'][:r.rng(1, 3)]
        else:
            d['verticals'] = False
            d['geographies'] = False
        for key, pool in (('actors', ACTORS), ('families', FAMILIES), ('malware', MALWARE),
                          ('techniques', TECHNIQUES), ('brands', BRANDS)):
            d[key] = [{'id': R(self.gen.seed, 'named', n).uuid(), 'name': n} for n in pool[:r.rng(0, 2)]]
        return jresp(d)

    # ---- TRAP ---------------------------------------------------------------
    def raw_key_ok(self, req, key):
        return req.headers.get('Authorization', '') == key

    def trap_incident_obj(self, h, i, now, expand=True):
        r = R(self.gen.seed, 'trap', h, i)
        iid = h * 4 + i + 1
        created = h * HOUR + r.below(3600) * NS
        state = r.choice(TRAP_STATES)
        closed = None
        if state == 'Closed':
            closed = created + r.rng(600, 2 * 86400) * NS
            if closed > now:
                state, closed = 'Open', None
        updated = min(now, (closed or created) + r.rng(0, 900) * NS)
        sender_ip = r.ip()
        th = self.gen.threats[r.below(self.gen.N_THREATS)]
        f, l, rcpt = person(r)
        subject = r.choice([s for s in SUBJECTS if s])
        mid = '<%s.%d@example.net>' % (r.hex(12), r.rng(1000, 9999))
        d = collections.OrderedDict()
        d['id'] = iid
        typ = r.choice(['Malware', 'Phishing', 'Spam', 'Impostor'])
        if r.chance(80):                              # absent from some recorded incidents
            d['type'] = typ
        d['summary'] = r.choice(['Unsolicited Bulk Email', 'Malicious URL clicked', 'Credential phishing',
                                 'Abuse mailbox report: "Is this legit?"'])
        d['description'] = '' if r.chance(50) else 'Reported by %s\nvia abuse mailbox' % rcpt
        d['score'] = r.rng(0, 10000)
        d['state'] = state
        d['created_at'] = fmt_s(created)
        d['updated_at'] = fmt_s(updated)
        d['closed_at'] = fmt_s(closed) if closed else None
        d['close_summary'] = 'Quarantined' if closed else None
        d['close_detail'] = 'Messages pulled from %d mailboxes' % r.rng(1, 9) if closed else None
        d['assignee'] = 'Unassigned' if state != 'Assigned' else 'soc.analyst'
        d['team'] = r.choice(['SOC-T1', 'SOC-T2', 'Unassigned'])
        d['users'] = ['%s.%s' % (f, l)]
        n_ev = r.rng(1, 3)
        d['event_count'] = n_ev
        fp = r.rng(0, 1)
        d['false_positive_count'] = None if r.chance(15) else fp      # null in some recorded incidents
        d['event_sources'] = ['Proofpoint TAP'] if r.chance(70) else ['Abuse Mailbox']
        # Expanded: events inline and event_ids null; not expanded: events null
        # and event_ids listed (both recorded).
        d['event_ids'] = None if expand else [iid * 10 + j for j in range(n_ev)]
        hosts = collections.OrderedDict()
        hosts['attacker'] = [sender_ip, th['threat']] if th['type'] == 'url' else [sender_ip]
        if th['type'] == 'url' and r.chance(50):
            hosts['url'] = [th['threat']]
        if r.chance(20):
            hosts['cnc'] = [sender_ip]
        hosts['forensics'] = [th['threat']]
        d['hosts'] = hosts
        d['incident_field_values'] = [{'name': 'Classification', 'value': r.choice(['Phishing', 'Malware', 'Spam'])},
                                      {'name': 'Attack Vector', 'value': 'Email'},
                                      {'name': 'Severity', 'value': r.choice(['Low', 'Medium', 'High', 'Critical'])},
                                      {'name': 'Abuse Disposition', 'value': None}]
        d['comments'] = []
        qr = []
        if r.chance(60):
            qr.append(collections.OrderedDict([
                ('status', 'successful'), ('recipient', rcpt), ('recipientType', 'Original Recipient'),
                ('messageId', mid), ('alertSource', d['event_sources'][0]),
                ('startTime', fmt_ms(created + r.below(5000) * MS)),
                ('endTime', fmt_ms(created + r.rng(5, 600) * NS)), ('details', 'Success'),
                ('isRead', r.choice(['true', 'false'])), ('wasUndone', 'false')]))
        d['quarantine_results'] = qr
        d['successful_quarantines'] = len(qr)
        d['failed_quarantines'] = 0
        d['pending_quarantines'] = 0
        evs = []
        if expand:
            for j in range(n_ev):
                deliv = created - r.rng(30, 3600) * NS
                if r.chance(50):
                    # A serialised date object, as recorded (zone, millis, chronology, and
                    # the afterNow/equalNow/beforeNow flags).
                    mdt = collections.OrderedDict([
                        ('zone', {'fixed': True, 'id': 'UTC'}), ('millis', deliv // MS),
                        ('chronology', {'zone': {'fixed': True, 'id': 'UTC'}}),
                        ('afterNow', False), ('equalNow', False), ('beforeNow', True)])
                else:
                    mdt = fmt_s(deliv)
                email = collections.OrderedDict([
                    ('sender', {'email': 'billing@example.net', 'vap': False}),
                    ('recipient', {'email': rcpt, 'vap': r.chance(10)}),
                    ('subject', subject), ('messageId', mid), ('abuseCopy', r.chance(20)),
                    ('messageDeliveryTime', mdt)])
                if th['type'] == 'attachment' and r.chance(60):
                    email['attachments'] = [collections.OrderedDict([
                        ('timestamp', {'epochSecond': deliv // NS, 'nano': 0}),
                        ('safename', '%s.zip' % r.hex(32)), ('realnamePII', {'secret': 'invoice.zip'}),
                        ('size', r.rng(1000, 900000)), ('contentType', 'application/zip'),
                        ('md5', r.hex(32)), ('sha256', th['threat'])])]
                ev = collections.OrderedDict([
                    ('id', iid * 10 + j), ('category', th['classification']), ('alertType', th['classification']),
                    ('severity', r.choice(['Info', 'Minor', 'Major', 'Critical'])), ('source', d['event_sources'][0])])
                if r.chance(40):                      # TAP-sourced events name the threat (recorded)
                    ev['threatname'] = th['threat']
                    ev['classified'] = False
                    ev['description'] = th['threat']
                    ev['malwareName'] = th['threat']
                ev.update([('state', 'Linked'), ('attackDirection', 'inbound'), ('received', fmt_s(created)),
                           ('falsePositive', False), ('attackers', [{'location': sender_ip}]), ('emails', [email])])
                evs.append(ev)
        d['events'] = evs if expand else None
        return created, closed, d

    def trap_incidents_range(self, start, end, now, states=None, closed_after=None, closed_before=None,
                             expand=True):
        out = []
        end = min(end, now + NS)
        for h in range(start // HOUR, -(-end // HOUR)):
            for i in range(R(self.gen.seed, 'trap-count', h).below(3)):
                created, closed, d = self.trap_incident_obj(h, i, now, expand)
                if not (start <= created < end) or created > now:
                    continue
                if states and d['state'].lower() not in states:
                    continue
                if closed_after is not None and (closed is None or closed < closed_after):
                    continue
                if closed_before is not None and (closed is None or closed >= closed_before):
                    continue
                out.append(d)
        return out

    def trap_incidents(self, req):
        if not self.raw_key_ok(req, self.args.trap_key):
            return text(401, 'Unauthorized')
        now = self.clock.now()
        st = req.params.get('state')
        states = None
        if st:
            states = set()
            for v in st:
                for x in v.split(','):
                    if x.lower() not in ('new', 'open', 'assigned', 'closed', 'ignored'):
                        raise BadRequest('invalid state %r' % x)
                    states.add(x.lower())
        cb = _dt_param(req, 'created_before')
        ca = _dt_param(req, 'created_after')
        cb = now + NS if cb is None else cb
        ca = cb - 30 * DAY if ca is None else ca
        if cb - ca > 400 * DAY:
            return text(504, 'Gateway Timeout')
        expand = _bool_param(req, 'expand_events', True)
        incs = self.trap_incidents_range(ca, cb, now, states, _dt_param(req, 'closed_after'),
                                         _dt_param(req, 'closed_before'), expand)
        incs.sort(key=lambda d: sha_hex(self.gen.seed, 'order', d['id']))   # unordered, deliberately
        return jresp({'result': incs} if self.cfg['trap_wrap_result'] else incs)

    def trap_incident(self, req, iid):
        if not self.raw_key_ok(req, self.args.trap_key):
            return text(401, 'Unauthorized')
        iid = int(iid)
        h, i = divmod(iid - 1, 4)
        now = self.clock.now()
        if iid < 1 or i >= R(self.gen.seed, 'trap-count', h).below(3):
            return text(404, 'Not Found')
        created, _, d = self.trap_incident_obj(h, i, now, _bool_param(req, 'expand_events', True))
        if created > now:
            return text(404, 'Not Found')
        return jresp(d)

    def trap_member_list(self, lid):
        """All members of TRAP list LID (API order)."""
        n = 0 if lid == 5 else R(self.gen.seed, 'trap-list', lid).rng(5, 40)
        now = self.clock.now()
        out = []
        for k in range(n):
            r = R(self.gen.seed, 'trap-member', lid, k)
            if lid == 1:
                val = r.ip()
            elif lid == 2:
                val = '%s.%s' % (r.hex(8), r.choice(['example', 'example.net', 'test']))
            elif lid == 3:
                val = 'https://%s/%s' % (r.choice(URL_HOSTS), r.hex(10))
            else:
                val = r.hex(64)
            created = floor_to(now, DAY) - r.rng(1, 90) * DAY + r.below(86400) * NS
            m = collections.OrderedDict()
            m['id'] = lid * 100000 + k + 1
            m['list_id'] = lid
            m['host'] = collections.OrderedDict([('id', lid * 100000 + k + 1), ('host', val)])
            m['description'] = r.choice(['', 'Added by TAP alert', 'Manually blocked \u2013 phishing kit'])
            m['expiration'] = None if r.chance(60) else fmt_s(created + r.rng(7, 90) * DAY)
            m['created_at'] = fmt_s(created)
            m['updated_at'] = fmt_s(created)
            out.append(m)
        return out

    def trap_members(self, req, list_id):
        if not self.raw_key_ok(req, self.args.trap_key):
            return text(401, 'Unauthorized')
        lid = int(list_id)
        if lid not in TRAP_LISTS:
            return text(404, 'Not Found: unknown list')
        out = self.trap_member_list(lid)
        # Public sources show no paging; with `size` the mock pages (page from 1).
        size = req.int_param('size', 0, 1, 10000)
        if size:
            page = req.int_param('page', 1, 1, 10 ** 6)
            out = out[(page - 1) * size: page * size]
        elif req.one('page') is not None:
            raise BadRequest('page needs size')
        return jresp(out)

    # ---- ETI ----------------------------------------------------------------
    def _eti_auth(self, req):
        k = req.headers.get('Authorization')
        if not k:
            return jresp({'success': False, 'message': 'Authentication required'}, 401)
        if k != self.args.eti_key:
            return jresp({'success': False, 'message': 'Invalid API key or no access'}, 403)
        return None

    def eti_repcategories(self, req):
        bad = self._eti_auth(req)
        if bad:
            return bad
        return jresp({'success': True, 'response': [{'name': n, 'description': d} for n, d in ETI_CATEGORIES]})

    def eti_lookup(self, req, kind, subject, res):
        bad = self._eti_auth(req)
        if bad:
            return bad
        allowed = ETI_DOMAIN_RES if kind == 'domains' else ETI_IP_RES
        if res not in allowed:
            return jresp({'success': False, 'message': 'Unknown action'}, 404)
        subject = subject.lower()
        r = R(self.gen.seed, 'eti', kind, subject, res)
        today = floor_to(self.clock.now(), DAY)
        clean = subject.startswith('unknown.') or 'clean' in subject or subject.startswith('10.')
        n = 0 if clean else r.rng(1, 6)

        def day(back):
            return fmt_day(today - back * DAY)
        if res == 'whois':
            if clean:
                resp = {'domain': subject}
            else:
                resp = collections.OrderedDict([
                    ('domain', subject),
                    ('registrant', collections.OrderedDict([('name', 'REDACTED FOR PRIVACY'),
                                                            ('email', 'abuse@registrar.example'),
                                                            ('created', day(r.rng(100, 900))),
                                                            ('updated', day(r.rng(10, 99))),
                                                            ('expires', fmt_day(today + r.rng(10, 300) * DAY))])),
                    ('registrar', collections.OrderedDict([('name', 'Example Registrar, Inc.'), ('country', 'US'),
                                                           ('website', 'https://registrar.example')]))])
            return jresp({'success': True, 'response': resp})
        items = []
        for k in range(n):
            a = r.rng(20, 400)
            b = r.rng(0, a)
            if res == 'reputation':
                cat = ETI_CATEGORIES[(k + r.below(3)) % len(ETI_CATEGORIES)][0]
                if any(x['category'] == cat for x in items):
                    continue
                items.append({'category': cat, 'score': r.rng(0, 127)})
            elif res == 'urls':
                items.append('/%s.php?id=XXXX&v=%d' % (r.choice(['gate', 'panel/admin', 'wp-content/x']), r.rng(1, 9)))
            elif res == 'samples':
                items.append({'source': r.hex(32), 'first_seen': day(a), 'last_seen': day(b)})
            elif res == 'ips':
                items.append({'ip': r.ip(), 'first_seen': day(a), 'last_seen': day(b)})
            elif res == 'domains':
                items.append({'domain': '%s.example' % r.hex(8), 'first_seen': day(a), 'last_seen': day(b)})
            elif res == 'events':
                ev = collections.OrderedDict()
                if kind == 'domains':
                    ev['domain'] = subject
                else:
                    ev['ip'] = subject if r.chance(80) else 'private'
                ev['date'] = day(b)
                ev['source'] = r.chance(50)
                ev['sid'] = str(r.rng(2800000, 2899999))
                ev['signature'] = r.choice(['ETPRO TROJAN Example Loader CnC Checkin',
                                            'ET MALWARE Stealer Exfil "POST" \\ data'])
                ev['count'] = r.rng(1, 500)
                items.append(ev)
            elif res == 'nameservers':
                ns = collections.OrderedDict([('server', 'ns%d.dns-host.example' % (k + 1))])
                if r.chance(70):
                    ns['first_seen'] = day(a)
                    ns['last_seen'] = day(b)
                items.append(ns)
            elif res == 'geoloc':
                g = collections.OrderedDict([('ip', subject if kind == 'ips' else r.ip()),
                                             ('country', r.choice(['US', 'DE', 'RU', 'NL']))])
                if r.chance(60):
                    g['region'] = r.choice(['CA', 'Hessen', 'Noord-Holland'])
                    g['city'] = r.choice(['San Jose', 'Frankfurt am Main', 'Amsterdam', 'M\u00fcnchen'])
                items.append(g)
        return jresp({'success': True, 'response': items})

    def eti_sample(self, req, md5):
        bad = self._eti_auth(req)
        if bad:
            return bad
        r = R(self.gen.seed, 'eti-sample', md5.lower())
        return jresp({'success': True, 'response': collections.OrderedDict([
            ('submit_date', time.strftime('%Y-%m-%d %H:%M:%S',
                                          time.gmtime(self.clock.now() // NS - r.rng(3600, 90 * 86400)))),
            ('file_type', r.choice(['PE32 executable', 'Zip archive data', 'PDF document'])),
            ('file_size', r.rng(1000, 5000000)), ('sha256', r.hex(64))])})

    # ---- Essentials ---------------------------------------------------------
    def _ess_auth(self, req, domain):
        if (req.headers.get('X-User') != self.args.ess_user
                or req.headers.get('X-Password') != self.args.ess_password):
            return jresp({'errors': [{'message': 'Unauthorized'}]}, 401)
        if domain.lower() not in ESS_ORGS:
            return jresp({'errors': [{'message': 'Organization not found'}]}, 404)
        return None

    def _ess_domains(self, org):
        base = [org] + (['%s.net' % org.split('.')[0], 'mail.' + org] if ESS_ORGS[org] else [])
        out = []
        for k, name in enumerate(base):
            r = R(self.gen.seed, 'ess-domain', org, k)
            out.append(collections.OrderedDict([
                ('name', name), ('is_active', k != 2), ('is_relay', r.chance(20)),
                ('destination', 'mx%d.%s' % (k + 1, org)), ('failovers', [] if r.chance(60) else ['mx-backup.' + org]),
                ('is_verified', True)]))
        return out

    def ess_org(self, req, domain):
        bad = self._ess_auth(req, domain)
        if bad:
            return bad
        org = domain.lower()
        r = R(self.gen.seed, 'ess-org', org)
        return jresp(collections.OrderedDict([
            ('eid', r.rng(100000, 999999)), ('name', org.split('.')[0].capitalize() + ' Inc.'),
            ('primary_domain', org), ('is_active', True), ('type', 'organization'),
            ('user_licenses', ESS_ORGS[org] + 10), ('active_users', ESS_ORGS[org]),
            ('domains', self._ess_domains(org))]))

    def ess_users(self, req, domain):
        bad = self._ess_auth(req, domain)
        if bad:
            return bad
        org = domain.lower()
        users = []
        for k in range(ESS_ORGS[org]):
            r = R(self.gen.seed, 'ess-user', org, k)
            f, l = r.choice(FIRST), r.choice(LAST)
            email = '%s.%s%d@%s' % (f, l, k, org)
            u = collections.OrderedDict()
            u['primary_email'] = email
            u['type'] = 'organization_admin' if k == 0 else r.choice(ESS_TYPES)
            u['is_active'] = not r.chance(10)
            u['firstname'] = f.capitalize() if k % 7 else 'Ren\u00e9e'
            u['surname'] = l.capitalize() if k % 11 else "O'Brien-\u00c5str\u00f6m"
            u['alias_emails'] = ['%s%d@%s' % (f[0], k, org)] if r.chance(40) else []
            u['white_list_senders'] = ['partner@trusted.example'] if r.chance(20) else []
            u['black_list_senders'] = ['*@spam.example'] if r.chance(10) else []
            u['is_billable'] = u['type'] not in ('functional_account', 'silent_user')
            if r.chance(30):
                u['odin_settings'] = {'quarantine_digest': r.choice(['daily', 'never']), 'language': 'en'}
            users.append(u)
        return jresp({'users': users})

    def ess_domains(self, req, domain):
        bad = self._ess_auth(req, domain)
        if bad:
            return bad
        return jresp({'domains': self._ess_domains(domain.lower())})

    # ---- CASB ---------------------------------------------------------------
    def casb_token(self, req):
        key = secret = None
        ctype = req.headers.get('Content-Type', '')
        try:
            if 'json' in ctype:
                d = json.loads(req.body.decode('utf-8'))
                key, secret = d.get('api_key') or d.get('client_id'), d.get('api_secret') or d.get('client_secret')
            else:
                d = urllib.parse.parse_qs(req.body.decode('utf-8'))
                key = (d.get('client_id') or d.get('api_key') or [None])[0]
                secret = (d.get('client_secret') or d.get('api_secret') or [None])[0]
        except (ValueError, AttributeError):
            raise BadRequest('malformed token request')
        if key != self.args.casb_key or secret != self.args.casb_secret:
            return jresp({'error': 'invalid_client'}, 401)
        return jresp(collections.OrderedDict([('access_token', self.args.casb_token),
                                              ('token_type', 'Bearer'), ('expires_in', 3600)]))

    def casb_range(self, start, end, now, status=None):
        out = []
        end = min(end, now + NS)
        for h in range(start // HOUR, -(-end // HOUR)):
            for i in range(R(self.gen.seed, 'casb-count', h).below(3)):
                r = R(self.gen.seed, 'casb', h, i)
                ts = h * 3600 + r.below(3600)
                if not (start <= ts * NS < end) or ts * NS > now:
                    continue
                title, sub = r.choice(CASB_TITLES)
                st = 'open' if r.chance(60) else 'closed'
                if status and st != status:
                    continue
                f, l, email = person(r)
                a = collections.OrderedDict()
                a['id'] = r.uuid()
                a['title'] = title
                a['severity'] = r.choice(['low', 'medium', 'high', 'critical'])
                a['sub_type'] = sub
                a['status'] = st
                a['description'] = 'Alert "%s" for %s \u2013 see related events.' % (title, email)
                a['timestamp'] = ts
                a['related_events'] = [collections.OrderedDict([
                    ('event_id', 'ev-%d' % (h * 10 + i)), ('user_email', email),
                    ('full_name', '%s %s' % (f.capitalize(), l.capitalize())),
                    ('cloud_service', r.choice(CLOUD_SERVICES)), ('user_agent', r.choice(USER_AGENTS)),
                    ('event_classification', {'category': r.choice(['Share', 'Login', 'Download'])}),
                    ('intelligence', [{'ip_address': r.ip()}])])]
                out.append(a)
        return out

    def casb_alerts(self, req):
        if req.headers.get('Authorization', '') != 'Bearer ' + self.args.casb_token:
            return jresp({'error': 'unauthorized'}, 401)
        limit = req.int_param('limit', 100, 1, 1000)
        status = req.one('status')
        if status is not None and status.lower() not in ('open', 'closed'):
            raise BadRequest('status must be open or closed')
        now = self.clock.now()
        since, until = req.one('since'), req.one('until')
        try:
            until = int(until) * NS if until else now + NS
            since = int(since) * NS if since else until - 7 * DAY
        except ValueError:
            raise BadRequest('since/until must be epoch seconds')
        alerts = self.casb_range(since, until, now, status and status.lower())
        alerts.sort(key=lambda a: (-a['timestamp'], a['id']))
        return jresp({'alerts': alerts[:limit]})


GENERIC_TOTAL = 237
GENERIC_MAX = 100


class GenericApi:
    """A plain JSON API that pages in the three common ways, for manual flows
    (not a Proofpoint API): offset/limit, a cursor token, next links."""

    def generic_items(self):
        out = []
        base = floor_to(self.clock.now(), DAY) - 30 * DAY
        for k in range(GENERIC_TOTAL):
            r = R(self.gen.seed, 'generic', k)
            it = collections.OrderedDict()
            it['id'] = 'item-%04d' % (k + 1)
            it['seq'] = k + 1
            it['name'] = r.choice(['alpha', 'beta', 'gamma', 'delta']) + ' \u00e9t\u00e9 %d' % r.rng(1, 99)
            it['created'] = fmt_s(base + k * 600 * NS)
            it['tags'] = [t for t in ('a', 'b', 'c') if r.chance(50)]
            it['score'] = r.choice([0.5, 1, 2.25, None])
            out.append(it)
        return out

    def _generic_auth(self, req):
        if req.headers.get('X-Api-Key') != self.args.generic_key:
            return jresp({'error': 'missing or wrong X-Api-Key'}, 401)
        return None

    def generic_offset(self, req):
        bad = self._generic_auth(req)
        if bad:
            return bad
        off = req.int_param('offset', 0, 0, 10 ** 6)
        lim = req.int_param('limit', 50, 1, GENERIC_MAX)
        items = self.generic_items()
        return jresp(collections.OrderedDict([('data', items[off:off + lim]), ('total', len(items))]))

    def generic_cursor(self, req):
        bad = self._generic_auth(req)
        if bad:
            return bad
        lim = req.int_param('limit', 50, 1, GENERIC_MAX)
        cur = req.one('cursor')
        off = 0
        if cur is not None:
            try:
                off = int(base64.urlsafe_b64decode(cur.encode() + b'=' * (-len(cur) % 4)).decode()[4:])
            except (ValueError, UnicodeDecodeError):
                raise BadRequest('invalid cursor')
        items = self.generic_items()
        page = items[off:off + lim]
        nxt = None
        if off + lim < len(items):
            nxt = base64.urlsafe_b64encode(('pos:%d' % (off + lim)).encode()).decode().rstrip('=')
        return jresp(collections.OrderedDict([('items', page), ('meta', {'next_cursor': nxt})]))

    def generic_links(self, req):
        bad = self._generic_auth(req)
        if bad:
            return bad
        page = req.int_param('page', 1, 1, 10 ** 6)
        per = req.int_param('per_page', 40, 1, GENERIC_MAX)
        items = self.generic_items()
        sel = items[(page - 1) * per: page * per]
        links = collections.OrderedDict()
        if page * per < len(items):
            nxt = '/generic/v1/links?page=%d&per_page=%d' % (page + 1, per)
            mode = req.one('links', 'relative')
            if mode == 'absolute':
                nxt = 'http://%s%s' % (req.headers.get('Host', '127.0.0.1'), nxt)
            elif mode == 'foreign':
                nxt = 'http://other.example%s' % nxt
            elif mode != 'relative':
                raise BadRequest('links must be relative, absolute or foreign')
            if mode != 'relative':
                nxt += '&links=' + mode
            links['next'] = nxt
        else:
            links['next'] = None
        return jresp(collections.OrderedDict([('results', sel), ('links', links)]))

    def generic_search(self, req):
        """POST {"tag": "a"} -> the items with that tag (one page)."""
        bad = self._generic_auth(req)
        if bad:
            return bad
        try:
            d = json.loads(req.body.decode('utf-8'))
            tag = d['tag']
        except (ValueError, KeyError, TypeError):
            raise BadRequest('body must be {"tag": "..."}')
        return jresp({'hits': [it for it in self.generic_items() if tag in it['tags']]})


class App(OtherApis, GenericApi):
    def __init__(self, args):
        self.args = args
        self.gen = Gen(args.seed)
        self.clock = Clock(parse_dt(args.now) if args.now else None, args.now_advances)
        self.lock = threading.Lock()
        self.requests = []
        self.faults = []
        self.cfg = {'empty_204': False, 'rate': args.rate, 'chunked': False, 'gzip': False,
                    'trap_wrap_result': False, 'late_pct': 0, 'late_delay': 0}
        self.stopping = threading.Event()
        self.logf = open(args.log, 'a', encoding='utf-8') if args.log else None
        self.routes = []
        self._init_routes()

    def log(self, line):
        if self.logf:
            with self.lock:
                self.logf.write('%s %s\n' % (fmt_ms(time.time_ns()), line))
                self.logf.flush()

    # ---- faults ---------------------------------------------------------
    def take_fault(self, path):
        with self.lock:
            for f in self.faults:
                if path.startswith(f.path):
                    f.count -= 1
                    if f.count <= 0:
                        self.faults.remove(f)
                    return f
        return None

    # ---- routing --------------------------------------------------------
    def _init_routes(self):
        rt = self.routes
        for p in SIEM_PATHS:
            rt.append(('GET', re.compile(re.escape(p) + '$'), self.siem))
        self._init_other_routes()

    def api(self, req):
        allowed = False
        for method, rx, fn in self.routes:
            m = rx.match(req.path)
            if m:
                if method != req.method:
                    allowed = True
                    continue
                try:
                    return fn(req, *m.groups())
                except BadRequest as e:
                    return text(e.status, str(e))
        if allowed:
            return text(405, 'Method Not Allowed')
        return text(404, 'Not Found: %s' % req.path)

    # ---- auth helpers ---------------------------------------------------
    def basic_ok(self, req):
        h = req.headers.get('Authorization', '')
        if not h[:6].lower() == 'basic ':
            return None
        try:
            user, _, pw = base64.b64decode(h[6:].strip(), validate=True).decode('utf-8').partition(':')
        except Exception:
            return False
        return user == self.args.principal and pw == self.args.secret

    def basic_required(self, req):
        if not self.basic_ok(req):
            return text(401, 'Unauthorized: missing or invalid credentials',
                        [('WWW-Authenticate', 'Basic realm="tap-api"')])
        return None

    # ---- SIEM -----------------------------------------------------------
    def siem_filters(self, req):
        statuses = req.params.get('threatStatus')
        if statuses:
            s = set()
            for v in statuses:
                lv = v.lower()
                if lv not in ('active', 'cleared', 'falsepositive'):
                    raise BadRequest('invalid threatStatus %r (active, cleared, falsePositive)' % v)
                s.add(lv)
            statuses = s
        else:
            statuses = {'active', 'cleared'}
        types = req.params.get('threatType')
        if types:
            s = set()
            for v in types:
                lv = v.lower()
                if lv not in ('url', 'attachment', 'messagetext'):
                    raise BadRequest('invalid threatType %r (url, attachment, messageText)' % v)
                s.add(lv)
            types = s
        else:
            types = None
        return statuses, types

    def siem_window(self, req, now):
        given = [k for k in ('interval', 'sinceSeconds', 'sinceTime') if k in req.params]
        if len(given) != 1:
            raise BadRequest('exactly one of interval, sinceSeconds or sinceTime must be given')
        name = given[0]
        v = req.one(name)
        clamp = False
        try:
            if name == 'interval':
                start, end = parse_interval(v)
                clamp = True
            elif name == 'sinceSeconds':
                if not re.fullmatch(r'\d{1,9}', v):
                    raise ValueError('sinceSeconds must be a non-negative integer')
                end = round_minute(now)
                start = end - int(v) * NS
            else:
                start = parse_dt(v)
                end = round_minute(now)
        except ValueError as e:
            raise BadRequest('invalid %s: %s' % (name, e))
        length = end - start
        if length < 30 * NS or length > 3600 * NS:
            raise BadRequest('the time window must be at least 30 seconds and at most 1 hour (got %.3f s)'
                             % (length / NS))
        if start < now - 7 * DAY:
            raise BadRequest('the requested time is outside retention: the start is more than 7 days ago')
        if start > now:
            raise BadRequest('the requested interval starts in the future')
        if clamp and end > now:
            end = max(start, floor_to(now, NS))
        return start, end

    def visible(self, ev, now):
        """Late indexing: whether the API would return EV at NOW."""
        late = R(self.gen.seed, 'late', ev['stream'], ev['b'], ev['i']).below(100) < self.cfg['late_pct']
        return not late or ev['t'] + self.cfg.get('late_delay', 0) * NS <= now

    def siem(self, req):
        bad = self.basic_required(req)
        if bad:
            return bad
        fmt = (req.one('format') or 'syslog').lower()
        if fmt not in ('json', 'syslog'):
            raise BadRequest('invalid format %r (json or syslog)' % req.one('format'))
        statuses, types = self.siem_filters(req)
        now = self.clock.now()
        start, end = self.siem_window(req, now)
        rate = self.cfg['rate']
        streams = SIEM_PATHS[req.path]
        found = {s: self.gen.events(s, start, end, rate, statuses, types) for s in streams}
        if self.cfg.get('late_pct'):
            found = {s: [ev for ev in evs if self.visible(ev, now)] for s, evs in found.items()}
        if self.cfg['empty_204'] and not any(found.values()):
            return Resp(204, b'', None)
        if fmt == 'json':
            env = collections.OrderedDict()
            env['queryEndTime'] = fmt_s(end)
            for s in streams:
                env[s] = [self.gen.record(ev) for ev in found[s]]
            return jresp(env)
        allev = sorted((ev for s in streams for ev in found[s]),
                       key=lambda e: (e['t'], STREAMS.index(e['stream']), e['i']))
        lines = [syslog_line(ev['stream'], ev['t'], self.gen.record(ev)) for ev in allev]
        return Resp(200, ''.join(l + '\n' for l in lines))

    # ---- control --------------------------------------------------------
    def control(self, req):
        p = req.path
        if p == '/__mock/health':
            return text(200, 'ok')
        if p == '/__mock/requests' and req.method == 'GET':
            prefix = req.one('path', '')
            with self.lock:
                out = [e for e in self.requests if e['path'].startswith(prefix)]
                return jresp(out)
        if p == '/__mock/reset' and req.method == 'POST':
            with self.lock:
                self.requests.clear()
                self.faults.clear()
            return jresp({'ok': True})
        if p == '/__mock/fault':
            if req.method == 'GET':
                with self.lock:
                    return jresp([f.describe() for f in self.faults])
            if req.method == 'POST':
                try:
                    d = json.loads(req.body.decode('utf-8') or 'null')
                except ValueError:
                    raise BadRequest('body must be JSON')
                items = d if isinstance(d, list) else [d]
                fs = [Fault(x) for x in items]
                with self.lock:
                    self.faults.extend(fs)
                    return jresp({'queued': len(fs), 'pending': [f.describe() for f in self.faults]})
        if p == '/__mock/config':
            if req.method == 'POST':
                try:
                    d = json.loads(req.body.decode('utf-8') or '{}')
                except ValueError:
                    raise BadRequest('body must be JSON')
                if not isinstance(d, dict):
                    raise BadRequest('body must be a JSON object')
                for k, v in d.items():
                    if k == 'now':
                        self.clock.set(parse_dt(v) if v else None, bool(d.get('now_advances', False)))
                    elif k == 'now_advances':
                        continue
                    elif k == 'rate':
                        if not isinstance(v, int) or v < 0:
                            raise BadRequest('rate must be an integer >= 0')
                        self.cfg['rate'] = v
                    elif k in ('late_pct', 'late_delay'):
                        # Late indexing: late_pct percent of SIEM events become
                        # visible only late_delay seconds after their time.
                        if not isinstance(v, int) or v < 0 or (k == 'late_pct' and v > 100):
                            raise BadRequest('%s must be an integer (late_pct 0..100)' % k)
                        self.cfg[k] = v
                    elif k in self.cfg:
                        self.cfg[k] = bool(v)
                    else:
                        raise BadRequest('unknown config key %r' % k)
            return jresp(self.config_view())
        if p == '/__mock/expected' and req.method == 'GET':
            return self.expected(req)
        if p == '/__mock/catalog' and req.method == 'GET':
            return jresp(self.catalog())
        return text(404, 'unknown control endpoint %s' % p)

    def config_view(self):
        d = dict(self.cfg)
        d['now'] = fmt_ms(self.clock.now())
        d['now_fixed'] = self.clock.fixed is not None
        d['now_advances'] = self.clock.advances
        d['seed'] = self.args.seed
        d['principal'] = self.args.principal
        return d

    def expected(self, req):
        path = req.one('path', '/v2/siem/all')
        # Paged lists: every record, in API order (no time range).
        m = re.match(r'/v2/people/(vap|top-clickers)$', path)
        if m:
            w = req.one('window')
            if w not in ('14', '30', '90'):
                raise BadRequest('window must be 14, 30 or 90')
            return jresp({'users': self.people_users(m.group(1), int(w))[0]})
        m = re.match(r'/api/lists/(\d+)/members\.json$', path)
        if m:
            if int(m.group(1)) not in TRAP_LISTS:
                raise BadRequest('unknown list')
            return jresp({'members': self.trap_member_list(int(m.group(1)))})
        if path.startswith('/generic/v1/'):
            return jresp({'items': self.generic_items()})
        try:
            start = parse_dt(req.one('start') or '')
            end = parse_dt(req.one('end') or '')
        except ValueError as e:
            raise BadRequest('start/end: %s' % e)
        now = self.clock.now()
        if req.one('clamp') in ('1', 'true'):          # like an interval request: end clamped to now
            end = min(end, max(start, floor_to(now, NS)))
        if path == '/v2/campaign/ids':
            return jresp({'campaigns': [self.gen.campaigns[j]['id'] for j, _ in self.campaign_updates(start, end)]})
        if path == '/api/incidents':
            states = {x.lower() for v in req.params.get('state', []) for x in v.split(',')} or None
            incs = self.trap_incidents_range(start, end, now, states, expand=False)
            return jresp({'incidents': [d['id'] for d in incs]})
        if path == self.args.casb_path:
            st = req.one('status')
            alerts = self.casb_range(start, end, now, st and st.lower())
            alerts.sort(key=lambda a: (-a['timestamp'], a['id']))
            return jresp({'alerts': [a['id'] for a in alerts]})
        if path not in SIEM_PATHS:
            raise BadRequest('path must be one of %s, /v2/campaign/ids, /api/incidents, %s'
                             % (', '.join(SIEM_PATHS), self.args.casb_path))
        statuses, types = self.siem_filters(req)
        if (req.one('format') or '').lower() == 'syslog':       # the lines, in API order
            found = [ev for s in SIEM_PATHS[path]
                     for ev in self.gen.events(s, start, end, self.cfg['rate'], statuses, types)]
            found.sort(key=lambda e: (e['t'], STREAMS.index(e['stream']), e['i']))
            return jresp({'lines': [syslog_line(ev['stream'], ev['t'], self.gen.record(ev))
                                    for ev in found]})
        full = req.one('full') in ('1', 'true')
        out = collections.OrderedDict()
        for s in SIEM_PATHS[path]:
            evs = self.gen.events(s, start, end, self.cfg['rate'], statuses, types)
            out[s] = [self.gen.record(e) for e in evs] if full else [self.gen.identity(e) for e in evs]
        return jresp(out)

    def catalog(self):
        return collections.OrderedDict([
            ('threats', [{'id': t['id'], 'type': t['type'], 'campaignID': t['campaignID']}
                         for t in self.gen.threats]),
            ('campaigns', [c['id'] for c in self.gen.campaigns]),
            ('trap_lists', {str(k): v for k, v in TRAP_LISTS.items()}),
            ('essentials_orgs', ESS_ORGS),
            ('eti_empty_domains', 'unknown.* or *clean*'),
            ('casb_path', self.args.casb_path),
            ('credentials', {'tap': [self.args.principal, self.args.secret], 'trap': self.args.trap_key,
                             'eti': self.args.eti_key, 'essentials': [self.args.ess_user, self.args.ess_password],
                             'casb': [self.args.casb_key, self.args.casb_secret, self.args.casb_token],
                             'generic': self.args.generic_key})])


# --------------------------------------------------------------------------
# Request handler
# --------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'ppmock/1.0'
    timeout = 300

    def version_string(self):
        return self.server_version

    def setup(self):
        http.server.BaseHTTPRequestHandler.setup(self)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, fmt, *args):
        self.server.app.log('%s %s' % (self.client_address[0], fmt % args))

    def log_request(self, code='-', size='-'):
        pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def read_body(self):
        te = self.headers.get('Transfer-Encoding', '')
        if 'chunked' in te.lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        n = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(n) if n > 0 else b''

    def dispatch(self):
        app = self.server.app
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        params = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        req = Req(self.command, path, u.query, params, self.headers, body)
        if path.startswith('/__mock/'):
            try:
                resp = app.control(req)
            except BadRequest as e:
                resp = text(e.status, str(e))
            self.transmit(resp, None)
            return
        fault = app.take_fault(path)
        resp = None
        if fault:
            if fault.kind == 'status':
                resp = text(fault.status, fault.body if fault.body is not None else
                            'mock fault: HTTP %d' % fault.status, list(fault.headers.items()))
                if fault.status == 204:
                    resp = Resp(204, b'', None)
            elif fault.kind == '429':
                if path.startswith('/v1/'):
                    resp = jresp({'success': False, 'message': 'Rate limit exceeded', 'response': {}}, 429)
                else:
                    resp = text(429, fault.body or 'Too Many Requests')
                resp.headers.append(('Retry-After', str(fault.retry_after)))
            elif fault.kind == 'redirect_loop':
                resp = text(302, 'Found', [('Location', self.path)])
            elif fault.kind == 'slow':
                app.stopping.wait(fault.seconds)
            elif fault.kind == 'generate':
                resp = Resp(fault.status, b'', 'application/json')
        if resp is None:
            try:
                resp = app.api(req)
            except Exception as e:    # never kill the connection on a mock bug
                app.log('internal error: %r' % e)
                resp = text(500, 'mock internal error: %r' % e)
        entry = collections.OrderedDict([
            ('method', req.method), ('path', path), ('query', u.query),
            ('params', params), ('status', resp.status),
            ('fault', fault.kind if fault else None),
            ('time', fmt_ms(time.time_ns())), ('mock_now', fmt_ms(app.clock.now())),
            ('headers', {k: v for k, v in self.headers.items()}),
            ('body', body.decode('utf-8', 'replace')[:4096])])
        with app.lock:
            app.requests.append(entry)
        app.log('%s %s %s -> %d%s' % (self.client_address[0], req.method, self.path, resp.status,
                                       ' fault=' + fault.kind if fault else ''))
        self.transmit(resp, fault)

    def transmit(self, resp, fault):
        app = self.server.app
        kind = fault.kind if fault else None
        if kind == 'generate':
            self.send_generated(resp, fault)
            return
        body = resp.body
        hdrs = list(resp.headers)
        if resp.ctype and resp.status != 204:
            hdrs.append(('Content-Type', resp.ctype))
        if kind == 'gzip_corrupt':
            good = gzip.compress(body or b'x')
            body = good[:10] + bytes((b ^ 0x5A) for b in good[10:])
            hdrs.append(('Content-Encoding', 'gzip'))
        elif (app.cfg['gzip'] and fault is None and body and resp.status != 204
              and 'gzip' in self.headers.get('Accept-Encoding', '').lower()):
            body = gzip.compress(body)
            hdrs.append(('Content-Encoding', 'gzip'))
        chunked = (app.cfg['chunked'] and kind in (None, 'slow') and resp.status not in (204, 304)
                   and not self.path.startswith('/__mock/'))
        self.send_response(resp.status)
        for k, v in hdrs:
            self.send_header(k, v)
        if resp.status == 204:
            pass
        elif chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command == 'HEAD' or resp.status == 204:
            return
        if kind == 'truncate':
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif kind == 'reset':
            self.wfile.write(body[:max(1, len(body) // 3)])
            self.wfile.flush()
            self.abort()
        elif kind == 'stall':
            self.wfile.write(body[:min(16, len(body) // 4)])
            self.wfile.flush()
            deadline = time.monotonic() + fault.seconds
            sock = self.connection
            while not app.stopping.is_set() and time.monotonic() < deadline:
                try:
                    rd, _, _ = select.select([sock], [], [], 0.2)
                    if rd and not sock.recv(4096):
                        break                   # client gave up
                except (OSError, ValueError):
                    break
            self.close_connection = True
        elif chunked:
            for i in range(0, len(body), 4096):
                piece = body[i:i + 4096]
                self.wfile.write(b'%x\r\n%s\r\n' % (len(piece), piece))
            self.wfile.write(b'0\r\n\r\n')
        else:
            self.wfile.write(body)

    def send_generated(self, resp, fault):
        """Sends FAULT's pieces as the body (Content-Length framing, or chunked
        when the fault says so), about 64 KiB per write: the body is never held
        whole. A client that hangs up early (e.g. at its size limit) ends the
        transfer quietly."""
        app = self.server.app
        total = sum(len(d) * n for d, n in fault.pieces)
        self.send_response(resp.status)
        self.send_header('Content-Type', resp.ctype)
        if fault.chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Content-Length', str(total))
        self.end_headers()
        if self.command == 'HEAD':
            return

        def out(b):
            self.wfile.write(b'%x\r\n%s\r\n' % (len(b), b) if fault.chunked else b)
        try:
            for data, times in fault.pieces:
                per = min(times, max(1, (1 << 16) // len(data)))
                block = data * per
                left = times
                while left > 0 and not app.stopping.is_set():
                    n = min(per, left)
                    out(block if n == per else data * n)
                    left -= n
            if fault.chunked:
                self.wfile.write(b'0\r\n\r\n')
        except OSError:
            self.close_connection = True

    def abort(self):
        """Close with a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            raw = self.connection
            if isinstance(raw, ssl.SSLSocket):
                raw = socket.socket(fileno=raw.detach())
            raw.close()
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        self.app.log('connection error from %s: %r' % (client_address[0], e))


class Server6(Server):
    address_family = socket.AF_INET6


def check_loopback(host):
    if host == 'localhost':
        return '127.0.0.1'
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError('--host must be a loopback IP address (or localhost), got %r' % host)
    if not ip.is_loopback:
        raise ValueError('refusing to bind non-loopback address %s' % host)
    return str(ip)


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
    with open(tmp, 'w') as f:
        f.write('%d\n' % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description='Loopback mock of the Proofpoint APIs (see README.md).')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--now', help='fixed current time (ISO-8601); default real UTC clock')
    ap.add_argument('--now-advances', action='store_true',
                    help='with --now: the clock starts at --now and then runs in real time')
    ap.add_argument('--principal', default='mock-principal')
    ap.add_argument('--secret', default='mock-secret-value')
    ap.add_argument('--rate', type=int, default=3, help='max messages (one event per recipient) or clicks per stream per UTC minute')
    ap.add_argument('--tls-cert')
    ap.add_argument('--tls-key')
    ap.add_argument('--log')
    ap.add_argument('--casb-path', default='/api/v1/alerts')
    ap.add_argument('--casb-token-path', default='/api/v1/token')
    ap.add_argument('--casb-key', default='mock-casb-key')
    ap.add_argument('--casb-secret', default='mock-casb-secret')
    ap.add_argument('--casb-token', default='mock-casb-token')
    ap.add_argument('--trap-key', default='mock-trap-key')
    ap.add_argument('--eti-key', default='mock-eti-key')
    ap.add_argument('--ess-user', default='admin@corp.example')
    ap.add_argument('--ess-password', default='mock-ess-password')
    ap.add_argument('--generic-key', default='mock-generic-key')
    ap.add_argument('--exit-with-parent', action='store_true',
                    help='exit when the parent process goes away')
    args = ap.parse_args(argv)
    if args.rate < 0:
        ap.error('--rate must be >= 0')
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error('--tls-cert and --tls-key go together')
    if args.now:
        try:
            parse_dt(args.now)
        except ValueError as e:
            ap.error('--now: %s' % e)
    try:
        host = check_loopback(args.host)
    except ValueError as e:
        ap.error(str(e))
    app = App(args)
    cls = Server6 if ':' in host else Server
    srv = cls((host, args.port), Handler)
    srv.app = app
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    port = srv.server_address[1]

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    th = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.2}, daemon=True)
    th.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    app.log('listening on %s:%d (seed=%d, tls=%s)' % (host, port, args.seed, bool(args.tls_cert)))
    ppid = os.getppid()
    while not stop.wait(0.5):
        if args.exit_with_parent and os.getppid() != ppid:
            break
    app.stopping.set()
    srv.shutdown()
    srv.server_close()
    app.log('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
