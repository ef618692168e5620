#!/usr/bin/env python3
"""gen_siem.py: writes a realistic TAP SIEM /v2/siem/all response for the benchmark.

    python3 tests/bench/gen_siem.py SIZE_MB SEED [--out FILE] [--pretty]

The document has the shape the API (and tests/mock/ppmock.py) returns:
{"queryEndTime": ..., "messagesDelivered": [...], "messagesBlocked": [...],
"clicksPermitted": [...], "clicksBlocked": [...]}, with message and click
records carrying the same fields as the mock's (GUID, QID, recipients,
subjects in several scripts, threatsInfoMap, messageParts, scores, sizes
beyond 32 and 53 bits, ...). About 80% of the bytes are messagesDelivered.
The output is close to SIZE_MB megabytes (10^6 bytes) and a pure function of
(SIZE_MB, SEED). Compact JSON by default, as the API sends it; --pretty
indents it (more whitespace to remove).
"""

import argparse
import base64
import json
import random
import sys
import uuid

FIRST = ['jane', 'john', 'ana', 'mehdi', 'li', 'olga', 'pat', 'sam', 'noor', 'yuki', 'jose', 'eve']
LAST = ['doe', 'smith', 'garcia', 'haddad', 'wang', 'ivanova', 'lee', 'khan', 'tanaka', 'silva']
DOMAINS = ['example.net', 'mailer.example.org', 'bad-cdn.example', 'invoices.example.com',
           'secure-login.example', 'xn--bcher-kva.example', 'shipping.example.net']
URL_HOSTS = ['login-verify.example.org', 'files.example.org', 'bad-cdn.example',
             'docs-share.example.net', 'o365-auth.example.com', 'parcel-track.example']
SUBJECTS = [
    'Updated remittance advice',
    'Invoice #4471 overdue',
    'R\u00e9union trimestrielle \u2013 ordre du jour',
    '\u0421\u0447\u0451\u0442 \u043d\u0430 \u043e\u043f\u043b\u0430\u0442\u0443 \u211617',
    '\u8acb\u6c42\u66f8\u306e\u3054\u78ba\u8a8d\u3092\u304a\u9858\u3044\u3057\u307e\u3059',
    'RE: "Urgent" wire transfer C:\\Payments\\Q2.xlsx',
    'Your parcel \U0001F4E6 is waiting',
    'Tab\tseparated "quoted" \\ subject',
    None,
    '',
    'Password expiry notice',
]
MODULES = ['av', 'spf', 'dkimv', 'spam', 'pdr', 'sandbox', 'urldefense', 'zerohour', 'dmarc']
USER_AGENTS = [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
    'Chrome/124.0 Safari/537.36',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like '
    'Gecko) Mobile/15E148',
    'Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)',
    'curl/8.5.0',
]
CUSTOMER = '3f6b2a1c-7d4e-4c1a-9b2f-0e5d6c7b8a90'


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        r = self.r
        self.threats = []
        for k in range(48):
            ttype = r.choice(['url'] * 5 + ['attachment'] * 3 + ['messageText'] * 2)
            if ttype == 'url':
                value = 'https://%s/%s/%s' % (r.choice(URL_HOSTS), r.choice(['o365', 'login', 'd']),
                                              self.hex(8))
            elif ttype == 'attachment':
                value = self.hex(64)
            else:
                value = '%s.%s@%s' % (r.choice(FIRST), r.choice(LAST), r.choice(DOMAINS))
            self.threats.append({
                'id': self.hex(64), 'type': ttype, 'threat': value,
                'classification': r.choice(['phish', 'malware', 'spam', 'impostor']),
                'campaignID': str(uuid.UUID(int=r.getrandbits(128))) if r.random() < 0.6 else None,
            })
        self.t = 1795000000

    def hex(self, n):
        return '%0*x' % (n, self.r.getrandbits(4 * n))

    def time(self):
        self.t += self.r.randrange(0, 3)
        ms = self.r.randrange(1000)
        return '%sT%s.%03dZ' % ('2026-11-22', '%02d:%02d:%02d' % (
            (self.t // 3600) % 24, (self.t // 60) % 60, self.t % 60), ms)

    def person(self):
        return '%s.%s@corp.example' % (self.r.choice(FIRST), self.r.choice(LAST))

    def ip(self):
        return '%s.%d' % (self.r.choice(['198.51.100', '203.0.113', '192.0.2']),
                          self.r.randrange(1, 255))

    def message(self, blocked):
        r = self.r
        sdom = r.choice(DOMAINS)
        rcpts = [self.person() for _ in range(r.choice([1, 1, 1, 2, 3]))]
        from_addr = '%s@%s' % (r.choice(['billing', 'no-reply', 'hr', 'ceo', 'support']), sdom)
        threats = [r.choice(self.threats) for _ in range(r.choice([1, 1, 1, 2, 2, 3]))]
        x = r.randrange(100)
        size = (2 ** 32 + r.randrange(2 ** 31) if x < 6 else
                2 ** 53 + 1 + 2 * r.randrange(1000) if x < 8 else r.randrange(900, 250000))
        parts = [{'disposition': 'inline', 'filename': 'text.html', 'contentType': 'text/html',
                  'oContentType': 'text/html', 'md5': self.hex(32), 'sha256': self.hex(64),
                  'sandboxStatus': r.choice([None, 'unsupported', 'NOT_SUPPORTED'])}]
        for th in threats:
            if th['type'] == 'attachment':
                parts.append({'disposition': 'attached',
                              'filename': r.choice(['invoice.zip', 'scan_0042.iso',
                                                    'r\u00e9sum\u00e9.docm']),
                              'contentType': 'application/zip',
                              'oContentType': 'application/octet-stream', 'md5': self.hex(32),
                              'sha256': th['threat'],
                              'sandboxStatus': r.choice(['threat', 'clean', 'inprogress'])})
        tim = []
        for th in threats:
            e = {'threatID': th['id'], 'threatStatus': r.choice(['active'] * 7 + ['cleared'] * 2
                                                                + ['falsePositive']),
                 'classification': th['classification'], 'threat': th['threat'],
                 'threatTime': self.time(), 'threatType': th['type'],
                 'threatUrl': 'https://threatinsight.proofpoint.com/%s/threat/email/%s' % (
                     CUSTOMER, th['id']),
                 'campaignID': th['campaignID']}
            if r.random() < 0.3:
                e['detectionType'] = 'NONE'
                e['actors'] = [{'id': self.hex(32), 'name': 'TA%d' % r.randrange(200, 600),
                                'type': 'ACTOR'}]
            tim.append(e)
        return {
            'GUID': base64.b64encode(r.getrandbits(168).to_bytes(21, 'big'), b'-_').decode()[:28],
            'QID': None if (not blocked and r.random() < 0.5) else '%s-%d' % (self.hex(10),
                                                                              r.randrange(1, 9)),
            'id': str(uuid.UUID(int=r.getrandbits(128))),
            'messageID': '<%s.%d@%s>' % (self.hex(12), r.randrange(1000, 9999), sdom),
            'messageTime': self.time(),
            'sender': '%s@%s' % (self.hex(32), sdom),
            'senderIP': self.ip(),
            'recipient': rcpts,
            'subject': r.choice(SUBJECTS),
            'fromAddress': [from_addr],
            'toAddresses': list(rcpts),
            'ccAddresses': [] if r.random() < 0.7 else [self.person()],
            'replyToAddress': [],
            'headerFrom': '"Team" <%s>' % from_addr,
            'headerReplyTo': None,
            'xmailer': r.choice([None, 'Microsoft Outlook 16.0', 'PHPMailer 6.9.1']),
            'spamScore': r.randrange(101),
            'phishScore': r.randrange(101),
            'malwareScore': r.randrange(101),
            'impostorScore': r.choice([0.0, 0.0, 12.5, 47.25, 100.0]),
            'cluster': 'corpexample_hosted',
            'quarantineFolder': r.choice(['Attachment Defense', 'Phish']) if blocked else None,
            'quarantineRule': r.choice(['module.sandbox.threat']) if blocked else None,
            'policyRoutes': ['default_inbound'] + (['executives'] if r.random() < 0.2 else []),
            'modulesRun': [m for m in MODULES if r.random() < 0.75] or ['av'],
            'messageSize': size,
            'completelyRewritten': r.choice([True, False, 'na']),
            'messageParts': parts,
            'threatsInfoMap': tim,
        }

    def click(self):
        r = self.r
        th = r.choice(self.threats)
        sdom = r.choice(DOMAINS)
        return {
            'id': str(uuid.UUID(int=r.getrandbits(128))),
            'GUID': base64.b64encode(r.getrandbits(168).to_bytes(21, 'big'), b'-_').decode()[:28],
            'messageID': '<%s.%d@%s>' % (self.hex(12), r.randrange(1000, 9999), sdom),
            'url': th['threat'],
            'clickTime': self.time(),
            'clickIP': self.ip(),
            'userAgent': r.choice(USER_AGENTS),
            'sender': '%s@%s' % (self.hex(32), sdom),
            'senderIP': self.ip(),
            'recipient': self.person(),
            'classification': th['classification'],
            'threatID': th['id'],
            'threatURL': 'https://threatinsight.proofpoint.com/%s/threat/email/%s' % (CUSTOMER,
                                                                                     th['id']),
            'threatTime': self.time(),
            'threatStatus': 'active',
            'campaignId': th['campaignID'],
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('size_mb', type=float)
    ap.add_argument('seed', type=int)
    ap.add_argument('--out', help='output file (default: stdout)')
    ap.add_argument('--pretty', action='store_true', help='indent the document')
    a = ap.parse_args()
    target = int(a.size_mb * 1e6)
    g = Gen(a.seed)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(',', ':'),
                             indent=2 if a.pretty else None).encode
    out = open(a.out, 'wb') if a.out else sys.stdout.buffer
    nl = b'\n' if a.pretty else b''
    # Share of the bytes per array (messagesDelivered is the benchmark's stream).
    shares = [('messagesDelivered', 0.80, lambda: g.message(False)),
              ('messagesBlocked', 0.10, lambda: g.message(True)),
              ('clicksPermitted', 0.06, g.click),
              ('clicksBlocked', 0.04, g.click)]
    head = b'{' + nl + b'"queryEndTime":"2026-11-22T01:00:00Z",' + nl
    out.write(head)
    written = len(head)
    for k, (name, share, make) in enumerate(shares):
        out.write(b'"' + name.encode() + b'":[' + nl)
        budget = max(0, int(target * share) - 32)
        n = 0
        used = 0
        while used < budget:
            rec = dumps(make()).encode('utf-8')
            if n:
                out.write(b',' + nl)
                used += 1 + len(nl)
            out.write(rec)
            used += len(rec)
            n += 1
        tail = nl + b']' + (b',' if k + 1 < len(shares) else b'') + nl
        out.write(tail)
        written += used + len(name) + 4 + len(tail)
    out.write(b'}\n')
    if a.out:
        out.close()


if __name__ == '__main__':
    main()
